"""Error metrics for any pair (x, x̂), and, when x̂ is a QTensor, the guaranteed bound, the
decomposition into kinds of error and the comparison with theory.

Convention: the error is e = x - x̂ (what quantization loses). Metrics are computed in float64 from
float32 values; non-finite elements (passed through) are left out.
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
from .decompose import Decomposition, decompose
from .theory import TheoryCheck, theory_check


@dataclass(frozen=True)
class ErrorReport:
    """What quantization lost, and why.

    mse, rmse, max_abs, mean (the bias, mean of x - x̂) are in the units of x; sqnr_db =
    10·log10(Σx² / Σe²) (inf when exact). With a QTensor: ``bound`` is the largest guaranteed |error|
    over in-range elements (Δ/2 for round-to-nearest integers), ``bound_holds`` says whether every
    in-range element met its own bound (up to float32 rounding slack), ``max_bound_ratio`` is
    max |e| / bound over them; ``decomposition`` splits the MSE into clipping / granular, bias,
    static / dynamic and level usage; ``theory`` compares it with the optimal quantizers and the
    rate-distortion bound for the data's fitted distribution.
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
    spec: str | None = None
    bits_per_value: float | None = None
    decomposition: Decomposition | None = None
    theory: TheoryCheck | None = None

    @property
    def clipping_share(self) -> float | None:
        """Share of the MSE caused by saturated (clipped) values."""
        return None if self.decomposition is None else self.decomposition.clipping_share

    @property
    def granular_share(self) -> float | None:
        """Share of the MSE caused by rounding inside the range."""
        return None if self.decomposition is None else self.decomposition.granular_share

    @property
    def clipped_fraction(self) -> float | None:
        """Fraction of the elements that were saturated."""
        return None if self.decomposition is None else self.decomposition.clipped_fraction

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, path: str | None = None) -> str:
        """The report as JSON (infinities as strings); written atomically to ``path`` when given."""
        import json

        from .._files import atomic_write_text, json_safe

        text = json.dumps(json_safe(self.to_dict()), indent=2)
        if path is not None:
            atomic_write_text(path, text)
        return text

    def to_html(self, path: str, title: str = "quantization error", sweeps: bool = True, calibrator: Any = None
                ) -> None:
        """Write a self-contained HTML report: metrics, histogram of the data with levels and clip points,
        error histogram, error vs bits and vs clipping (sweeps use ``calibrator``), SQNR per channel.
        Needs matplotlib."""
        from ..report.html import html_document, tensor_section, write_html

        data = getattr(self, "_data", None)
        if data is None:
            raise ValueError("this report holds no data to plot; build it with qs.error(x, x_hat)")
        x, x_hat, q = data
        section = tensor_section(self, x, x_hat, q, self.spec or "tensor", sweeps=sweeps, calibrator=calibrator)
        write_html(path, html_document(title, [section]))

    def __str__(self) -> str:
        from ..report.tables import render_error_report

        return render_error_report(self)


def _as_float32(x: Any, name: str) -> torch.Tensor:
    t, _ = as_float_tensor(x, name)
    return t.detach().to(device="cpu", dtype=torch.float32)


def error(x: Any, x_hat: Any, theory: bool = True) -> ErrorReport:
    """Measure the quantization error of ``x_hat`` (a QTensor, or any array of x's shape) against ``x``.

    ``theory=False`` skips the comparison with optimal quantizers (it computes them once per level
    count, about a second, then caches them).
    """
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
    report: dict[str, Any] = dict(n=n, mse=mse, rmse=math.sqrt(mse), max_abs=float(e.abs().max()),
                                  mean=float(e.mean()), sqnr_db=sqnr, signal_power=signal)
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
        inr = bool(in_range.any())
        ratio = (err[in_range] / bound[in_range].clamp_min(1e-45)).max() if inr else torch.tensor(0.0)
        # the decomposition runs on finite elements only (non-finite ones were passed through)
        x_d, xh_d = (xt, xh) if bool(finite.all()) else (torch.where(finite, xt, 0.0), torch.where(finite, xh, 0.0))
        dec = decompose(x_d, xh_d, q, layout, scale, zero_point)
        report.update(
            bound=float(bound[in_range].max()) if inr else 0.0,
            bound_holds=bool(ok[in_range].all()),
            max_bound_ratio=float(ratio),
            spec=str(q.spec),
            bits_per_value=q.bits_per_value,
            decomposition=dec,
            theory=theory_check(xs, mse, dec.levels_total) if theory and dec.levels_total >= 2 else None,
        )
    out = ErrorReport(**report)
    object.__setattr__(out, "_data", (torch.where(finite, xt, 0.0), torch.where(finite, xh, 0.0), q))
    return out
