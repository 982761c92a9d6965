"""Histogram calibrators: percentile, MSE-optimal and KL (entropy) clipping.

All of them stream batches into a :class:`GroupSketch` (bounded memory, exact merge) and choose
the clipping range from it when ``qparams()`` is asked for:

* ``PercentileCalibrator``: clip at the p-th percentile of |x| (symmetric formats) or at the
  (100-p)-th / p-th percentiles of x (asymmetric formats).
* ``MSECalibrator``: the range that minimizes the expected quantization MSE *of the chosen format*
  (its real rounding, grid and saturation), estimated on the histogram: every bin's mass sits at its
  center and is fake-quantized with each candidate range; a coarse search then a fine one.
* ``KLCalibrator``: TensorRT's entropy calibration: the |x| threshold minimizing KL(P || Q) between
  the clipped reference distribution and its quantized version with 2^(bits-1) levels.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch

from ..core import kernels
from ..core.arrays import as_float_tensor, describe_nonfinite
from ..core.formats import FixedFormat, IntFormat, MXFormat
from ..core.granularity import PerToken, per_channel
from ..core.ops import fake_quantize
from ..core.scales import qparams_from_range
from ..core.spec import QParams, QuantSpec, as_spec
from .base import NotFittedError
from .sketch import DEFAULT_RAW_LIMIT, GroupSketch, auto_bins

EVAL_BUDGET = 1 << 24  # candidate x group x bin evaluations per fake-quantize call


class HistogramCalibrator:
    """Base class: streaming per-group histograms; subclasses choose the range in ``_range``."""

    def __init__(self, spec: QuantSpec, bins: int | None = None, raw_limit: int = DEFAULT_RAW_LIMIT) -> None:
        self.spec = spec
        self.bins = bins
        self.raw_limit = raw_limit

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "hist_")

    def update(self, x: Any) -> HistogramCalibrator:
        """Count one batch (batches must give the same parameter shape)."""
        spec = as_spec(self.spec)
        fmt = spec.format
        if isinstance(fmt, FixedFormat) or not fmt.scaled:
            raise ValueError(f"{fmt.name} has a fixed scale; there is no range to calibrate")
        t, _ = as_float_tensor(x)
        t = t.detach().to(device="cpu", dtype=torch.float32)
        layout = spec.granularity.layout(tuple(t.shape))
        rows = layout.rows(t)
        lo, hi = rows.amin(dim=1), rows.amax(dim=1)  # NaN and Inf show up here: one pass finds both
        lo_hi = (lo, hi) if bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()) else None
        if lo_hi is None:  # non-finite input, or only the NaN padding of a short last group
            if spec.nonfinite == "error":
                msg = describe_nonfinite(t)
                if msg:
                    raise ValueError(msg)
            else:
                rows = torch.where(torch.isfinite(rows), rows, float("nan"))  # skipped by the sketch
        if not self.is_fitted:
            self.hist_ = GroupSketch(layout.n_params, auto_bins(layout.n_params, self.bins), self.raw_limit)
            self.param_shape_ = layout.param_shape
        elif layout.param_shape != self.param_shape_:
            hint = " (per-token ranges are dynamic: quantize each batch on its own)" if isinstance(
                spec.granularity, PerToken) else ""
            raise ValueError(f"batch gives parameter shape {layout.param_shape}, earlier batches gave "
                             f"{self.param_shape_}{hint}")
        self.hist_.add(rows, lo_hi)
        return self

    def merge(self, other: HistogramCalibrator) -> HistogramCalibrator:
        """A new calibrator whose histogram is exactly the one-pass histogram of both inputs."""
        if type(other) is not type(self):
            raise TypeError(f"can only merge with another {type(self).__name__}, got {type(other).__name__}")
        if as_spec(other.spec) != as_spec(self.spec):
            raise ValueError("cannot merge calibrators built for different specs")
        fitted = [c for c in (self, other) if c.is_fitted]
        out = copy.copy(fitted[0] if fitted else self)
        if len(fitted) == 2:
            if self.param_shape_ != other.param_shape_:
                raise ValueError(f"cannot merge parameter shapes {self.param_shape_} and {other.param_shape_}")
            out.hist_ = self.hist_.merged(other.hist_)
        return out

    def qparams(self) -> QParams:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} has seen no data; call update(x) first")
        spec = as_spec(self.spec)
        h = self.hist_
        lo, hi = self._range()
        if not isinstance(spec.format, MXFormat):  # MX may widen by a power of two to avoid saturation
            lo, hi = torch.maximum(lo, h.min), torch.minimum(hi, h.max)  # never wider than the data
            lo = torch.minimum(lo, hi)
        qp = qparams_from_range(lo.float(), hi.float(), spec)
        zp = None if qp.zero_point is None else qp.zero_point.reshape(self.param_shape_)
        return QParams(qp.scale.reshape(self.param_shape_), zp)

    def _range(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({as_spec(self.spec)})"


class PercentileCalibrator(HistogramCalibrator):
    """Clip at a percentile (e.g. 99.99) of |x|, or of each tail for asymmetric formats."""

    def __init__(self, spec: QuantSpec, percentile: float = 99.99, bins: int | None = None,
                 raw_limit: int = DEFAULT_RAW_LIMIT) -> None:
        super().__init__(spec, bins, raw_limit)
        self.percentile = percentile

    def _range(self) -> tuple[torch.Tensor, torch.Tensor]:
        p = float(self.percentile)
        if not 50.0 < p <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {self.percentile!r}")
        h = self.hist_
        if as_spec(self.spec).symmetric:
            v = h.quantile(p / 100.0, absolute=True)
            return -v, v
        return h.quantile(1.0 - p / 100.0), h.quantile(p / 100.0)


def _eval_spec(spec: QuantSpec, scale: torch.Tensor) -> tuple[QuantSpec, torch.Tensor]:
    """A spec quantizing a (candidate x group, bins) matrix row by row with the given scales, and the
    scales to give it. MX rows become their element format with the power-of-two block scale, which
    rounds exactly as the MX block does (and takes the fused kernel)."""
    fmt = spec.format
    rounding = "nearest_even" if spec.rounding == "stochastic" else spec.rounding
    if isinstance(fmt, MXFormat):
        elem = fmt.element
        if isinstance(elem, IntFormat):
            return QuantSpec(elem, per_channel(0), rounding), scale * 2.0**fmt.element_step_exp
        return QuantSpec(dataclasses.replace(elem, scaled=True), per_channel(0), rounding), scale
    return QuantSpec(fmt, per_channel(0), rounding, spec.overflow, spec.scale_dtype), scale


def expected_mse(points: tuple[torch.Tensor, torch.Tensor], spec: QuantSpec, lo: torch.Tensor,
                 hi: torch.Tensor) -> torch.Tensor:
    """Quantization MSE of each group for candidate ranges ``lo``/``hi`` of shape (T, groups).

    ``points`` = ``sketch.points()``: exact values (weight 1), or bin centers weighted by counts. They are
    fake-quantized with the format's own arithmetic: exact for groups still held raw, a bin-center
    estimate otherwise.
    """
    centers, weights = points
    T, P, B = lo.shape[0], centers.shape[0], centers.shape[1]
    centers = centers.float()
    total = weights.sum(dim=1).clamp_min(1)
    uniform = bool((weights == 1).all())  # raw values without padding: a plain mean
    w32 = (weights / total[:, None]).float()
    qp = qparams_from_range(lo.float(), hi.float(), spec)
    espec, scale = _eval_spec(spec, qp.scale)
    if (uniform and isinstance(espec.format, IntFormat) and espec.overflow == "saturate" and kernels.available()
            and bool(torch.isfinite(centers).all())):  # one fused pass per candidate, no intermediates
        return kernels.int_sq_err(centers, scale, qp.zero_point, espec.format, espec.rounding) / B
    out = torch.empty(T, P, dtype=torch.float64)
    chunk = max(1, EVAL_BUDGET // (P * B))
    for s in range(0, T, chunk):
        e = min(T, s + chunk)
        c = centers.expand(e - s, P, B).reshape(-1, B)
        zp = None if qp.zero_point is None else qp.zero_point[s:e].reshape(-1)
        d = fake_quantize(c, espec, qparams=QParams(scale[s:e].reshape(-1), zp))
        torch.sub(c, d, out=d)
        d.mul_(d)
        # float32 sums (each over one group's B values): relative error ~1e-6, far below the gaps the
        # argmin over candidate ranges has to resolve, and several times faster than float64
        if uniform:
            out[s:e] = (d.sum(-1) / B).reshape(e - s, P)
        else:
            out[s:e] = (d.reshape(e - s, P, B) * w32[None]).sum(-1)
    return out


def mse_search(hist: GroupSketch, spec: QuantSpec, candidates: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The range [lo, hi] per group minimizing the expected MSE, over ranges shrinking [min, max].

    ``candidates`` evenly spaced shrink factors in (0, 1], then as many again around the best one
    (resolution ~ 1 / candidates^2; default 100, or 32 beyond 256 groups: 0.2% of the range).
    MX formats only distinguish powers of two: candidates 2^1 .. 2^-14
    (2^1 trades the OCP rule's saturation of the block's largest values for a coarser grid).
    """
    k = (100 if hist.n_groups <= 256 else 32) if candidates is None else int(candidates)
    if k < 4:
        raise ValueError(f"candidates must be >= 4, got {candidates!r}")
    lo0, hi0 = (hist.min.clamp_max(0.0), hist.max.clamp_min(0.0)) if spec.symmetric else (hist.min, hist.max)

    points = hist.points()

    def search(t: torch.Tensor) -> torch.Tensor:
        mse = expected_mse(points, spec, lo0[None] * t, hi0[None] * t)
        return t.gather(0, mse.argmin(dim=0, keepdim=True)).squeeze(0)

    if isinstance(spec.format, MXFormat):
        best = search(torch.exp2(-torch.arange(-1, 15, dtype=torch.float64))[:, None].expand(16, hist.n_groups))
    else:
        best = search(torch.linspace(1.0 / k, 1.0, k, dtype=torch.float64)[:, None].expand(k, hist.n_groups))
        fine = best[None, :] + torch.linspace(-1.0 / k, 1.0 / k, k, dtype=torch.float64)[:, None]
        best = search(fine.clamp(1e-6, 1.0))
    return lo0 * best, hi0 * best


class MSECalibrator(HistogramCalibrator):
    """The clipping range with the smallest expected quantization MSE for the spec's format."""

    def __init__(self, spec: QuantSpec, candidates: int | None = None, bins: int | None = None,
                 raw_limit: int = DEFAULT_RAW_LIMIT) -> None:
        super().__init__(spec, bins, raw_limit)
        self.candidates = candidates

    def _range(self) -> tuple[torch.Tensor, torch.Tensor]:
        return mse_search(self.hist_, as_spec(self.spec), self.candidates)


def kl_levels(spec: QuantSpec) -> int:
    """Number of quantized |x| levels KL calibration compares against (128 for int8, as TensorRT)."""
    fmt = spec.format
    if isinstance(fmt, IntFormat):
        return fmt.qmax + 1 if fmt.symmetric else (fmt.qmax - fmt.qmin + 1) // 2
    return 2 ** (fmt.bits - 1)


class KLCalibrator(HistogramCalibrator):
    """TensorRT-style entropy calibration on the histogram of |x| (symmetric threshold).

    KL needs a well-populated histogram: groups with fewer than ``min_samples`` values (e.g. small
    weight groups) take the MSE-optimal range instead of an unreliable, over-clipping threshold.
    """

    def __init__(self, spec: QuantSpec, min_samples: int = 2048, bins: int | None = None,
                 raw_limit: int = DEFAULT_RAW_LIMIT) -> None:
        super().__init__(spec, bins, raw_limit)
        self.min_samples = min_samples

    def _range(self) -> tuple[torch.Tensor, torch.Tensor]:
        h, spec = self.hist_, as_spec(self.spec)
        dense = h.n >= int(self.min_samples)
        lo = torch.zeros(h.n_groups, dtype=torch.float64)
        hi = torch.zeros(h.n_groups, dtype=torch.float64)
        if bool(dense.any()):
            v = kl_threshold(h.abs_histogram()[dense].to(torch.float64), h.width[dense], kl_levels(spec))
            lo[dense], hi[dense] = -v, v
        if not bool(dense.all()):
            mlo, mhi = mse_search(h, spec)
            lo, hi = torch.where(dense, lo, mlo), torch.where(dense, hi, mhi)
        return lo, hi


def kl_threshold(hist: torch.Tensor, width: torch.Tensor, levels: int) -> torch.Tensor:
    """|x| threshold per row of ``hist`` (counts of |x| in bins of ``width``) minimizing KL(P || Q).

    For every candidate number of bins i: P = hist[:i] with the outlier mass added to its last bin;
    Q = hist[:i] merged into ``levels`` chunks, each chunk's mass spread over its nonzero bins.
    """
    G, nb = hist.shape
    if levels >= nb:
        last = torch.where(hist > 0, torch.arange(nb, dtype=torch.float64) + 1, 0.0).amax(dim=1)
        return last * width
    best_kl = torch.full((G,), float("inf"), dtype=torch.float64)
    best_i = torch.full((G,), nb, dtype=torch.float64)
    total = hist.sum(dim=1, keepdim=True).clamp_min(1)
    tail = hist.flip(1).cumsum(1).flip(1)  # tail[:, i] = mass at or beyond bin i
    for i in range(levels, nb + 1):
        p = hist[:, :i].clone()
        if i < nb:
            p[:, -1] += tail[:, i]
        chunk = torch.div(torch.arange(i) * levels, i, rounding_mode="floor")
        ref = hist[:, :i]
        mass = torch.zeros(G, levels, dtype=torch.float64).index_add_(1, chunk, ref)
        nonzero = torch.zeros(G, levels, dtype=torch.float64).index_add_(1, chunk, (ref > 0).to(torch.float64))
        q = torch.where(ref > 0, (mass / nonzero.clamp_min(1))[:, chunk], 0.0)
        p_n, q_n = p / total, q / q.sum(dim=1, keepdim=True).clamp_min(1e-300)
        eps = 1e-12  # smoothing where P has mass and Q none (as ONNX Runtime's entropy calibrator)
        kl = torch.where(p_n > 0, p_n * torch.log(p_n / torch.where(q_n > 0, q_n, eps)), 0.0).sum(dim=1)
        better = kl < best_kl
        best_kl = torch.where(better, kl, best_kl)
        best_i = torch.where(better, torch.full_like(best_i, i), best_i)
    return best_i * width
