"""Offline access to the PP-OCRv4 ONNX models shipped in the PyPI package ``rapidocr-onnxruntime``,
with numpy/PIL preprocessing and the metrics used to compare a float model with a quantized one.

The three models: ``rec`` (text-line recognizer, CTC over 6625 classes), ``det`` (DB text detector,
per-pixel text probability) and ``cls`` (0/180-degree direction classifier). Their preprocessing
follows the package's (images in BGR channel order, pixels scaled to [-1, 1]), reimplemented here
without OpenCV. Sessions run on onnxruntime's CPU execution provider; every function that runs a
model accepts either a path to an ``.onnx`` file or an existing ``onnxruntime.InferenceSession``.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

MODEL_FILES = {
    "rec": "ch_PP-OCRv4_rec_infer.onnx",
    "det": "ch_PP-OCRv4_det_infer.onnx",
    "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
}
"""File name of each model kind in the package's ``models/`` folder."""

REC_HEIGHT, REC_MIN_WIDTH = 48, 320
CLS_HEIGHT, CLS_WIDTH = 48, 192
_INSTALL_HINT = "pip install rapidocr-onnxruntime --no-deps"

ModelLike = Any  # str | os.PathLike | onnxruntime.InferenceSession (onnxruntime is imported lazily)


class LabeledLine(Protocol):
    """Anything with a text-line ``image`` and its ground-truth ``text`` (e.g. ``TextLine``)."""

    image: Image.Image
    text: str


# ----------------------------------------------------------------------------- models and sessions


def ocr_model_path(kind: str) -> Path:
    """Path of the ``"rec"``, ``"det"`` or ``"cls"`` ONNX model inside ``rapidocr-onnxruntime``.

    The package is only located on disk, never imported (importing it needs OpenCV).

    Raises:
        ValueError: for an unknown ``kind``.
        FileNotFoundError: when the package (or the model file) is not installed.
    """
    if kind not in MODEL_FILES:
        raise ValueError(f"kind must be one of {sorted(MODEL_FILES)}, got {kind!r}")
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the OCR models need the package rapidocr-onnxruntime: {_INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL_FILES[kind]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall the OCR models: {_INSTALL_HINT}")
    return path


def ocr_session(model: ModelLike) -> Any:
    """An ``onnxruntime.InferenceSession`` (CPU) for a model path; a session is returned as is."""
    if hasattr(model, "run") and hasattr(model, "get_inputs"):
        return model
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError(f"running the OCR models needs onnxruntime: pip install onnxruntime ({exc})") from exc
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(os.fspath(model), sess_options=options, providers=["CPUExecutionProvider"])


def _run(session: Any, x: np.ndarray) -> np.ndarray:
    """First output of ``session`` for the single input ``x``."""
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def rec_characters(model: ModelLike) -> list[str]:
    """The recognizer's CTC classes: ``["blank", *dictionary, " "]`` (6625 for PP-OCRv4).

    The dictionary is the newline-separated ONNX metadata entry ``character``.
    """
    metadata = ocr_session(model).get_modelmeta().custom_metadata_map
    if "character" not in metadata:
        raise ValueError("the recognizer model has no 'character' metadata (not a PP-OCR rec model?)")
    return ["blank", *metadata["character"].splitlines(), " "]


# ------------------------------------------------------------------------------------ preprocessing


def _bgr(image: Image.Image) -> np.ndarray:
    """float32 array [3, H, W] of the image in BGR order, scaled to [-1, 1]."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    return (rgb[:, :, ::-1].transpose(2, 0, 1) / 255.0 - 0.5) / 0.5


def _fit_height(image: Image.Image, height: int, max_width: int) -> Image.Image:
    """Resize to ``height`` keeping the aspect ratio (width rounded up), at most ``max_width`` wide."""
    width = min(max_width, max(1, math.ceil(height * image.width / image.height)))
    return image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)


def _pad_batch(images: Sequence[Image.Image], height: int, width: int) -> np.ndarray:
    """float32 [N, 3, height, width]: each image fitted to ``height``, left-aligned, zero-padded."""
    batch = np.zeros((len(images), 3, height, width), dtype=np.float32)
    for i, image in enumerate(images):
        resized = _bgr(_fit_height(image, height, width))
        batch[i, :, :, : resized.shape[2]] = resized
    return batch


def _check_images(images: Sequence[Image.Image], name: str = "images") -> None:
    if len(images) == 0:
        raise ValueError(f"{name} is empty; give at least one image")


def preprocess_rec(
    images: Sequence[Image.Image], height: int = REC_HEIGHT, min_width: int = REC_MIN_WIDTH, max_width: int = 1600
) -> np.ndarray:
    """Recognizer input: float32 [N, 3, height, W] in [-1, 1], BGR.

    Every line is resized to ``height`` keeping its aspect ratio; the batch width ``W`` is that of
    the widest line (at least ``min_width``, at most ``max_width``; wider lines are squeezed), and
    narrower lines are padded on the right with 0 (mid-grey), as rapidocr does.
    """
    _check_images(images)
    widest = max(image.width / image.height for image in images)
    width = min(max_width, max(min_width, int(height * widest)))
    return _pad_batch(images, height, width)


def preprocess_cls(images: Sequence[Image.Image]) -> np.ndarray:
    """Direction-classifier input: float32 [N, 3, 48, 192] in [-1, 1], BGR, zero-padded on the right."""
    _check_images(images)
    return _pad_batch(images, CLS_HEIGHT, CLS_WIDTH)


def preprocess_det(image: Image.Image, limit_side_len: int = 736, limit_type: str = "min") -> np.ndarray:
    """Detector input: float32 [1, 3, H, W] in [-1, 1], BGR, with H and W multiples of 32.

    With ``limit_type="min"`` (rapidocr's default) an image whose shorter side is below
    ``limit_side_len`` pixels is enlarged so that it reaches it; with ``"max"`` an image whose
    longer side exceeds it is shrunk. Both sides are then rounded to the nearest multiple of 32.
    """
    if limit_type not in ("min", "max"):
        raise ValueError(f"limit_type must be 'min' or 'max', got {limit_type!r}")
    w, h = image.size
    if limit_type == "min":
        ratio = max(1.0, limit_side_len / min(h, w))
    else:
        ratio = min(1.0, limit_side_len / max(h, w))
    new_w, new_h = (max(32, round(int(side * ratio) / 32) * 32) for side in (w, h))
    resized = image.convert("RGB").resize((new_w, new_h), Image.Resampling.BILINEAR)
    return _bgr(resized)[None]


# ----------------------------------------------------------------------------- decoding and metrics


def ctc_greedy_decode(probs: np.ndarray, characters: Sequence[str]) -> list[str]:
    """Best-path CTC decoding of [N, T, C] class probabilities: argmax per step, merge repeats,
    drop the blank (class 0)."""
    if probs.ndim != 3 or probs.shape[2] != len(characters):
        raise ValueError(f"probs must be [N, T, {len(characters)}], got shape {probs.shape}")
    best = probs.argmax(axis=2)
    keep = np.ones_like(best, dtype=bool)
    keep[:, 1:] = best[:, 1:] != best[:, :-1]
    keep &= best != 0
    return ["".join(characters[k] for k in row[mask]) for row, mask in zip(best, keep, strict=True)]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def character_error_rate(pred: str, truth: str) -> float:
    """Edit distance from ``pred`` to ``truth`` divided by ``len(truth)`` (may exceed 1)."""
    if not truth:
        raise ValueError("truth is empty; the character error rate is undefined")
    return edit_distance(pred, truth) / len(truth)


def corpus_cer(preds: Sequence[str], truths: Sequence[str]) -> float:
    """Total edits over total ground-truth characters of a set of lines."""
    if len(preds) != len(truths):
        raise ValueError(f"got {len(preds)} predictions for {len(truths)} ground-truth lines")
    total = sum(len(t) for t in truths)
    if total == 0:
        raise ValueError("the ground-truth lines hold no characters; the character error rate is undefined")
    return sum(edit_distance(p, t) for p, t in zip(preds, truths, strict=True)) / total


@dataclass(frozen=True)
class OcrScore:
    """Recognition quality on a set of lines.

    Attributes:
        exact_line_accuracy: fraction of lines read exactly (0-1).
        cer: corpus character error rate, total edits / total ground-truth characters.
        n_lines: number of lines scored.
    """

    exact_line_accuracy: float
    cer: float
    n_lines: int


def score_lines(preds: Sequence[str], truths: Sequence[str]) -> OcrScore:
    """:class:`OcrScore` of predictions against ground truth."""
    cer = corpus_cer(preds, truths)
    exact = sum(p == t for p, t in zip(preds, truths, strict=True)) / len(truths)
    return OcrScore(exact_line_accuracy=exact, cer=cer, n_lines=len(truths))


# -------------------------------------------------------------------------------------- recognizer


def _width_order(images: Sequence[Image.Image]) -> np.ndarray:
    """Indices sorting the lines by aspect ratio (stable), so batches need little padding."""
    return np.argsort([image.width / image.height for image in images], kind="stable")


def _images(items: Sequence[Image.Image] | Sequence[LabeledLine]) -> list[Image.Image]:
    """The images of a list of images or of labeled lines."""
    return [item if isinstance(item, Image.Image) else item.image for item in items]


def rec_batches(
    lines: Sequence[Image.Image] | Sequence[LabeledLine], batch_size: int = 16
) -> Iterator[dict[str, np.ndarray]]:
    """Recognizer inputs ``{"x": [B, 3, 48, W]}``, lines sorted by aspect ratio as in inference."""
    images = _images(lines)
    _check_images(images, "lines")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = _width_order(images)
    for start in range(0, len(order), batch_size):
        yield {"x": preprocess_rec([images[i] for i in order[start : start + batch_size]])}


def recognize(model: ModelLike, images: Sequence[Image.Image], batch_size: int = 16) -> list[str]:
    """Text read from each line image, in input order (greedy CTC decoding).

    Leading and trailing spaces are removed: the recognizer often reads a line's margins as a space,
    which carries no information for a single cropped line.
    """
    session = ocr_session(model)
    characters = rec_characters(session)
    order = _width_order(images)
    texts: list[str] = [""] * len(images)
    for start, batch in zip(range(0, len(order), batch_size), rec_batches(images, batch_size), strict=True):
        decoded = ctc_greedy_decode(_run(session, batch["x"]), characters)
        for index, text in zip(order[start : start + batch_size], decoded, strict=True):
            texts[index] = text.strip(" ")
    return texts


def evaluate_rec(model: ModelLike, lines: Sequence[LabeledLine], batch_size: int = 16) -> tuple[list[str], OcrScore]:
    """Read labeled lines; the predictions (in input order) and their :class:`OcrScore`."""
    if len(lines) == 0:
        raise ValueError("lines is empty; give at least one labeled line")
    preds = recognize(model, _images(lines), batch_size)
    return preds, score_lines(preds, [line.text for line in lines])


@dataclass(frozen=True)
class RecComparison:
    """A quantized recognizer against its float original on the same lines.

    Attributes:
        float_score: the float model against ground truth.
        quant_score: the quantized model against ground truth.
        agreement: fraction of lines where both models read the same string (0-1).
        cer_vs_float: corpus CER of the quantized predictions, taking the float ones as truth
            (0.0 or 1.0 when the float model read no characters at all).
    """

    float_score: OcrScore
    quant_score: OcrScore
    agreement: float
    cer_vs_float: float


def compare_rec(
    float_model: ModelLike, quant_model: ModelLike, lines: Sequence[LabeledLine], batch_size: int = 16
) -> RecComparison:
    """Score both recognizers on ``lines`` and measure how often they agree."""
    float_preds, float_score = evaluate_rec(float_model, lines, batch_size)
    quant_preds, quant_score = evaluate_rec(quant_model, lines, batch_size)
    agreement = sum(f == q for f, q in zip(float_preds, quant_preds, strict=True)) / len(lines)
    reference_chars = sum(len(f) for f in float_preds)
    edits = sum(edit_distance(q, f) for f, q in zip(float_preds, quant_preds, strict=True))
    cer_vs_float = edits / reference_chars if reference_chars else float(edits > 0)
    return RecComparison(float_score, quant_score, agreement, cer_vs_float)


# ------------------------------------------------------------------------- detector and classifier


def det_inputs(images: Sequence[Image.Image], limit_side_len: int = 736) -> Iterator[dict[str, np.ndarray]]:
    """Detector inputs ``{"x": [1, 3, H, W]}``, one per image (sizes may differ)."""
    _check_images(images)
    for image in images:
        yield {"x": preprocess_det(image, limit_side_len)}


def det_probability_maps(
    model: ModelLike, images: Sequence[Image.Image], limit_side_len: int = 736
) -> list[np.ndarray]:
    """Text probability map [H, W] (values in [0, 1], at the detector's input size) per image."""
    session = ocr_session(model)
    return [_run(session, inputs["x"])[0, 0] for inputs in det_inputs(images, limit_side_len)]


def det_map_iou(float_maps: Sequence[np.ndarray], quant_maps: Sequence[np.ndarray], threshold: float = 0.3) -> float:
    """Mean over images of the IoU of the maps binarised at ``threshold`` (1.0 when both are empty)."""
    if len(float_maps) != len(quant_maps) or len(float_maps) == 0:
        raise ValueError(f"need two equally long, non-empty lists of maps, got {len(float_maps)} and {len(quant_maps)}")
    ious = []
    for a, b in zip(float_maps, quant_maps, strict=True):
        if a.shape != b.shape:
            raise ValueError(f"map shapes differ: {a.shape} vs {b.shape}")
        union = np.logical_or(a > threshold, b > threshold).sum()
        inter = np.logical_and(a > threshold, b > threshold).sum()
        ious.append(1.0 if union == 0 else inter / union)
    return float(np.mean(ious))


def cls_inputs(images: Sequence[Image.Image], batch_size: int = 8) -> Iterator[dict[str, np.ndarray]]:
    """Direction-classifier inputs ``{"x": [B, 3, 48, 192]}``."""
    _check_images(images)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(images), batch_size):
        yield {"x": preprocess_cls(images[start : start + batch_size])}


def cls_probabilities(model: ModelLike, images: Sequence[Image.Image], batch_size: int = 8) -> np.ndarray:
    """[N, 2] probabilities of the labels 0 and 180 degrees."""
    session = ocr_session(model)
    return np.concatenate([_run(session, inputs["x"]) for inputs in cls_inputs(images, batch_size)])


@dataclass(frozen=True)
class ClsAgreement:
    """A quantized direction classifier against its float original.

    Attributes:
        label_agreement: fraction of images given the same label (0-1).
        mean_abs_prob_diff: mean absolute difference of the class probabilities.
        n_images: number of images compared.
    """

    label_agreement: float
    mean_abs_prob_diff: float
    n_images: int


def cls_agreement(float_model: ModelLike, quant_model: ModelLike, images: Sequence[Image.Image]) -> ClsAgreement:
    """How closely two direction classifiers agree on ``images``."""
    p_float, p_quant = cls_probabilities(float_model, images), cls_probabilities(quant_model, images)
    same = float(np.mean(p_float.argmax(axis=1) == p_quant.argmax(axis=1)))
    return ClsAgreement(same, float(np.abs(p_float - p_quant).mean()), len(images))
