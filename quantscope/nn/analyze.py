"""Per-layer quantization error of a model's weights."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ..core.ops import quantize
from ..core.spec import QuantSpec
from ..error.metrics import ErrorReport, error

WEIGHT_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Embedding)


@dataclass(frozen=True)
class LayerError:
    """The error of one layer's weight under one spec; ``nbytes`` is its true packed storage."""

    name: str
    shape: tuple[int, ...]
    nbytes: int
    report: ErrorReport


def weight_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Named layers whose ``weight`` would be quantized (Linear, Conv1d/2d/3d, Embedding)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]


def weight_errors(model: torch.nn.Module, spec: QuantSpec, layers: Iterable[tuple[str, torch.nn.Module]] | None = None,
                  on_layer: Callable[[str], None] | None = None) -> list[LayerError]:
    """Quantize every weight with ``spec`` (weights are not modified) and measure the error per layer.

    ``on_layer`` is called with each layer name after it is done (progress reporting).
    """
    out = []
    for name, module in (weight_layers(model) if layers is None else layers):
        w = module.weight.detach()
        q = quantize(w, spec)
        out.append(LayerError(name, tuple(w.shape), q.nbytes, error(w, q, theory=False)))
        if on_layer is not None:
            on_layer(name)
    return out
