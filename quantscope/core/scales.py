"""From a value range to quantization parameters: the one place where scales are computed.

Every calibrator produces a per-group range ``[lo, hi]`` and calls :func:`qparams_from_range`.
Rules (Δ = scale):

* symmetric int:  Δ = absmax / qmax, zero point 0
* asymmetric int: the range is widened to contain 0 (so 0.0 is exact), Δ = (hi - lo) / (qmax - qmin),
  zero point = round(qmin - lo / Δ) clamped to [qmin, qmax]
* scaled float:   Δ = absmax / max_value (absmax lands on the largest finite value, e.g. 448 for E4M3)
* normalized codebook (NF4): Δ = absmax
* MX:             Δ = 2^(floor(log2 absmax) - emax_elem), clamped to E8M0's [2^-127, 2^127]

A *constant* group (lo == hi == c) gets Δ = |c| and a zero point chosen so that c is code ±1: it
quantizes exactly, with no division by zero (all-zero groups get Δ = 1). Scales are floored at
2^-126 so 1/Δ stays finite, optionally rounded up to a power of two, then rounded *up* to the
spec's ``scale_dtype`` so the stored scale is the one used.
"""

from __future__ import annotations

import torch

from .formats import FixedFormat, IntFormat, MXFormat
from .spec import QParams, QuantSpec

MIN_SCALE = 2.0**-126
E8M0_MIN, E8M0_MAX = -127, 127


def floor_log2(a: torch.Tensor) -> torch.Tensor:
    """floor(log2(a)) for positive finite float32 ``a``, exact (from the binary exponent), int32."""
    _, e = torch.frexp(a)
    return (e - 1).to(torch.int32)


def pow2(e: torch.Tensor) -> torch.Tensor:
    """2^e as float32 for integer ``e`` in [-149, 127], exact (subnormal powers included)."""
    return torch.ldexp(torch.ones(e.shape, dtype=torch.float32, device=e.device), e.to(torch.float32))


def mx_scale_exponent(amax: torch.Tensor, fmt: MXFormat) -> torch.Tensor:
    """Shared E8M0 exponent of each block: floor(log2(amax)) - emax_elem in [-127, 127] (OCP MX v1.0)."""
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    e = floor_log2(safe) - fmt.emax_elem
    e = torch.where(amax > 0, e, torch.full_like(e, E8M0_MIN))
    return e.clamp(E8M0_MIN, E8M0_MAX)


def round_scale_up(scale: torch.Tensor, dtype: str) -> torch.Tensor:
    """Smallest value of ``dtype`` >= scale, returned as float32; error if it does not fit."""
    if dtype == "float32":
        return scale
    target = {"float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    low = scale.to(target)
    up = torch.where(low.float() < scale, torch.nextafter(low, torch.full_like(low, float("inf"))), low)
    out = up.float()
    bad = ~torch.isfinite(out) | (out <= 0)
    if bool(bad.any()):
        worst = scale[bad].flatten()[0].item()
        raise ValueError(f"scale {worst:g} does not fit scale_dtype={dtype!r}; use scale_dtype='float32'")
    return out


def _ceil_pow2(scale: torch.Tensor) -> torch.Tensor:
    mant, e = torch.frexp(scale)
    return torch.ldexp(torch.ones_like(scale), torch.where(mant == 0.5, e - 1, e).float())


def qparams_from_range(lo: torch.Tensor, hi: torch.Tensor, spec: QuantSpec) -> QParams:
    """Scale (and zero point) for per-group ranges ``lo <= hi`` (float32 tensors, same shape).

    The result has the same shape as ``lo``. See the module docstring for the rules.
    """
    fmt = spec.format
    lo = lo.to(torch.float32)
    hi = hi.to(torch.float32)
    if isinstance(fmt, FixedFormat) or not fmt.scaled:
        raise ValueError(f"{fmt.name} has a fixed scale; no range is needed")
    amax = torch.maximum(-lo, hi).clamp_min(0)
    if isinstance(fmt, MXFormat):
        return QParams(pow2(mx_scale_exponent(amax, fmt)))

    constant = lo == hi
    const_scale = torch.where(amax > 0, amax, torch.ones_like(amax))
    zero_point = None
    if isinstance(fmt, IntFormat) and not fmt.symmetric:
        lo0, hi0 = lo.clamp_max(0), hi.clamp_min(0)
        scale = (hi0 - lo0) / float(fmt.qmax - fmt.qmin)
        scale = torch.where(constant, const_scale, scale.clamp_min(MIN_SCALE))
    else:
        if isinstance(fmt, IntFormat) and not fmt.signed:
            amax = hi.clamp_min(0)
        scale = torch.where(constant, const_scale, (amax / float(fmt.max_abs)).clamp_min(MIN_SCALE))
    if isinstance(fmt, IntFormat) and fmt.power_of_two_scale:
        scale = _ceil_pow2(scale)
    scale = round_scale_up(scale, spec.scale_dtype)

    if isinstance(fmt, IntFormat) and not fmt.symmetric:
        lo0 = lo.clamp_max(0)
        zp = torch.round(fmt.qmin - lo0 / scale).clamp(fmt.qmin, fmt.qmax)
        # constant group: code ±1 must exist, so pick 0 (signed) or 1 for negative constants (unsigned)
        const_zp = torch.where((lo < 0) & (fmt.qmin > -1), torch.ones_like(zp), torch.zeros_like(zp))
        zero_point = torch.where(constant, const_zp, zp).to(torch.int32)
    return QParams(scale, zero_point)


def fixed_qparams(fmt: FixedFormat, shape: tuple[int, ...] = ()) -> QParams:
    """The constant step 2^-fraction_length of a fixed-point format."""
    return QParams(torch.full(shape, fmt.step, dtype=torch.float32))
