"""Residual vector quantization (Juang & Gray 1982; Chen, Guan & Wang 2010): stage s quantizes what the
stages before it left over, ``x ≈ Σ_s C_s[code_s]``, each stage a full-dimensional k-means codebook.
Encoding keeps the ``beam_size`` best partial sums at every stage (beam search, as FAISS's
``ResidualQuantizer`` with ``max_beam_size``) instead of greedily taking the nearest centroid."""

from __future__ import annotations

import torch

from .base import BaseVectorQuantizer, check_int, chunk_rows
from .kmeans import kmeans


def beam_step(res: torch.Tensor, paths: torch.Tensor, book: torch.Tensor, beam_size: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Extend every kept path by one stage: (m, b, d) residuals and (m, b, s) codes -> the ``beam_size``
    best (m, b', d) residuals and (m, b', s+1) codes, best first (squared error ascending)."""
    m, b, d = res.shape
    K = book.shape[0]
    err = (res ** 2).sum(-1)
    dist = err[..., None] - 2 * (res.reshape(m * b, d) @ book.T).reshape(m, b, K) + (book ** 2).sum(-1)
    _, idx = dist.reshape(m, b * K).topk(min(beam_size, b * K), dim=1, largest=False)
    parent, j = idx // K, idx % K
    res = torch.gather(res, 1, parent[..., None].expand(-1, -1, d)) - book[j]
    s = paths.shape[2]
    paths = torch.cat([torch.gather(paths, 1, parent[..., None].expand(-1, -1, s)), j[..., None]], dim=2)
    return res, paths


def _chunk(beam_size: int, K: int, d: int) -> int:
    return chunk_rows(beam_size * (K + d) * 2)


def beam_encode(X: torch.Tensor, codebooks: torch.Tensor, beam_size: int) -> torch.Tensor:
    """Codes (n, S) int64 of (n, d) ``X`` for (S, K, d) ``codebooks`` by beam search.

    With ``beam_size=1`` this is greedy residual coding; the final code is the kept path with the
    smallest squared error (exactly recomputed from the residual).
    """
    S, K, d = codebooks.shape
    n = X.shape[0]
    out = torch.empty(n, S, dtype=torch.long, device=X.device)
    step = _chunk(beam_size, K, d)
    for s0 in range(0, n, step):
        res = X[s0:s0 + step, None, :]
        paths = torch.empty(res.shape[0], 1, 0, dtype=torch.long, device=X.device)
        for s in range(S):
            res, paths = beam_step(res, paths, codebooks[s], beam_size)
        best = (res ** 2).sum(-1).argmin(1)
        out[s0:s0 + res.shape[0]] = paths[torch.arange(res.shape[0], device=X.device), best]
    return out


class ResidualQuantizer(BaseVectorQuantizer):
    """``n_stages`` codebooks of 2^n_bits full-dimensional centroids; ``bytes_per_vector =
    ceil(n_stages·n_bits/8)``.

    Args:
        n_stages: number of stages (codes per vector).
        n_bits: bits per stage code.
        beam_size: paths kept while encoding (1 = greedy). Training encodes with the same beam.
        n_iter, init, seed, progress: k-means settings of every stage.

    Learned: ``codebooks_`` (n_stages, 2^n_bits, d) float32, ``stage_distortion_`` (training distortion
    after each stage, non-increasing), ``dim_``.
    """

    def __init__(self, n_stages: int = 4, n_bits: int = 8, *, beam_size: int = 5, n_iter: int = 25,
                 init: str = "k-means++", seed: int = 0, progress: bool = False) -> None:
        self.n_stages = n_stages
        self.n_bits = n_bits
        self.beam_size = beam_size
        self.n_iter = n_iter
        self.init = init
        self.seed = seed
        self.progress = progress

    @property
    def code_bits(self) -> int:
        return int(self.n_bits)

    @property
    def n_codes_(self) -> int:
        return int(self.n_stages)

    def _validate_params(self, X: torch.Tensor) -> None:
        check_int("n_stages", self.n_stages, 1, 1024)
        check_int("n_bits", self.n_bits, 1, 16)
        check_int("beam_size", self.beam_size, 1, 1024)

    def _fit(self, X: torch.Tensor) -> None:
        from ..report.progress import progress as progress_bar

        S, K, (n, d) = int(self.n_stages), 2 ** int(self.n_bits), X.shape
        beam = int(self.beam_size)
        books = torch.empty(S, K, d, device=X.device)
        res = X[:, None, :].clone()  # the beam of every training vector: residuals, codes (best first)
        paths = torch.empty(n, 1, 0, dtype=torch.long, device=X.device)
        dist = []
        step = _chunk(beam, K, d)
        with progress_bar(S, "residual stages", enabled=bool(self.progress)) as advance:
            for s in range(S):
                books[s] = kmeans(res[:, 0][None], K, n_iter=self.n_iter, init=self.init,
                                  seed=int(self.seed) + s).centroids[0]
                parts = [beam_step(res[i:i + step], paths[i:i + step], books[s], beam) for i in range(0, n, step)]
                res = torch.cat([p[0] for p in parts])
                paths = torch.cat([p[1] for p in parts])
                dist.append(float((res[:, 0] ** 2).sum(dtype=torch.float64)) / n)
                advance(f"stage {s + 1}")
        self.codebooks_ = books
        self.stage_distortion_ = dist

    @staticmethod
    def _sum(books: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(codes.shape[0], books.shape[2], device=books.device)
        for s in range(codes.shape[1]):
            out += books[s][codes[:, s]]
        return out

    def _encode(self, X: torch.Tensor) -> torch.Tensor:
        return beam_encode(X, self.codebooks_, int(self.beam_size))

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self._sum(self.codebooks_, codes)

    def ip_tables(self, Q: torch.Tensor) -> torch.Tensor:
        return torch.einsum("qd,skd->qsk", Q, self.codebooks_)
