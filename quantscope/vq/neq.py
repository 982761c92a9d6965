"""Norm-explicit quantization (Dai, Yan, Ng, Liu & Cheng, AAAI 2020) for maximum inner product search.

For inner products the error in a vector's norm matters more than the error in its direction, so NEQ
codes them separately: the direction ``x/||x||`` with any vector quantizer (residual VQ by default), the
norm ``||x||`` with a scalar k-means codebook of 2^norm_bits levels. The reconstruction is
``x̂ = n̂ · û/||û||`` (``û`` the decoded direction), so ``||x̂||`` is the coded norm exactly and
``q·x̂ = n̂ · (q·û)/||û||`` is found from the direction's inner-product lookup tables.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import BaseVectorQuantizer, check_int
from .kmeans import kmeans, sq_dists_min
from .residual import ResidualQuantizer


class NormExplicitQuantizer(BaseVectorQuantizer):
    """Codes: one norm code (``norm_bits`` bits) followed by the direction quantizer's codes.

    Args:
        direction: an unfitted vector quantizer for the unit directions (default
            ``ResidualQuantizer(n_stages=3, n_bits=8)``); it is cloned, the argument is not changed.
        norm_bits: bits of the norm code (2^norm_bits scalar k-means levels).
        n_iter, seed: k-means settings of the norm codebook.

    Learned: ``direction_`` (fitted quantizer), ``norm_codebook_`` (2^norm_bits,) float32, ``dim_``.
    ``bytes_per_vector`` counts both parts: ``ceil((norm_bits + direction bits) / 8)`` when both are whole
    bytes, i.e. norm byte(s) + the direction's bytes.
    """

    def __init__(self, direction: Any = None, *, norm_bits: int = 8, n_iter: int = 25, seed: int = 0) -> None:
        self.direction = direction
        self.norm_bits = norm_bits
        self.n_iter = n_iter
        self.seed = seed

    def _validate_params(self, X: torch.Tensor) -> None:
        check_int("norm_bits", self.norm_bits, 1, 16)
        if self.direction is not None and not isinstance(self.direction, BaseVectorQuantizer):
            raise TypeError(f"direction must be a quantscope vector quantizer (e.g. ProductQuantizer(...)), got "
                            f"{type(self.direction).__name__}")
        if isinstance(self.direction, NormExplicitQuantizer):
            raise TypeError("direction cannot itself be a NormExplicitQuantizer")

    @property
    def code_bits(self) -> int:
        return max(int(self.norm_bits), self.direction_.code_bits)

    @property
    def n_codes_(self) -> int:
        return 1 + self.direction_.n_codes_

    @property
    def bytes_per_vector(self) -> int:
        self._check_fitted()
        return (int(self.norm_bits) + 7) // 8 + self.direction_.bytes_per_vector

    def _fit(self, X: torch.Tensor) -> None:
        norms = X.norm(dim=1)
        if bool((norms == 0).any()):
            raise ValueError(f"X has {int((norms == 0).sum())} all-zero row(s); a direction is undefined for them. "
                             f"Drop them or add a tiny offset before fitting")
        if self.direction is None:
            direction: BaseVectorQuantizer = ResidualQuantizer(3, 8, seed=int(self.seed))
        else:
            direction = type(self.direction)(**{k: v for k, v in vars(self.direction).items()
                                                if not k.endswith("_")})
        direction.fit(X / norms[:, None])
        self.direction_ = direction
        k = min(2 ** int(self.norm_bits), X.shape[0])
        res = kmeans(norms[:, None], k, n_iter=self.n_iter, seed=int(self.seed))
        book = res.centroids[:, 0].sort().values
        if book.numel() < 2 ** int(self.norm_bits):  # fewer vectors than levels: repeat the last level
            book = torch.cat([book, book[-1:].expand(2 ** int(self.norm_bits) - book.numel())])
        self.norm_codebook_ = book

    def _encode(self, X: torch.Tensor) -> torch.Tensor:
        norms = X.norm(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
        ncode = sq_dists_min(norms[None, :, None], self.norm_codebook_[None, :, None])[0][0]
        return torch.cat([ncode[:, None], self.direction_._encode(X / norms[:, None])], dim=1)

    def _unit_direction(self, codes: torch.Tensor) -> torch.Tensor:
        u = self.direction_._decode(codes[:, 1:])
        return u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.norm_codebook_[codes[:, 0]][:, None] * self._unit_direction(codes)

    def _check_codes(self, codes: Any) -> tuple[torch.Tensor, bool]:
        t, is_numpy = super()._check_codes(codes)
        if t.numel() and (int(t[:, 0].max()) >= 2 ** int(self.norm_bits)
                          or int(t[:, 1:].max()) >= 2 ** self.direction_.code_bits):
            raise ValueError(f"norm codes must be < {2 ** int(self.norm_bits)} and direction codes < "
                             f"{2 ** self.direction_.code_bits}")
        return t, is_numpy

    # search: x̂ = s(codes) · Σ_m T_m[code_m] with s = n̂ / ||û||
    def table_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return codes[:, 1:]

    def ip_tables(self, Q: torch.Tensor) -> torch.Tensor:
        return self.direction_.ip_tables(Q)

    def item_scale(self, codes: torch.Tensor) -> torch.Tensor:
        u = self.direction_._decode(codes[:, 1:])
        return self.norm_codebook_[codes[:, 0]] / u.norm(dim=1).clamp_min(1e-12)
