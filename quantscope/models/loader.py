"""What ``quantscope quantize MODEL`` accepts: a built-in name, a Hugging Face directory, or
``module:function``; with the batches to calibrate and evaluate on and how to judge the output."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

BUILTIN = ("minilm",)


@dataclass
class ModelBundle:
    name: str
    model: nn.Module
    calib: list[Any] | None
    evaluate: list[Any] | None
    tokenizer: Any = None
    embed: Callable[[nn.Module], torch.Tensor] | None = None  # sentence embeddings of the evaluation set

    @property
    def float_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.model.state_dict().values())


def _text_bundle(name: str, model: nn.Module, tokenizer: Any, calib_file: str | None) -> ModelBundle:
    from .minilm import calibration_sentences, embed, heldout_sentences, text_batches

    if calib_file is not None:
        with open(calib_file, encoding="utf-8") as f:
            sentences = [line.strip() for line in f if line.strip()]
        if not sentences:
            raise ValueError(f"{calib_file} has no text lines to calibrate on (one sentence per line)")
    else:
        sentences = calibration_sentences()
    heldout = heldout_sentences()
    return ModelBundle(name, model, text_batches(tokenizer, sentences), text_batches(tokenizer, heldout), tokenizer,
                       lambda m: embed(m, tokenizer, heldout))


def _tensor_batches(path: str, batch_size: int) -> list[torch.Tensor]:
    from ..tensorfile import load_float_tensors

    tensors = load_float_tensors(path)
    if len(tensors) != 1:
        raise ValueError(f"{path} must hold exactly one float tensor of inputs (batch along dim 0), "
                         f"found {', '.join(tensors)}")
    x = next(iter(tensors.values()))
    return list(x.split(batch_size))


def load_bundle(spec: str, calib_file: str | None = None, batch_size: int = 16) -> ModelBundle:
    """``minilm``, a Hugging Face model directory, or ``module:function`` (returning a model, or a
    (model, batches) pair)."""
    if spec == "minilm":
        from .minilm import load_minilm

        model, tok = load_minilm()
        return _text_bundle("minilm", model, tok, calib_file)
    if os.path.isdir(spec):
        if not os.path.isfile(os.path.join(spec, "config.json")):
            raise ValueError(f"{spec} is a directory without config.json; give a Hugging Face model directory")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        model = AutoModel.from_pretrained(spec).eval()
        return _text_bundle(os.path.basename(os.path.normpath(spec)), model, AutoTokenizer.from_pretrained(spec),
                            calib_file)
    if ":" in spec:
        mod_name, _, fn_name = spec.partition(":")
        try:
            fn = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import {spec}: {exc}") from exc
        made = fn()
        model, batches = (made if isinstance(made, tuple) else (made, None))
        if not isinstance(model, nn.Module):
            raise ValueError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
        if calib_file is not None:
            batches = _tensor_batches(calib_file, batch_size)
        batches = list(batches) if batches is not None else None
        return ModelBundle(spec, model.eval(), batches, batches)
    raise ValueError(f"unknown model {spec!r}: use one of {', '.join(BUILTIN)}, a Hugging Face model directory, "
                     f"or module:function")
