"""Quantized layer wrappers: the original module with its weight replaced by its quantized value, and
its input fake-quantized on the way in (static parameters from calibration, or dynamic per call).

The wrapper keeps the weight's :class:`QTensor` (codes + scales, for saving and reporting) and the
dequantized weight inside the wrapped module (for a fast forward). Forward = inner(Q_in(x)).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.granularity import Granularity, per_channel, per_group, per_tensor, per_token, per_token_normalized
from ..core.ops import fake_quantize
from ..core.qtensor import QTensor
from ..core.spec import QParams, QuantSpec

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
SUPPORTED = (nn.Linear, nn.Embedding) + CONV + CONV_T


def weight_axes_for(kind: str) -> tuple[int, int]:
    """(output-channel axis, input axis) of the weight of a layer of type ``kind`` ("Linear", "Conv2d"...)."""
    return (1, 0) if kind.startswith("ConvTranspose") else (0, 1)


def weight_axes(module: nn.Module) -> tuple[int, int]:
    """(output-channel axis, input axis) of the module's weight."""
    return weight_axes_for(type(module).__name__)


def in_features(module: nn.Module) -> int:
    """Width of the module's input along the axis its input granularity groups (features/channels)."""
    return module.in_features if isinstance(module, nn.Linear) else getattr(module, "in_channels", 0)


def weight_granularity_for(kind: str, weight_shape: tuple[int, ...], text: str) -> Granularity:
    """Resolve ``channel`` / ``group:G`` / ``tensor`` for a weight of this layer type and shape.

    A layer with fewer than G inputs falls back to one scale per output channel.
    """
    out_axis, in_axis = weight_axes_for(kind)
    if text == "tensor":
        return per_tensor()
    if text == "channel":
        return per_channel(out_axis)
    if text.startswith("group:"):
        g = int(text.split(":")[1])
        if weight_shape[in_axis] < g:
            return per_channel(out_axis)
        return per_group(g, axis=in_axis)
    raise ValueError(f"weight granularity {text!r} does not apply to a {kind}")


def weight_granularity(module: nn.Module, text: str) -> Granularity:
    return weight_granularity_for(type(module).__name__, tuple(module.weight.shape), text)


def input_granularity_for(kind: str, text: str, channels: int) -> Granularity:
    """Resolve the input granularity: ``tensor``; ``token`` (Linear: one scale per row of the last
    axis; Conv: one scale per pixel, across its ``channels``); ``token-norm`` (Linear: rows divided
    by their max|x|, then one grid; see :func:`~quantscope.core.granularity.per_token_normalized`);
    ``group:G`` (Linear: along features; Conv: along channels)."""
    if text == "tensor":
        return per_tensor()
    if kind == "Linear":
        if text == "token":
            return per_token()
        if text == "token-norm":
            return per_token_normalized()
        if text.startswith("group:"):
            return per_group(int(text.split(":")[1]), axis=-1)
    elif kind.startswith(("Conv", "ConvTranspose")):
        if text == "token":
            return per_group(channels, axis=1)
        if text.startswith("group:"):
            return per_group(int(text.split(":")[1]), axis=1)
    raise ValueError(f"input granularity {text!r} does not apply to a {kind} "
                     f"(use tensor, token, token-norm (Linear) or group:G)")


def input_granularity(module: nn.Module, text: str) -> Granularity:
    return input_granularity_for(type(module).__name__, text, in_features(module))


def layer_spec_for(kind: str, weight_shape: tuple[int, ...], channels: int, fmt: Any, granularity: str, role: str,
                   rounding: str) -> QuantSpec:
    """The QuantSpec of a layer's ``weight`` or ``input`` for a recipe's format and granularity name.

    ``kind``: the layer type name ("Linear", "Conv2d", ...); ``channels``: its input width. MX formats
    need blocks along the grouped axis; a layer with fewer elements there than the block (e.g. a first
    conv with 1 or 3 input channels) gets one block spanning the whole axis.
    """
    import dataclasses

    from ..core.formats import MXFormat

    if isinstance(fmt, MXFormat):
        axis = weight_axes_for(kind)[1] if role == "weight" else (-1 if kind == "Linear" else 1)
        length = weight_shape[axis] if role == "weight" else channels
        if length < fmt.block_size:
            fmt = dataclasses.replace(fmt, block_size=length)
            return QuantSpec(fmt, granularity=per_group(length, axis=axis), rounding=rounding)
    gran = (weight_granularity_for(kind, weight_shape, granularity) if role == "weight"
            else input_granularity_for(kind, granularity, channels))
    return QuantSpec(fmt, granularity=gran, rounding=rounding)


def layer_spec(module: nn.Module, fmt: Any, granularity: str, role: str, rounding: str) -> QuantSpec:
    """:func:`layer_spec_for` of a torch module."""
    return layer_spec_for(type(module).__name__, tuple(module.weight.shape), in_features(module), fmt, granularity,
                          role, rounding)


class QuantizedModule(nn.Module):
    """``module`` with a quantized weight and (optionally) a quantized input.

    Attributes: ``weight_q`` (QTensor or None), ``input_spec`` (QuantSpec or None), ``input_mode``
    ('static' with fixed ``input_qparams``, or 'dynamic'), ``layer_name``, ``input_smoothing``
    (SmoothQuant factors s, one per input channel, or None: the input is divided by s before it is
    quantized, and ``weight_q`` holds the quantized W·s, so the product is unchanged in real arithmetic).
    """

    def __init__(self, module: nn.Module, layer_name: str, weight_q: QTensor | None, input_spec: QuantSpec | None,
                 input_mode: str = "static", input_qparams: QParams | None = None,
                 input_smoothing: torch.Tensor | None = None) -> None:
        super().__init__()
        if input_spec is not None and input_mode == "static" and input_qparams is None:
            raise ValueError(f"{layer_name}: a static input quantizer needs calibrated parameters")
        self.inner = module
        self.layer_name = layer_name
        self.weight_q = weight_q
        self.input_spec = input_spec
        self.input_mode = input_mode
        self.input_qparams = input_qparams
        self.input_observer: Any = None  # analysis hook: called with (x, x_quantized)
        self.input_smoothing = None if input_smoothing is None else input_smoothing.detach().float()
        if weight_q is not None:
            with torch.no_grad():
                w = module.weight
                module.weight.data = weight_q.dequantize().to(dtype=w.dtype, device=w.device)

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        """``x / s`` along the input-channel axis (last for Linear, 1 for convolutions)."""
        s = self.input_smoothing
        if s is None or not x.is_floating_point():
            return x
        from ..algorithms.smoothquant import smooth_input

        return smooth_input(x, s, -1 if isinstance(self.inner, nn.Linear) else 1)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        x = self.smooth(x)
        if self.input_spec is None or not x.is_floating_point():
            return x
        if self.input_mode == "static":
            return fake_quantize(x, self.input_spec, qparams=self.input_qparams)
        return fake_quantize(x, self.input_spec)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        xq = self.quantize_input(x)
        if self.input_observer is not None:
            self.input_observer(self, x, xq)
        return self.inner(xq, *args, **kwargs)

    def extra_repr(self) -> str:
        w = "float" if self.weight_q is None else str(self.weight_q.spec)
        a = "float" if self.input_spec is None else f"{self.input_spec} ({self.input_mode})"
        smooth = "" if self.input_smoothing is None else ", smoothed"
        return f"weight={w}, input={a}{smooth}"
