"""Matplotlib figures of quantization error, returned as PNG bytes (for the HTML report).

matplotlib is an optional dependency (``pip install 'quantscope[report]'``); it is imported here,
only when a plot is drawn, with the non-interactive Agg backend.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import torch


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'quantscope[report]'") from exc
    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def histogram_with_levels(x: torch.Tensor, levels: torch.Tensor | None, clip: tuple[float, float] | None,
                          title: str) -> bytes:
    """Histogram of the data (log scale) with the quantization levels and the clip points."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    v = x.reshape(-1).double().numpy()
    ax.hist(v, bins=200, color="#4878a8", alpha=0.85, log=True)
    if levels is not None and 0 < levels.numel() <= 256:
        for lv in levels.tolist():
            ax.axvline(lv, color="#888888", lw=0.5, alpha=0.6)
    if clip is not None:
        for c in clip:
            ax.axvline(c, color="#c0392b", lw=1.5, ls="--")
    ax.set_xlabel("value")
    ax.set_ylabel("count")
    ax.set_title(title, fontsize=10)
    return _png(fig)


def error_histogram(e: torch.Tensor, step: float | None) -> bytes:
    """Histogram of x - x̂, with ±step/2 marked (the round-to-nearest bound for uniform grids)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    ax.hist(e.reshape(-1).double().numpy(), bins=200, color="#6a9955", log=True)
    if step is not None and math.isfinite(step):
        for c in (-step / 2, step / 2):
            ax.axvline(c, color="#555555", lw=1, ls=":")
    ax.set_xlabel("error x - x̂")
    ax.set_ylabel("count")
    ax.set_title("error distribution", fontsize=10)
    return _png(fig)


def curve(xs: Sequence[float], series: dict[str, Sequence[float]], xlabel: str, ylabel: str, title: str,
          bands: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None, logx: bool = False) -> bytes:
    """Line plot of one or more series (optional shaded intervals)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for name, ys in series.items():
        ax.plot(list(xs), list(ys), marker="o", ms=3, label=name)
        if bands and name in bands:
            lo, hi = bands[name]
            ax.fill_between(list(xs), list(lo), list(hi), alpha=0.2)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def per_group_sqnr(values: torch.Tensor, label: str) -> bytes:
    """SQNR of every parameter group (channel), sorted worst first markers kept in index order."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    v = values.double().numpy()
    ax.plot(range(len(v)), v, lw=0.8, color="#8e44ad")
    ax.set_xlabel(label)
    ax.set_ylabel("SQNR (dB)")
    ax.grid(alpha=0.3)
    ax.set_title(f"SQNR per {label} (worst {min(v):.1f} dB, best {max(v):.1f} dB)", fontsize=10)
    return _png(fig)


def layer_bars(names: Sequence[str], series: dict[str, Sequence[float]], ylabel: str, title: str) -> bytes:
    """Grouped bars per layer (one bar per series)."""
    plt = _pyplot()
    n, k = len(names), len(series)
    fig, ax = plt.subplots(figsize=(max(7.5, 0.28 * n), 3.8))
    width = 0.8 / max(k, 1)
    for i, (label, values) in enumerate(series.items()):
        vals = [v if math.isfinite(v) else float("nan") for v in values]
        ax.bar([j + i * width for j in range(n)], vals, width=width, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(n)])
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=k)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def ranking(names: Sequence[str], values: Sequence[float]) -> bytes:
    """Horizontal bars, first = most sensitive (lowest SQNR)."""
    plt = _pyplot()
    n = len(names)
    fig, ax = plt.subplots(figsize=(7.5, max(2.5, 0.22 * n)))
    vals = [v if math.isfinite(v) else float("nan") for v in values]
    ax.barh(range(n), vals, color="#c0392b")
    ax.set_yticks(range(n))
    ax.set_yticklabels(names, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("model output SQNR with only this layer quantized (dB)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("sensitivity ranking", fontsize=10)
    return _png(fig)
