"""An exact, mergeable, bounded-memory sketch of the values of each parameter group.

While every group holds at most ``raw_limit`` values the sketch keeps them as they are (small groups,
e.g. weight groups of 32-128, are then calibrated on their exact values). Beyond that it switches to
``bins`` equal bins over [-R, R], where R = 2^e is the smallest power of two strictly above the
group's absmax; when a later batch has a larger absmax, R doubles and every 2^k old bins fold into
one new bin. Bin edges at every R are nested, so folding is exact: streaming in any order, or merging
states computed on different workers, gives *identical* counts to one pass over all the data.
Memory per group: ``max(raw_limit, bins)`` numbers plus exact min, max and two moments; never more.
"""

from __future__ import annotations

import torch

from ..core import kernels

KERNEL_MIN_VALUES = 4096  # below this the torch path's fixed costs are as small as the kernel call's
MIN_EXP = -120  # R never drops below 2^-120 (all-zero groups)
DEFAULT_BINS = 2048
DEFAULT_RAW_LIMIT = 1024
COUNT_BUDGET = 1 << 24  # total bins over all groups when the bin count is chosen automatically


def auto_bins(n_groups: int, requested: int | None) -> int:
    """``requested`` (validated), or the largest power of two <= 2048 with n_groups * bins <= 2^24."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 16 or requested & (
                requested - 1):
            raise ValueError(f"bins must be a power of two >= 16, got {requested!r}")
        return requested
    bins = DEFAULT_BINS
    while bins > 64 and n_groups * bins > COUNT_BUDGET:
        bins //= 2
    return bins


class GroupSketch:
    """Values of ``n_groups`` groups, fed as ``rows`` of shape ``(n_groups, m)`` (NaN = skip)."""

    def __init__(self, n_groups: int, bins: int, raw_limit: int = DEFAULT_RAW_LIMIT) -> None:
        self.bins = bins
        self.raw_limit = raw_limit
        self.raw: torch.Tensor | None = torch.empty(n_groups, 0, dtype=torch.float32)
        self.counts: torch.Tensor | None = None
        self.exp = torch.full((n_groups,), MIN_EXP, dtype=torch.int64)
        self.min = torch.full((n_groups,), float("inf"), dtype=torch.float64)
        self.max = torch.full((n_groups,), float("-inf"), dtype=torch.float64)
        self.n = torch.zeros(n_groups, dtype=torch.int64)

    @property
    def n_groups(self) -> int:
        return self.exp.shape[0]

    @property
    def is_raw(self) -> bool:
        return self.raw is not None

    # ---------------------------------------------------------------------------------- building
    def _fold_to(self, exp: torch.Tensor) -> None:
        """Re-bin the counts to the (larger or equal) exponents ``exp``: 2^k old bins fold into one."""
        k = (exp - self.exp).clamp(0, 62)
        if self.counts is not None and bool((k > 0).any()):
            half = self.bins // 2
            j = torch.arange(self.bins, dtype=torch.int64)
            new_idx = torch.div(j[None, :] - half, 1 << k[:, None], rounding_mode="floor") + half
            folded = torch.zeros_like(self.counts).scatter_add_(1, new_idx, self.counts)
            self.counts = torch.where((k > 0)[:, None], folded, self.counts)
        self.exp = torch.maximum(self.exp, exp)

    def _count(self, rows: torch.Tensor) -> None:
        """Bin ``rows`` into the counts (creating them): index floor(x * B / (2R)) + B/2.

        x * B / (2R) is a power-of-two scaling, exact in float32 unless it underflows; a negative
        value that underflows to -0 still belongs to bin -1, which the fix-up below restores.
        """
        if self.counts is None:
            self.counts = torch.zeros(self.n_groups, self.bins, dtype=torch.int64)
        x = rows.to(torch.float32)
        scale = torch.ldexp(torch.ones(self.n_groups, dtype=torch.float32),
                            (self.bins.bit_length() - 2 - self.exp).to(torch.float32))
        if kernels.on_cpu(x) and x.numel() >= KERNEL_MIN_VALUES:  # one pass, same counts
            self.counts += kernels.hist_count(x, scale, self.bins)
            return
        t = x * scale[:, None]
        f = torch.floor(t)
        if bool((scale < 1).any()):  # only a scale below 1 can underflow a nonzero value
            f = torch.where((t == 0) & (x < 0), -1.0, f)
        valid = ~torch.isnan(x)
        idx = f.nan_to_num(0.0).to(torch.int64) + self.bins // 2
        if self.n_groups > 1:
            idx = idx + torch.arange(self.n_groups, dtype=torch.int64)[:, None] * self.bins
        self.counts += torch.bincount(idx[valid] if not bool(valid.all()) else idx.reshape(-1),
                                      minlength=self.n_groups * self.bins).reshape(self.n_groups, self.bins)

    def add(self, rows: torch.Tensor, lo_hi: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Take a batch: ``rows[g]`` are values of group g (NaN entries are skipped). ``lo_hi``: the
        per-row min and max when the caller already has them (rows without NaN)."""
        if rows.shape[0] != self.n_groups:
            raise ValueError(f"batch has {rows.shape[0]} parameter groups, the sketch has {self.n_groups}")
        x = rows.to(torch.float32)
        if x.shape[1] == 0:
            return
        if lo_hi is not None:
            lo, hi = lo_hi
            count = torch.full((self.n_groups,), x.shape[1], dtype=torch.int64)
        elif bool(torch.isnan(x).any()):
            valid = ~torch.isnan(x)
            lo = torch.where(valid, x, float("inf")).amin(dim=1)
            hi = torch.where(valid, x, float("-inf")).amax(dim=1)
            count = valid.sum(dim=1)
        else:
            lo, hi = x.amin(dim=1), x.amax(dim=1)
            count = torch.full((self.n_groups,), x.shape[1], dtype=torch.int64)
        lo, hi = lo.to(torch.float64), hi.to(torch.float64)
        amax = torch.maximum(-lo, hi).clamp_min(0).nan_to_num(0.0, posinf=0.0, neginf=0.0)
        amax = torch.where(count > 0, amax, 0.0)
        _, e = torch.frexp(amax)  # amax < 2^e: R = 2^e lies strictly above every value
        e = torch.where(amax > 0, e.to(torch.int64), torch.full_like(e, MIN_EXP, dtype=torch.int64))
        self._fold_to(torch.maximum(self.exp, e.clamp_min(MIN_EXP)))
        self.min = torch.minimum(self.min, lo)
        self.max = torch.maximum(self.max, hi)
        self.n += count
        if self.raw is not None and self.raw.shape[1] + x.shape[1] <= self.raw_limit:
            self.raw = torch.cat([self.raw, x], dim=1)
            return
        if self.raw is not None:  # too many values: switch to counts for good
            raw, self.raw = self.raw, None
            self._count(raw)
        self._count(x)

    def merged(self, other: GroupSketch) -> GroupSketch:
        """A new sketch of both (identical to one pass over both batches' data)."""
        if (other.bins, other.raw_limit, other.n_groups) != (self.bins, self.raw_limit, self.n_groups):
            raise ValueError("cannot merge sketches with different groups, bins or raw limits")
        out = GroupSketch(self.n_groups, self.bins, self.raw_limit)
        out.exp = torch.maximum(self.exp, other.exp)
        out.min, out.max = torch.minimum(self.min, other.min), torch.maximum(self.max, other.max)
        out.n = self.n + other.n
        raws = [s.raw for s in (self, other)]
        if all(r is not None for r in raws) and raws[0].shape[1] + raws[1].shape[1] <= self.raw_limit:
            out.raw = torch.cat(raws, dim=1)
            return out
        out.raw = None
        for s in (self, other):
            if s.raw is not None:
                out._count(s.raw)
            else:
                c = GroupSketch(self.n_groups, self.bins, self.raw_limit)
                c.raw, c.counts, c.exp = None, s.counts.clone(), s.exp.clone()
                c._fold_to(out.exp)
                out.counts = c.counts if out.counts is None else out.counts + c.counts
        return out

    # --------------------------------------------------------------------------------- reading
    @property
    def radius(self) -> torch.Tensor:
        """R per group (float64): the bins span [-R, R]."""
        return torch.ldexp(torch.ones(self.n_groups, dtype=torch.float64), self.exp.to(torch.float64))

    @property
    def width(self) -> torch.Tensor:
        return 2 * self.radius / self.bins

    def points(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, weights), each ``(n_groups, k)``: the exact values sorted (weight 1, padding 0)
        while raw, else the bin centers and counts."""
        if self.raw is not None:
            v, _ = torch.sort(self.raw.to(torch.float64), dim=1)  # NaN sorts last; sorting makes it order-free
            w = (~torch.isnan(v)).to(torch.float64)
            return torch.nan_to_num(v, nan=0.0), w
        j = torch.arange(self.bins, dtype=torch.float64) + 0.5
        centers = -self.radius[:, None] + j[None, :] * self.width[:, None]
        return centers, self.counts.to(torch.float64)

    def histogram(self) -> torch.Tensor:
        """Counts in ``bins`` bins over [-R, R] (built from the raw values when still raw)."""
        if self.raw is None:
            return self.counts
        tmp = GroupSketch(self.n_groups, self.bins, self.raw_limit)
        tmp.raw, tmp.exp = None, self.exp.clone()
        tmp._count(self.raw)
        return tmp.counts

    def abs_histogram(self) -> torch.Tensor:
        """Counts of |x| in ``bins/2`` bins over [0, R] (bin j and its mirror fold together)."""
        counts, half = self.histogram(), self.bins // 2
        return counts[:, half:] + counts[:, :half].flip(1)

    def quantile(self, q: float, absolute: bool = False) -> torch.Tensor:
        """Value below which a fraction ``q`` of each group lies, float64 (``absolute``: of |x|).

        Exact order statistics while raw; linear interpolation inside a bin otherwise.
        """
        n = self.n.to(torch.float64)
        if self.raw is not None:
            v = self.raw.to(torch.float64)
            v = v.abs() if absolute else v
            v, _ = torch.sort(v, dim=1)
            pos = (q * (n - 1)).clamp_min(0)
            lo = pos.floor().long().clamp(max=v.shape[1] - 1)
            hi = pos.ceil().long().clamp(max=v.shape[1] - 1)
            a, b = v.gather(1, lo[:, None]).squeeze(1), v.gather(1, hi[:, None]).squeeze(1)
            return a + (b - a) * (pos - pos.floor())
        counts = (self.abs_histogram() if absolute else self.counts).to(torch.float64)
        left = torch.zeros(self.n_groups, dtype=torch.float64) if absolute else -self.radius
        cdf = counts.cumsum(dim=1)
        target = (q * n)[:, None]
        b = torch.searchsorted(cdf, target.contiguous()).clamp(max=counts.shape[1] - 1).squeeze(1)
        before = torch.where(b > 0, cdf.gather(1, (b - 1).clamp_min(0)[:, None]).squeeze(1), 0.0)
        inside = counts.gather(1, b[:, None]).squeeze(1)
        frac = torch.where(inside > 0, (target.squeeze(1) - before) / inside.clamp_min(1), 0.0).clamp(0, 1)
        return left + (b.to(torch.float64) + frac) * self.width

    def moments(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean, std, mean |x - mean|, kurtosis) per group, computed from :meth:`points` (so they do
        not depend on batch order; in binned mode values sit at bin centers)."""
        v, w = self.points()
        n = w.sum(dim=1).clamp_min(1)
        mean = (v * w).sum(1) / n
        dev = v - mean[:, None]
        var = (dev**2 * w).sum(1) / n
        mad = (dev.abs() * w).sum(1) / n
        kurt = (dev**4 * w).sum(1) / n / var.clamp_min(1e-300) ** 2
        return mean, var.sqrt(), mad, kurt
