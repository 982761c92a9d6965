"""Granularity: which elements share one scale / zero point.

Every granularity reduces to one :class:`Layout`: the tensor is viewed as ``(outer, length, inner)``
around one axis, and the ``length`` axis is cut into groups of ``group`` consecutive elements (the
last group may be shorter). Parameters have the internal shape ``(p_outer, n_groups, p_inner)`` where
``p_outer`` is 1 or ``outer`` and ``p_inner`` is 1 or ``inner``:

==================  ==========================  =========  =========================
granularity          view (outer, length, inner)  group      params (p_outer, g, p_inner)
==================  ==========================  =========  =========================
per_tensor()         (1, numel, 1)                numel      (1, 1, 1)
per_channel(axis)    around ``axis``              1          (1, C, 1)
per_group(G, axis)   around ``axis``              G          (outer, ceil(C/G), inner)
per_token()          around the last axis         C          (outer, 1, 1)
per_token_normalized (1, numel, 1) after x/m_row  numel      (1, 1, 1)
==================  ==========================  =========  =========================

``per_token_normalized()`` is two-level: every row of the last axis is first divided by its own
``m = max|x_row|`` (computed at run time), the normalized tensor is quantized on one grid for the
whole tensor (one scale and zero point), and the values are multiplied back by ``m``. The effective
step of a row is ``m·Δ``, so rows of very different size each use their full range (as per-token)
while the grid keeps a zero point and ONNX Runtime can run it as one fused dynamic int8 kernel.

The user-facing parameter shape is ``()`` per tensor, ``(C,)`` per channel (as in
``torch.fake_quantize_per_channel_affine``) and the input shape with ``axis`` reduced to the number
of groups for per-group and per-token (so it broadcasts against the input).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def _normalize_axis(axis: int, ndim: int, what: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"{what} axis must be an int, got {type(axis).__name__}")
    if ndim == 0:
        raise ValueError(f"{what} needs a tensor with at least 1 dimension, got a 0-d scalar; use per_tensor()")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{what} axis={axis} is out of range for a {ndim}-d tensor (allowed {-ndim}..{ndim - 1})")
    return axis % ndim


@dataclass(frozen=True)
class Layout:
    """How a tensor of ``shape`` is cut into parameter groups (see the module docstring)."""

    shape: tuple[int, ...]
    outer: int
    length: int
    inner: int
    group: int
    p_outer: int
    p_inner: int
    param_shape: tuple[int, ...]

    @property
    def n_groups(self) -> int:
        return math.ceil(self.length / self.group)

    @property
    def param_shape3(self) -> tuple[int, int, int]:
        return (self.p_outer, self.n_groups, self.p_inner)

    @property
    def numel(self) -> int:
        return self.outer * self.length * self.inner

    def view3(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.outer, self.length, self.inner)

    def grouped(self, x: torch.Tensor, pad_value: float = 0.0) -> torch.Tensor:
        """``x`` as ``(outer, n_groups, group, inner)``, padding a short last group with ``pad_value``."""
        x3 = self.view3(x)
        pad = self.n_groups * self.group - self.length
        if pad:
            x3 = torch.cat([x3, x3.new_full((self.outer, pad, self.inner), pad_value)], dim=1)
        return x3.reshape(self.outer, self.n_groups, self.group, self.inner)

    @property
    def n_params(self) -> int:
        return self.p_outer * self.n_groups * self.p_inner

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as ``(n_params, m)``: row r holds every element that shares parameter r (flattened
        ``param_shape3`` order). A short last group is padded with NaN, which callers skip."""
        x4 = self.grouped(x, pad_value=float("nan"))
        param_dims = ([0] if self.p_outer > 1 else []) + [1] + ([3] if self.p_inner > 1 else [])
        rest = [d for d in range(4) if d not in param_dims]
        return x4.permute(*param_dims, *rest).reshape(self.n_params, -1)

    def ungroup(self, y4: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`grouped` (drops the padding), back to ``shape``."""
        y3 = y4.reshape(self.outer, self.n_groups * self.group, self.inner)[:, : self.length]
        return y3.reshape(self.shape)

    def params4(self, p: torch.Tensor) -> torch.Tensor:
        """Parameters (any accepted shape) as ``(p_outer, n_groups, 1, p_inner)`` for broadcasting."""
        return p.reshape(self.p_outer, self.n_groups, 1, self.p_inner)

    def expand(self, p: torch.Tensor) -> torch.Tensor:
        """Parameters broadcast to one value per element, in ``shape`` (for reports and bounds)."""
        full = self.params4(p).expand(self.outer, self.n_groups, self.group, self.inner)
        return self.ungroup(full)

    def minmax(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-group minimum and maximum of ``x``, each shaped ``param_shape3``.

        NaN propagates into the result of its group. A short last group is reduced on its own.
        """
        x3 = self.view3(x)
        full = (self.length // self.group) * self.group
        parts = []
        if full:
            parts.append(self._minmax_part(x3[:, :full], self.group))
        if full < self.length:
            parts.append(self._minmax_part(x3[:, full:], self.length - full))
        if len(parts) == 1:
            return parts[0]
        return torch.cat([parts[0][0], parts[1][0]], dim=1), torch.cat([parts[0][1], parts[1][1]], dim=1)

    def _minmax_part(self, x3: torch.Tensor, g: int) -> tuple[torch.Tensor, torch.Tensor]:
        n_groups = x3.shape[1] // g
        if self.p_outer == 1 and self.p_inner == 1 and n_groups == 1:  # per tensor: one fused pass
            lo, hi = torch.aminmax(x3)
        else:
            x4 = x3.reshape(self.outer, n_groups, g, self.inner)
            dims = [2]
            if self.p_outer == 1 and self.outer > 1:
                dims.append(0)
            if self.p_inner == 1 and self.inner > 1:
                dims.append(3)
            # two single-purpose reductions are several times faster than aminmax along a dim
            lo, hi = x4.amin(dim=dims), x4.amax(dim=dims)
        shape = (self.p_outer, n_groups, self.p_inner)
        return lo.reshape(shape), hi.reshape(shape)


@dataclass(frozen=True)
class PerTensor:
    """One scale for the whole tensor."""

    def layout(self, shape: tuple[int, ...]) -> Layout:
        n = math.prod(shape)
        return Layout(tuple(shape), 1, n, 1, max(n, 1), 1, 1, ())


@dataclass(frozen=True)
class PerChannel:
    """One scale per index along ``axis`` (axis 0 = output channels of a Linear/Conv weight)."""

    axis: int = 0

    def layout(self, shape: tuple[int, ...]) -> Layout:
        a = _normalize_axis(self.axis, len(shape), "per_channel")
        outer, inner = math.prod(shape[:a]), math.prod(shape[a + 1:])
        return Layout(tuple(shape), outer, shape[a], inner, 1, 1, 1, (shape[a],))


@dataclass(frozen=True)
class PerGroup:
    """One scale per ``size`` consecutive elements along ``axis`` (the last group may be shorter)."""

    size: int
    axis: int = -1

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"per_group size must be a positive int, got {self.size!r}")

    def layout(self, shape: tuple[int, ...]) -> Layout:
        a = _normalize_axis(self.axis, len(shape), "per_group")
        if self.size > shape[a]:
            raise ValueError(
                f"per_group size {self.size} is larger than axis {self.axis} of shape {tuple(shape)} "
                f"(length {shape[a]}); use a group size <= {shape[a]} or per_channel/per_tensor"
            )
        outer, inner = math.prod(shape[:a]), math.prod(shape[a + 1:])
        n_groups = math.ceil(shape[a] / self.size)
        pshape = tuple(shape[:a]) + (n_groups,) + tuple(shape[a + 1:])
        return Layout(tuple(shape), outer, shape[a], inner, self.size, outer, inner, pshape)


@dataclass(frozen=True)
class PerToken:
    """One scale per row of the last axis (per token for ``(batch, seq, hidden)`` activations)."""

    def layout(self, shape: tuple[int, ...]) -> Layout:
        if len(shape) == 0:
            raise ValueError("per_token needs a tensor with at least 1 dimension, got a 0-d scalar")
        if shape[-1] == 0:
            raise ValueError("per_token needs a non-empty last axis")
        outer = math.prod(shape[:-1])
        return Layout(tuple(shape), outer, shape[-1], 1, shape[-1], outer, 1, tuple(shape[:-1]) + (1,))


@dataclass(frozen=True)
class PerTokenNormalized:
    """Rows of the last axis divided by their max|x| (at run time), then one scale (and zero point)
    for the whole normalized tensor; see the module docstring. Activations only: the row maxima are
    not part of the parameters, so it is used through ``fake_quantize`` (``quantize`` refuses it)."""

    def layout(self, shape: tuple[int, ...]) -> Layout:
        if len(shape) == 0:
            raise ValueError("per_token_normalized needs a tensor with at least 1 dimension, got a 0-d scalar")
        if shape[-1] == 0:
            raise ValueError("per_token_normalized needs a non-empty last axis")
        return PerTensor().layout(shape)

    @staticmethod
    def row_max(x: torch.Tensor) -> torch.Tensor:
        """``max|x|`` of every row of the last axis (keepdim), at least float32's smallest normal so an
        all-zero row divides to zeros. Shape: x's with the last axis 1."""
        return x.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)


Granularity = PerTensor | PerChannel | PerGroup | PerToken | PerTokenNormalized
GRANULARITY_CLASSES = {c.__name__: c for c in (PerTensor, PerChannel, PerGroup, PerToken, PerTokenNormalized)}


def per_tensor() -> PerTensor:
    return PerTensor()


def per_channel(axis: int = 0) -> PerChannel:
    return PerChannel(axis)


def per_group(size: int, axis: int = -1) -> PerGroup:
    return PerGroup(size, axis)


def per_token() -> PerToken:
    return PerToken()


def per_token_normalized() -> PerTokenNormalized:
    return PerTokenNormalized()
