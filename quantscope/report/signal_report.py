"""The audio / signal HTML report: waveform, error, error spectrum against theory, rate-distortion.

Plots are matplotlib figures returned as PNG bytes (via :mod:`quantscope.report.plots` helpers); the
page is one self-contained file (:func:`quantscope.report.html.html_document`). ``rate_distortion_plot``
takes any :class:`quantscope.signal.ratedistortion.RDCurve`, so image reports can use it too.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from .html import _img, _table, html_document
from .plots import _png, _pyplot


def _loudest_window(x: np.ndarray, width: int) -> int:
    """Start index of the ``width``-sample window with the most energy (for the zoomed waveform)."""
    if x.size <= width:
        return 0
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    return int(np.argmax(c[width:] - c[:-width]))


def waveform_plot(x: np.ndarray, y: np.ndarray, fs: float, zoom_s: float = 0.02) -> bytes:
    """Input and quantized output over the loudest ``zoom_s`` seconds (the output as steps), with the
    whole signal above for context."""
    plt = _pyplot()
    fig, (top, ax) = plt.subplots(2, 1, figsize=(7.5, 4.6), gridspec_kw={"height_ratios": [1, 2]})
    t = np.arange(x.size) / fs
    stride = max(1, x.size // 20000)
    top.plot(t[::stride], x[::stride], lw=0.5, color="#4878a8")
    width = max(8, int(zoom_s * fs))
    i0 = _loudest_window(x, width)
    sl = slice(i0, i0 + width)
    top.axvspan(t[sl][0], t[sl][-1], color="#c0392b", alpha=0.2)
    top.set_ylabel("input")
    top.set_title("waveform (shaded: zoomed window)", fontsize=10)
    ax.plot(t[sl] * 1e3, x[sl], lw=1.0, color="#4878a8", label="input x")
    ax.step(t[sl] * 1e3, y[sl], where="mid", lw=0.9, color="#c0392b", label="quantized x̂")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("amplitude (full scale = 1)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def error_plot(e: np.ndarray, fs: float, step: float | None) -> bytes:
    """The error x − x̂ over time, with ±Δ/2 marked when the step is known."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    stride = max(1, e.size // 50000)
    ax.plot(np.arange(0, e.size, stride) / fs, e[::stride], lw=0.4, color="#6a9955")
    if step is not None:
        for c in (-step / 2, step / 2):
            ax.axhline(c, color="#555555", lw=1, ls=":")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("error x − x̂")
    ax.grid(alpha=0.3)
    ax.set_title("error signal" + (" (dotted: ±Δ/2)" if step is not None else ""), fontsize=10)
    return _png(fig)


def spectrum_plot(x: np.ndarray, e: np.ndarray, fs: float, noise_model_var: float | None,
                  shaping: tuple[float, ...] | None = None) -> bytes:
    """Power spectral densities (dB re 1/Hz) of the signal and of the error, with the theoretical noise
    floor: white (model variance)/(fs/2), or shaped by |NTF|² when a feedback filter is given."""
    from ..signal.shaping import noise_transfer
    from ..signal.spectrum import power_spectrum

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    tiny = 1e-30
    f, px = power_spectrum(x, fs)
    _, pe = power_spectrum(e, fs)
    ax.plot(f, 10 * np.log10(px + tiny), lw=0.7, color="#4878a8", alpha=0.6, label="signal")
    ax.plot(f, 10 * np.log10(pe + tiny), lw=0.9, color="#c0392b", label="error")
    if noise_model_var is not None and noise_model_var > 0:
        if shaping is not None:
            white = noise_model_var / (1 + sum(c * c for c in shaping)) / (fs / 2)
            theory = white * noise_transfer(shaping, f, fs)
            label = "theory: white quantizer error × |NTF|²"
        else:
            theory = np.full_like(f, noise_model_var / (fs / 2))
            label = "theory: white noise floor"
        ax.plot(f, 10 * np.log10(theory + tiny), lw=1.2, ls="--", color="#333333", label=label)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("PSD (dB re 1/Hz)")
    floor = 10 * np.log10(max(float(np.median(pe)), tiny)) - 30
    ax.set_ylim(bottom=max(floor, ax.get_ylim()[0]))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("spectra (Welch, Hann)", fontsize=10)
    return _png(fig)


def rate_distortion_plot(curve: Any, extra: dict[str, tuple[float, float]] | None = None) -> bytes:
    """Distortion (MSE in dB) against rate (bits per sample) for an RDCurve: measured at fixed rate,
    measured at its entropy rate, the Δ²/12 model and the Gaussian D(R) = σ²·2^(−2R); ``extra`` adds
    labelled single points (rate, mse), e.g. a codec."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    pts = curve.points

    def db(v: float | None) -> float:
        return 10 * math.log10(v) if v is not None and v > 0 else float("nan")

    bits = [p.bits for p in pts]
    ax.plot(bits, [db(p.mse) for p in pts], marker="o", ms=3, label="measured (rate = bits)")
    ax.plot([p.entropy_bits for p in pts], [db(p.mse) for p in pts], marker=".", ms=3, ls=":",
            label="measured (rate = output entropy)")
    if all(p.uniform_model_mse is not None for p in pts):
        ax.plot(bits, [db(p.uniform_model_mse) for p in pts], ls="--", color="#555555", label="Δ²/12 model")
    ax.plot(bits, [db(p.gaussian_rd_mse) for p in pts], ls="-.", color="#8e44ad", label="Gaussian D(R) = σ²·2^(−2R)")
    for label, (rate, mse) in (extra or {}).items():
        ax.plot([rate], [db(mse)], marker="*", ms=12, ls="none", label=label)
    ax.set_xlabel("rate (bits per sample)")
    ax.set_ylabel("distortion: MSE (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"rate-distortion: {curve.name}", fontsize=10)
    return _png(fig)


def metrics_rows(r: Any) -> list[tuple[str, Any]]:
    """(metric, value) rows of an :class:`quantscope.signal.pipeline.AudioQuantResult`."""
    rows: list[tuple[str, Any]] = [
        ("mode", r.mode), ("sample rate (Hz)", r.sample_rate), ("frames x channels", f"{r.frames:,} x {r.channels}"),
        ("bits per sample", r.bits),
        ("SQNR (dB)", r.sqnr_db if r.sqnr_db is not None else r.sqnr_note),
        ("ENOB (bits, from the error power)", r.enob if r.enob is not None else r.sqnr_note),
        (f"SQNR {r.band_hz[0]:g}-{r.band_hz[1]:g} Hz (dB)", r.band_sqnr_db if r.band_sqnr_db is not None
         else "undefined: no signal in the band"),
    ]
    if r.theory_sqnr_db is not None:
        rows.append(("theory, full-scale sine: 6.02·N + 1.76 (dB)", r.theory_sqnr_db))
    rows += [("error mean", r.error_mean), ("error variance", r.error_var)]
    if r.noise_model_var is not None:
        rows += [("noise model variance", r.noise_model_var),
                 ("measured / model variance", r.error_var / r.noise_model_var)]
    if r.step is not None:
        rows.append(("step Δ", r.step))
    rows += [("max |error|", r.max_abs_error), ("saturated samples", r.saturated)]
    return rows


def audio_report(result: Any, curve: Any | None, title: str, source: str = "",
                 extra_rd: dict[str, tuple[float, float]] | None = None) -> str:
    """The whole HTML page for one quantized audio signal (first channel plotted)."""
    x, y = result.input[:, 0], result.output[:, 0]
    e = x - y
    model_note = ""
    if result.noise_model_var is not None:
        model_note = ("Noise model: Δ²/12 for rounding, Δ²/4 with TPDF dither (Δ²/6 on average with RPDF), times "
                      "1 + Σh² when the error is fed back through a noise-shaping filter h.")
    figures = [
        _img("audio-waveform", waveform_plot(x, y, result.sample_rate), "Input and quantized output (zoomed on the "
             "loudest 20 ms)."),
        _img("audio-error", error_plot(e, result.sample_rate, result.step), "The error x − x̂ over time."),
    ]
    if x.size >= 16:
        figures.append(_img("audio-spectrum", spectrum_plot(x, e, result.sample_rate, result.noise_model_var,
                                                            result.shaping_filter),
                            "Power spectra of the signal and the error, with the theoretical noise floor."))
    parts = ["<h2>Metrics</h2>", _table(metrics_rows(result))]
    if model_note:
        parts.append(f'<p class="note">{html.escape(model_note)}</p>')
    parts += ["<h2>Plots</h2>"] + figures
    if curve is not None:
        parts += ["<h2>Rate-distortion</h2>",
                  _img("audio-rd", rate_distortion_plot(curve, extra_rd),
                       "Distortion against rate for the uniform quantizer on this signal, beside the Δ²/12 model "
                       "and the Gaussian rate-distortion function."),
                  _table([tuple(row) for row in curve.rows()], curve.COLUMNS)]
    intro = f"Source: {source}. " if source else ""
    return html_document(title, parts, intro=intro)


__all__ = ["audio_report", "error_plot", "metrics_rows", "rate_distortion_plot", "spectrum_plot", "waveform_plot"]
