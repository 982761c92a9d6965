"""Arrays in, arrays out: accept numpy or torch, compute in torch, hand back the caller's type.

Also the one place where input arrays are checked (dtype, emptiness, NaN/Inf), so every entry point
gives the same clear errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class Origin:
    """Where an array came from, so results can be returned in the same kind, dtype and device."""

    is_numpy: bool
    dtype: Any  # torch.dtype, or numpy dtype for numpy input
    device: torch.device

    def restore(self, t: torch.Tensor) -> Any:
        if self.is_numpy:
            return t.detach().cpu().numpy().astype(self.dtype, copy=False)
        return t.to(device=self.device, dtype=self.dtype)


def as_float_tensor(x: Any, name: str = "x") -> tuple[torch.Tensor, Origin]:
    """``x`` as a floating-point torch tensor (zero-copy for numpy), plus its :class:`Origin`.

    Raises TypeError for non-arrays, integer, bool or complex dtypes, ValueError for empty arrays.
    """
    if isinstance(x, np.ndarray):
        if x.dtype.kind != "f":
            raise TypeError(f"{name} must hold floating-point numbers, got numpy dtype {x.dtype}; "
                            f"convert it with {name}.astype(np.float32)")
        origin = Origin(True, x.dtype, torch.device("cpu"))
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        if x.dtype not in FLOAT_DTYPES:
            hint = "x.float()" if not x.is_complex() else "x.real or x.abs()"
            raise TypeError(f"{name} must be a floating-point tensor (float16/bfloat16/float32/float64), "
                            f"got {x.dtype}; convert it with {hint}")
        origin = Origin(False, x.dtype, x.device)
        t = x
    else:
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}; "
                        f"wrap it with np.asarray({name}, dtype=np.float32)")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); there is nothing to quantize")
    return t, origin


def describe_nonfinite(t: torch.Tensor, name: str = "x") -> str | None:
    """A message naming how many NaN/Inf values ``t`` has and where the first one is, or None."""
    bad = ~torch.isfinite(t)
    if not bool(bad.any()):
        return None
    n_nan = int(torch.isnan(t).sum())
    n_inf = int(bad.sum()) - n_nan
    first = tuple(int(i) for i in torch.nonzero(bad)[0].tolist())
    return (f"{name} contains {n_nan} NaN and {n_inf} Inf value(s) out of {t.numel()} (first at index "
            f"{first}); clean them (e.g. torch.nan_to_num) or pass nonfinite='propagate' to the spec "
            f"to pass them through unchanged")


def check_finite(t: torch.Tensor, name: str = "x") -> None:
    msg = describe_nonfinite(t, name)
    if msg:
        raise ValueError(msg)
