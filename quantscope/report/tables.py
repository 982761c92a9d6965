"""Terminal tables: the one place quantscope formats numbers for people (rich)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..error.metrics import ErrorReport


def fmt_num(v: Any) -> str:
    """Compact human formatting: 4 significant digits, inf/nan spelled out, bools as yes/no."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def render_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                 width: int = 120) -> str:
    """A table as text (rich box drawing), numbers right-aligned."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*[fmt_num(v) for v in r])
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    with console.capture() as cap:
        console.print(table)
    return cap.get().rstrip("\n")


def error_report_rows(r: ErrorReport) -> list[tuple[str, Any]]:
    """(metric, value) rows of an error report, for the terminal table and the HTML report."""
    rows: list[tuple[str, Any]] = [("spec", r.spec)] if r.spec else []
    rows += [("SQNR (dB)", r.sqnr_db), ("MSE", r.mse), ("RMSE", r.rmse), ("max |e|", r.max_abs),
             ("mean e (bias)", r.mean)]
    if r.bound is not None:
        rows += [("guaranteed bound", r.bound), ("max |e| / bound", r.max_bound_ratio),
                 ("bound holds", r.bound_holds), ("bits per value", r.bits_per_value)]
    d = r.decomposition
    if d is not None:
        rows += [("clipping share of MSE", d.clipping_share), ("granular share of MSE", d.granular_share),
                 ("clipped elements", d.clipped_fraction), ("bias² share of MSE", d.bias_share)]
        if d.nearest_mse is not None:
            rows.append(("MSE with round-to-nearest", d.nearest_mse))
        rows += [("static share (per group mean)", d.static_share),
                 ("static share (per level mean)", d.level_static_share),
                 ("levels used", f"{d.levels_used:,} / {d.levels_total:,}"),
                 ("code entropy (bits)", d.code_entropy_bits), ("largest level share", d.max_level_share),
                 ("distinct inputs per level", d.distinct_inputs_per_level),
                 ("granular MSE / noise model (Δ²/12)", d.granular_ratio)]
    t = r.theory
    if t is not None:
        rows += [("fitted distribution (σ)", f"{t.distribution} ({fmt_num(t.sigma)})"),
                 (f"gap to optimal uniform, {t.levels} levels (dB)", t.gap_to_optimal_uniform_db),
                 ("gap to Lloyd-Max (dB)", t.gap_to_lloyd_max_db),
                 (f"gap to σ²·2^(-2R), R={t.rate_bits:g} (dB)", t.gap_to_rate_distortion_db)]
    return rows


def render_error_report(r: ErrorReport) -> str:
    return render_table(f"quantization error (n={r.n:,})", ["metric", "value"], error_report_rows(r))


def render_sweep(points: Sequence[Any], what: str) -> str:
    """A bit-width or clipping sweep as a table."""
    rows = [[p.value, p.sqnr_db, p.mse, p.clipping_share, p.granular_share] for p in points]
    return render_table(f"error vs {what}", [what, "SQNR dB", "MSE", "clipping share", "granular share"], rows)


def render_uncertainty(points: Sequence[Any]) -> str:
    """Bootstrap calibration uncertainty as a table (95% intervals)."""
    rows = [[p.size, p.scale_ratio_mean, f"{p.scale_ratio_lo:.4g} .. {p.scale_ratio_hi:.4g}", p.sqnr_db_mean,
             f"{p.sqnr_db_lo:.2f} .. {p.sqnr_db_hi:.2f}"] for p in points]
    return render_table("calibration uncertainty (bootstrap, 95% intervals)",
                        ["calibration rows", "scale / full-data scale", "interval", "SQNR dB", "interval"], rows)
