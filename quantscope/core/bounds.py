"""Representable range and guaranteed error bound of a quantizer, per element.

For a spec with fitted parameters, every x inside ``clip_range`` satisfies

    |x - Q(x)| <= bound(x) = factor * local_gap(x / Δ) * Δ

with factor 1/2 for round-to-nearest modes and 1 for directed and stochastic modes (floor, ceil,
toward_zero: error in [0, gap) with the mode's sign; stochastic: |error| < gap). local_gap is 1 for
integer grids (so the bound is Δ/2), one ulp of the format at x for floats, and the distance between
the two enclosing levels for codebooks. This is a bound in exact arithmetic; the float32 computation
of x / Δ and of the reconstruction adds at most a few float32 ulps of |x| (:func:`float32_slack`).
"""

from __future__ import annotations

import torch

from . import grid
from .formats import CodebookFormat, FixedFormat, FloatFormat, IntFormat, MXFormat
from .granularity import Layout
from .spec import QuantSpec

FLOAT32_SLACK_ULPS = 4.0


def _edge_gaps(fmt: object) -> tuple[float, float]:
    """Grid step just above the lowest and just below the highest level (code units)."""
    if isinstance(fmt, (IntFormat, FixedFormat)):
        return 1.0, 1.0
    if isinstance(fmt, MXFormat):
        if isinstance(fmt.element, IntFormat):
            unit = 2.0**fmt.element_step_exp
            return unit, unit
        fmt = fmt.element
    if isinstance(fmt, FloatFormat):
        g = 2.0 ** (fmt.emax - fmt.man_bits)
        return g, g
    lv = fmt.levels
    return lv[1] - lv[0], lv[-1] - lv[-2]


def clip_range(spec: QuantSpec, scale: torch.Tensor | None, zero_point: torch.Tensor | None,
               layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """Where saturation starts, per parameter group (``param_shape3``).

    The extreme levels widened by the rounding reach (half the edge step for round-to-nearest, a
    full step for the other modes): inputs inside never saturate, and meet the error bound.
    """
    fmt = spec.format
    s = torch.ones(layout.param_shape3) if scale is None else scale.reshape(layout.param_shape3).float()
    reach = 0.5 if spec.rounding in ("nearest_even", "nearest_away") else 1.0
    g_lo, g_hi = _edge_gaps(fmt)
    if isinstance(fmt, (IntFormat, FixedFormat)):
        z = 0.0 if zero_point is None else zero_point.reshape(layout.param_shape3).float()
        lo, hi = fmt.qmin - z, fmt.qmax - z
    elif isinstance(fmt, CodebookFormat):
        lo, hi = fmt.levels[0], fmt.levels[-1]
    else:
        lo, hi = -fmt.max_abs, fmt.max_abs
    return (lo - reach * g_lo) * s, (hi + reach * g_hi) * s


def error_bound(x: torch.Tensor, spec: QuantSpec, scale: torch.Tensor | None, zero_point: torch.Tensor | None,
                layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """(bound, in_range): the guaranteed max |x - Q(x)| per element, and where it applies."""
    fmt = spec.format
    x = x.to(torch.float32).reshape(layout.shape)
    s = torch.ones_like(x) if scale is None else layout.expand(scale.float())
    lo, hi = clip_range(spec, scale, zero_point, layout)
    in_range = (x >= layout.expand(lo)) & (x <= layout.expand(hi))
    factor = 0.5 if spec.rounding in ("nearest_even", "nearest_away") else 1.0
    if isinstance(fmt, (IntFormat, FixedFormat)):
        gap = torch.ones_like(x)
    else:
        gap = grid.local_gap(x / s, fmt)
    if isinstance(fmt, FloatFormat) or (isinstance(fmt, MXFormat) and isinstance(fmt.element, FloatFormat)):
        in_range &= torch.isfinite(x)
    return factor * gap * s, in_range


def float32_slack(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Rounding slack of the float32 arithmetic: a few ulps of max(|x|, |x_hat|)."""
    mag = torch.maximum(x.abs(), x_hat.abs()).to(torch.float32)
    return FLOAT32_SLACK_ULPS * torch.finfo(torch.float32).eps * mag
