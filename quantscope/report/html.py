"""One self-contained HTML file per report: metrics tables and every plot embedded as a PNG data URI."""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Callable
from typing import Any

import torch

from .._files import atomic_write_text
from ..core.bounds import clip_range
from ..core.formats import CodebookFormat, FixedFormat, FloatFormat, IntFormat, MXFormat
from ..core.grid import float_table
from ..core.qtensor import QTensor
from . import plots
from .tables import fmt_num

CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 60em;
       color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2.5em; border-bottom: 2px solid #ccc; }
h3 { font-size: 1.02em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
td, th { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: right; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
.note { color: #555; font-size: 0.9em; }
"""


def _img(figure_id: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="{figure_id}"><img class="plot" alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>')


def _table(rows: list[tuple[str, Any]], header: tuple[str, ...] = ("metric", "value")) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt_num(v) if not isinstance(v, str) else v)}</td>"
                                    for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def group_levels(q: QTensor, group: int) -> torch.Tensor | None:
    """Representable values of one parameter group (None when there are too many to draw)."""
    fmt = q.spec.format
    scale = 1.0 if q.scale is None else float(q.scale.reshape(-1)[group])
    if isinstance(fmt, FixedFormat):
        scale = fmt.step
    if isinstance(fmt, (IntFormat, FixedFormat)):
        if fmt.qmax - fmt.qmin > 255:
            return None
        zp = 0.0 if q.zero_point is None else float(q.zero_point.reshape(-1)[group])
        return (torch.arange(fmt.qmin, fmt.qmax + 1, dtype=torch.float64) - zp) * scale
    if isinstance(fmt, CodebookFormat):
        return torch.tensor(fmt.levels, dtype=torch.float64) * scale
    elem = fmt.element if isinstance(fmt, MXFormat) else fmt
    if isinstance(elem, IntFormat):
        unit = 2.0**fmt.element_step_exp
        return torch.arange(-elem.qmax, elem.qmax + 1, dtype=torch.float64) * unit * scale
    assert isinstance(elem, FloatFormat)
    if elem.bits > 8:
        return None
    t = float_table(elem).double()
    return torch.unique(t[torch.isfinite(t)]) * scale


def per_group_sqnr(x: torch.Tensor, x_hat: torch.Tensor, q: QTensor) -> tuple[torch.Tensor, str]:
    """SQNR (dB) of every parameter group; per channel along axis 0 for per-tensor specs."""
    from ..core.granularity import PerChannel, PerTensor

    gran = q.spec.granularity
    if isinstance(gran, PerTensor) and x.dim() >= 2:
        gran, label = PerChannel(0), "channel (axis 0)"
    else:
        label = "parameter group"
    layout = gran.layout(tuple(x.shape))
    xr, er = layout.rows(x).double(), layout.rows(x - x_hat).double()
    valid = ~torch.isnan(xr)
    sig = torch.where(valid, xr * xr, 0.0).sum(1)
    noise = torch.where(valid, er * er, 0.0).sum(1)
    return 10 * torch.log10(sig.clamp_min(1e-300) / noise.clamp_min(1e-300)), label


def tensor_section(report: Any, x: torch.Tensor, x_hat: torch.Tensor, q: QTensor | None, title: str,
                   sweeps: bool = True, calibrator: Any = None, anchor: str = "t0",
                   on_step: Callable[[str], None] | None = None) -> str:
    """The HTML section of one tensor's error report (x, x_hat: float32 CPU tensors); plot ids are
    prefixed with ``anchor`` so that several sections fit in one page."""
    from ..error.sweep import sweep_bits, sweep_clipping, with_bits
    from .tables import error_report_rows

    cal_name = calibrator if isinstance(calibrator, str) else ("minmax" if calibrator is None
                                                               else type(calibrator).__name__)
    parts = [f'<section id="{anchor}"><h2>{html.escape(title)}</h2>', "<h3>Metrics</h3>",
             _table(error_report_rows(report))]
    figures = []
    clip = None
    levels = None
    if q is not None:
        layout = q.layout
        scale = q.scale
        if isinstance(q.spec.format, FixedFormat):
            scale = torch.full(layout.param_shape, q.spec.format.step)
        lo, hi = clip_range(q.spec, scale, q.zero_point, layout)
        widest = int(torch.argmax((hi - lo).reshape(-1)))
        clip = (float(lo.reshape(-1)[widest]), float(hi.reshape(-1)[widest]))
        levels = group_levels(q, widest)
    what = "levels (grey) and saturation points (red) of the widest group" if q is not None else "data"
    figures.append(_img(f"{anchor}-histogram", plots.histogram_with_levels(x, levels, clip, "data histogram"),
                        f"Histogram of x with {what}."))
    step = None
    if q is not None and q.scale is not None and q.spec.format.family == "int":
        step = float(q.scale.max())
    figures.append(_img(f"{anchor}-error", plots.error_histogram(x - x_hat, step), "Histogram of the error x - x̂."))
    if on_step:
        on_step("histograms")
    if q is not None and sweeps:
        spec = q.spec
        try:
            with_bits(spec, 4)
            pts = sweep_bits(x, spec, range(2, 9), calibrator=calibrator)
            png = plots.curve([p.value for p in pts], {"SQNR": [p.sqnr_db for p in pts]}, "bits", "SQNR (dB)",
                              "error vs bit width")
            figures.append(_img(f"{anchor}-bits", png,
                                f"SQNR against bit width (same granularity, {cal_name} calibration)."))
            parts_bits = [(f"{int(p.value)}", p.sqnr_db, p.mse, p.clipping_share) for p in pts]
        except ValueError:
            parts_bits = []
        if on_step:
            on_step("bit sweep")
        if spec.format.scaled and not isinstance(spec.format, FixedFormat):
            pts = sweep_clipping(x, spec)
            figures.append(_img(f"{anchor}-clipping", plots.curve(
                [p.value for p in pts], {"SQNR": [p.sqnr_db for p in pts]}, "clipping ratio (1 = min-max range)",
                "SQNR (dB)", "error vs clipping"), "SQNR against the clipping ratio of the min-max range."))
            best = max(pts, key=lambda p: p.sqnr_db)
            parts.append(f'<p class="note">Best clipping ratio {best.value:.3f}: SQNR {best.sqnr_db:.2f} dB.</p>')
        if on_step:
            on_step("clipping sweep")
        if parts_bits:
            parts += ["<h3>Error vs bit width</h3>",
                      _table(parts_bits, ("bits", "SQNR (dB)", "MSE", "clipping share"))]
    if x.dim() >= 1 and x.numel() > 1:
        sq, label = per_group_sqnr(x, x_hat, q) if q is not None else (None, "")
        if sq is not None and sq.numel() > 1 and bool(torch.isfinite(sq).any()):
            finite = torch.where(torch.isfinite(sq), sq, torch.tensor(math.nan))
            figures.append(_img(f"{anchor}-per-group", plots.per_group_sqnr(finite, label), f"SQNR per {label}."))
    parts += ["<h3>Plots</h3>"] + figures + ["</section>"]
    return "\n".join(parts)


def html_document(title: str, body: list[str], intro: str = "") -> str:
    """A complete, self-contained page (inline CSS, images as data URIs; nothing is fetched)."""
    note = ('<p class="note">quantscope error report. e = x - x̂ (what quantization loses); shares are of the '
            f'mean squared error. {html.escape(intro)}</p>')
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{note}" + "\n".join(body) + "</body></html>")


def write_html(path: str | os.PathLike, text: str) -> None:
    """Write the page atomically (temporary file in the same folder, then rename)."""
    atomic_write_text(path, text)


def model_report(analysis: Any, title: str, summary_rows: list[tuple[str, Any]], worst: int = 3) -> str:
    """HTML page of a model analysis: summary, per-layer SQNR bars, sensitivity ranking, the input
    histograms of the most sensitive layers with their clip points, and the full layer table."""
    layers = analysis.layers
    names = [r.name for r in layers]
    figures = [_img("model-sqnr", plots.layer_bars(names, {
        "weight": [r.weight_sqnr_db for r in layers], "input": [r.input_sqnr_db for r in layers],
        "local output": [r.local_output_sqnr_db for r in layers],
        "cumulative output": [r.cumulative_output_sqnr_db for r in layers]}, "SQNR (dB)", "per-layer SQNR"),
        "Per-layer SQNR of the weight, the input activation, the layer's own output (local) and the model "
        "at that layer (cumulative).")]
    ranked = analysis.ranked()
    png = plots.ranking([r.name for r in ranked], [r.sensitivity_db for r in ranked])
    figures.append(_img("model-sensitivity", png,
                        "Sensitivity: the model's output SQNR when only that layer is quantized (lowest = most "
                        "sensitive)."))
    for i, r in enumerate(ranked[:worst]):
        sample, clip = analysis.samples.get(r.name, (None, None))
        if sample is not None and sample.numel():
            figures.append(_img(f"model-input-{i}", plots.histogram_with_levels(
                sample, None, clip, f"input of {r.name}"), f"Input activations of {r.name} "
                f"(sensitivity {r.sensitivity_db:.1f} dB){' with its clip points' if clip else ''}."))
    columns = ("layer", "kind", "weight", "input", "weight dB", "input dB", "input clip", "local dB",
               "cumulative dB", "measured/predicted", "flag", "sensitivity dB")
    table = _table([(r.name, r.kind, r.weight_spec, r.input_spec, r.weight_sqnr_db, r.input_sqnr_db,
                     r.input_clipping_share, r.local_output_sqnr_db, r.cumulative_output_sqnr_db, r.noise_ratio,
                     r.flag or "-", r.sensitivity_db) for r in layers], columns)
    body = ["<h2>Summary</h2>", _table(summary_rows), "<h2>Plots</h2>"] + figures + ["<h2>All layers</h2>", table]
    return html_document(title, body, intro="Sensitivity and SQNR are measured on the analysis batches.")


def onnx_report(result: Any, title: str, summary_rows: list[tuple[str, Any]]) -> str:
    """HTML page of an ONNX quantization (:class:`quantscope.onnx.OnnxQuantResult`): summary, per-layer
    SQNR bars, the sensitivity ranking (when measured), layers kept float, and the full layer table."""
    layers = result.layers
    names = [x.name for x in layers]
    figures = [_img("onnx-sqnr", plots.layer_bars(names, {
        "weight": [x.weight_sqnr_db for x in layers], "input": [x.input_sqnr_db for x in layers],
        "output (accumulated)": [x.output_sqnr_db for x in layers]}, "SQNR (dB)", "per-layer SQNR"),
        "Per-node SQNR of the quantized weight, the quantized input, and the node's output in the quantized "
        "model against the float model (error accumulated up to that node).")]
    ranked = result.ranked()
    if any(math.isfinite(x.sensitivity_db) for x in layers):
        figures.append(_img("onnx-sensitivity", plots.ranking([x.name for x in ranked],
                                                              [x.sensitivity_db for x in ranked]),
                            "Sensitivity: the model's output SQNR when only that node is quantized (lowest = most "
                            "harmful; keep those float or give them a finer recipe)."))
    table = _table([(x.name, x.op, x.weight, x.input, x.weight_sqnr_db, x.input_sqnr_db, x.output_sqnr_db,
                     x.sensitivity_db) for x in layers],
                   ("node", "op", "weight", "input", "weight dB", "input dB", "output dB", "alone: model dB"))
    kept = _table(list(result.kept_float), ("node kept float", "why")) if result.kept_float else "<p>none</p>"
    body = ["<h2>Summary</h2>", _table(summary_rows), "<h2>Plots</h2>"] + figures + [
        "<h2>Quantized nodes</h2>", table, "<h2>Kept float</h2>", kept]
    return html_document(title, body, intro="SQNR is measured in ONNX Runtime on the analysis batches.")


def speed_report(report: Any, title: str) -> str:
    """HTML page of :func:`quantscope.onnx.speed.bench_speed`: latency, kernels per layer, divergence."""
    lat = _table([(x.model, x.threads, x.median_ms, x.p90_ms, x.items_per_s) for x in report.latencies],
                 ("model", "threads", "median ms", "p90 ms", "items/s"))
    counts = _table(sorted(report.counts().items()), ("how ORT runs the layer", "layers"))
    layers = _table([(x.name, x.status, x.ops, x.sim_vs_ort_sqnr_db, "DIVERGES" if x.diverges else "-")
                     for x in report.layers], ("layer", "status", "ORT nodes", "simulation vs ORT dB", "flag"))
    unfused = ("<ul>" + "".join(f"<li>{html.escape(u)}</li>" for u in report.unfused_qdq) + "</ul>"
               if report.unfused_qdq else "<p>none</p>")
    sizes = _table([("float model (bytes)", report.float_bytes), ("quantized model (bytes)", report.quant_bytes),
                    ("model output: simulation vs ORT (dB)", report.output_sim_vs_ort_sqnr_db)])
    notes = "".join(f"<p><b>Note:</b> {html.escape(n)}</p>" for n in report.notes)
    body = ["<h2>Latency</h2>", lat, sizes, "<h2>Kernels</h2>", notes, counts, "<h2>Unfused Q/DQ</h2>", unfused,
            "<h2>Layers</h2>", layers]
    return html_document(title, body, intro="Simulation = the QDQ graph run with all ORT optimizations off (float "
                                            "math); ORT = all optimizations on (int8 kernels).")
