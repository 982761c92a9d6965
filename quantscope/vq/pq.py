"""Product quantization (Jégou, Douze & Schmid, TPAMI 2011): split the d dimensions into M contiguous
sub-spaces of d/M dimensions and learn one k-means codebook of 2^bits centroids in each; a vector is coded
by the nearest centroid in every sub-space (M codes, M·bits bits)."""

from __future__ import annotations

import torch

from .base import BaseVectorQuantizer, check_int, chunk_rows
from .kmeans import KMeansResult, kmeans, sq_dists_min


def split(X: torch.Tensor, m: int) -> torch.Tensor:
    """(n, d) -> (m, n, d/m): the sub-vectors of every sub-space, contiguous."""
    n, d = X.shape
    return X.reshape(n, m, d // m).permute(1, 0, 2).contiguous()


class ProductQuantizer(BaseVectorQuantizer):
    """M sub-spaces x 2^n_bits centroids; ``bytes_per_vector = ceil(M·n_bits/8)``.

    Args:
        n_subspaces: M; must divide the dimension d.
        n_bits: bits per sub-space code (2^n_bits centroids each).
        n_iter, init, batch_size, seed, progress: k-means settings (all sub-spaces train together, batched).

    Learned: ``codebooks_`` (M, 2^n_bits, d/M) float32, ``kmeans_``, ``dim_``.
    Guarantee: each sub-vector is coded by its nearest centroid, so the squared error is the sum of the
    smallest per-sub-space errors the codebooks allow; with M = 1 this is plain VQ.
    """

    def __init__(self, n_subspaces: int = 8, n_bits: int = 8, *, n_iter: int = 25, init: str = "k-means++",
                 batch_size: int | None = None, seed: int = 0, progress: bool = False) -> None:
        self.n_subspaces = n_subspaces
        self.n_bits = n_bits
        self.n_iter = n_iter
        self.init = init
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress

    @property
    def n_codes_(self) -> int:
        return int(self.n_subspaces)

    def _validate_params(self, X: torch.Tensor) -> None:
        check_int("n_bits", self.n_bits, 1, 16)
        m = check_int("n_subspaces", self.n_subspaces, 1, X.shape[1])
        if X.shape[1] % m:
            divisors = [k for k in range(1, X.shape[1] + 1) if X.shape[1] % k == 0]
            raise ValueError(f"the dimension {X.shape[1]} is not divisible by n_subspaces={m}; choose a divisor "
                             f"of {X.shape[1]} ({divisors}) or pad/project the vectors to a multiple of {m}")

    def fit_subspaces(self, X: torch.Tensor, init: object = None, n_iter: int | None = None) -> KMeansResult:
        """Train the codebooks on (n, d) float32 ``X`` (optionally warm-started); sets ``codebooks_``."""
        res = kmeans(split(X, int(self.n_subspaces)), 2 ** int(self.n_bits),
                     n_iter=self.n_iter if n_iter is None else n_iter, init=self.init if init is None else init,
                     batch_size=self.batch_size, seed=self.seed, progress=self.progress)
        self.codebooks_ = res.centroids
        self.kmeans_ = res
        return res

    def _fit(self, X: torch.Tensor) -> None:
        self.fit_subspaces(X)

    def _encode(self, X: torch.Tensor) -> torch.Tensor:
        return sq_dists_min(split(X, self.codebooks_.shape[0]), self.codebooks_)[0].T.contiguous()

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        m, _, ds = self.codebooks_.shape
        parts = self.codebooks_[torch.arange(m)[None, :], codes]  # (n, m, ds)
        return parts.reshape(codes.shape[0], m * ds)

    def ip_tables(self, Q: torch.Tensor) -> torch.Tensor:
        m, _, ds = self.codebooks_.shape
        return torch.einsum("qmd,mkd->qmk", Q.reshape(Q.shape[0], m, ds), self.codebooks_)

    def l2_tables(self, Q: torch.Tensor) -> torch.Tensor:
        m, k, ds = self.codebooks_.shape
        out = torch.empty(Q.shape[0], m, k)
        cn = (self.codebooks_ ** 2).sum(-1)
        step = chunk_rows(m * k)
        for s in range(0, Q.shape[0], step):
            q = Q[s:s + step].reshape(-1, m, ds)
            out[s:s + step] = ((q * q).sum(-1)[..., None] - 2 * torch.einsum("qmd,mkd->qmk", q, self.codebooks_)
                               + cn).clamp_min(0)
        return out
