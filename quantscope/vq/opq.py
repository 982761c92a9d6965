"""Optimized product quantization (Ge, He, Ke & Sun, CVPR 2013): learn an orthogonal rotation R so that
PQ of ``X·R`` loses less. Initialized by eigenvalue allocation (the parametric solution for Gaussian
data: principal directions dealt to sub-spaces so that every sub-space gets a similar product of
variances), then refined by alternating PQ k-means steps with the orthogonal Procrustes solution
``R = U·Vᵀ`` of ``XᵀX̂ = U·S·Vᵀ``. Each alternation step cannot increase the training distortion."""

from __future__ import annotations

import math

import torch

from .base import BaseVectorQuantizer, check_int
from .pq import ProductQuantizer


def eigen_allocation(X: torch.Tensor, n_subspaces: int) -> torch.Tensor:
    """Orthogonal (d, d) matrix whose column blocks of d/M principal directions balance the product of
    their variances across the M sub-spaces (greedy: largest eigenvalue to the emptiest bucket)."""
    d = X.shape[1]
    Xc = (X - X.mean(0)).double()
    vals, vecs = torch.linalg.eigh(Xc.T @ Xc / max(X.shape[0] - 1, 1))
    order = torch.argsort(vals, descending=True)
    size = d // n_subspaces
    buckets: list[list[int]] = [[] for _ in range(n_subspaces)]
    logs = [0.0] * n_subspaces
    for i in order.tolist():
        open_ = [b for b in range(n_subspaces) if len(buckets[b]) < size]
        b = min(open_, key=lambda j: (logs[j], j))
        buckets[b].append(i)
        logs[b] += math.log(max(float(vals[i]), 1e-12))
    cols = [i for b in buckets for i in b]
    return vecs[:, cols].float()


class OptimizedProductQuantizer(BaseVectorQuantizer):
    """PQ after a learned rotation; ``bytes_per_vector`` equals PQ's (the rotation is shared, not per vector).

    Args:
        n_subspaces, n_bits: as :class:`ProductQuantizer`.
        n_iter_opq: alternations of (k-means steps, Procrustes rotation update).
        n_iter_pq: k-means iterations per alternation (warm-started).
        n_iter: k-means iterations of the final PQ on the rotated data (warm-started).
        init: ``"eigen"`` (eigenvalue allocation) or ``"random"`` (a random orthogonal matrix, as FAISS).
        seed, progress: as for PQ.

    Learned: ``rotation_`` (d, d) orthogonal float32, ``pq_`` (the fitted PQ on ``X·rotation_``),
    ``history_`` (training distortion after each alternation), ``dim_``.
    """

    def __init__(self, n_subspaces: int = 8, n_bits: int = 8, *, n_iter_opq: int = 20, n_iter_pq: int = 4,
                 n_iter: int = 25, init: str = "eigen", seed: int = 0, progress: bool = False) -> None:
        self.n_subspaces = n_subspaces
        self.n_bits = n_bits
        self.n_iter_opq = n_iter_opq
        self.n_iter_pq = n_iter_pq
        self.n_iter = n_iter
        self.init = init
        self.seed = seed
        self.progress = progress

    @property
    def code_bits(self) -> int:
        return int(self.n_bits)

    @property
    def n_codes_(self) -> int:
        return int(self.n_subspaces)

    def _validate_params(self, X: torch.Tensor) -> None:
        ProductQuantizer(self.n_subspaces, self.n_bits)._validate_params(X)
        check_int("n_iter_opq", self.n_iter_opq, 0, 10_000)
        check_int("n_iter_pq", self.n_iter_pq, 1, 10_000)
        if self.init not in ("eigen", "random"):
            raise ValueError(f"init must be 'eigen' or 'random', got {self.init!r}")

    def _fit(self, X: torch.Tensor) -> None:
        from ..report.progress import progress as progress_bar

        d = X.shape[1]
        if self.init == "eigen":
            R = eigen_allocation(X, int(self.n_subspaces))
        else:
            g = torch.Generator().manual_seed(int(self.seed))
            R = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0].float()
        pq = ProductQuantizer(self.n_subspaces, self.n_bits, n_iter=self.n_iter_pq, seed=self.seed)
        history = []
        with progress_bar(int(self.n_iter_opq), "OPQ", enabled=bool(self.progress)) as advance:
            init: object = None
            for _ in range(int(self.n_iter_opq)):
                Y = X @ R
                pq.fit_subspaces(Y, init=init)
                init = pq.codebooks_
                Yhat = pq._decode(pq._encode(Y))
                history.append(float(((Y - Yhat) ** 2).sum(dtype=torch.float64)) / X.shape[0])
                U, _, Vt = torch.linalg.svd((X.T @ Yhat).double())
                R = (U @ Vt).float()
                advance(f"distortion {history[-1]:.4g}")
        final = ProductQuantizer(self.n_subspaces, self.n_bits, n_iter=self.n_iter, seed=self.seed,
                                 progress=self.progress)
        final.fit_subspaces(X @ R, init=init)
        final.dim_ = d
        self.rotation_ = R
        self.pq_ = final
        self.history_ = history

    def _encode(self, X: torch.Tensor) -> torch.Tensor:
        return self.pq_._encode(X @ self.rotation_)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.pq_._decode(codes) @ self.rotation_.T

    def ip_tables(self, Q: torch.Tensor) -> torch.Tensor:
        return self.pq_.ip_tables(Q @ self.rotation_)

    def l2_tables(self, Q: torch.Tensor) -> torch.Tensor:
        return self.pq_.l2_tables(Q @ self.rotation_)
