"""Dither: noise added before the quantizer so that the error stops depending on the signal.

Kinds (Δ = the quantizer step; theory from Lipshitz, Wannamaker & Vanderkooy, JAES 1992):

``rpdf``  uniform on [-Δ/2, Δ/2). Non-subtractive: the error *mean* is 0 for every input, but its
          variance depends on where the input sits in its step: Δ²·a·(1−a) for an input a·Δ above a level
          (0 on a level, Δ²/4 half way), so noise modulation remains.
``tpdf``  sum of two independent RPDF values, triangular on (-Δ, Δ). Non-subtractive: error mean 0 *and*
          variance Δ²/4 for every input (Δ²/12 of quantization plus Δ²/6 of dither) — the cheapest
          dither that makes the first two error moments independent of the signal.
subtractive (any kind, RPDF by default): the same dither is subtracted after the quantizer; the error is
          then uniform on [-Δ/2, Δ/2), variance Δ²/12, and statistically independent of the input.

All of them hold only while the quantizer does not saturate: keep |x| <= FS − 2Δ for TPDF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .adc import adc_step, as_signal, check_bits, quantize_samples

DITHER_KINDS = ("none", "rpdf", "tpdf")


def check_dither_kind(kind: Any) -> str:
    """The dither kind, or a ValueError listing the allowed ones."""
    if kind is None:
        return "none"
    if not isinstance(kind, str) or kind.lower() not in DITHER_KINDS:
        raise ValueError(f"dither must be one of {DITHER_KINDS}, got {kind!r}")
    return kind.lower()


def make_dither(kind: str, n: int, step: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` dither values for quantizer step ``step`` (zeros for ``"none"``)."""
    kind = check_dither_kind(kind)
    if kind == "none":
        return np.zeros(n)
    d = rng.random(n) - 0.5
    if kind == "tpdf":
        d = d + (rng.random(n) - 0.5)
    return d * step


def error_moments(kind: str, subtractive: bool, step: float, frac: float | None = None) -> tuple[float, float]:
    """Theoretical (mean, variance) of the total error e = x − x̂ for ``kind`` dither, rounding to nearest.

    For non-subtractive RPDF and no dither the variance depends on the input: give ``frac``, the
    input's position a in its step (x = (k + a)·Δ, a in [-1/2, 1/2]); without it the average over a
    uniformly spread input is returned (Δ²/6 for RPDF, Δ²/12 for none).
    """
    kind = check_dither_kind(kind)
    if subtractive:
        return 0.0, step * step / 12
    if kind == "tpdf":
        return 0.0, step * step / 4
    if kind == "rpdf":
        if frac is None:
            return 0.0, step * step / 6
        a = abs(frac)
        return 0.0, step * step * a * (1 - a)
    if frac is None:
        return 0.0, step * step / 12
    return frac * step, 0.0  # no dither: a deterministic error x − Q(x) = a·Δ


@dataclass(frozen=True)
class DitherResult:
    """A dithered conversion: ``values`` (the reconstruction, dither removed when subtractive),
    ``codes`` (int32), ``dither`` (the values added, in signal units) and ``error`` = x − values."""

    kind: str
    subtractive: bool
    bits: int
    step: float
    error_mean: float
    error_var: float
    theory_mean: float
    theory_var: float
    values: np.ndarray = field(repr=False)
    codes: np.ndarray = field(repr=False)
    dither: np.ndarray = field(repr=False)
    error: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("kind", "subtractive", "bits", "step", "error_mean", "error_var",
                                              "theory_mean", "theory_var")}


def dithered_quantize(x: Any, bits: int, full_scale: float = 1.0, kind: str = "tpdf", subtractive: bool = False,
                      seed: int | None = None, overflow: str = "saturate") -> DitherResult:
    """Quantize ``x`` (1-D, signal units) on the N-bit ADC grid of :mod:`quantscope.signal.adc` after
    adding ``kind`` dither; with ``subtractive=True`` the dither is taken off the reconstruction.

    ``seed`` makes the dither reproducible. The theoretical moments in the result are those of
    :func:`error_moments` averaged over inputs (exact for TPDF and for subtractive dither).
    """
    x = as_signal(x, "x")
    bits = check_bits(bits)
    kind = check_dither_kind(kind)
    if not isinstance(subtractive, bool):
        raise TypeError(f"subtractive must be True or False, got {subtractive!r}")
    step = adc_step(bits, full_scale)
    d = make_dither("rpdf" if subtractive and kind == "none" else kind, x.size, step,
                    np.random.default_rng(seed))
    codes, values = quantize_samples(x + d, bits, full_scale, "nearest_even", overflow)
    if subtractive:
        values = values - d
    err = x - values
    tm, tv = error_moments(kind, subtractive, step)
    return DitherResult("rpdf" if subtractive and kind == "none" else kind, subtractive, bits, step,
                        float(err.mean()), float(err.var()), tm, tv, values, codes, d, err)


__all__ = ["DITHER_KINDS", "DitherResult", "check_dither_kind", "dithered_quantize", "error_moments",
           "make_dither"]
