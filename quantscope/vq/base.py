"""The common protocol of the vector quantizers (scikit-learn style).

The constructor only stores its arguments; ``fit(X)`` validates them and the data and sets the learned
attributes (names ending in ``_``); ``encode(X)`` gives integer codes of shape ``(n, n_codes_)``;
``decode(codes)`` gives the reconstruction ``X̂`` of shape ``(n, d)``. ``bytes_per_vector`` is the true
storage of one code word when the codes are bit-packed (``ceil(n_codes · bits / 8)``): nothing else is
stored per vector. Arrays in, arrays out: numpy input gives numpy codes and numpy float32 reconstructions,
torch input gives torch tensors on the input's device.

Search hooks (used by :mod:`quantscope.vq.search`): every quantizer reconstructs
``x̂ = s(codes) · Σ_m T_m[code_m]`` for table entries ``T_m`` (``s`` = 1 except for norm-explicit
quantization). ``ip_tables(Q)`` gives ``q · T_m[j]`` as ``(nq, n_tables, K)``; ``l2_tables(Q)`` gives
``||q_m − T_m[j]||²`` when the squared distance splits into a sum over disjoint sub-spaces, else None.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..calibrate.base import NotFittedError
from ..core.arrays import Origin, as_float_tensor

ENCODE_CHUNK_ELEMENTS = 1 << 22  # bounded memory: about 16 MB of float32 work per chunk


def as_matrix(X: Any, name: str = "X", d: int | None = None) -> tuple[torch.Tensor, Origin]:
    """``X`` as a float32 (n, d) tensor with no NaN/Inf row, plus its origin (numpy or torch).

    Raises TypeError for non-float arrays, ValueError for the wrong number of dimensions, a dimension
    that does not match ``d`` (the fitted one) and non-finite rows (naming how many and the first ones).
    """
    t, origin = as_float_tensor(X, name)
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n_vectors, dim), got shape {tuple(t.shape)}; "
                         f"reshape it, e.g. {name}.reshape(len({name}), -1)")
    if d is not None and t.shape[1] != d:
        raise ValueError(f"{name} has dimension {t.shape[1]} but the quantizer was fitted on dimension {d}; "
                         f"pass vectors of dimension {d} (same embedding model / preprocessing as the fit data)")
    t = t.to(torch.float32)
    if t.numel() == 0:
        return t.contiguous(), origin
    lo, hi = torch.aminmax(t)  # one read-only pass; NaN propagates, Inf shows up as an extreme
    if bool(torch.isfinite(lo)) and bool(torch.isfinite(hi)):
        return t.contiguous(), origin
    bad = ~torch.isfinite(t).all(dim=1)
    if bool(bad.any()):
        rows = torch.nonzero(bad).reshape(-1)
        first = ", ".join(str(int(i)) for i in rows[:5])
        raise ValueError(f"{name} has {rows.numel()} row(s) with NaN or Inf (first rows: {first}) out of "
                         f"{t.shape[0]}; drop or repair them, e.g. {name} = {name}[np.isfinite({name}).all(1)]")
    return t.contiguous(), origin


def code_dtype(bits: int) -> torch.dtype:
    """Smallest torch dtype that holds codes of ``bits`` bits: uint8 up to 8 bits, else int32."""
    return torch.uint8 if bits <= 8 else torch.int32


def check_int(name: str, value: Any, lo: int, hi: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}{hint}")
    return int(value)


def chunk_rows(per_row: int) -> int:
    """Rows per chunk so that ``rows · per_row`` float32 values stay near :data:`ENCODE_CHUNK_ELEMENTS`."""
    return max(1, ENCODE_CHUNK_ELEMENTS // max(per_row, 1))


class BaseVectorQuantizer:
    """Shared behaviour; subclasses implement ``_fit``, ``_encode``, ``_decode``, ``n_codes_``, ``code_bits``
    and the table hooks."""

    #: the search module uses decoded vectors instead of lookup tables when this is True (many small tables)
    prefers_decode_search = False

    # ---------------------------------------------------------------- subclass hooks
    def _fit(self, X: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode(self, X: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def code_bits(self) -> int:
        """Bits of one code: the ``n_bits`` constructor argument (quantizers without one override this)."""
        return int(self.n_bits)

    @property
    def n_codes_(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------- protocol
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "dim_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) with training "
                                 f"vectors first")

    def fit(self, X: Any) -> BaseVectorQuantizer:
        """Learn the codebooks from training vectors ``X`` (n, d); returns self."""
        t, _ = as_matrix(X, "X")
        self._validate_params(t)
        self._fit(t)
        self.dim_ = int(t.shape[1])
        return self

    def _validate_params(self, X: torch.Tensor) -> None:
        """Check constructor arguments against the data (overridden where there is more to check)."""

    @property
    def bytes_per_vector(self) -> int:
        """Bytes of one bit-packed code word: ``ceil(n_codes · code_bits / 8)``."""
        self._check_fitted()
        return math.ceil(self.n_codes_ * self.code_bits / 8)

    def encode(self, X: Any) -> Any:
        """Codes of ``X`` (n, d): integers in [0, 2^code_bits), shape (n, n_codes_), uint8 up to 8 bits."""
        self._check_fitted()
        t, origin = as_matrix(X, "X", self.dim_)
        codes = self._encode(t).to(code_dtype(self.code_bits))
        return codes.cpu().numpy() if origin.is_numpy else codes

    def _check_codes(self, codes: Any) -> tuple[torch.Tensor, bool]:
        if isinstance(codes, np.ndarray):
            is_numpy, t = True, torch.from_numpy(np.ascontiguousarray(codes))
        elif isinstance(codes, torch.Tensor):
            is_numpy, t = False, codes
        else:
            raise TypeError(f"codes must be a numpy array or torch tensor from encode(), got {type(codes).__name__}")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"codes must be integers (from encode()), got dtype {t.dtype}")
        if t.dim() != 2 or t.shape[1] != self.n_codes_:
            raise ValueError(f"codes must have shape (n, {self.n_codes_}), got {tuple(t.shape)}")
        t = t.long()
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= 2**self.code_bits):
            raise ValueError(f"codes must lie in [0, {2**self.code_bits - 1}], got values in "
                             f"[{int(t.min())}, {int(t.max())}]")
        return t, is_numpy

    def decode(self, codes: Any) -> Any:
        """Reconstructed vectors (n, d) float32 from codes (n, n_codes_)."""
        self._check_fitted()
        t, is_numpy = self._check_codes(codes)
        out = self._decode(t)
        return out.cpu().numpy() if is_numpy else out

    def distortion(self, X: Any) -> float:
        """Mean over vectors of the squared reconstruction error ``||x − x̂||²`` (units of X squared)."""
        self._check_fitted()
        t, _ = as_matrix(X, "X", self.dim_)
        total = 0.0
        step = chunk_rows(t.shape[1] * 4)
        for s in range(0, t.shape[0], step):
            part = t[s:s + step]
            total += float(((part - self._decode(self._encode(part))) ** 2).sum(dtype=torch.float64))
        return total / t.shape[0]

    # ---------------------------------------------------------------- search hooks
    def table_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """The columns of ``codes`` that index the lookup tables (all of them by default)."""
        return codes

    def ip_tables(self, Q: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def l2_tables(self, Q: torch.Tensor) -> torch.Tensor | None:
        return None

    def item_scale(self, codes: torch.Tensor) -> torch.Tensor | None:
        """Per-vector factor ``s(codes)`` of the reconstruction (None means 1)."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({args})"
