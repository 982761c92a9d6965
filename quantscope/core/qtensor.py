"""QTensor: integer codes + quantization parameters + the spec that says what they mean.

Storage accounting (``nbytes``) is the true packed size: codes at ``format.bits`` bits each, the
zero point at the same width, scales at their storage width (4 bytes float32, 2 bytes float16 /
bfloat16, 1 byte for power-of-two scales: MX E8M0 and ``power_of_two_scale`` integers, 0 bytes for
fixed-point and unscaled formats), plus 12 bytes per passed-through non-finite value.
``to_safetensors`` writes exactly these bytes (plus the safetensors header).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import grid, kernels
from .arrays import Origin
from .formats import FixedFormat, FloatFormat, IntFormat, MXFormat
from .granularity import Layout
from .packing import pack_bits, packed_nbytes, unpack_bits
from .scales import floor_log2, pow2
from .spec import QuantSpec

FILE_VERSION = 1
_SCALE_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def code_dtype(spec: QuantSpec) -> torch.dtype:
    fmt = spec.format
    if isinstance(fmt, (IntFormat, FixedFormat)):
        return grid.int_code_dtype(fmt)
    if isinstance(fmt, FloatFormat):
        return grid.float_code_dtype(fmt)
    if isinstance(fmt, MXFormat):
        return grid.mx_code_dtype(fmt)
    return grid.codebook_code_dtype(fmt)


def codes_signed(spec: QuantSpec) -> bool:
    fmt = spec.format
    if isinstance(fmt, MXFormat):
        return isinstance(fmt.element, IntFormat)
    return isinstance(fmt, (IntFormat, FixedFormat)) and fmt.qmin < 0


@dataclass(frozen=True, eq=False)
class QTensor:
    """Quantized tensor. ``codes`` has the input's shape; ``scale``/``zero_point`` the granularity's
    parameter shape (None where the format has no scale or is symmetric)."""

    codes: torch.Tensor
    spec: QuantSpec
    scale: torch.Tensor | None
    zero_point: torch.Tensor | None
    origin: Origin
    nonfinite_index: torch.Tensor | None = None
    nonfinite_value: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.codes.shape)

    @property
    def layout(self) -> Layout:
        return self.spec.granularity.layout(self.shape)

    @property
    def dtype(self) -> Any:
        return self.origin.dtype

    # ---------------------------------------------------------------------------------- values
    def dequantize(self) -> Any:
        """Reconstructed values in the input's type, dtype and device (numpy in -> numpy out)."""
        return self.origin.restore(self.dequantize_float32())

    def dequantize_float32(self) -> torch.Tensor:
        fmt, layout = self.spec.format, self.layout
        codes = self.codes
        scale = None if self.scale is None else self.scale.reshape(layout.param_shape3).contiguous()
        zp = None if self.zero_point is None else self.zero_point.reshape(layout.param_shape3).contiguous()
        flat_layout = _flat_layout(layout)
        if isinstance(fmt, FixedFormat):
            scale, layout = torch.tensor([fmt.step], dtype=torch.float32, device=codes.device), flat_layout
        if isinstance(fmt, (IntFormat, FixedFormat)):
            if kernels.on_cpu(codes):
                out = kernels.int_dequant(codes.contiguous(), layout, scale, zp)
            else:
                c4 = layout.grouped(codes.to(torch.float32))
                z4 = 0.0 if zp is None else layout.params4(zp.float())
                out = layout.ungroup((c4 - z4) * layout.params4(scale))
        elif isinstance(fmt, MXFormat):
            if kernels.on_cpu(codes):  # table lookup by the code's byte, times the block scale
                if isinstance(fmt.element, IntFormat):
                    every_byte = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(torch.int8)
                    table = grid.mx_element_decode(every_byte, fmt)
                else:
                    table = grid.float_table(fmt.element)
                out = kernels.lut_dequant(codes.contiguous().view(torch.uint8), layout, scale, table)
            else:
                v4 = layout.grouped(grid.mx_element_decode(codes, fmt))
                out = layout.ungroup(v4 * layout.params4(scale))
        else:
            table = grid.float_table(fmt) if isinstance(fmt, FloatFormat) else torch.tensor(fmt.levels,
                                                                                           dtype=torch.float32)
            table = table.to(codes.device)
            if scale is None:
                layout = flat_layout
            if kernels.on_cpu(codes) and codes.dtype in (torch.uint8, torch.int16, torch.int32):
                out = kernels.lut_dequant(codes.contiguous(), layout, scale, table)
            else:
                idx = codes.to(torch.int64) & (0xFFFF if fmt.bits == 16 else -1)
                vals = table[idx]
                out = vals if scale is None else layout.ungroup(layout.grouped(vals) * layout.params4(scale))
        if self.nonfinite_index is not None:
            out = out.reshape(-1).clone()
            out[self.nonfinite_index] = self.nonfinite_value
        return out.reshape(self.shape)

    # --------------------------------------------------------------------------------- storage
    def _scale_storage(self) -> torch.Tensor | None:
        fmt = self.spec.format
        if self.scale is None or isinstance(fmt, FixedFormat):
            return None
        if isinstance(fmt, MXFormat) or (isinstance(fmt, IntFormat) and fmt.power_of_two_scale):
            return (floor_log2(self.scale.float()) + 127).clamp(0, 254).to(torch.uint8).reshape(-1)
        return self.scale.to(_SCALE_TORCH_DTYPES[self.spec.scale_dtype]).reshape(-1)

    def packed(self) -> dict[str, torch.Tensor]:
        """The tensors that make up the stored form (packed codes, scale, zero point, non-finite)."""
        bits = self.spec.format.bits
        out = {"codes": pack_bits(self.codes, bits)}
        s = self._scale_storage()
        if s is not None:
            out["scale"] = s
        if self.zero_point is not None:
            out["zero_point"] = pack_bits(self.zero_point, bits)
        if self.nonfinite_index is not None:
            out["nonfinite_index"] = self.nonfinite_index.to(torch.int64)
            out["nonfinite_value"] = self.nonfinite_value.to(torch.float32)
        return out

    @property
    def nbytes(self) -> int:
        """True storage in bytes: packed codes + scales + zero points (+ passed-through non-finite)."""
        bits = self.spec.format.bits
        total = packed_nbytes(self.codes.numel(), bits)
        s = self._scale_storage()
        if s is not None:
            total += s.numel() * s.element_size()
        if self.zero_point is not None:
            total += packed_nbytes(self.zero_point.numel(), bits)
        if self.nonfinite_index is not None:
            total += 12 * self.nonfinite_index.numel()
        return total

    @property
    def bits_per_value(self) -> float:
        """Average stored bits per element, parameters included (e.g. 4.25 for MXFP4)."""
        return 8.0 * self.nbytes / self.codes.numel()

    def to_safetensors(self, path: str | os.PathLike) -> None:
        """Write the packed form to ``path`` atomically (temporary file in the same folder, then rename)."""
        from safetensors.torch import save_file

        meta = {
            "format": "quantscope.QTensor",
            "version": str(FILE_VERSION),
            "spec": self.spec.to_json(),
            "shape": json.dumps(list(self.shape)),
            "dtype": str(self.origin.dtype),
            "is_numpy": "1" if self.origin.is_numpy else "0",
        }
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".qtensor-", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            save_file({k: v.contiguous() for k, v in self.packed().items()}, tmp, metadata=meta)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> QTensor:
        """Read a file written by :meth:`to_safetensors` (no pickle involved)."""
        from safetensors import safe_open

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such QTensor file: {path}")
        try:
            with safe_open(path, framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise ValueError(f"{path} is not a readable safetensors file ({exc}); it may be truncated or corrupt"
                             ) from exc
        if meta.get("format") != "quantscope.QTensor":
            raise ValueError(f"{path} is a safetensors file but not a quantscope QTensor (metadata {meta})")
        if meta.get("version") != str(FILE_VERSION):
            raise ValueError(f"{path} has QTensor file version {meta.get('version')}; this quantscope reads "
                             f"version {FILE_VERSION}")
        try:
            spec = QuantSpec.from_dict(json.loads(meta["spec"]))
            shape = tuple(int(v) for v in json.loads(meta["shape"]))
            dtype_name = meta["dtype"]
            is_numpy = meta["is_numpy"] == "1"
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path} has corrupt QTensor metadata: {exc}") from exc
        return cls._from_packed(tensors, spec, shape, dtype_name, is_numpy, path)

    @classmethod
    def _from_packed(cls, t: dict[str, torch.Tensor], spec: QuantSpec, shape: tuple[int, ...],
                     dtype_name: str, is_numpy: bool, path: str) -> QTensor:
        fmt = spec.format
        n = int(np.prod(shape)) if shape else 1
        layout = spec.granularity.layout(shape)
        n_params = int(np.prod(layout.param_shape3))
        if "codes" not in t:
            raise ValueError(f"{path} has no 'codes' tensor")
        try:
            raw = unpack_bits(t["codes"], fmt.bits, n, codes_signed(spec))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: codes do not match shape {shape} at {fmt.bits} bits ({exc})") from exc
        codes = _to_code_dtype(raw, spec).reshape(shape)
        scale = zero_point = None
        if "scale" in t:
            s = t["scale"]
            if s.numel() != n_params:
                raise ValueError(f"{path}: expected {n_params} scales for {shape}, found {s.numel()}")
            if s.dtype == torch.uint8:
                scale = pow2(s.to(torch.int32) - 127)
            else:
                scale = s.to(torch.float32)
            scale = scale.reshape(layout.param_shape)
        elif fmt.scaled and not isinstance(fmt, FixedFormat):
            raise ValueError(f"{path}: format {fmt.name} needs scales but the file has none")
        if "zero_point" in t:
            zero_point = unpack_bits(t["zero_point"], fmt.bits, n_params, codes_signed(spec))
            zero_point = zero_point.to(torch.int32).reshape(layout.param_shape)
        nf_i, nf_v = t.get("nonfinite_index"), t.get("nonfinite_value")
        if (nf_i is None) != (nf_v is None) or (nf_i is not None and nf_i.numel() != nf_v.numel()):
            raise ValueError(f"{path}: corrupt non-finite value table")
        origin = _origin_from_name(dtype_name, is_numpy)
        return cls(codes, spec, scale, zero_point, origin, nf_i, nf_v)

    def __repr__(self) -> str:
        return (f"QTensor({self.spec}, shape={self.shape}, {self.nbytes} bytes "
                f"= {self.bits_per_value:.3f} bits/value)")


def _to_code_dtype(raw: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    dt = code_dtype(spec)
    if dt == torch.int16 and isinstance(spec.format, FloatFormat):
        raw = torch.where(raw >= 1 << 15, raw - (1 << 16), raw)
    return raw.to(dt)


def _flat_layout(layout: Layout) -> Layout:
    n = layout.numel
    return Layout(layout.shape, 1, n, 1, max(n, 1), 1, 1, ())


def _origin_from_name(name: str, is_numpy: bool) -> Origin:
    if is_numpy:
        return Origin(True, np.dtype(name), torch.device("cpu"))
    dt = getattr(torch, name.replace("torch.", ""), None)
    if not isinstance(dt, torch.dtype):
        raise ValueError(f"unknown dtype {name!r} in QTensor file")
    return Origin(False, dt, torch.device("cpu"))
