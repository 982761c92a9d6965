"""QuantSpec (what the codes mean) and QParams (the fitted scale and zero point)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .formats import (
    CodebookFormat,
    FixedFormat,
    FloatFormat,
    Format,
    IntFormat,
    MXFormat,
    format_from_dict,
    format_to_dict,
)
from .granularity import GRANULARITY_CLASSES, Granularity, PerChannel, PerGroup, PerTensor, PerToken, PerTokenNormalized
from .rounding import normalize_rounding

OVERFLOW_MODES = ("saturate", "wrap", "nonsaturating")
NONFINITE_MODES = ("error", "propagate")
SCALE_DTYPES = ("float32", "float16", "bfloat16")

Overflow = Literal["saturate", "wrap", "nonsaturating"]


def _default_granularity(fmt: Format) -> Granularity:
    if isinstance(fmt, MXFormat):
        return PerGroup(fmt.block_size, -1)
    if isinstance(fmt, CodebookFormat) and fmt.name == "nf4":
        return PerGroup(64, -1)
    return PerTensor()


@dataclass(frozen=True)
class QuantSpec:
    """Number format x granularity x rounding x overflow: everything that fixes what codes mean.

    Args:
        format: a format from :mod:`quantscope.core.formats` (``qs.int8()``, ``qs.fp8_e4m3()``...).
        granularity: which elements share a scale; defaults to per-tensor, per_group(32) for MX
            formats and per_group(64) for NF4.
        rounding: ``nearest_even`` (alias ``nearest``), ``nearest_away``, ``floor``, ``ceil``,
            ``toward_zero`` or ``stochastic``.
        overflow: ``saturate`` (clamp to the extreme level), ``wrap`` (two's-complement wrap-around,
            integer and fixed-point only) or ``nonsaturating`` (IEEE/OCP: overflow becomes Inf, or
            NaN for E4M3; float formats with Inf or NaN only).
        scale_dtype: storage dtype of the scale. The scale is rounded *up* to it before quantizing,
            so dequantization with the stored scale is exact.
        nonfinite: ``error`` (default) rejects NaN/Inf inputs naming how many and where;
            ``propagate`` ignores them for calibration and passes them through unchanged.
    """

    format: Format
    granularity: Granularity | None = None
    rounding: str = "nearest_even"
    overflow: Overflow = "saturate"
    scale_dtype: str = "float32"
    nonfinite: str = "error"

    def __post_init__(self) -> None:
        fmt = self.format
        if not isinstance(fmt, (IntFormat, FixedFormat, FloatFormat, CodebookFormat, MXFormat)):
            raise TypeError(f"format must be a quantscope format such as qs.int8(), got {type(fmt).__name__}")
        gran = self.granularity if self.granularity is not None else _default_granularity(fmt)
        if not isinstance(gran, (PerTensor, PerChannel, PerGroup, PerToken, PerTokenNormalized)):
            raise TypeError(f"granularity must be qs.per_tensor(), per_channel(), per_group(), per_token() or "
                            f"per_token_normalized(), "
                            f"got {type(gran).__name__}")
        object.__setattr__(self, "granularity", gran)
        object.__setattr__(self, "rounding", normalize_rounding(self.rounding))
        if self.overflow not in OVERFLOW_MODES:
            raise ValueError(f"overflow must be one of {OVERFLOW_MODES}, got {self.overflow!r}")
        if self.overflow == "wrap" and not isinstance(fmt, (IntFormat, FixedFormat)):
            raise ValueError(f"overflow='wrap' needs an integer or fixed-point format, not {fmt.name}")
        if self.overflow == "nonsaturating" and not (isinstance(fmt, FloatFormat) and fmt.has_nan):
            raise ValueError(f"overflow='nonsaturating' needs a float format with Inf or NaN codes "
                             f"(fp16, bf16, fp8_e4m3, fp8_e5m2), not {fmt.name}; use 'saturate'")
        if isinstance(fmt, MXFormat):
            if not (isinstance(gran, PerGroup) and gran.size == fmt.block_size):
                raise ValueError(f"{fmt.name} shares one scale per block of {fmt.block_size}: use "
                                 f"granularity=qs.per_group({fmt.block_size}, axis=...) or leave it out")
        if isinstance(gran, PerTokenNormalized) and (isinstance(fmt, FixedFormat) or not fmt.scaled):
            raise ValueError(f"per_token_normalized quantizes rows divided by their max|x| on one fitted grid: it "
                             f"needs a scaled format (e.g. qs.int8(symmetric=False)), not {fmt.name}")
        if self.scale_dtype not in SCALE_DTYPES:
            raise ValueError(f"scale_dtype must be one of {SCALE_DTYPES}, got {self.scale_dtype!r}")
        if self.nonfinite not in NONFINITE_MODES:
            raise ValueError(f"nonfinite must be one of {NONFINITE_MODES}, got {self.nonfinite!r}")

    @property
    def needs_scale(self) -> bool:
        return bool(self.format.scaled)

    @property
    def symmetric(self) -> bool:
        return bool(self.format.symmetric)

    def to_dict(self) -> dict[str, Any]:
        gran = self.granularity
        return {
            "format": format_to_dict(self.format),
            "granularity": {"type": type(gran).__name__, **{k: getattr(gran, k) for k in gran.__dataclass_fields__}},
            "rounding": self.rounding,
            "overflow": self.overflow,
            "scale_dtype": self.scale_dtype,
            "nonfinite": self.nonfinite,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantSpec:
        if not isinstance(data, dict):
            raise ValueError(f"a QuantSpec description must be a dict, got {type(data).__name__}")
        allowed = {"format", "granularity", "rounding", "overflow", "scale_dtype", "nonfinite"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown QuantSpec keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        if "format" not in data:
            raise ValueError("a QuantSpec description needs a 'format'")
        kwargs = dict(data)
        kwargs["format"] = format_from_dict(data["format"])
        if data.get("granularity") is not None:
            g = dict(data["granularity"])
            kind = g.pop("type", None)
            if kind not in GRANULARITY_CLASSES:
                raise ValueError(f"unknown granularity {kind!r}; known: {sorted(GRANULARITY_CLASSES)}")
            kwargs["granularity"] = GRANULARITY_CLASSES[kind](**g)
        return cls(**kwargs)

    def __str__(self) -> str:
        gran = self.granularity
        g = re.sub(r"(?<!^)(?=[A-Z])", "_", type(gran).__name__).lower()
        args = ", ".join(f"{k}={getattr(gran, k)}" for k in gran.__dataclass_fields__)
        return f"{self.format.name} {g}({args}) {self.rounding} {self.overflow}"


def as_spec(spec: QuantSpec | Format) -> QuantSpec:
    """Accept a bare format where a spec is expected (default granularity and rounding)."""
    if isinstance(spec, QuantSpec):
        return spec
    return QuantSpec(spec)


@dataclass(frozen=True, eq=False)
class QParams:
    """Fitted quantization parameters.

    ``scale``: float32 tensor, the step Δ of one code (for MX formats the E8M0 block scale 2^e),
    shaped like the granularity's parameter shape. ``zero_point``: int32 tensor of the same shape
    (codes that represent 0.0), or None for symmetric formats.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor | None = None

    def __repr__(self) -> str:
        zp = None if self.zero_point is None else tuple(self.zero_point.shape)
        return f"QParams(scale shape={tuple(self.scale.shape)}, zero_point shape={zp})"
