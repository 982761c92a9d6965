"""Where a vector quantizer loses: distortion per dimension and per sub-space, codebook utilization and
perplexity, and distortion against bits per dimension compared with Shannon's Gaussian rate-distortion
bound and with the best scalar quantizer at the same rate.

Reference curves reuse :mod:`quantscope.error.theory`: ``rate_distortion_mse`` (σ²·2^-2R),
``lloyd_max_mse`` and ``optimal_uniform_mse`` (unit-variance Gaussian, per level count). "Best scalar
quantizer at rate R" means one fixed-rate scalar quantizer per dimension with the integer bits split
across dimensions optimally (greedy marginal allocation, optimal for these convex curves), assuming
Gaussian marginals with the measured per-dimension variances.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..error.metrics import error
from ..error.theory import lloyd_max_mse, optimal_uniform_mse, rate_distortion_mse
from .base import BaseVectorQuantizer, as_matrix


@dataclass(frozen=True)
class CodebookUsage:
    """How one codebook (code column) is used: ``used`` distinct codes of ``size``; ``perplexity`` =
    2^entropy of the code frequencies (``size`` when all codes are equally used, 1 when one code)."""

    index: int
    size: int
    used: int
    utilization: float
    perplexity: float
    entropy_bits: float


@dataclass(frozen=True)
class VQErrorReport:
    """Distortion of one quantizer on a vector set. ``mse`` is mean ||x − x̂||² per vector; ``mse_per_dim``
    = mse / d; ``sqnr_db`` = 10·log10(Σx²/Σe²); ``per_dimension`` (d,) mean squared error of each
    dimension; ``per_subspace`` (M,) mean squared error of each sub-space (PQ/OPQ, in the rotated space
    for OPQ; None otherwise); ``usage`` one :class:`CodebookUsage` per code column."""

    name: str
    n_vectors: int
    dim: int
    bytes_per_vector: int
    bits_per_dim: float
    mse: float
    mse_per_dim: float
    sqnr_db: float
    per_dimension: list[float]
    per_subspace: list[float] | None
    usage: list[CodebookUsage]

    @property
    def compression_ratio(self) -> float:
        """float32 bytes over code bytes."""
        return 4 * self.dim / self.bytes_per_vector

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "compression_ratio": self.compression_ratio}

    def __str__(self) -> str:
        used = sum(u.used for u in self.usage) / max(1, sum(u.size for u in self.usage))
        perplexity = sum(u.perplexity for u in self.usage) / max(1, len(self.usage))
        worst = max(range(self.dim), key=lambda i: self.per_dimension[i]) if self.per_dimension else 0
        lines = [f"{self.name}: {self.n_vectors:,} vectors x {self.dim} dims, {self.bytes_per_vector} bytes/vector "
                 f"({self.bits_per_dim:.3g} bits/dim, {self.compression_ratio:.1f}x smaller than float32)",
                 f"  MSE {self.mse:.4g} per vector ({self.mse_per_dim:.4g} per dim), SQNR {self.sqnr_db:.2f} dB",
                 f"  codes used {used:.1%}, mean perplexity {perplexity:.1f} per codebook",
                 f"  worst dimension {worst}: MSE {self.per_dimension[worst]:.4g}" if self.per_dimension else ""]
        if self.per_subspace:
            j = max(range(len(self.per_subspace)), key=lambda i: self.per_subspace[i])
            lines.append(f"  worst sub-space {j}: MSE {self.per_subspace[j]:.4g} (of {len(self.per_subspace)})")
        return "\n".join(line for line in lines if line)


def codebook_usage(codes: Any, n_levels: int | Sequence[int]) -> list[CodebookUsage]:
    """Usage statistics of every code column of (n, M) ``codes`` with ``n_levels`` possible codes each."""
    c = torch.as_tensor(codes).long()
    if c.dim() != 2:
        raise ValueError(f"codes must be a 2-D (n, n_codes) array, got shape {tuple(c.shape)}")
    sizes = [int(n_levels)] * c.shape[1] if isinstance(n_levels, int) else [int(v) for v in n_levels]
    out = []
    for m in range(c.shape[1]):
        counts = torch.bincount(c[:, m], minlength=sizes[m]).double()
        p = counts[counts > 0] / counts.sum()
        h = float(-(p * torch.log2(p)).sum())
        used = int((counts > 0).sum())
        out.append(CodebookUsage(m, sizes[m], used, used / sizes[m], 2.0**h, h))
    return out


def _levels_per_column(q: BaseVectorQuantizer) -> list[int]:
    from .neq import NormExplicitQuantizer

    if isinstance(q, NormExplicitQuantizer):
        return [2 ** int(q.norm_bits)] + _levels_per_column(q.direction_)
    return [2**q.code_bits] * q.n_codes_


def error_report(quantizer: BaseVectorQuantizer, X: Any, name: str = "") -> VQErrorReport:
    """Measure a fitted quantizer on (n, d) vectors ``X`` (encode, decode, compare)."""
    from .opq import OptimizedProductQuantizer
    from .pq import ProductQuantizer

    quantizer._check_fitted()
    t, _ = as_matrix(X, "X", quantizer.dim_)
    codes = quantizer._encode(t)
    xh = quantizer._decode(codes)
    rep = error(t, xh, theory=False)
    e2 = (t.double() - xh.double()) ** 2
    per_dim = e2.mean(0)
    per_sub = None
    if isinstance(quantizer, (ProductQuantizer, OptimizedProductQuantizer)):
        m = int(quantizer.n_subspaces)
        diff = (t - xh) @ quantizer.rotation_ if isinstance(quantizer, OptimizedProductQuantizer) else t - xh
        per_sub = (diff.double() ** 2).reshape(t.shape[0], m, -1).sum(2).mean(0).tolist()
    d = t.shape[1]
    bpv = quantizer.bytes_per_vector
    return VQErrorReport(name or type(quantizer).__name__, t.shape[0], d, bpv, 8 * bpv / d, rep.mse * d, rep.mse,
                         rep.sqnr_db, per_dim.tolist(), per_sub, codebook_usage(codes, _levels_per_column(quantizer)))


# ------------------------------------------------------------------------------- theory references
def gaussian_rd_waterfill(variances: Sequence[float] | torch.Tensor, rate_bits_per_dim: float) -> float:
    """Mean per-dimension D(R) of independent Gaussian components with these variances at an average of
    ``rate_bits_per_dim`` bits (reverse water-filling: D_i = min(θ, σ_i²), Σ ½·log2(σ_i²/D_i) = R·d).
    Equals ``rate_distortion_mse(σ², R)`` when all variances are equal."""
    v = torch.as_tensor(variances, dtype=torch.float64).reshape(-1).clamp_min(0)
    if rate_bits_per_dim < 0:
        raise ValueError(f"rate_bits_per_dim must be >= 0, got {rate_bits_per_dim}")
    pos = v[v > 0]
    if pos.numel() == 0:
        return 0.0
    if bool((pos == pos[0]).all()) and pos.numel() == v.numel():
        return rate_distortion_mse(float(pos[0]), rate_bits_per_dim)
    total = rate_bits_per_dim * v.numel()
    lo, hi = 0.0, float(pos.max())
    for _ in range(200):  # bisection on the water level θ
        theta = (lo + hi) / 2
        rate = float((0.5 * torch.log2(pos / theta).clamp_min(0)).sum())
        lo, hi = (theta, hi) if rate > total else (lo, theta)
    return float(torch.minimum(v, torch.tensor((lo + hi) / 2, dtype=torch.float64)).mean())


def best_scalar_mse(variances: Sequence[float] | torch.Tensor, rate_bits_per_dim: float,
                    kind: str = "lloyd_max") -> float:
    """Mean per-dimension MSE of the best fixed-rate scalar quantizers (Gaussian marginals with these
    variances) spending floor(R·d) bits in all, each dimension an integer number of bits (0 bits: the
    mean, MSE σ²), bits allocated greedily to the largest MSE reduction. ``kind``: ``"lloyd_max"`` (the best
    scalar quantizer) or ``"uniform"`` (the best uniform one)."""
    if kind not in ("lloyd_max", "uniform"):
        raise ValueError(f"kind must be 'lloyd_max' or 'uniform', got {kind!r}")
    curve = lloyd_max_mse if kind == "lloyd_max" else optimal_uniform_mse
    v = [float(x) for x in torch.as_tensor(variances, dtype=torch.float64).reshape(-1)]

    def unit(bits: int) -> float:
        return 1.0 if bits == 0 else curve("gauss", 2**bits)

    bits = [0] * len(v)
    for _ in range(int(math.floor(rate_bits_per_dim * len(v) + 1e-9))):
        gains = [v[i] * (unit(bits[i]) - unit(bits[i] + 1)) if bits[i] < 16 else -1.0 for i in range(len(v))]
        i = max(range(len(v)), key=gains.__getitem__)
        bits[i] += 1
    return sum(v[i] * unit(bits[i]) for i in range(len(v))) / len(v)


@dataclass(frozen=True)
class RatePoint:
    """One rate on the distortion-vs-rate curve, all MSEs per dimension (units of X squared):
    ``mse`` of the quantizer; ``lloyd_max`` / ``uniform``: the best scalar / best uniform scalar quantizer
    at the same rate (Gaussian marginals, per-dimension variances); ``rd_gaussian``: D(R) of a Gaussian
    with the data's covariance (reverse water-filling over its eigenvalues); ``rd_white``: σ̄²·2^-2R."""

    label: str
    bits_per_dim: float
    mse: float
    lloyd_max: float
    uniform: float
    rd_gaussian: float
    rd_white: float

    @property
    def gain_over_scalar_db(self) -> float:
        """10·log10(best scalar MSE / quantizer MSE): positive when the VQ beats every scalar quantizer."""
        return 10 * math.log10(self.lloyd_max / self.mse) if self.mse > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gain_over_scalar_db": self.gain_over_scalar_db}


def rate_sweep(X: Any, make: Callable[[int], BaseVectorQuantizer], settings: Sequence[int],
               X_test: Any = None, label: Callable[[int], str] = str,
               on_progress: Callable[[str], None] | None = None) -> list[RatePoint]:
    """Fit ``make(s)`` on ``X`` for every setting ``s`` and measure it on ``X_test`` (default ``X``); each
    point is compared with the scalar and rate-distortion references at its bits per dimension."""
    t, _ = as_matrix(X, "X")
    test = t if X_test is None else as_matrix(X_test, "X_test", t.shape[1])[0]
    var = test.double().var(0)
    centered = test.double() - test.double().mean(0)
    eig = torch.linalg.eigvalsh(centered.T @ centered / max(test.shape[0] - 1, 1))
    out = []
    for s in settings:
        q = make(s).fit(t)
        r = 8 * q.bytes_per_vector / t.shape[1]
        out.append(RatePoint(label(s), r, q.distortion(test) / t.shape[1], best_scalar_mse(var, r),
                             best_scalar_mse(var, r, "uniform"), gaussian_rd_waterfill(eig, r),
                             rate_distortion_mse(float(var.mean()), r)))
        if on_progress is not None:
            on_progress(label(s))
    return out


def gaussian_vq_vs_scalar(dim: int = 2, rates: Sequence[int] = (1, 2, 3), n_train: int = 50_000,
                          n_test: int = 50_000, seed: int = 0, n_iter: int = 50) -> list[RatePoint]:
    """Plain VQ of an i.i.d. unit Gaussian in ``dim`` dimensions with 2^(dim·R) centroids vs the best scalar
    quantizer (Lloyd-Max, 2^R levels) and Shannon's bound 2^-2R, on held-out samples: the space-filling
    and shape advantage of coding dimensions jointly."""
    from .vq import VectorQuantizer

    g = torch.Generator().manual_seed(seed)
    train = torch.randn(n_train, dim, generator=g)
    test = torch.randn(n_test, dim, generator=g)
    return [RatePoint(f"VQ {dim}-D, {2 ** (dim * r)} centroids", float(r),
                      VectorQuantizer(dim * r, n_iter=n_iter, seed=seed).fit(train).distortion(test) / dim,
                      lloyd_max_mse("gauss", 2**r), optimal_uniform_mse("gauss", 2**r), rate_distortion_mse(1.0, r),
                      rate_distortion_mse(1.0, r)) for r in rates]
