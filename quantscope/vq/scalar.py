"""Scalar quantization per dimension (SQ8 / SQ4, as FAISS's ``IndexScalarQuantizer`` QT_8bit / QT_4bit):
every dimension gets its own uniform grid of 2^bits levels, fitted by a quantscope calibrator
(``minmax`` by default: nothing seen in training is clipped; ``mse`` minimizes the squared error) and
applied with :func:`quantscope.quantize` (unsigned asymmetric integers, one scale and zero point per
dimension). Codes are stored bit-packed: ``bytes_per_vector = ceil(d·bits/8)``."""

from __future__ import annotations

import torch

from ..calibrate.base import resolve_calibrator
from ..core.formats import integer
from ..core.granularity import per_channel
from ..core.ops import quantize
from ..core.spec import QParams, QuantSpec
from .base import BaseVectorQuantizer, check_int

CALIBRATORS = ("minmax", "mse", "percentile", "aciq", "kl")


class ScalarQuantizer(BaseVectorQuantizer):
    """Per-dimension uniform quantizer.

    Args:
        bits: bits per dimension (8 = SQ8, 4 = SQ4; 1..16).
        calibrator: a quantscope calibrator name (``"minmax"`` or ``"mse"`` ...).

    Learned: ``spec_`` (the :class:`QuantSpec`), ``qparams_`` (per-dimension scale and zero point), ``dim_``.
    Guarantee (minmax): every training value is within scale/2 of its reconstruction.
    """

    prefers_decode_search = True

    def __init__(self, bits: int = 8, *, calibrator: str = "minmax") -> None:
        self.bits = bits
        self.calibrator = calibrator

    @property
    def code_bits(self) -> int:
        return int(self.bits)

    @property
    def n_codes_(self) -> int:
        self._check_fitted()
        return self.dim_

    def _validate_params(self, X: torch.Tensor) -> None:
        check_int("bits", self.bits, 1, 16)
        if self.calibrator not in CALIBRATORS:
            raise ValueError(f"calibrator must be one of {CALIBRATORS}, got {self.calibrator!r}")

    def _fit(self, X: torch.Tensor) -> None:
        spec = QuantSpec(integer(int(self.bits), signed=False, symmetric=False), granularity=per_channel(axis=1))
        cal = resolve_calibrator(self.calibrator, spec)
        cal.update(X)
        self.spec_ = spec
        self.qparams_: QParams = cal.qparams()

    def _encode(self, X: torch.Tensor) -> torch.Tensor:
        return quantize(X, self.spec_, qparams=self.qparams_).codes.long()

    def levels(self) -> torch.Tensor:
        """(d, 2^bits) float32: the reconstruction value of every code in every dimension."""
        self._check_fitted()
        codes = torch.arange(2 ** int(self.bits), dtype=torch.float32)
        zp = self.qparams_.zero_point.float().reshape(-1, 1)
        return (codes[None, :] - zp) * self.qparams_.scale.reshape(-1, 1)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        # the dequantization formula of quantscope.core for asymmetric integers: (code - zero_point) * scale
        return (codes.float() - self.qparams_.zero_point.float()) * self.qparams_.scale

    def ip_tables(self, Q: torch.Tensor) -> torch.Tensor:
        return Q[:, :, None] * self.levels()[None]

    def l2_tables(self, Q: torch.Tensor) -> torch.Tensor:
        return (Q[:, :, None] - self.levels()[None]) ** 2
