"""HTML page of a vector-quantization error analysis: summary, search recall, distortion per dimension
and per sub-space, codebook usage, and distortion vs bits per dimension against the Gaussian
rate-distortion bound and the best scalar quantizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import plots
from .html import _img, _table, html_document


def _bars(values: Sequence[float], xlabel: str, ylabel: str, title: str) -> bytes:
    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    ax.bar(range(len(values)), list(values), color="#2e86c1", width=1.0 if len(values) > 64 else 0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(title, fontsize=10)
    return plots._png(fig)


def _rate_plot(points: Sequence[Any], title: str) -> bytes:
    xs = [p.bits_per_dim for p in points]
    series = {"quantizer": [p.mse for p in points], "best scalar (Lloyd-Max)": [p.lloyd_max for p in points],
              "best uniform scalar": [p.uniform for p in points], "Gaussian D(R)": [p.rd_gaussian for p in points]}
    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for name, ys in series.items():
        ax.plot(xs, ys, marker="o", ms=3, label=name, ls="--" if name != "quantizer" else "-")
    ax.set_yscale("log")
    ax.set_xlabel("bits per dimension")
    ax.set_ylabel("MSE per dimension")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return plots._png(fig)


def _rate_rows(points: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [(p.label, p.bits_per_dim, p.mse, p.lloyd_max, p.uniform, p.rd_gaussian, p.gain_over_scalar_db)
            for p in points]


RATE_HEADER = ("setting", "bits/dim", "MSE/dim", "best scalar", "best uniform", "Gaussian D(R)", "gain over scalar dB")


def vectors_report(report: Any, title: str, summary_rows: list[tuple[str, Any]],
                   recall_rows: list[tuple[Any, ...]] | None = None, sweep: Sequence[Any] | None = None,
                   gaussian: Sequence[Any] | None = None) -> str:
    """The complete page (one self-contained HTML string) for a :class:`quantscope.vq.VQErrorReport`."""
    body = ["<h2>Summary</h2>", _table(summary_rows)]
    if recall_rows:
        body += ["<h2>Search</h2>", '<p class="note">Exhaustive ADC search over the codes vs exact search over '
                 "the float vectors; k-recall@k = share of the exact top-k found in the top-k.</p>",
                 _table(recall_rows, ("metric", "recall@1", "recall@10", "ms/query"))]
    body += ["<h2>Distortion per dimension</h2>",
             _img("per-dim", _bars(report.per_dimension, "dimension", "MSE", "squared error per dimension"),
                  "Mean squared error of every dimension.")]
    if report.per_subspace:
        body += [_img("per-subspace", _bars(report.per_subspace, "sub-space", "MSE",
                                            "squared error per sub-space"),
                      "Mean squared error of every sub-space (summed over its dimensions).")]
    usage = report.usage
    body += ["<h2>Codebook usage</h2>",
             _img("usage", _bars([u.perplexity / u.size for u in usage], "codebook", "perplexity / size",
                                 "codebook perplexity relative to its size"),
                  "2^entropy of the code frequencies over the codebook size (1 = every code equally used)."),
             _table([(str(u.index), u.size, u.used, u.utilization, u.perplexity) for u in usage],
                    ("codebook", "size", "used", "utilization", "perplexity"))]
    if sweep:
        body += ["<h2>Distortion vs rate</h2>",
                 _img("rate", _rate_plot(sweep, "this data: quantizer vs references"),
                      "Per-dimension MSE against bits per dimension. Best scalar: one Lloyd-Max quantizer per "
                      "dimension with optimal integer bit allocation (Gaussian marginals); Gaussian D(R): "
                      "reverse water-filling over the covariance eigenvalues."),
                 _table(_rate_rows(sweep), RATE_HEADER)]
    if gaussian:
        body += ["<h3>Why code dimensions jointly: unit Gaussian</h3>",
                 _img("gauss", _rate_plot(gaussian, "i.i.d. unit Gaussian, VQ in 2-D vs scalar"),
                      "Held-out MSE of plain VQ in 2 dimensions vs the best scalar quantizer at the same rate "
                      "and Shannon's bound 2^-2R: the gap is VQ's space-filling and shape advantage."),
                 _table(_rate_rows(gaussian), RATE_HEADER)]
    return html_document(title, body, intro="For vectors: x̂ is the decoded code word; MSE is per vector unless "
                                            "it says per dimension.")
