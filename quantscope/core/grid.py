"""Rounding onto each format's grid, and codes <-> values. The torch reference implementation.

All functions work in *code units* (after dividing by the scale). The fused CPU kernels in
``_kernels.c`` implement the same arithmetic in the same order and are tested bit-exact against
these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch

from .formats import CodebookFormat, FixedFormat, FloatFormat, IntFormat, MXFormat
from .rounding import DIRECTED_MODES, round_magnitude, round_to_int, rounds_magnitude_down
from .scales import floor_log2, pow2

IntLike = IntFormat | FixedFormat


# ------------------------------------------------------------------------------- directed rounding
def fix_directed(q: torch.Tensor, x: torch.Tensor, rounding: str, value_of: Callable[[torch.Tensor], torch.Tensor],
                 up: Callable[[torch.Tensor], torch.Tensor], down: Callable[[torch.Tensor], torch.Tensor]
                 ) -> torch.Tensor:
    """Make directed rounding exact on the grid of *reconstructed* values.

    ``q`` was found by rounding x / scale, which float32 may have perturbed by an ulp. This moves q by
    at most one grid step so that floor gives the largest reconstruction <= x and ceil the smallest
    >= x (toward_zero: floor for x >= 0, ceil below). Hence the sign of the error is exact and
    Q(Q(x)) == Q(x) for any scale.
    """
    if rounding not in DIRECTED_MODES:
        return q
    v = value_of(q)
    q_up, q_down = up(q), down(q)
    as_floor = torch.where(v > x, q_down, torch.where(value_of(q_up) <= x, q_up, q))
    as_ceil = torch.where(v < x, q_up, torch.where(value_of(q_down) >= x, q_down, q))
    if rounding == "floor":
        return as_floor
    if rounding == "ceil":
        return as_ceil
    return torch.where(x >= 0, as_floor, as_ceil)


# ---------------------------------------------------------------------------------------------- int
def int_round(t: torch.Tensor, fmt: IntLike, rounding: str, overflow: str,
              zero_point: torch.Tensor | float = 0.0, generator: torch.Generator | None = None,
              x: torch.Tensor | None = None, scale: torch.Tensor | float | None = None) -> torch.Tensor:
    """Integer codes (as floats) of ``t = x / scale``: round, add the zero point, then saturate or wrap.

    Same order as ``torch.fake_quantize_per_tensor_affine``: round(x * inv_scale) + zero_point. When
    ``x`` and ``scale`` are given, directed modes are made exact with :func:`fix_directed`.
    """
    q = round_to_int(t, rounding, generator) + zero_point
    if x is not None:
        q = fix_directed(q, x, rounding, lambda c: (c - zero_point) * scale, lambda c: c + 1.0, lambda c: c - 1.0)
    if overflow == "wrap":
        span = float(fmt.qmax - fmt.qmin + 1)
        return torch.remainder(q - fmt.qmin, span) + fmt.qmin
    return q.clamp(fmt.qmin, fmt.qmax)


def int_code_dtype(fmt: IntLike) -> torch.dtype:
    if fmt.qmin >= 0:
        return torch.uint8 if fmt.qmax <= 255 else torch.int32
    return torch.int8 if fmt.bits <= 8 else torch.int16


# -------------------------------------------------------------------------------------------- float
def float_next_up(q: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """The next larger value on the grid of ``fmt`` (``max_value`` stays put)."""
    a = q.abs()
    e_pos = floor_log2(torch.where(q > 0, q, torch.ones_like(q))).clamp(fmt.emin, fmt.emax)
    e_pos = torch.where(q > 0, e_pos, torch.full_like(e_pos, fmt.emin))
    up_pos = (q + pow2(e_pos - fmt.man_bits)).clamp(max=fmt.max_value)
    e_neg = floor_log2(torch.where(a > 0, a, torch.ones_like(a))).clamp(min=fmt.emin)
    e_gap = torch.where((a == pow2(e_neg)) & (e_neg > fmt.emin), e_neg - 1, e_neg)
    up_neg = -(a - pow2(e_gap - fmt.man_bits))
    return torch.where(q >= 0, up_pos, up_neg)


def float_next_down(q: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    return -float_next_up(-q, fmt)


def float_round(y: torch.Tensor, fmt: FloatFormat, rounding: str, overflow: str,
                generator: torch.Generator | None = None, x: torch.Tensor | None = None,
                scale: torch.Tensor | float | None = None) -> torch.Tensor:
    """Round float32 ``y`` to the nearest representable value of ``fmt`` (subnormals included).

    ``x``/``scale`` (y = x / scale): make directed modes exact on the reconstructed grid.

    The step at |y| is 2^(clamp(floor(log2|y|), emin, emax) - man_bits); dividing by it, rounding to
    an integer and multiplying back is exact in float32. Values beyond ``max_value`` saturate, or in
    ``nonsaturating`` mode follow IEEE 754: Inf (NaN for E4M3), except that modes rounding the
    magnitude down (toward zero, floor of positives, ceil of negatives) give the largest finite value.
    """
    a = y.abs()
    neg = torch.signbit(y)
    e = floor_log2(torch.where(a > 0, a, torch.ones_like(a))).clamp(fmt.emin, fmt.emax)
    step = pow2(e - fmt.man_bits)
    q = round_magnitude(a / step, neg, rounding, generator) * step
    over = q > fmt.max_value
    top = torch.full_like(q, fmt.max_value)
    if overflow == "nonsaturating":
        special = torch.full_like(q, float("inf") if fmt.has_inf else float("nan"))
        top = torch.where(rounds_magnitude_down(rounding, neg), top, special)
    q = torch.copysign(torch.where(over, top, q), y)
    if x is not None:
        fixed = fix_directed(q, x, rounding, lambda v: v * scale, lambda v: float_next_up(v, fmt),
                             lambda v: float_next_down(v, fmt))
        q = torch.where(torch.isfinite(q), fixed, q)
    return q


def float_code_dtype(fmt: FloatFormat) -> torch.dtype:
    return torch.uint8 if fmt.bits <= 8 else torch.int16


def float_encode(q: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """Bit patterns (sign | exponent | mantissa) of values already on the grid of ``fmt``."""
    E, M = fmt.exp_bits, fmt.man_bits
    sign = torch.signbit(q).to(torch.int32)
    a = q.abs()
    finite = torch.isfinite(a)
    a_safe = torch.where(finite & (a > 0), a, torch.ones_like(a))
    sub = a < fmt.min_normal
    e = floor_log2(a_safe)
    exp_field = torch.where(sub, torch.zeros_like(e), e + fmt.bias)
    mant = torch.where(sub, a / fmt.min_subnormal, (a_safe / pow2(e) - 1.0) * float(2**M))
    mant = torch.where(finite, mant, torch.zeros_like(mant)).to(torch.int32)
    top = (1 << E) - 1
    if fmt.special == "ieee":
        exp_field = torch.where(finite, exp_field, torch.full_like(exp_field, top))
        mant = torch.where(torch.isnan(q), torch.full_like(mant, 1 << max(M - 1, 0)), mant)
    elif fmt.special == "fn":  # Inf cannot be encoded: it becomes NaN, as in the OCP spec's casts
        exp_field = torch.where(finite, exp_field, torch.full_like(exp_field, top))
        mant = torch.where(finite, mant, torch.full_like(mant, (1 << M) - 1))
    code = (sign << (E + M)) | (exp_field << M) | mant
    if fmt.bits == 16:
        code = torch.where(code >= 1 << 15, code - (1 << 16), code)
    return code.to(float_code_dtype(fmt))


@lru_cache(maxsize=64)
def _float_table(fmt: FloatFormat) -> torch.Tensor:
    E, M = fmt.exp_bits, fmt.man_bits
    codes = torch.arange(2**fmt.bits, dtype=torch.int64)
    sign = torch.where((codes >> (E + M)) & 1 == 1, -1.0, 1.0).double()
    exp_field = (codes >> M) & ((1 << E) - 1)
    mant = (codes & ((1 << M) - 1)).double()
    normal = (1.0 + mant / 2**M) * torch.exp2((exp_field - fmt.bias).double())
    subnormal = mant * 2.0 ** (fmt.emin - M)
    value = sign * torch.where(exp_field == 0, subnormal, normal)
    top = (1 << E) - 1
    if fmt.special == "ieee":
        value = torch.where((exp_field == top) & (mant == 0), sign * float("inf"), value)
        value = torch.where((exp_field == top) & (mant != 0), float("nan"), value)
    elif fmt.special == "fn":
        value = torch.where((exp_field == top) & (mant == (1 << M) - 1), float("nan"), value)
    return value.float()


def float_table(fmt: FloatFormat) -> torch.Tensor:
    """Value of every code 0 .. 2^bits-1 (float32); the decode table of ``fmt``."""
    return _float_table(fmt)


def float_decode(codes: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    idx = codes.to(torch.int64)
    if fmt.bits == 16:
        idx = idx & 0xFFFF
    table = float_table(fmt).to(codes.device)
    return table[idx]


# ----------------------------------------------------------------------------------------- codebook
def codebook_index(y: torch.Tensor, fmt: CodebookFormat, rounding: str,
                   generator: torch.Generator | None = None, x: torch.Tensor | None = None,
                   scale: torch.Tensor | float | None = None) -> torch.Tensor:
    """Index of the level chosen for each value (int64); values outside the levels saturate.

    nearest_even breaks ties toward the even index (on a uniform codebook this is ties-to-even);
    nearest_away toward the level of larger magnitude; stochastic picks the upper neighbour with
    probability (y - lo) / (hi - lo), so E[level] = y inside the range.
    """
    levels = torch.tensor(fmt.levels, dtype=y.dtype, device=y.device)
    n = len(fmt.levels)
    lo_i = (torch.bucketize(y, levels, right=True) - 1).clamp(0, n - 1)  # largest level <= y
    hi_i = torch.bucketize(y, levels, right=False).clamp(0, n - 1)  # smallest level >= y
    if rounding in DIRECTED_MODES:
        idx = {"floor": lo_i, "ceil": hi_i}.get(rounding)
        idx = torch.where(y >= 0, lo_i, hi_i) if idx is None else idx
        if x is not None:
            idx = fix_directed(idx, x, rounding, lambda i: levels[i] * scale, lambda i: (i + 1).clamp(max=n - 1),
                               lambda i: (i - 1).clamp(min=0))
        return idx
    lo_v, hi_v = levels[lo_i], levels[hi_i]
    if rounding == "stochastic":
        gap = hi_v - lo_v
        p = torch.where(gap > 0, (y - lo_v) / torch.where(gap > 0, gap, torch.ones_like(gap)), torch.zeros_like(y))
        u = torch.rand(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        return torch.where(u < p, hi_i, lo_i)
    d_lo, d_hi = y - lo_v, hi_v - y
    if rounding == "nearest_even":
        tie_hi = hi_i % 2 == 0
    elif rounding == "nearest_away":
        tie_hi = hi_v.abs() > lo_v.abs()
    else:
        raise ValueError(f"unknown rounding mode {rounding!r}")
    return torch.where((d_hi < d_lo) | ((d_hi == d_lo) & tie_hi), hi_i, lo_i)


def codebook_code_dtype(fmt: CodebookFormat) -> torch.dtype:
    return torch.uint8 if len(fmt.levels) <= 256 else torch.int32


def codebook_decode(codes: torch.Tensor, fmt: CodebookFormat) -> torch.Tensor:
    levels = torch.tensor(fmt.levels, dtype=torch.float32, device=codes.device)
    return levels[codes.to(torch.int64)]


# ----------------------------------------------------------------------------------------------- MX
def mx_element_round(y: torch.Tensor, fmt: MXFormat, rounding: str,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Element values (in units of the block scale) of ``y = x / 2^e``, saturating (OCP MX)."""
    elem = fmt.element
    if isinstance(elem, IntFormat):
        unit = 2.0**fmt.element_step_exp
        return int_round(y / unit, elem, rounding, "saturate", 0.0, generator) * unit
    return float_round(y, elem, rounding, "saturate", generator)


def mx_element_encode(v: torch.Tensor, fmt: MXFormat) -> torch.Tensor:
    elem = fmt.element
    if isinstance(elem, IntFormat):
        return (v / 2.0**fmt.element_step_exp).to(torch.int8)
    return float_encode(v, elem)


def mx_element_decode(codes: torch.Tensor, fmt: MXFormat) -> torch.Tensor:
    elem = fmt.element
    if isinstance(elem, IntFormat):
        return codes.to(torch.float32) * 2.0**fmt.element_step_exp
    return float_decode(codes, elem)


def mx_code_dtype(fmt: MXFormat) -> torch.dtype:
    return torch.int8 if isinstance(fmt.element, IntFormat) else float_code_dtype(fmt.element)


# ---------------------------------------------------------------------------------------- neighbours
def local_gap(v: torch.Tensor, fmt: IntLike | FloatFormat | CodebookFormat | MXFormat) -> torch.Tensor:
    """Distance between the two grid points enclosing ``v`` (code units, pre-zero-point for ints).

    This is the quantity the error guarantees are stated in: half of it for round-to-nearest.
    """
    if isinstance(fmt, (IntFormat, FixedFormat)):
        return torch.ones_like(v)
    if isinstance(fmt, MXFormat):
        if isinstance(fmt.element, IntFormat):
            return torch.full_like(v, 2.0**fmt.element_step_exp)
        fmt = fmt.element
    if isinstance(fmt, FloatFormat):
        a = v.abs()
        e = floor_log2(torch.where(a > 0, a, torch.ones_like(a))).clamp(fmt.emin, fmt.emax)
        return pow2(e - fmt.man_bits)
    levels = torch.tensor(fmt.levels, dtype=v.dtype, device=v.device)
    n = len(fmt.levels)
    lo_i = (torch.bucketize(v, levels, right=True) - 1).clamp(0, n - 2)
    return levels[lo_i + 1] - levels[lo_i]
