"""Number formats: the set of values a code can stand for, before any scale is applied.

A format is a small frozen dataclass. It says how many bits a code takes, which values the codes
decode to (in *code units*, i.e. before multiplying by a scale) and whether the format expects a
scale fitted from data (``scaled``). Rounding, granularity and overflow live in
:class:`quantscope.QuantSpec`, so every format composes with every granularity and rounding mode.

Families
--------
``IntFormat``       uniform integer grid qmin..qmax (1-16 bits), symmetric or with a zero point.
``FixedFormat``     two's-complement fixed point Qm.n: an integer grid with the fixed scale 2^-n.
``FloatFormat``     sign/exponent/mantissa minifloats with subnormals (fp16, bf16, fp8, fp6, fp4).
``CodebookFormat``  any sorted set of levels (NF4, power-of-two levels, learned codebooks).
``MXFormat``        OCP Microscaling: blocks of 32 elements sharing one E8M0 power-of-two scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Any, Literal

FloatSpecial = Literal["ieee", "fn", "none"]

# The 16 NormalFloat levels published with QLoRA (Dettmers et al., 2023), in code order 0..15.
NF4_LEVELS: tuple[float, ...] = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)  # fmt: skip


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")


@dataclass(frozen=True)
class IntFormat:
    """Uniform integer codes ``qmin..qmax`` of ``bits`` bits.

    ``symmetric`` formats fix the zero point at 0 (scale = absmax / qmax); asymmetric ones fit a zero
    point so that [min, max] of the data maps onto [qmin, qmax]. ``restricted_range`` drops the most
    negative code (int8: -127..127) so the grid is symmetric about zero. ``power_of_two_scale``
    rounds every fitted scale up to a power of two (shift-only dequantization; stored in one byte).
    Guarantee: with round-to-nearest, |x - Q(x)| <= scale/2 for x inside [qmin, qmax]*scale.
    """

    bits: int
    signed: bool = True
    symmetric: bool = True
    restricted_range: bool = False
    power_of_two_scale: bool = False

    family = "int"

    def __post_init__(self) -> None:
        _check_int("bits", self.bits, 1, 16)
        if self.restricted_range and not self.signed:
            raise ValueError("restricted_range only applies to signed formats (it drops code -2^(bits-1))")
        if self.symmetric and self.qmax <= 0:
            raise ValueError(
                f"a {self.bits}-bit signed symmetric format has no positive level "
                f"(qmin={self.qmin}, qmax={self.qmax}); use symmetric=False, signed=False or more bits"
            )

    @property
    def qmin(self) -> int:
        if not self.signed:
            return 0
        return -(2 ** (self.bits - 1)) + (1 if self.restricted_range else 0)

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def scaled(self) -> bool:
        return True

    @property
    def max_abs(self) -> float:
        """Largest code magnitude an absmax range is mapped to (symmetric scaling)."""
        return float(self.qmax)

    @property
    def name(self) -> str:
        base = f"{'' if self.signed else 'u'}int{self.bits}"
        flags = [f for f, on in (("asym", not self.symmetric), ("restricted", self.restricted_range),
                                 ("pow2", self.power_of_two_scale)) if on]
        return base + "".join(f"-{f}" for f in flags)


@dataclass(frozen=True)
class FixedFormat:
    """Two's-complement fixed point with a fixed binary point (MATLAB ``fi(x, signed, word, fraction)``).

    Value = code * 2^-fraction_length, code in the ``word_length``-bit integer range. No scale is
    fitted: the step is always 2^-fraction_length. In TI notation Qm.n is ``fixed(m=m, n=n)`` with
    word_length = m + n + 1 (sign bit). Guarantee: |x - Q(x)| <= 2^-(n+1) inside the range.
    """

    word_length: int
    fraction_length: int
    signed: bool = True

    family = "int"
    symmetric = True
    restricted_range = False
    power_of_two_scale = False

    def __post_init__(self) -> None:
        _check_int("word_length", self.word_length, 2 if self.signed else 1, 16)
        _check_int("fraction_length", self.fraction_length, -64, 64)

    @property
    def bits(self) -> int:
        return self.word_length

    @property
    def qmin(self) -> int:
        return -(2 ** (self.word_length - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.word_length - 1) - 1 if self.signed else 2**self.word_length - 1

    @property
    def step(self) -> float:
        """The fixed quantization step 2^-fraction_length."""
        return 2.0 ** (-self.fraction_length)

    @property
    def scaled(self) -> bool:
        return False

    @property
    def max_abs(self) -> float:
        return float(self.qmax)

    @property
    def name(self) -> str:
        return f"{'s' if self.signed else 'u'}fix{self.word_length}_En{self.fraction_length}"


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format with ``exp_bits`` exponent and ``man_bits`` mantissa bits.

    ``special`` says how the top exponent is used: ``"ieee"`` reserves it for Inf/NaN (fp16, bf16,
    fp8 E5M2); ``"fn"`` (finite + NaN, OCP E4M3) keeps it for numbers except the all-ones pattern,
    which is NaN; ``"none"`` (OCP fp6/fp4) has no Inf or NaN at all. Subnormals are always present.
    ``scaled=True`` fits a scale so the data's absmax maps to :attr:`max_value` (fp8 style);
    ``scaled=False`` is a plain cast. Guarantee: with round-to-nearest the error is at most half
    the gap between the two representable neighbours of x (half an ulp), inside the finite range.
    """

    exp_bits: int
    man_bits: int
    bias: int
    special: FloatSpecial = "ieee"
    scaled: bool = True
    label: str = ""

    family = "float"
    symmetric = True

    def __post_init__(self) -> None:
        _check_int("exp_bits", self.exp_bits, 1, 8)
        _check_int("man_bits", self.man_bits, 0, 10 if self.exp_bits < 8 else 7)
        if self.special not in ("ieee", "fn", "none"):
            raise ValueError(f"special must be 'ieee', 'fn' or 'none', got {self.special!r}")
        if self.special == "ieee" and self.exp_bits < 2:
            raise ValueError("an 'ieee' float needs at least 2 exponent bits (one is reserved for Inf/NaN)")
        if self.special == "fn" and self.man_bits == 0:
            raise ValueError("an 'fn' float needs mantissa bits (its NaN is the all-ones pattern)")
        _check_int("bias", self.bias, -64, 127)
        if self.emin < -126 or self.emax > 127:
            raise ValueError(f"exponent range [{self.emin}, {self.emax}] must lie inside float32's [-126, 127]")

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number (subnormals share it)."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number."""
        top = 2**self.exp_bits - 1 - self.bias
        return top - 1 if self.special == "ieee" else top

    @property
    def max_value(self) -> float:
        """Largest finite magnitude (448 for E4M3, 57344 for E5M2, 6 for E2M1, 65504 for fp16)."""
        frac_codes = 2**self.man_bits - (2 if self.special == "fn" else 1)
        return (1.0 + frac_codes / 2**self.man_bits) * 2.0**self.emax

    @property
    def min_normal(self) -> float:
        return 2.0**self.emin

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (self.emin - self.man_bits)

    @property
    def has_inf(self) -> bool:
        return self.special == "ieee"

    @property
    def has_nan(self) -> bool:
        return self.special != "none"

    @property
    def max_abs(self) -> float:
        return self.max_value

    @property
    def name(self) -> str:
        return self.label or f"fp{self.bits}_e{self.exp_bits}m{self.man_bits}"


@dataclass(frozen=True)
class CodebookFormat:
    """Codes index a sorted tuple of levels: any non-uniform grid (NF4, power-of-two, learned).

    With ``normalized=True`` the levels lie in [-1, 1] with max |level| = 1 and every group is scaled
    by its absmax (NF4 style); otherwise levels are absolute values and no scale is fitted.
    Guarantee: with round-to-nearest the error is at most half the gap between the two levels
    enclosing x, for x inside [levels[0], levels[-1]] (times the scale).
    """

    levels: tuple[float, ...]
    normalized: bool = False
    label: str = "codebook"

    family = "codebook"
    symmetric = True

    def __post_init__(self) -> None:
        levels = tuple(float(v) for v in self.levels)
        object.__setattr__(self, "levels", levels)
        if not 2 <= len(levels) <= 65536:
            raise ValueError(f"a codebook needs between 2 and 65536 levels, got {len(levels)}")
        if not all(math.isfinite(v) for v in levels):
            raise ValueError("codebook levels must be finite numbers (got NaN or Inf)")
        if any(b <= a for a, b in pairwise(levels)):
            raise ValueError("codebook levels must be strictly increasing; sort them and drop duplicates")
        if self.normalized and max(abs(levels[0]), abs(levels[-1])) != 1.0:
            raise ValueError(
                "a normalized codebook must have max |level| == 1 (got "
                f"{max(abs(levels[0]), abs(levels[-1]))}); divide the levels by their absmax"
            )

    @property
    def bits(self) -> int:
        return max(1, math.ceil(math.log2(len(self.levels))))

    @property
    def scaled(self) -> bool:
        return self.normalized

    @property
    def max_abs(self) -> float:
        return max(abs(self.levels[0]), abs(self.levels[-1]))

    @property
    def name(self) -> str:
        return self.label


ElementFormat = FloatFormat | IntFormat


@dataclass(frozen=True)
class MXFormat:
    """OCP Microscaling (MX v1.0): blocks of ``block_size`` elements share an E8M0 scale 2^e.

    e = floor(log2(max |x| in block)) - emax_elem, clamped to [-127, 127]; elements x / 2^e are
    rounded to the element format and saturate at its largest normal. Integer elements (MXINT8) are
    sign-magnitude fixed point 1.(bits-2) (step 2^-(bits-2), codes -(2^(bits-1)-1) .. 2^(bits-1)-1).
    """

    element: ElementFormat
    block_size: int = 32
    label: str = ""

    family = "mx"
    symmetric = True

    def __post_init__(self) -> None:
        _check_int("block_size", self.block_size, 1, 1 << 20)
        if isinstance(self.element, IntFormat):
            if not (self.element.signed and self.element.restricted_range and self.element.symmetric):
                raise ValueError("MX integer elements must be signed, symmetric and restricted (e.g. -127..127)")
        elif not isinstance(self.element, FloatFormat):
            raise TypeError(f"MX element must be a FloatFormat or IntFormat, got {type(self.element).__name__}")

    @property
    def bits(self) -> int:
        return self.element.bits

    @property
    def scaled(self) -> bool:
        return True

    @property
    def emax_elem(self) -> int:
        """Exponent of the element format's largest normal (MXINT8: 0)."""
        return 0 if isinstance(self.element, IntFormat) else self.element.emax

    @property
    def element_step_exp(self) -> int:
        """log2 of the value of one integer element code (MXINT8: -6); 0 for float elements."""
        return -(self.element.bits - 2) if isinstance(self.element, IntFormat) else 0

    @property
    def max_abs(self) -> float:
        return self.element.max_abs * 2.0**self.element_step_exp

    @property
    def name(self) -> str:
        return self.label or f"mx{self.element.name}"


Format = IntFormat | FixedFormat | FloatFormat | CodebookFormat | MXFormat
FORMAT_CLASSES = {cls.__name__: cls for cls in (IntFormat, FixedFormat, FloatFormat, CodebookFormat, MXFormat)}


# ----------------------------------------------------------------------------------------------
# factories (the public names)

def integer(bits: int, signed: bool = True, symmetric: bool = True, restricted_range: bool = False,
            power_of_two_scale: bool = False) -> IntFormat:
    """Integer format of 1-16 bits; see :class:`IntFormat`."""
    return IntFormat(bits, signed, symmetric, restricted_range, power_of_two_scale)


def int2(**kw: Any) -> IntFormat:
    return IntFormat(2, **kw)


def int4(**kw: Any) -> IntFormat:
    return IntFormat(4, **kw)


def int8(**kw: Any) -> IntFormat:
    return IntFormat(8, **kw)


def int16(**kw: Any) -> IntFormat:
    return IntFormat(16, **kw)


def uint8(**kw: Any) -> IntFormat:
    return IntFormat(8, signed=False, **kw)


def fixed(m: int | None = None, n: int | None = None, *, word_length: int | None = None,
          fraction_length: int | None = None, signed: bool = True) -> FixedFormat:
    """Fixed point: ``fixed(m=3, n=12)`` is TI's Q3.12 (16-bit word with sign), or give MATLAB-style
    ``word_length``/``fraction_length`` directly."""
    if (m is None) == (word_length is None):
        raise ValueError("give either m (integer bits) with n, or word_length with fraction_length")
    if m is not None:
        if n is None:
            raise ValueError("fixed(m=...) also needs n, the number of fraction bits")
        _check_int("m", m, 0, 16)
        _check_int("n", n, 0, 16)
        return FixedFormat(m + n + (1 if signed else 0), n, signed)
    if fraction_length is None:
        raise ValueError("fixed(word_length=...) also needs fraction_length")
    return FixedFormat(word_length, fraction_length, signed)


def minifloat(exp_bits: int, man_bits: int, bias: int | None = None, special: FloatSpecial = "none",
              scaled: bool = True) -> FloatFormat:
    """A custom float; ``bias`` defaults to 2^(exp_bits-1) - 1."""
    return FloatFormat(exp_bits, man_bits, 2 ** (exp_bits - 1) - 1 if bias is None else bias, special, scaled)


def fp16(scaled: bool = False) -> FloatFormat:
    return FloatFormat(5, 10, 15, "ieee", scaled, "fp16")


def bf16(scaled: bool = False) -> FloatFormat:
    return FloatFormat(8, 7, 127, "ieee", scaled, "bf16")


def fp8_e4m3(scaled: bool = True) -> FloatFormat:
    """OCP FP8 E4M3 ('fn': no Inf, NaN = S.1111.111, max 448)."""
    return FloatFormat(4, 3, 7, "fn", scaled, "fp8_e4m3")


def fp8_e5m2(scaled: bool = True) -> FloatFormat:
    """OCP FP8 E5M2 (IEEE-like Inf/NaN, max 57344)."""
    return FloatFormat(5, 2, 15, "ieee", scaled, "fp8_e5m2")


def fp6_e3m2(scaled: bool = True) -> FloatFormat:
    return FloatFormat(3, 2, 3, "none", scaled, "fp6_e3m2")


def fp6_e2m3(scaled: bool = True) -> FloatFormat:
    return FloatFormat(2, 3, 1, "none", scaled, "fp6_e2m3")


def fp4_e2m1(scaled: bool = True) -> FloatFormat:
    return FloatFormat(2, 1, 1, "none", scaled, "fp4_e2m1")


def mxfp8_e4m3(block_size: int = 32) -> MXFormat:
    return MXFormat(fp8_e4m3(), block_size, "mxfp8_e4m3")


def mxfp8_e5m2(block_size: int = 32) -> MXFormat:
    return MXFormat(fp8_e5m2(), block_size, "mxfp8_e5m2")


def mxfp6_e3m2(block_size: int = 32) -> MXFormat:
    return MXFormat(fp6_e3m2(), block_size, "mxfp6_e3m2")


def mxfp6_e2m3(block_size: int = 32) -> MXFormat:
    return MXFormat(fp6_e2m3(), block_size, "mxfp6_e2m3")


def mxfp4(block_size: int = 32) -> MXFormat:
    return MXFormat(fp4_e2m1(), block_size, "mxfp4")


def mxint8(block_size: int = 32) -> MXFormat:
    return MXFormat(IntFormat(8, restricted_range=True), block_size, "mxint8")


mxfp8 = mxfp8_e4m3


def codebook(levels: Any, normalized: bool = False, name: str = "codebook") -> CodebookFormat:
    """Arbitrary sorted levels (a list, tuple, numpy array or tensor)."""
    if hasattr(levels, "tolist"):
        levels = levels.tolist()
    return CodebookFormat(tuple(levels), normalized, name)


def nf4() -> CodebookFormat:
    """QLoRA's 4-bit NormalFloat: 16 fixed levels, absmax-scaled per block (default block 64)."""
    return CodebookFormat(NF4_LEVELS, True, "nf4")


def log2_codebook(bits: int, signed: bool = True) -> CodebookFormat:
    """Power-of-two levels {0, ±2^0, ±2^-1, ...} normalized to max 1 (logarithmic quantization).

    Signed: 2^(bits-1)-1 magnitudes per sign plus zero (one code unused); unsigned: 2^bits-1 magnitudes.
    """
    _check_int("bits", bits, 2 if signed else 1, 8)
    count = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    mags = [2.0 ** (-k) for k in range(count)]
    levels = sorted({0.0, *mags, *([-m for m in mags] if signed else [])})
    return CodebookFormat(tuple(levels), True, f"log2_{bits}{'' if signed else 'u'}")


# ----------------------------------------------------------------------------------------------
# serialization

def format_to_dict(fmt: Format) -> dict[str, Any]:
    """JSON-ready description of a format (round-trips through :func:`format_from_dict`)."""
    out: dict[str, Any] = {"type": type(fmt).__name__}
    for f in fields(fmt):
        value = getattr(fmt, f.name)
        if f.name == "element":
            value = format_to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def format_from_dict(data: dict[str, Any]) -> Format:
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError(f"a format description must be a dict with a 'type' key, got {data!r}")
    kind = data["type"]
    if kind not in FORMAT_CLASSES:
        raise ValueError(f"unknown format type {kind!r}; known: {sorted(FORMAT_CLASSES)}")
    cls = FORMAT_CLASSES[kind]
    allowed = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in data.items() if k != "type"}
    unknown = set(kwargs) - allowed
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} for {kind}; allowed: {sorted(allowed)}")
    if "element" in kwargs:
        kwargs["element"] = format_from_dict(kwargs["element"])
    if "levels" in kwargs:
        kwargs["levels"] = tuple(kwargs["levels"])
    return cls(**kwargs)


__all__ = [
    "IntFormat", "FixedFormat", "FloatFormat", "CodebookFormat", "MXFormat", "Format", "NF4_LEVELS",
    "integer", "int2", "int4", "int8", "int16", "uint8", "fixed", "minifloat", "fp16", "bf16",
    "fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "mxfp8", "mxfp8_e4m3", "mxfp8_e5m2",
    "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4", "mxint8", "codebook", "nf4", "log2_codebook",
    "format_to_dict", "format_from_dict", "builtin_formats",
]


def builtin_formats() -> dict[str, Format]:
    """Every named format quantscope ships, by name (used by the CLI and the conformance tests)."""
    fmts: list[Format] = [
        int2(), int4(), int8(), int16(), int8(restricted_range=True), uint8(), int8(symmetric=False),
        uint8(symmetric=False), int4(symmetric=False), int8(power_of_two_scale=True), integer(3), integer(6),
        fixed(m=3, n=12), fixed(m=0, n=7), fixed(word_length=8, fraction_length=4, signed=False),
        fp16(), bf16(), fp8_e4m3(), fp8_e5m2(), fp6_e3m2(), fp6_e2m3(), fp4_e2m1(),
        mxfp8_e4m3(), mxfp8_e5m2(), mxfp6_e3m2(), mxfp6_e2m3(), mxfp4(), mxint8(),
        nf4(), log2_codebook(4), log2_codebook(3, signed=False),
    ]
    return {f.name: f for f in fmts}
