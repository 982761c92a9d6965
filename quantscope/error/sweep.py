"""Sweeps: error vs bit width, error vs clipping ratio, and calibration uncertainty (bootstrap).

Each returns plain dataclasses (tables and plots are drawn from them by ``quantscope.report``).
``on_step`` is called after every point, for progress bars.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..core.arrays import as_float_tensor
from ..core.formats import FixedFormat, IntFormat
from ..core.ops import quantize
from ..core.scales import qparams_from_range
from ..core.spec import QParams, QuantSpec, as_spec
from .metrics import error


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: ``value`` is the bit width or the clipping ratio."""

    value: float
    mse: float
    sqnr_db: float
    clipping_share: float
    granular_share: float
    bits_per_value: float


def _point(value: float, x: torch.Tensor, q: Any) -> SweepPoint:
    r = error(x, q, theory=False)
    return SweepPoint(value, r.mse, r.sqnr_db, r.clipping_share or 0.0, r.granular_share or 0.0,
                      r.bits_per_value or math.nan)


def with_bits(spec: QuantSpec, bits: int) -> QuantSpec:
    """The same spec at another bit width (integer and fixed-point formats)."""
    fmt = spec.format
    if isinstance(fmt, IntFormat):
        return dataclasses.replace(spec, format=dataclasses.replace(fmt, bits=bits))
    if isinstance(fmt, FixedFormat):
        grow = bits - fmt.word_length  # keep the integer part, change the fraction bits
        return dataclasses.replace(spec, format=dataclasses.replace(fmt, word_length=bits,
                                                                    fraction_length=fmt.fraction_length + grow))
    raise ValueError(f"a bit-width sweep needs an integer or fixed-point format, not {fmt.name}; "
                     f"pass make_spec=lambda bits: ... to choose the format per width")


def sweep_bits(x: Any, spec: QuantSpec | Any, bits: Iterable[int] = range(2, 9), calibrator: Any = None,
               make_spec: Callable[[int], QuantSpec] | None = None,
               on_step: Callable[[str], None] | None = None) -> list[SweepPoint]:
    """Error of ``x`` quantized at every bit width in ``bits`` (same granularity, rounding, calibrator)."""
    t, _ = as_float_tensor(x)
    spec = as_spec(spec)
    out = []
    for b in bits:
        s = make_spec(b) if make_spec is not None else with_bits(spec, b)
        out.append(_point(float(b), t, quantize(t, s, calibrator=calibrator)))
        if on_step is not None:
            on_step(f"{b} bits")
    return out


def sweep_clipping(x: Any, spec: QuantSpec | Any, ratios: Sequence[float] | None = None,
                   on_step: Callable[[str], None] | None = None) -> list[SweepPoint]:
    """Error of ``x`` when the min-max range of every group is shrunk by ``ratio`` (1 = no clipping)."""
    t, _ = as_float_tensor(x)
    spec = as_spec(spec)
    if not spec.format.scaled or isinstance(spec.format, FixedFormat):
        raise ValueError(f"{spec.format.name} has a fixed scale; there is no clipping range to sweep")
    ratios = [i / 40 for i in range(2, 41)] if ratios is None else list(ratios)
    layout = spec.granularity.layout(tuple(t.shape))
    lo, hi = layout.minmax(t.detach().float())
    out = []
    for r in ratios:
        if not 0 < r:
            raise ValueError(f"clipping ratios must be positive, got {r}")
        qp = qparams_from_range(lo * r, hi * r, spec)
        zp = None if qp.zero_point is None else qp.zero_point.reshape(layout.param_shape)
        q = quantize(t, spec, qparams=QParams(qp.scale.reshape(layout.param_shape), zp))
        out.append(_point(float(r), t, q))
        if on_step is not None:
            on_step(f"ratio {r:.3f}")
    return out


@dataclass(frozen=True)
class UncertaintyPoint:
    """Bootstrap spread of calibration on ``size`` samples: scale relative to the full-data scale
    (mean and 95% interval of the per-group ratio) and the SQNR on the full data."""

    size: int
    scale_ratio_mean: float
    scale_ratio_lo: float
    scale_ratio_hi: float
    sqnr_db_mean: float
    sqnr_db_lo: float
    sqnr_db_hi: float


def calibration_uncertainty(x: Any, spec: QuantSpec | Any, calibrator: Any = "mse", sizes: Sequence[int] | None = None,
                            n_boot: int = 20, seed: int = 0, on_step: Callable[[str], None] | None = None
                            ) -> list[UncertaintyPoint]:
    """How the calibrated range and the resulting SQNR vary with the calibration-set size.

    Calibration samples are rows along the first axis (drawn with replacement, ``n_boot`` times per
    size); every calibration is evaluated on all of ``x``. A narrow interval at some size means more
    calibration data would not change the result.
    """
    t, _ = as_float_tensor(x)
    t = t.detach().float()
    spec = as_spec(spec)
    if t.dim() < 2:
        t = t.reshape(-1, 1)
    n = t.shape[0]
    sizes = [s for s in (16, 64, 256, 1024, 4096, 16384) if s < n] + [n] if sizes is None else list(sizes)
    if not _same_params(spec, t, t[:1]):
        raise ValueError(f"{spec.granularity} parameters depend on the number of rows; calibration uncertainty "
                         f"needs per-tensor or per-channel (along an axis other than 0) granularity")
    from ..calibrate import resolve_calibrator

    full = quantize(t, spec, calibrator=calibrator)
    ref_scale = full.scale.reshape(-1).double()
    gen = torch.Generator().manual_seed(seed)
    out = []
    for size in sizes:
        ratios, sqnrs = [], []
        for _ in range(n_boot):
            idx = torch.randint(0, n, (size,), generator=gen)
            cal = resolve_calibrator(calibrator, spec).update(t[idx])
            q = quantize(t, spec, calibrator=cal)
            ratios.append((q.scale.reshape(-1).double() / ref_scale).mean().item())
            sqnrs.append(error(t, q, theory=False).sqnr_db)
        r, s = torch.tensor(ratios, dtype=torch.float64), torch.tensor(sqnrs, dtype=torch.float64)
        out.append(UncertaintyPoint(size, float(r.mean()), float(r.quantile(0.025)), float(r.quantile(0.975)),
                                    float(s.mean()), float(s.quantile(0.025)), float(s.quantile(0.975))))
        if on_step is not None:
            on_step(f"{size} samples")
    return out


def _same_params(spec: QuantSpec, full: torch.Tensor, part: torch.Tensor) -> bool:
    g = spec.granularity
    return g.layout(tuple(full.shape)).param_shape == g.layout(tuple(part.shape)).param_shape
