"""An exact, mergeable, bounded-memory histogram per parameter group.

Each group's values are counted in ``bins`` equal bins over [-R, R], where R = 2^e is the smallest
power of two strictly above the group's absmax. When a later batch has a larger absmax, R doubles
(as often as needed) and every 2^k old bins fold into one new bin. Because bin edges at every R are
nested, the fold is exact: streaming in any order, or merging states computed on different workers,
gives *bit-identical* counts to one pass over all the data. Memory: ``n_groups x bins`` int64 counts,
plus the exact min, max and first two moments per group; never the samples.
"""

from __future__ import annotations

import torch

MIN_EXP = -120  # R never drops below 2^-120 (all-zero groups)
DEFAULT_BINS = 2048
COUNT_BUDGET = 1 << 24  # total bins over all groups when the bin count is chosen automatically


def auto_bins(n_groups: int, requested: int | None, per_group: int | None = None) -> int:
    """``requested`` (validated), or a power of two in [64, 2048]: at most 8 bins per sample of a group's
    first batch (small groups need no more), and n_groups * bins <= 2^24."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 16 or requested & (
                requested - 1):
            raise ValueError(f"bins must be a power of two >= 16, got {requested!r}")
        return requested
    bins = DEFAULT_BINS
    while bins > 64 and (n_groups * bins > COUNT_BUDGET or (per_group is not None and bins > 8 * per_group)):
        bins //= 2
    return bins


class GroupHistogram:
    """Counts of ``rows`` (shape ``(n_groups, m)``, NaN = skip) in ``bins`` bins per group."""

    def __init__(self, n_groups: int, bins: int) -> None:
        self.bins = bins
        self.counts = torch.zeros(n_groups, bins, dtype=torch.int64)
        self.exp = torch.full((n_groups,), MIN_EXP, dtype=torch.int64)
        self.min = torch.full((n_groups,), float("inf"), dtype=torch.float64)
        self.max = torch.full((n_groups,), float("-inf"), dtype=torch.float64)
        self.n = torch.zeros(n_groups, dtype=torch.int64)
        self.sum = torch.zeros(n_groups, dtype=torch.float64)
        self.sumsq = torch.zeros(n_groups, dtype=torch.float64)

    @property
    def n_groups(self) -> int:
        return self.counts.shape[0]

    # ---------------------------------------------------------------------------------- building
    def _fold_to(self, exp: torch.Tensor) -> None:
        """Re-bin to the (larger or equal) exponents ``exp``: 2^k old bins fold into one."""
        k = (exp - self.exp).clamp(0, 62)
        if not bool((k > 0).any()):
            self.exp = torch.maximum(self.exp, exp)
            return
        half = self.bins // 2
        j = torch.arange(self.bins, dtype=torch.int64)
        new_idx = torch.div(j[None, :] - half, 1 << k[:, None], rounding_mode="floor") + half
        folded = torch.zeros_like(self.counts).scatter_add_(1, new_idx, self.counts)
        self.counts = torch.where((k > 0)[:, None], folded, self.counts)
        self.exp = torch.maximum(self.exp, exp)

    def add(self, rows: torch.Tensor) -> None:
        """Count a batch: ``rows[g]`` are values of group g (NaN entries are skipped)."""
        if rows.shape[0] != self.n_groups:
            raise ValueError(f"batch has {rows.shape[0]} parameter groups, the histogram has {self.n_groups}")
        x = rows.to(torch.float64)
        valid = ~torch.isnan(x)
        zero = torch.zeros((), dtype=torch.float64)
        amax = torch.where(valid, x.abs(), zero).amax(dim=1) if x.shape[1] else zero.expand(self.n_groups)
        _, e = torch.frexp(amax)  # amax < 2^e: R = 2^e is strictly above every value
        e = torch.where(amax > 0, e.to(torch.int64), torch.full_like(e, MIN_EXP, dtype=torch.int64))
        self._fold_to(torch.maximum(self.exp, e.clamp_min(MIN_EXP)))
        # bin index floor(x * B / (2R)) + B/2, exact: the product is a power-of-two scaling in float64
        scale = torch.ldexp(torch.ones_like(amax), (torch.log2(torch.tensor(float(self.bins))).long() - 1
                                                    - self.exp).to(torch.float64))
        idx = torch.floor(x * scale[:, None]).nan_to_num(0.0).to(torch.int64) + self.bins // 2
        flat = (torch.arange(self.n_groups, dtype=torch.int64)[:, None] * self.bins + idx)[valid]
        self.counts += torch.bincount(flat, minlength=self.n_groups * self.bins).reshape(self.n_groups, self.bins)
        inf = torch.tensor(float("inf"), dtype=torch.float64)
        self.min = torch.minimum(self.min, torch.where(valid, x, inf).amin(dim=1))
        self.max = torch.maximum(self.max, torch.where(valid, x, -inf).amax(dim=1))
        self.n += valid.sum(dim=1)
        self.sum += torch.where(valid, x, zero).sum(dim=1)
        self.sumsq += torch.where(valid, x * x, zero).sum(dim=1)

    def merged(self, other: GroupHistogram) -> GroupHistogram:
        """A new histogram holding both (bit-identical to one pass over both batches' data)."""
        if other.bins != self.bins or other.n_groups != self.n_groups:
            raise ValueError(f"cannot merge histograms with {self.n_groups}x{self.bins} and "
                             f"{other.n_groups}x{other.bins} bins")
        out = GroupHistogram(self.n_groups, self.bins)
        exp = torch.maximum(self.exp, other.exp)
        parts = []
        for h in (self, other):
            c = GroupHistogram(self.n_groups, self.bins)
            c.counts, c.exp = h.counts.clone(), h.exp.clone()
            c._fold_to(exp)
            parts.append(c.counts)
        out.counts, out.exp = parts[0] + parts[1], exp
        out.min, out.max = torch.minimum(self.min, other.min), torch.maximum(self.max, other.max)
        out.n, out.sum, out.sumsq = self.n + other.n, self.sum + other.sum, self.sumsq + other.sumsq
        return out

    # --------------------------------------------------------------------------------- reading
    @property
    def radius(self) -> torch.Tensor:
        """R per group (float64): the histogram spans [-R, R]."""
        return torch.ldexp(torch.ones(self.n_groups, dtype=torch.float64), self.exp.to(torch.float64))

    @property
    def width(self) -> torch.Tensor:
        return 2 * self.radius / self.bins

    def centers(self) -> torch.Tensor:
        """Bin centers, ``(n_groups, bins)`` float64."""
        j = torch.arange(self.bins, dtype=torch.float64) + 0.5
        return -self.radius[:, None] + j[None, :] * self.width[:, None]

    def abs_counts(self) -> torch.Tensor:
        """Counts of |x| in ``bins/2`` bins over [0, R] (bin j and its mirror fold together)."""
        half = self.bins // 2
        return self.counts[:, half:] + self.counts[:, :half].flip(1)

    def quantile(self, q: float | torch.Tensor, absolute: bool = False) -> torch.Tensor:
        """Value below which a fraction ``q`` of each group lies (linear inside a bin), float64.

        ``absolute=True`` answers for |x| instead of x.
        """
        counts = (self.abs_counts() if absolute else self.counts).to(torch.float64)
        left = torch.zeros(self.n_groups, dtype=torch.float64) if absolute else -self.radius
        width = self.width
        cdf = counts.cumsum(dim=1)
        target = (torch.as_tensor(q, dtype=torch.float64) * self.n.to(torch.float64)).reshape(-1, 1).expand(
            self.n_groups, 1)
        b = torch.searchsorted(cdf, target.contiguous()).clamp(max=counts.shape[1] - 1).squeeze(1)
        before = torch.where(b > 0, cdf.gather(1, (b - 1).clamp_min(0)[:, None]).squeeze(1), 0.0)
        inside = counts.gather(1, b[:, None]).squeeze(1)
        frac = torch.where(inside > 0, (target.squeeze(1) - before) / inside.clamp_min(1), 0.0).clamp(0, 1)
        return left + (b.to(torch.float64) + frac) * width

    @property
    def mean(self) -> torch.Tensor:
        return self.sum / self.n.clamp_min(1)

    @property
    def std(self) -> torch.Tensor:
        var = self.sumsq / self.n.clamp_min(1) - self.mean**2
        return var.clamp_min(0).sqrt()
