"""Min-max calibration: the range is the smallest and largest value seen (per group)."""

from __future__ import annotations

from typing import Any

import torch

from ..core.arrays import as_float_tensor, describe_nonfinite
from ..core.granularity import PerToken
from ..core.scales import qparams_from_range
from ..core.spec import QParams, QuantSpec, as_spec
from .base import NotFittedError


class MinMaxCalibrator:
    """Running per-group minimum and maximum; exact, order independent, ``merge`` = one pass.

    Memory: two float32 values per parameter group. Guarantee: nothing seen during calibration is
    clipped (clipped_fraction = 0 on the calibration data).
    """

    def __init__(self, spec: QuantSpec) -> None:
        self.spec = spec

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "min_")

    def _range_of(self, x: Any) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
        spec = as_spec(self.spec)
        t, _ = as_float_tensor(x)
        t = t.detach().to(torch.float32)
        layout = spec.granularity.layout(tuple(t.shape))
        if spec.nonfinite == "propagate":
            t = torch.where(torch.isfinite(t), t, 0.0)  # 0 never widens a range that includes zero
        lo, hi = layout.minmax(t)
        if not (bool(torch.isfinite(lo).all()) and bool(torch.isfinite(hi).all())):
            raise ValueError(describe_nonfinite(t) or "calibration data produced a non-finite range")
        return lo, hi, layout.param_shape

    def update(self, x: Any) -> MinMaxCalibrator:
        """Fold one batch into the running range (batches must give the same parameter shape)."""
        lo, hi, pshape = self._range_of(x)
        if not self.is_fitted:
            self.min_, self.max_, self.param_shape_, self.batches_ = lo, hi, pshape, 1
            return self
        if pshape != self.param_shape_:
            hint = " (per-token ranges are dynamic: quantize each batch on its own)" if isinstance(
                as_spec(self.spec).granularity, PerToken) else ""
            raise ValueError(f"batch gives parameter shape {pshape}, earlier batches gave {self.param_shape_}{hint}")
        self._fold(lo, hi)
        self.batches_ += 1
        return self

    def _fold(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Combine the running range with one batch's range."""
        self.min_ = torch.minimum(self.min_, lo)
        self.max_ = torch.maximum(self.max_, hi)

    def merge(self, other: MinMaxCalibrator) -> MinMaxCalibrator:
        """A new calibrator holding the union of both ranges (same result as one pass over both)."""
        if not isinstance(other, MinMaxCalibrator):
            raise TypeError(f"can only merge with another MinMaxCalibrator, got {type(other).__name__}")
        if as_spec(other.spec) != as_spec(self.spec):
            raise ValueError("cannot merge calibrators built for different specs")
        out = MinMaxCalibrator(self.spec)
        states = [c for c in (self, other) if c.is_fitted]
        if not states:
            return out
        out.min_, out.max_, out.param_shape_ = states[0].min_, states[0].max_, states[0].param_shape_
        out.batches_ = sum(c.batches_ for c in states)
        for c in states[1:]:
            if c.param_shape_ != out.param_shape_:
                raise ValueError(f"cannot merge parameter shapes {out.param_shape_} and {c.param_shape_}")
            out.min_, out.max_ = torch.minimum(out.min_, c.min_), torch.maximum(out.max_, c.max_)
        return out

    def qparams(self) -> QParams:
        if not self.is_fitted:
            raise NotFittedError("this MinMaxCalibrator has seen no data; call update(x) first")
        qp = qparams_from_range(self.min_, self.max_, as_spec(self.spec))
        zp = None if qp.zero_point is None else qp.zero_point.reshape(self.param_shape_)
        return QParams(qp.scale.reshape(self.param_shape_), zp)

    def __repr__(self) -> str:
        return f"MinMaxCalibrator({as_spec(self.spec)})"


class EMAMinMaxCalibrator(MinMaxCalibrator):
    """Moving-average min-max (torch.ao's MovingAverageMinMaxObserver): after the first batch,
    range <- range + c · (batch range - range). Damps one-off outlier batches.

    ``merge`` averages two states weighted by their batch counts: unlike the other calibrators this is
    an approximation of one pass (an exponential average depends on batch order).
    """

    def __init__(self, spec: QuantSpec, averaging_constant: float = 0.01) -> None:
        super().__init__(spec)
        self.averaging_constant = averaging_constant

    def update(self, x: Any) -> EMAMinMaxCalibrator:
        if not 0.0 < float(self.averaging_constant) <= 1.0:
            raise ValueError(f"averaging_constant must be in (0, 1], got {self.averaging_constant!r}")
        super().update(x)
        return self

    def _fold(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        c = float(self.averaging_constant)
        self.min_ = self.min_ + c * (lo - self.min_)
        self.max_ = self.max_ + c * (hi - self.max_)

    def merge(self, other: MinMaxCalibrator) -> EMAMinMaxCalibrator:
        if not isinstance(other, EMAMinMaxCalibrator):
            raise TypeError(f"can only merge with another EMAMinMaxCalibrator, got {type(other).__name__}")
        if as_spec(other.spec) != as_spec(self.spec):
            raise ValueError("cannot merge calibrators built for different specs")
        states = [c for c in (self, other) if c.is_fitted]
        out = EMAMinMaxCalibrator(self.spec, self.averaging_constant)
        if not states:
            return out
        if len(states) == 2 and self.param_shape_ != other.param_shape_:
            raise ValueError(f"cannot merge parameter shapes {self.param_shape_} and {other.param_shape_}")
        n = sum(c.batches_ for c in states)
        out.min_ = sum(c.min_ * c.batches_ for c in states) / n
        out.max_ = sum(c.max_ * c.batches_ for c in states) / n
        out.param_shape_, out.batches_ = states[0].param_shape_, n
        return out
