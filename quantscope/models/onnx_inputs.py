"""Input batches for an ``.onnx`` model given on the command line.

``--calib FILE.npz``: arrays named after the model's inputs (or ``arr_0, arr_1...`` in input order),
split into batches along axis 0. Without a file the model is recognised: the PP-OCRv4 models of
``rapidocr-onnxruntime`` get rendered text lines / pages, a BERT-style encoder (inputs
``input_ids`` + ``attention_mask``) gets MiniLM-tokenized sentences; anything else gets seeded
random data shaped from the model's inputs, and the description says so (activation ranges from
random data are not meaningful for static recipes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

_NP = {1: np.float32, 7: np.int64, 6: np.int32, 10: np.float16, 11: np.float64, 9: np.bool_}


@dataclass
class OnnxData:
    """``calib`` and ``evaluate`` batches (dicts of input name to array) and what they are."""

    description: str
    calib: list[dict[str, np.ndarray]]
    evaluate: list[dict[str, np.ndarray]]
    synthetic: bool = False


def _input_specs(model: Any) -> list[tuple[str, int, list[int | str]]]:
    inits = {t.name for t in model.graph.initializer}
    out = []
    for v in model.graph.input:
        if v.name in inits:
            continue
        t = v.type.tensor_type
        dims: list[int | str] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
        out.append((v.name, t.elem_type, dims))
    return out


def from_npz(path: str, model: Any, batch_size: int) -> list[dict[str, np.ndarray]]:
    """Batches from an .npz file (no pickles: ``allow_pickle=False``)."""
    specs = _input_specs(model)
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable .npz file ({exc})") from exc
    names = [n for n, _, _ in specs]
    keys = list(data.keys())
    if set(names) <= set(keys):
        arrays = {n: data[n] for n in names}
    elif len(keys) == len(names) and all(k.startswith("arr_") for k in keys):
        arrays = {n: data[f"arr_{i}"] for i, n in enumerate(names)}
    else:
        raise ValueError(f"{path} holds {keys}; the model takes inputs {names} (name the arrays after them)")
    counts = {a.shape[0] if a.ndim else 0 for a in arrays.values()}
    if len(counts) != 1 or 0 in counts:
        raise ValueError(f"{path}: every input array needs the same, non-zero length along axis 0 (got {counts})")
    n = counts.pop()
    return [{k: v[i:i + batch_size] for k, v in arrays.items()} for i in range(0, n, batch_size)]


def synthetic(model: Any, n_batches: int = 4, batch_size: int = 1, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Seeded random batches shaped from the model's inputs (dynamic axes: the batch, else 32)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        batch = {}
        for name, elem, dims in _input_specs(model):
            shape = [d if isinstance(d, int) and d > 0 else (batch_size if i == 0 else 32) for i, d in enumerate(dims)]
            dtype = _NP.get(elem, np.float32)
            if np.issubdtype(dtype, np.floating):
                batch[name] = rng.standard_normal(shape).astype(dtype)
            elif "mask" in name:
                batch[name] = np.ones(shape, dtype=dtype)
            else:
                batch[name] = rng.integers(0, 100, size=shape).astype(dtype)
        out.append(batch)
    return out


def _ocr_kind(path: str) -> str | None:
    try:
        from .ocr import ocr_model_path
    except ImportError:
        return None
    for kind in ("rec", "det", "cls"):
        try:
            if os.path.basename(str(ocr_model_path(kind))) == os.path.basename(path):
                return kind
        except (FileNotFoundError, ValueError):
            return None
    return None


def _ocr_data(kind: str) -> OnnxData:
    from . import ocr, text_render

    if kind == "rec":
        return OnnxData("rendered text lines (64 calibration, 32 evaluation)",
                        list(ocr.rec_batches(text_render.render_lines(64, seed=1), 16)),
                        list(ocr.rec_batches(text_render.render_lines(32, seed=7), 16)))
    if kind == "det":
        return OnnxData("rendered text pages (6 calibration, 2 evaluation)",
                        list(ocr.det_inputs([p.image for p in text_render.render_pages(6, seed=1)])),
                        list(ocr.det_inputs([p.image for p in text_render.render_pages(2, seed=7)])))
    return OnnxData("rendered text lines (64 calibration, 32 evaluation)",
                    list(ocr.cls_inputs([x.image for x in text_render.render_lines(64, seed=1)])),
                    list(ocr.cls_inputs([x.image for x in text_render.render_lines(32, seed=7)])))


def batches_for(path: str | os.PathLike, calib: str | None = None, batch_size: int = 16) -> OnnxData:
    """Calibration and evaluation batches for the ONNX model at ``path`` (see the module docstring)."""
    from ..onnx.graph import load_model

    path = os.fspath(path)
    model = load_model(path)
    if calib:
        if not calib.endswith(".npz"):
            raise ValueError(f"--calib for an ONNX model must be an .npz file of input arrays, got {calib}")
        if not os.path.isfile(calib):
            raise FileNotFoundError(f"calibration file {calib} does not exist")
        batches = from_npz(calib, model, batch_size)
        return OnnxData(f"{calib} ({len(batches)} batches)", batches, batches[:2])
    kind = _ocr_kind(path)
    if kind is not None:
        return _ocr_data(kind)
    names = {n for n, _, _ in _input_specs(model)}
    if {"input_ids", "attention_mask"} <= names:
        from .minilm import calibration_sentences, heldout_sentences, load_minilm, onnx_batches

        _, tok = load_minilm()
        keep = [n for n, _, _ in _input_specs(model)]

        def pick(batches: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
            return [{k: v for k, v in b.items() if k in keep} for b in batches]

        return OnnxData("MiniLM-tokenized sentences (128 calibration, 32 evaluation)",
                        pick(onnx_batches(tok, calibration_sentences()[:128])),
                        pick(onnx_batches(tok, heldout_sentences()[:32])))
    data = synthetic(model)
    return OnnxData("synthetic random inputs (pass --calib FILE.npz with real inputs for meaningful ranges)",
                    data, data[:2], synthetic=True)
