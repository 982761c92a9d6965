"""Plain vector quantization: one codebook of 2^bits centroids for the whole vector (k-means)."""

from __future__ import annotations

import torch

from .base import BaseVectorQuantizer, check_int, chunk_rows
from .kmeans import kmeans, sq_dists_min


class VectorQuantizer(BaseVectorQuantizer):
    """Nearest-centroid coding with one learned codebook.

    Args:
        n_bits: bits per vector; the codebook has 2^n_bits centroids (one code per vector).
        n_iter: k-means iterations. init: ``"k-means++"`` or ``"random"``. batch_size: mini-batch k-means
            when set. seed: seeds k-means. progress: progress bar while training.

    Learned: ``codebook_`` (2^n_bits, d) float32, ``kmeans_`` (the :class:`KMeansResult`), ``dim_``.
    Guarantee: every vector is coded by its nearest centroid (the smallest squared error this codebook allows).
    """

    def __init__(self, n_bits: int = 8, *, n_iter: int = 25, init: str = "k-means++", batch_size: int | None = None,
                 seed: int = 0, progress: bool = False) -> None:
        self.n_bits = n_bits
        self.n_iter = n_iter
        self.init = init
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress

    @property
    def n_codes_(self) -> int:
        return 1

    def _validate_params(self, X: torch.Tensor) -> None:
        check_int("n_bits", self.n_bits, 1, 16)

    def _fit(self, X: torch.Tensor) -> None:
        res = kmeans(X[None], 2 ** int(self.n_bits), n_iter=self.n_iter, init=self.init, batch_size=self.batch_size,
                     seed=self.seed, progress=self.progress)
        self.codebook_ = res.centroids[0]
        self.kmeans_ = res

    def _encode(self, X: torch.Tensor) -> torch.Tensor:
        return sq_dists_min(X[None], self.codebook_[None])[0][0][:, None]

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codebook_[codes[:, 0]]

    def ip_tables(self, Q: torch.Tensor) -> torch.Tensor:
        return (Q @ self.codebook_.T)[:, None, :]

    def l2_tables(self, Q: torch.Tensor) -> torch.Tensor:
        out = torch.empty(Q.shape[0], 1, self.codebook_.shape[0])
        step = chunk_rows(self.codebook_.shape[0])
        for s in range(0, Q.shape[0], step):
            q = Q[s:s + step]
            out[s:s + step, 0] = ((q * q).sum(1, keepdim=True) - 2 * q @ self.codebook_.T
                                  + (self.codebook_ ** 2).sum(1)).clamp_min(0)
        return out
