"""The kinds of quantization error, as practitioners name them, for a quantized tensor.

With e = x - x̂ and MSE = mean(e²):

* clipping vs granular: the MSE of elements outside the representable range (saturated: a range
  that is too narrow) vs inside it (rounding noise: a grid that is too coarse). Shares add up to 1.
* bias: mean(e) and its part of the MSE, bias² / MSE (what floor / toward-zero truncation adds);
  for directed and stochastic modes also the MSE the same parameters give with round-to-nearest.
* static vs dynamic: the deterministic part of the error, the mean error of every parameter group
  (channel) and of every level, vs the input-dependent rest. static + dynamic = MSE (per group).
* levels: how many of the format's levels are used, the code entropy in bits (what an entropy
  coder would need per value), the largest share of inputs that collapse onto one level and how many
  distinct input values collapse onto a level on average (counted up to 2^22 elements).
* model check: the granular MSE the additive-noise model predicts (local step² / 12 for round to
  nearest, per element) against the measured granular MSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.bounds import clip_range
from ..core.formats import CodebookFormat, FixedFormat, FloatFormat, MXFormat
from ..core.granularity import Layout
from ..core.grid import local_gap
from ..core.qtensor import QTensor
from .theory import noise_factor

DISTINCT_LIMIT = 1 << 22


@dataclass(frozen=True)
class Decomposition:
    clipping_mse: float
    granular_mse: float
    clipping_share: float
    granular_share: float
    clipped_fraction: float
    bias: float
    bias_share: float
    nearest_mse: float | None
    static_mse: float
    dynamic_mse: float
    static_share: float
    level_static_share: float
    levels_used: int
    levels_total: int
    level_utilization: float
    code_entropy_bits: float
    max_level_share: float
    distinct_inputs_per_level: float | None
    granular_mse_predicted: float
    granular_ratio: float


def levels_total(q: QTensor) -> int:
    fmt = q.spec.format
    if isinstance(fmt, CodebookFormat):
        return len(fmt.levels)
    if isinstance(fmt, FloatFormat):
        return int(torch.isfinite(_float_values(fmt)).sum())
    if isinstance(fmt, MXFormat):
        elem = fmt.element
        return int(torch.isfinite(_float_values(elem)).sum()) if isinstance(elem, FloatFormat) else 2 * elem.qmax + 1
    return fmt.qmax - fmt.qmin + 1


def _float_values(fmt: FloatFormat) -> torch.Tensor:
    from ..core.grid import float_table

    return float_table(fmt)


def decompose(x: torch.Tensor, x_hat: torch.Tensor, q: QTensor, layout: Layout, scale: torch.Tensor | None,
              zero_point: torch.Tensor | None) -> Decomposition:
    """Decompose the error of ``q`` (x, x_hat: float32 CPU tensors of q's shape, all finite)."""
    spec, fmt = q.spec, q.spec.format
    xd, xh = x.to(torch.float64), x_hat.to(torch.float64)
    e = xd - xh
    n = e.numel()
    mse = float((e * e).mean())
    safe = mse if mse > 0 else 1.0

    lo, hi = clip_range(spec, scale, zero_point, layout)
    inside = (x >= layout.expand(lo)) & (x <= layout.expand(hi))
    e2 = e * e
    clip_mse = float(e2[~inside].sum()) / n
    gran_mse = float(e2[inside].sum()) / n

    bias = float(e.mean())
    nearest = None
    if spec.rounding not in ("nearest_even", "nearest_away"):
        import dataclasses

        from ..core.ops import fake_quantize
        from ..core.spec import QParams

        rne = dataclasses.replace(spec, rounding="nearest_even")
        params = None if q.scale is None or isinstance(fmt, FixedFormat) else QParams(q.scale, q.zero_point)
        y = fake_quantize(x, rne, qparams=params)
        nearest = float(((xd - y.to(torch.float64)) ** 2).mean())

    rows_e = layout.rows(e.to(torch.float32)).to(torch.float64)  # NaN pads a short last group
    valid = ~torch.isnan(rows_e)
    cnt = valid.sum(1).clamp_min(1)
    group_mean = torch.where(valid, rows_e, 0.0).sum(1) / cnt
    static = float((group_mean**2 * valid.sum(1)).sum()) / n

    codes = q.codes.reshape(-1).to(torch.int64)
    codes = codes - codes.min()
    per_level = torch.bincount(codes)
    used = per_level > 0
    level_mean = torch.bincount(codes, weights=e.reshape(-1)) / per_level.clamp_min(1)
    level_static = float((level_mean**2 * per_level).sum()) / n
    p = per_level[used].to(torch.float64) / n
    entropy = float(-(p * torch.log2(p)).sum())
    total = levels_total(q)
    distinct = float(torch.unique(x).numel()) / int(used.sum()) if n <= DISTINCT_LIMIT else None

    s_elem = torch.ones_like(x) if scale is None else layout.expand(scale.float())
    gap = torch.ones_like(x) if isinstance(fmt, FixedFormat) or fmt.family == "int" else local_gap(x / s_elem, fmt)
    predicted = float(((gap.to(torch.float64) * s_elem.to(torch.float64)) ** 2)[inside].sum()) / n
    predicted *= noise_factor(spec.rounding)
    return Decomposition(
        clipping_mse=clip_mse, granular_mse=gran_mse, clipping_share=clip_mse / safe, granular_share=gran_mse / safe,
        clipped_fraction=float((~inside).sum()) / n, bias=bias, bias_share=bias * bias / safe, nearest_mse=nearest,
        static_mse=static, dynamic_mse=mse - static, static_share=static / safe, level_static_share=level_static / safe,
        levels_used=int(used.sum()), levels_total=total, level_utilization=int(used.sum()) / total,
        code_entropy_bits=entropy, max_level_share=float(per_level.max()) / n, distinct_inputs_per_level=distinct,
        granular_mse_predicted=predicted, granular_ratio=gran_mse / predicted if predicted > 0 else math.nan,
    )
