"""Lloyd-Max: the MSE-optimal non-uniform 1-D codebook for a distribution (k-means in 1-D).

Iterates the two optimality conditions of Lloyd (1957/1982) and Max (1960) on a fine histogram:
thresholds halfway between levels, and every level at the centroid (conditional mean) of its cell.
The result is a ``qs.codebook`` format; ``expected_mse_`` is the MSE the histogram predicts.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.arrays import as_float_tensor, check_finite
from ..core.formats import CodebookFormat, codebook
from .base import NotFittedError
from .sketch import GroupSketch


def lloyd_max(centers: torch.Tensor, weights: torch.Tensor, n_levels: int, iters: int = 500,
              tol: float = 1e-12, init: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """Levels (sorted, float64) and their MSE for point masses ``weights`` at ``centers`` (1-D).

    Starts from ``init`` or the quantiles (k + 1/2) / n_levels of the distribution.
    """
    if not 2 <= n_levels <= 65536:
        raise ValueError(f"n_levels must be in [2, 65536], got {n_levels}")
    keep = weights > 0
    c, w = centers[keep].to(torch.float64), weights[keep].to(torch.float64)
    if c.numel() == 0:
        raise ValueError("no data to fit a codebook to")
    w = w / w.sum()
    cdf = w.cumsum(0)
    q = (torch.arange(n_levels, dtype=torch.float64) + 0.5) / n_levels
    levels = c[torch.searchsorted(cdf, q).clamp(max=c.numel() - 1)] if init is None else init.to(torch.float64)
    for _ in range(iters):
        thresholds = (levels[:-1] + levels[1:]) / 2
        cell = torch.bucketize(c, thresholds)
        mass = torch.zeros(n_levels, dtype=torch.float64).index_add_(0, cell, w)
        moment = torch.zeros(n_levels, dtype=torch.float64).index_add_(0, cell, w * c)
        new = torch.where(mass > 0, moment / mass.clamp_min(1e-300), levels)
        new, _ = torch.sort(new)
        moved = float((new - levels).abs().max())
        levels = new
        if moved <= tol * float(c.abs().max()):
            break
    cell = torch.bucketize(c, (levels[:-1] + levels[1:]) / 2)
    mse = float((w * (c - levels[cell]) ** 2).sum())
    return levels, mse


class LloydMaxCalibrator:
    """Streams a tensor into a fine histogram, then fits a ``2^bits``-level Lloyd-Max codebook.

    ``codebook()`` returns absolute levels (no scale), or with ``normalized=True`` levels divided by
    their absmax, to be scaled per group by absmax like NF4.
    """

    def __init__(self, bits: int = 4, bins: int = 8192, normalized: bool = False) -> None:
        self.bits = bits
        self.bins = bins
        self.normalized = normalized

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "hist_")

    def update(self, x: Any) -> LloydMaxCalibrator:
        t, _ = as_float_tensor(x)
        t = t.detach().to(device="cpu", dtype=torch.float32)
        check_finite(t)
        if not self.is_fitted:
            self.hist_ = GroupSketch(1, self.bins, raw_limit=0)
        self.hist_.add(t.reshape(1, -1))
        return self

    def merge(self, other: LloydMaxCalibrator) -> LloydMaxCalibrator:
        if not isinstance(other, LloydMaxCalibrator):
            raise TypeError(f"can only merge with another LloydMaxCalibrator, got {type(other).__name__}")
        out = LloydMaxCalibrator(self.bits, self.bins, self.normalized)
        states = [c.hist_ for c in (self, other) if c.is_fitted]
        if states:
            out.hist_ = states[0] if len(states) == 1 else states[0].merged(states[1])
        return out

    def fit(self) -> torch.Tensor:
        if not self.is_fitted:
            raise NotFittedError("this LloydMaxCalibrator has seen no data; call update(x) first")
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= 16:
            raise ValueError(f"bits must be an int in [1, 16], got {self.bits!r}")
        values, weights = self.hist_.points()
        levels, mse = lloyd_max(values[0], weights[0], 2**self.bits)
        self.levels_, self.expected_mse_ = levels, mse
        return levels

    def codebook(self) -> CodebookFormat:
        levels = self.fit()
        if self.normalized:
            levels = levels / levels.abs().max()
        return codebook(levels.tolist(), normalized=self.normalized, name=f"lloyd{self.bits}")

    def __repr__(self) -> str:
        return f"LloydMaxCalibrator(bits={self.bits}, bins={self.bins})"


