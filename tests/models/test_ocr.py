"""PP-OCRv4 models from rapidocr-onnxruntime: preprocessing, decoding, metrics, and the float models'
behaviour on seeded synthetic text (the reference that quantized models are compared with)."""

import string

import numpy as np
import pytest
from PIL import Image

ort = pytest.importorskip("onnxruntime")

from quantscope.models import ocr  # noqa: E402
from quantscope.models.text_render import TextLine, render_lines, render_pages, vocabulary  # noqa: E402

# Measured on 24 lines of render_lines(seed=12) (Python 3.11, Pillow 13): exact 0.958, CER 0.0062.
REC_EXACT_FLOOR = 0.85
REC_CER_CEILING = 0.02


def _model(kind: str):
    try:
        return ocr.ocr_model_path(kind)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def rec_session():
    return ocr.ocr_session(_model("rec"))


@pytest.fixture(scope="module")
def det_session():
    return ocr.ocr_session(_model("det"))


@pytest.fixture(scope="module")
def cls_session():
    return ocr.ocr_session(_model("cls"))


@pytest.fixture(scope="module")
def lines() -> list[TextLine]:
    return render_lines(24, seed=12)


# ------------------------------------------------------------------------------------------ renderer


def test_render_lines_is_deterministic():
    a, b = render_lines(6, seed=7), render_lines(6, seed=7)
    assert [x.text for x in a] == [y.text for y in b]
    assert all(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b, strict=True))
    assert [x.text for x in render_lines(6, seed=8)] != [x.text for x in a]


def test_render_lines_content():
    for line in render_lines(40, seed=1):
        assert line.image.mode == "RGB" and line.image.height >= line.size
        assert 2 <= len(line.text.split()) <= 6 and len(line.text) <= 40
        assert line.text == line.text.strip() and "  " not in line.text
        assert 24 <= line.size <= 40
        pixels = np.asarray(line.image.convert("L"))
        assert pixels.min() < 100 < 200 < np.median(pixels)  # dark ink on light paper


def test_vocabulary_fits_the_recognizer_dictionary(rec_session):
    characters = set(ocr.rec_characters(rec_session))
    used = set("".join(vocabulary()))
    assert used <= characters
    assert used <= set(string.ascii_letters + string.digits + string.punctuation)


def test_render_pages():
    pages = render_pages(3, seed=5)
    again = render_pages(3, seed=5)
    for page, other in zip(pages, again, strict=True):
        assert page.image.size == (640, 480) and page.boxes == other.boxes and page.texts == other.texts
        assert len(page.boxes) == len(page.texts) >= 1
        for left, top, right, bottom in page.boxes:
            assert 0 <= left < right <= 640 and 0 <= top < bottom <= 480
    with pytest.raises(ValueError, match="multiples of 32"):
        render_pages(1, size=(600, 480))


# ------------------------------------------------------------------------------ decoding and metrics


def test_ctc_greedy_decode_merges_repeats_and_drops_blanks():
    characters = ["blank", "a", "b", " "]
    steps = [[0, 1, 1, 0, 1, 2, 2, 3, 2], [0, 0, 0, 0, 0, 0, 0, 0, 0]]
    probs = np.eye(4, dtype=np.float32)[np.array(steps)]
    assert ocr.ctc_greedy_decode(probs, characters) == ["aab b", ""]
    with pytest.raises(ValueError, match="probs must be"):
        ocr.ctc_greedy_decode(probs[:, :, :3], characters)


def test_character_error_rate():
    assert ocr.edit_distance("kitten", "sitting") == 3
    assert ocr.character_error_rate("sitting", "kitten") == pytest.approx(3 / 6)
    assert ocr.character_error_rate("abc", "abc") == 0.0
    assert ocr.character_error_rate("", "abcd") == 1.0
    assert ocr.corpus_cer(["abc", "x"], ["abd", "xyz"]) == pytest.approx(3 / 6)
    score = ocr.score_lines(["abc", "x"], ["abc", "xyz"])
    assert score == ocr.OcrScore(exact_line_accuracy=0.5, cer=2 / 6, n_lines=2)
    with pytest.raises(ValueError, match="truth is empty"):
        ocr.character_error_rate("a", "")


# ------------------------------------------------------------------------------------- preprocessing


def test_preprocess_rec_shapes_range_and_channel_order():
    red = Image.new("RGB", (96, 24), (255, 0, 0))  # aspect 4 -> 192 wide at height 48
    wide = Image.new("RGB", (500, 20), (0, 0, 0))  # aspect 25 -> 1200 wide
    x = ocr.preprocess_rec([red, wide])
    assert x.dtype == np.float32 and x.shape == (2, 3, 48, 1200)
    assert x.min() >= -1.0 and x.max() <= 1.0
    np.testing.assert_allclose(x[0, :, :, :192].mean(axis=(1, 2)), [-1.0, -1.0, 1.0])  # BGR
    assert np.all(x[0, :, :, 192:] == 0.0)  # right padding
    assert ocr.preprocess_rec([red]).shape == (1, 3, 48, 320)  # at least 320 wide
    assert ocr.preprocess_rec([wide], max_width=800).shape == (1, 3, 48, 800)


def test_preprocess_det_and_cls_shapes():
    page = Image.new("RGB", (640, 480), (255, 255, 255))
    assert ocr.preprocess_det(page).shape == (1, 3, 736, 992)
    assert ocr.preprocess_det(page, limit_side_len=320, limit_type="max").shape == (1, 3, 256, 320)
    x = ocr.preprocess_cls([page, Image.new("RGB", (30, 30))])
    assert x.shape == (2, 3, 48, 192) and x.dtype == np.float32
    assert np.all(x[1, :, :, 48:] == 0.0)


def test_calibration_inputs(lines):
    batches = list(ocr.rec_batches(lines, batch_size=10))
    assert [b["x"].shape[0] for b in batches] == [10, 10, 4]
    assert all(set(b) == {"x"} and b["x"].dtype == np.float32 and b["x"].shape[2] == 48 for b in batches)
    widths = [b["x"].shape[3] for b in batches]
    assert widths == sorted(widths)  # lines batched by aspect ratio
    images = [line.image for line in lines[:5]]
    assert [c["x"].shape[0] for c in ocr.cls_inputs(images, batch_size=3)] == [3, 2]
    assert all(d["x"].shape[:2] == (1, 3) for d in ocr.det_inputs(images))


# ---------------------------------------------------------------------------------------- bad input


def test_bad_input(monkeypatch, rec_session):
    with pytest.raises(ValueError, match="kind must be one of"):
        ocr.ocr_model_path("ocr")
    with pytest.raises(ValueError, match="lines is empty"):
        ocr.evaluate_rec(rec_session, [])
    with pytest.raises(ValueError, match="lines is empty"):
        list(ocr.rec_batches([]))
    with pytest.raises(ValueError, match="images is empty"):
        ocr.preprocess_rec([])
    monkeypatch.setattr(ocr.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install rapidocr-onnxruntime --no-deps"):
        ocr.ocr_model_path("rec")


# ------------------------------------------------------------------------------------- float models


def test_rec_characters(rec_session):
    characters = ocr.rec_characters(rec_session)
    assert len(characters) == 6625 == rec_session.get_outputs()[0].shape[2]
    assert characters[0] == "blank" and characters[-1] == " "


def test_float_recognizer_reads_rendered_lines(rec_session, lines):
    preds, score = ocr.evaluate_rec(rec_session, lines)
    assert len(preds) == score.n_lines == 24
    assert score.exact_line_accuracy >= REC_EXACT_FLOOR, list(zip(preds, [line.text for line in lines], strict=True))
    assert score.cer <= REC_CER_CEILING


def test_compare_rec_with_itself(rec_session, lines):
    result = ocr.compare_rec(rec_session, rec_session, lines[:8])
    assert result.agreement == 1.0 and result.cer_vs_float == 0.0
    assert result.float_score == result.quant_score


def test_detector_finds_text_inside_the_line_boxes(det_session):
    page = render_pages(1, seed=3)[0]
    (prob,) = ocr.det_probability_maps(det_session, [page.image])
    assert prob.shape == (736, 992) and 0.0 <= prob.min() and prob.max() <= 1.0
    text = prob > 0.3
    inside = np.zeros_like(text)
    sy, sx = prob.shape[0] / page.image.height, prob.shape[1] / page.image.width
    for left, top, right, bottom in page.boxes:
        inside[int(top * sy) : int(bottom * sy) + 1, int(left * sx) : int(right * sx) + 1] = True
    assert text.mean() > 0.01  # positive text area
    assert (text & inside).sum() / text.sum() > 0.95  # and it lies on the drawn lines
    assert ocr.det_map_iou([prob], [prob]) == 1.0
    assert ocr.det_map_iou([prob], [np.zeros_like(prob)]) == 0.0


def test_direction_classifier(cls_session, lines):
    images = [line.image for line in lines[:8]]
    upright = ocr.cls_probabilities(cls_session, images)
    flipped = ocr.cls_probabilities(cls_session, [image.rotate(180) for image in images])
    assert upright.shape == (8, 2) and np.all(upright.argmax(axis=1) == 0)
    assert flipped.argmax(axis=1).mean() >= 0.75  # long lines squeezed into 192 px can be ambiguous
    agreement = ocr.cls_agreement(cls_session, cls_session, images)
    assert agreement == ocr.ClsAgreement(label_agreement=1.0, mean_abs_prob_diff=0.0, n_images=8)
