"""k-means codebook learning in torch (CPU, or wherever the data lives).

Distances use ``||x||² − 2·x·c + ||c||²``: in sub-spaces of up to 64 dimensions by a fused C kernel
that never writes the distances (:func:`quantscope.core.kernels.nearest_centroid`), otherwise with one
(batched) matrix multiply per chunk of rows, so the memory stays bounded (a cache-sized block of about
2 MB of distances per chunk), and a staged arg-min that vectorizes on CPU (see :func:`_argmin_rows`).
Several independent problems of the same shape (the sub-spaces of product quantization) run together as
one batch ``(B, n, d)`` through ``torch.bmm``.

* Initialization: greedy k-means++ (Arthur & Vassilvitskii 2007; ``2 + ln k`` candidates per step, the
  one that lowers the potential most is kept, as scikit-learn does) on at most ``init_sample`` points,
  ``"random"`` (distinct training points, as FAISS does), or given centroids (warm start).
* Full-batch Lloyd iterations: the objective (sum of squared distances to the nearest centroid) never
  increases: the assignment step and the mean update each lower it, and an empty cluster is re-seeded
  with the point farthest from its centroid, which can only lower it further.
* Mini-batch mode (Sculley 2010): ``batch_size`` points per step, per-centroid learning rate 1/count.

Everything is seeded: the same ``seed`` and data give the same centroids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core import kernels
from ..report.progress import progress as progress_bar
from .base import as_matrix, check_int

#: distances per chunk in :func:`sq_dists_min`: big enough that few (threaded) ops run per pass, small enough
#: to stay near the CPU caches
BLOCK_ELEMENTS = 1 << 20


@dataclass
class KMeansResult:
    """Outcome of :func:`kmeans`.

    Attributes:
        centroids: (k, d) or, for batched input, (B, k, d) float32.
        labels: (n,) or (B, n) int64, index of the nearest centroid of every training point.
        inertia: sum over points of the squared distance to the nearest centroid (summed over the batch).
        inertia_history: the objective after each assignment step (full batch: non-increasing up to float32
            rounding of the distances; mini-batch: estimated from the batch, scaled to n points).
        n_iter: iterations run. n_repaired: empty clusters re-seeded over the run.
    """

    centroids: torch.Tensor
    labels: torch.Tensor
    inertia: float
    inertia_history: list[float] = field(default_factory=list)
    n_iter: int = 0
    n_repaired: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"k": int(self.centroids.shape[-2]), "dim": int(self.centroids.shape[-1]), "inertia": self.inertia,
                "inertia_history": list(self.inertia_history), "n_iter": self.n_iter, "n_repaired": self.n_repaired}


INIT_TRIALS = 2
"""Default candidates per greedy k-means++ step of :func:`kmeans` (the textbook greedy choice is 2 + ln k, 7 for
256 centroids). Measured over 4 seeds on the product-quantization sets of ``benchmarks/vq_vs_faiss.py`` (8/16/32
bytes): after the 25 Lloyd iterations that follow, the distortion stays within 0.3% of the 7-candidate seeding
(and within 0.1% of FAISS's random-start codebooks, below them in 5 of 6 cases), and PQ training takes 5-18% less
time."""


def _argmin_rows(D: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest entry of every row of the contiguous (r, k) ``D``: (values, int64 indices).

    The values are exactly ``D.min(1).values`` and the index points at an entry equal to that minimum. For
    k a multiple of 32 (k >= 128) it runs in stages that vectorize well on CPU (torch's fused
    min-with-index over a long row is several times slower): the (k/32, 32) view of a row is reduced
    vertically to 32 lane minima, the lane of the smallest is found, then the k/32 entries of that lane.
    Among exact ties the lowest lane (index mod 32) wins, then the lowest index.
    """
    r, k = D.shape
    if k < 128 or k % 32:
        m, i = D.min(dim=1)
        return m, i
    g = k // 32
    lane = D.view(r, g, 32).amin(1).argmin(1)  # (r,)
    pos = (torch.arange(r, device=D.device) * k)[:, None] + (torch.arange(g, device=D.device) * 32)[None, :]
    sub = D.reshape(-1).take(pos + lane[:, None])  # (r, g): the winning lane's entries
    m, j = sub.min(1)
    return m, j * 32 + lane


def sq_dists_min(X: torch.Tensor, C: torch.Tensor, xn: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every point: (labels (B, n) int64, squared distances (B, n) float32, >= 0).

    ``X`` is (B, n, d), ``C`` is (B, k, d); ``xn`` optionally the precomputed (B, n) squared norms of X.
    Computed as ``||x||² − 2·x·c + ||c||²``: for d <= 64 by the fused C kernel
    (:func:`quantscope.core.kernels.nearest_centroid`, no distance matrix; lowest index among exact
    ties), otherwise in chunks of rows whose (B, rows, k) block of distances stays near cache size
    (:data:`BLOCK_ELEMENTS` float32 values, at least 256 rows), with one ``torch.bmm`` per chunk and
    :func:`_argmin_rows`.
    """
    B, n, d = X.shape
    k = C.shape[1]
    if xn is None:
        xn = (X * X).sum(-1)
    if d <= kernels.NEAREST_MAX_DIM:  # small sub-spaces: a fused kernel that never writes the distances
        fused = kernels.nearest_centroid(X, C, xn)
        if fused is not None:
            return fused
    cn = (C * C).sum(-1)[:, None, :]  # (B, 1, k)
    Cm2 = (-2.0 * C).transpose(1, 2).contiguous()
    labels = torch.empty(B, n, dtype=torch.long, device=X.device)
    dists = torch.empty(B, n, dtype=torch.float32, device=X.device)
    step = min(n, max(256, BLOCK_ELEMENTS // max(B * k, 1)))
    buf = torch.empty(B, step, k, dtype=torch.float32, device=X.device)
    for s in range(0, n, step):
        e = min(n, s + step)
        D = buf if e - s == step else torch.empty(B, e - s, k, dtype=torch.float32, device=X.device)
        torch.bmm(X[:, s:e], Cm2, out=D)
        D += cn
        m, i = _argmin_rows(D.view(-1, k))
        labels[:, s:e] = i.view(B, -1)
        dists[:, s:e] = (m.view(B, -1) + xn[:, s:e]).clamp_min_(0.0)
    return labels, dists


def kmeans_plusplus(X: torch.Tensor, k: int, generator: torch.Generator, n_trials: int | None = None
                    ) -> torch.Tensor:
    """Greedy k-means++ seeding of (B, n, d) points: (B, k, d) centroids, all distinct training points
    when the data has at least k distinct points."""
    B, n, d = X.shape
    trials = n_trials if n_trials is not None else 2 + int(math.log(k))
    xn = (X * X).sum(-1)
    rows = torch.arange(B, device=X.device)
    first = torch.randint(n, (B,), generator=generator).to(X.device)
    C = torch.empty(B, k, d, dtype=X.dtype, device=X.device)
    C[:, 0] = X[rows, first]
    D = ((X - C[:, :1]) ** 2).sum(-1)
    Xt = X.transpose(1, 2)
    for i in range(1, k):
        # candidates drawn with probability D / sum(D): uniform draws placed in the cumulative sums (float64,
        # so the last of n small weights stays distinguishable); uniformly when every point is a centroid
        cum = D.clamp_min(0.0).to(torch.float64).cumsum(1).cpu()
        total = cum[:, -1:]
        flat = total[:, 0] <= 0
        if bool(flat.any()):
            cum[flat] = torch.arange(1, n + 1, dtype=torch.float64)
            total = cum[:, -1:]
        u = torch.rand(B, trials, generator=generator, dtype=torch.float64) * total
        cand = torch.searchsorted(cum, u, right=True).clamp_max_(n - 1).to(X.device)
        cx = torch.gather(X, 1, cand[..., None].expand(-1, -1, d))  # (B, t, d)
        dc = torch.baddbmm(xn[:, None, :] + (cx * cx).sum(-1)[..., None], cx, Xt, alpha=-2.0).clamp_min_(0)
        newd = torch.minimum(D[:, None, :], dc, out=dc)
        best = newd.sum(-1).argmin(1)
        D = newd[rows, best]
        C[:, i] = cx[rows, best]
    return C


def _validate(X: Any, n_centroids: int, n_iter: int, batch_size: int | None) -> torch.Tensor:
    if isinstance(X, torch.Tensor) and X.dim() == 3:
        t = X.to(torch.float32)
        if not bool(torch.isfinite(t).all()):
            raise ValueError("X contains NaN or Inf values; drop or repair those rows before k-means")
    else:
        t = as_matrix(X, "X")[0][None]
    n = t.shape[1]
    if isinstance(n_centroids, bool) or not isinstance(n_centroids, int) or n_centroids < 1:
        raise ValueError(f"n_centroids must be a positive integer, got {n_centroids!r}")
    if n < n_centroids:
        raise ValueError(f"k-means needs at least as many training vectors as centroids: got {n} vectors for "
                         f"n_centroids={n_centroids}; pass more training vectors or use fewer centroids (fewer bits)")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise ValueError(f"n_iter must be a non-negative integer, got {n_iter!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be None (full batch) or a positive integer, got {batch_size!r}")
    return t.contiguous()


def _initial(X: torch.Tensor, k: int, init: Any, gen: torch.Generator, init_sample: int,
             init_trials: int) -> torch.Tensor:
    B, n, d = X.shape
    if isinstance(init, torch.Tensor):
        c = init.to(X.device, torch.float32)
        c = c[None] if c.dim() == 2 else c
        if tuple(c.shape) != (B, k, d):
            raise ValueError(f"init centroids must have shape {(B, k, d) if B > 1 else (k, d)}, got "
                             f"{tuple(init.shape)}")
        return c.clone()
    if init == "random":
        idx = torch.stack([torch.randperm(n, generator=gen)[:k] for _ in range(B)]).to(X.device)
        return torch.gather(X, 1, idx[..., None].expand(-1, -1, d)).clone()
    if init == "k-means++":
        sample = X
        if n > init_sample:
            idx = torch.randperm(n, generator=gen)[:init_sample].to(X.device)
            sample = X[:, idx]
        return kmeans_plusplus(sample, k, gen, init_trials)
    raise ValueError(f"init must be 'k-means++', 'random' or a tensor of centroids, got {init!r}")


def _repair(X: torch.Tensor, C: torch.Tensor, counts: torch.Tensor, dists: torch.Tensor) -> int:
    """Re-seed empty clusters (counts == 0) in place by farthest-first traversal: each empty centroid moves
    to the point farthest from every centroid placed so far (moving an empty centroid never raises the
    objective, since no point is assigned to it)."""
    repaired = 0
    for b in torch.nonzero((counts == 0).any(1)).reshape(-1).tolist():
        far = dists[b].clone()
        for e in torch.nonzero(counts[b] == 0).reshape(-1).tolist():
            i = int(far.argmax())
            if float(far[i]) <= 0:
                break
            C[b, e] = X[b, i]
            far = torch.minimum(far, ((X[b] - X[b, i]) ** 2).sum(1))
            repaired += 1
    return repaired


def kmeans(X: Any, n_centroids: int, *, n_iter: int = 25, init: Any = "k-means++", batch_size: int | None = None,
           tol: float = 0.0, seed: int = 0, init_sample: int | None = None, init_trials: int = INIT_TRIALS,
           progress: bool = False) -> KMeansResult:
    """Cluster ``X`` into ``n_centroids`` groups (Lloyd's algorithm, or mini-batch k-means).

    Args:
        X: (n, d) array (numpy or torch), or a (B, n, d) torch tensor of B independent problems.
        n_centroids: k; needs n >= k.
        n_iter: Lloyd iterations (full batch) or mini-batch steps.
        init: ``"k-means++"`` (greedy, on at most ``init_sample`` points; default ``max(4096, 16·k)``:
            the seeding is sequential over k, so a sample is what keeps it cheap), ``"random"`` or centroids.
        init_trials: candidates drawn per greedy k-means++ step, the one lowering the potential most is kept
            (default :data:`INIT_TRIALS`; 1 is plain k-means++; the seeding's cost grows with it).
        batch_size: None for full batch, else points per mini-batch step.
        tol: stop early when an iteration lowers the objective by less than this fraction (0: never).
        seed: seeds every random choice; same seed and data give the same result.
        progress: draw a progress bar (for the CLI; off in library use).

    Returns a :class:`KMeansResult`; for (n, d) input its centroids are (k, d) and labels (n,).
    """
    batched = isinstance(X, torch.Tensor) and X.dim() == 3
    t = _validate(X, n_centroids, n_iter, batch_size)
    B, n, _ = t.shape
    gen = torch.Generator().manual_seed(int(seed))
    sample = max(4096, 16 * n_centroids) if init_sample is None else int(init_sample)
    check_int("init_trials", init_trials, 1, 1 << 10)
    C = _initial(t, n_centroids, init, gen, sample, init_trials)
    history: list[float] = []
    repaired = iters = 0
    rows = torch.arange(B, device=t.device)[:, None] * n_centroids
    with progress_bar(n_iter, "k-means", enabled=progress) as advance:
        if batch_size is None:
            xn = (t * t).sum(-1)
            labels, dists = sq_dists_min(t, C, xn)
            history.append(float(dists.sum(dtype=torch.float64)))
            for _ in range(n_iter):
                flat = (labels + rows).reshape(-1)
                sums = torch.zeros(B * n_centroids, t.shape[2], device=t.device).index_add_(
                    0, flat, t.reshape(-1, t.shape[2]))
                counts = torch.bincount(flat, minlength=B * n_centroids).reshape(B, n_centroids)
                C = torch.where(counts[..., None] > 0, sums.reshape(C.shape) / counts.clamp_min(1)[..., None], C)
                repaired += _repair(t, C, counts, dists)
                labels, dists = sq_dists_min(t, C, xn)
                history.append(float(dists.sum(dtype=torch.float64)))
                iters += 1
                advance(f"objective {history[-1]:.4g}")
                if tol > 0 and history[-2] > 0 and (history[-2] - history[-1]) / history[-2] < tol:
                    break
        else:
            seen = torch.zeros(B, n_centroids, device=t.device)
            size = min(batch_size, n)
            for _ in range(n_iter):
                idx = torch.randperm(n, generator=gen)[:size].to(t.device)
                xb = t[:, idx]
                lab, dist = sq_dists_min(xb, C)
                history.append(float(dist.sum(dtype=torch.float64)) * n / size)
                flat = (lab + rows).reshape(-1)
                sums = torch.zeros(B * n_centroids, t.shape[2], device=t.device).index_add_(
                    0, flat, xb.reshape(-1, t.shape[2])).reshape(C.shape)
                cnt = torch.bincount(flat, minlength=B * n_centroids).reshape(B, n_centroids).float()
                seen += cnt
                rate = (cnt / seen.clamp_min(1))[..., None]
                C = C + rate * (sums / cnt.clamp_min(1)[..., None] - C)
                repaired += _repair(xb, C, seen.long(), dist)
                iters += 1
                advance(f"objective {history[-1]:.4g}")
            labels, dists = sq_dists_min(t, C)
            history.append(float(dists.sum(dtype=torch.float64)))
    inertia = history[-1]
    if not batched:
        C, labels = C[0], labels[0]
    return KMeansResult(C, labels, inertia, history, iters, repaired)
