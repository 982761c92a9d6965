"""Read the float tensors of a file, safely: .npy, .npz, .safetensors, .pt/.pth (weights only).

Nothing is ever unpickled: numpy files are read with ``allow_pickle=False`` and torch files with
``torch.load(weights_only=True)``. Every failure is a :class:`TensorFileError` with one clear line.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np
import torch

SUFFIXES = (".npy", ".npz", ".safetensors", ".pt", ".pth")


class TensorFileError(ValueError):
    """A tensor file that cannot be used (missing, corrupt, pickled code, no float tensor)."""


def _collect(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    if isinstance(obj, torch.Tensor):
        out[prefix or "tensor"] = obj
    elif isinstance(obj, np.ndarray):
        out[prefix or "array"] = torch.from_numpy(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _collect(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _collect(v, f"{prefix}.{i}" if prefix else str(i), out)


def _read(path: str) -> dict[str, torch.Tensor]:
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        try:
            return {os.path.basename(path)[:-4]: torch.from_numpy(np.load(path, allow_pickle=False))}
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise TensorFileError(f"{path} holds pickled Python objects, which are never loaded") from exc
            raise TensorFileError(f"{path} is not a readable .npy file ({exc})") from exc
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: torch.from_numpy(data[k]) for k in data.files}
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise TensorFileError(f"{path} holds pickled Python objects, which are never loaded") from exc
            raise TensorFileError(f"{path} is not a readable .npz file ({exc})") from exc
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise TensorFileError(f"{path} is not a readable .npz file ({exc})") from exc
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as exc:  # safetensors raises its own error types
            raise TensorFileError(f"{path} is not a readable safetensors file ({exc})") from exc
    if suffix in (".pt", ".pth"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError for code, RuntimeError/EOFError for corrupt archives
            if "weights_only" in str(exc) or "Unsupported global" in str(exc):
                raise TensorFileError(f"{path} contains pickled code, which is never loaded "
                                      f"(only tensors and plain containers are allowed)") from exc
            raise TensorFileError(f"{path} is not a readable torch file ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
        out: dict[str, torch.Tensor] = {}
        _collect(obj, "", out)
        return out
    raise TensorFileError(f"{path}: unsupported file type {suffix or '(none)'}; use one of {', '.join(SUFFIXES)}")


def load_float_tensors(path: str | os.PathLike, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """The floating-point tensors of ``path`` by name (all of them, or those in ``names``)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TensorFileError(f"{path}: no such file")
    tensors = _read(path)
    floats = {k: v for k, v in tensors.items() if v.dtype.is_floating_point and v.numel() > 0}
    if names:
        missing = [n for n in names if n not in tensors]
        if missing:
            raise TensorFileError(f"{path} has no tensor named {', '.join(missing)}; it has: "
                                  f"{', '.join(list(tensors)[:20])}")
        not_float = [n for n in names if n not in floats]
        if not_float:
            raise TensorFileError(f"{path}: tensor {', '.join(not_float)} is not a non-empty float tensor")
        floats = {n: floats[n] for n in names}
    if not floats:
        kinds = sorted({str(v.dtype) for v in tensors.values()}) or ["nothing"]
        raise TensorFileError(f"{path} holds no non-empty floating-point tensor (found {', '.join(kinds)})")
    return floats
