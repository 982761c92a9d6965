"""Error metrics for any pair (x, x̂), and the guaranteed bound when x̂ is a QTensor.

Convention: the error is e = x - x̂ (what quantization loses). All metrics are computed in float64
from float32 values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..core.arrays import as_float_tensor
from ..core.bounds import error_bound, float32_slack
from ..core.formats import FixedFormat
from ..core.qtensor import QTensor


@dataclass(frozen=True)
class ErrorReport:
    """What quantization lost.

    mse, rmse, max_abs, mean (the bias, mean of x - x̂) are in the units of x; sqnr_db =
    10·log10(Σx² / Σe²) (inf when exact). With a QTensor: ``bound`` is the largest guaranteed
    |error| over in-range elements (Δ/2 for round-to-nearest integers), ``bound_holds`` says whether
    every in-range element met its own bound (up to float32 rounding slack), ``max_bound_ratio`` is
    max |e| / bound over them, and ``clipping_share`` the fraction of elements outside the
    representable range (those are not covered by the bound).
    """

    n: int
    mse: float
    rmse: float
    max_abs: float
    mean: float
    sqnr_db: float
    signal_power: float
    bound: float | None = None
    bound_holds: bool | None = None
    max_bound_ratio: float | None = None
    clipping_share: float | None = None
    spec: str | None = None
    bits_per_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        from ..report.tables import render_error_report

        return render_error_report(self)


def _as_float32(x: Any, name: str) -> torch.Tensor:
    t, _ = as_float_tensor(x, name)
    return t.detach().to(device="cpu", dtype=torch.float32)


def error(x: Any, x_hat: Any) -> ErrorReport:
    """Measure the quantization error of ``x_hat`` (a QTensor, or any array of x's shape) against ``x``."""
    xt = _as_float32(x, "x")
    q = x_hat if isinstance(x_hat, QTensor) else None
    xh = q.dequantize_float32().cpu() if q is not None else _as_float32(x_hat, "x_hat")
    if tuple(xh.shape) != tuple(xt.shape):
        raise ValueError(f"x has shape {tuple(xt.shape)} but x_hat has shape {tuple(xh.shape)}; they must match")
    finite = torch.isfinite(xt) & torch.isfinite(xh)
    e = (xt.double() - xh.double())[finite]
    xs = xt.double()[finite]
    n = int(finite.sum())
    if n == 0:
        raise ValueError("x and x_hat have no finite element in common; nothing to measure")
    mse = float((e * e).mean())
    signal = float((xs * xs).mean())
    sqnr = math.inf if mse == 0 else (10 * math.log10(signal / mse) if signal > 0 else -math.inf)
    report = dict(n=n, mse=mse, rmse=math.sqrt(mse), max_abs=float(e.abs().max()), mean=float(e.mean()),
                  sqnr_db=sqnr, signal_power=signal)
    if q is not None:
        layout = q.spec.granularity.layout(q.shape)
        scale = None if q.scale is None else q.scale.cpu()
        if isinstance(q.spec.format, FixedFormat):  # fixed point: the constant step
            scale = torch.full(layout.param_shape, q.spec.format.step)
        zero_point = None if q.zero_point is None else q.zero_point.cpu()
        bound, in_range = error_bound(xt, q.spec, scale, zero_point, layout)
        in_range &= finite
        err = (xt - xh).abs()
        ok = err <= bound + float32_slack(xt, xh)
        inr = in_range.sum()
        ratio = (err[in_range] / bound[in_range].clamp_min(1e-45)).max() if bool(inr) else torch.tensor(0.0)
        report.update(
            bound=float(bound[in_range].max()) if bool(inr) else 0.0,
            bound_holds=bool(ok[in_range].all()),
            max_bound_ratio=float(ratio),
            clipping_share=float(1.0 - inr.item() / xt.numel()),
            spec=str(q.spec),
            bits_per_value=q.bits_per_value,
        )
    return ErrorReport(**report)
