"""Rounding of real numbers to integers (the 'round' in Q(x) = step * round(x / step)).

Modes (MATLAB ``fi`` names in brackets):

``nearest_even``  ties to even (IEEE default) ['convergent']; alias ``nearest``
``nearest_away``  ties away from zero ['round']
``floor``         toward -inf ['floor']            error x - Q(x) in [0, step)
``ceil``          toward +inf ['ceil']             error x - Q(x) in (-step, 0]
``toward_zero``   truncation ['fix']               |Q(x)| <= |x|, |x - Q(x)| < step
``stochastic``    up with probability frac(x/step): E[Q(x)] = x exactly (unbiased), |error| < step

These are the torch reference implementations; the fused CPU kernels reproduce them bit for bit.
"""

from __future__ import annotations

import torch

ROUNDING_MODES = ("nearest_even", "nearest_away", "floor", "ceil", "toward_zero", "stochastic")
ROUNDING_ALIASES = {"nearest": "nearest_even", "convergent": "nearest_even", "round": "nearest_away",
                    "fix": "toward_zero", "trunc": "toward_zero", "truncate": "toward_zero"}
DIRECTED_MODES = ("floor", "ceil", "toward_zero")


def normalize_rounding(mode: str) -> str:
    """Canonical name of a rounding mode, or a ValueError listing the allowed names."""
    if not isinstance(mode, str):
        raise TypeError(f"rounding must be a string, got {type(mode).__name__}")
    mode = ROUNDING_ALIASES.get(mode, mode)
    if mode not in ROUNDING_MODES:
        allowed = ", ".join(ROUNDING_MODES + tuple(ROUNDING_ALIASES))
        raise ValueError(f"unknown rounding mode {mode!r}; allowed: {allowed}")
    return mode


def round_nearest_away(t: torch.Tensor) -> torch.Tensor:
    """Round half away from zero, exact for every float (no ``floor(x + 0.5)`` double rounding)."""
    r = torch.trunc(t)
    return r + torch.where((t - r).abs() >= 0.5, torch.sign(t), torch.zeros_like(t))


def round_stochastic(t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """floor(t) + 1 with probability t - floor(t); unbiased: E[result] = t."""
    r = torch.floor(t)
    u = torch.rand(t.shape, generator=generator, dtype=t.dtype, device=t.device)
    return r + (u < (t - r)).to(t.dtype)


def round_to_int(t: torch.Tensor, mode: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Round every element of ``t`` to an integer (still as a float tensor) with ``mode``."""
    if mode == "nearest_even":
        return torch.round(t)
    if mode == "nearest_away":
        return round_nearest_away(t)
    if mode == "floor":
        return torch.floor(t)
    if mode == "ceil":
        return torch.ceil(t)
    if mode == "toward_zero":
        return torch.trunc(t)
    if mode == "stochastic":
        return round_stochastic(t, generator)
    raise ValueError(f"unknown rounding mode {mode!r}")


def round_magnitude(a: torch.Tensor, negative: torch.Tensor, mode: str,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Round non-negative magnitudes ``a`` of numbers whose sign is ``negative``.

    Sign-dependent modes flip: floor of a negative number rounds its magnitude up.
    """
    if mode == "floor":
        return torch.where(negative, torch.ceil(a), torch.floor(a))
    if mode == "ceil":
        return torch.where(negative, torch.floor(a), torch.ceil(a))
    return round_to_int(a, mode, generator)


def rounds_magnitude_down(mode: str, negative: torch.Tensor) -> torch.Tensor:
    """True where ``mode`` never increases the magnitude (IEEE: such overflow gives max finite)."""
    if mode == "toward_zero":
        return torch.ones_like(negative)
    if mode == "floor":
        return ~negative
    if mode == "ceil":
        return negative
    return torch.zeros_like(negative)
