"""Error-feedback noise shaping: move quantization noise out of the band that matters.

The quantizer's own error e[n] = y[n] − v[n] is filtered and fed back into its input:

    v[n] = x[n] − Σ_k h[k]·e[n−1−k]        y[n] = Q(v[n] + d[n])        e[n] = y[n] − v[n]

so the output error y − x = e[n] − Σ h[k]·e[n−1−k] is the quantizer's (white) error shaped by the
noise transfer function NTF(z) = 1 − Σ_k h[k]·z^−(k+1). Built-in filters ``h``:

``first``      [1]                 NTF = 1 − z⁻¹ (first-order highpass, +6 dB/octave)
``second``     [2, −1]             NTF = (1 − z⁻¹)² (second order, +12 dB/octave)
``lipshitz``   5 taps              Lipshitz et al. 1991 minimally audible, for 44.1 kHz (SoX ``lip44``)
``fweighted``  9 taps              Wannamaker 1992 F-weighted, for 44.1 kHz (SoX/FFmpeg ``fwe44``)

or any FIR given as a sequence of coefficients. On an oversampled signal (oversampling ratio M) the
white-noise model predicts the in-band share of the noise power (:func:`inband_noise_gain`); plain
rounding puts 1/M of it in band, first order about π²/(3M²), second order π⁴/(5M⁴).

Stability: the feedback is FIR in a bounded error: without saturation |e| <= Δ/2 + max|d|, and on a
saturated sample the fed-back error is clipped to that range (as SoX does), so the loop cannot run away
and recovers as soon as the input is back in range. Wherever the last len(h) samples did not saturate,
|y − x| <= (Δ/2 + max|d|)·(1 + Σ|h|) (:attr:`ShapingResult.error_bound`); inputs within FS minus that
bound never saturate.

The recursion is sequential, so it runs as a scalar loop (round half to even, saturating at the code
range — the same grid and rounding as :func:`quantscope.signal.adc.quantize_samples`), about 1 µs per
sample and tap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .adc import adc_step, as_signal, check_bits
from .dither import check_dither_kind, make_dither

SHAPING_FILTERS: dict[str, tuple[float, ...]] = {
    "first": (1.0,),
    "second": (2.0, -1.0),
    "lipshitz": (2.033, -2.165, 1.959, -1.590, 0.6149),
    "fweighted": (2.412, -3.370, 3.937, -4.174, 3.353, -2.205, 1.281, -0.569, 0.0847),
}


def shaping_filter(spec: str | Sequence[float]) -> tuple[float, ...]:
    """Feedback coefficients h of a built-in filter name or a user FIR (a non-empty sequence of floats)."""
    if isinstance(spec, str):
        if spec not in SHAPING_FILTERS:
            raise ValueError(f"unknown noise-shaping filter {spec!r}; built in: {sorted(SHAPING_FILTERS)}, "
                             f"or pass the feedback coefficients as a list of floats")
        return SHAPING_FILTERS[spec]
    try:
        h = tuple(float(v) for v in spec)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"filter must be a name {sorted(SHAPING_FILTERS)} or a sequence of numbers, "
                        f"got {type(spec).__name__}") from exc
    if not h or not all(math.isfinite(v) for v in h):
        raise ValueError("filter coefficients must be a non-empty sequence of finite numbers")
    return h


def noise_transfer(h: Sequence[float], freqs: np.ndarray, fs: float) -> np.ndarray:
    """|NTF(e^{jω})|² at ``freqs`` Hz for feedback coefficients ``h`` (NTF = 1 − Σ h[k] z^−(k+1))."""
    w = 2 * np.pi * np.asarray(freqs, dtype=np.float64) / fs
    ntf = np.ones_like(w, dtype=np.complex128)
    for k, c in enumerate(h):
        ntf = ntf - c * np.exp(-1j * w * (k + 1))
    return np.abs(ntf) ** 2


def inband_noise_gain(h: Sequence[float], osr: float, points: int = 20001) -> float:
    """Predicted in-band noise power over the unshaped in-band power, band [0, fs/(2·osr)], for white
    quantizer error: the mean of |NTF|² over the band (1 means no change, 0.01 means −20 dB)."""
    if not osr >= 1:
        raise ValueError(f"osr (oversampling ratio) must be >= 1, got {osr}")
    f = np.linspace(0.0, 0.5 / osr, points)
    return float(np.trapezoid(noise_transfer(h, f, 1.0), f) / (0.5 / osr))


@dataclass(frozen=True)
class ShapingResult:
    """A noise-shaped conversion. ``values`` = codes·Δ (what is stored), ``error`` = x − values (the
    shaped noise, e = x − x̂ as everywhere in quantscope), ``quantizer_error`` = e[n] = y − v (before any
    clipping of the fed-back copy); ``error_bound`` is the guaranteed max |values − x| while nothing
    saturates, ``saturated`` counts samples that hit the code range."""

    filter: tuple[float, ...]
    bits: int
    step: float
    dither: str
    error_bound: float
    max_abs_error: float
    saturated: int
    values: np.ndarray = field(repr=False)
    codes: np.ndarray = field(repr=False)
    error: np.ndarray = field(repr=False)
    quantizer_error: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("filter", "bits", "step", "dither", "error_bound", "max_abs_error",
                                              "saturated")}


def noise_shape(x: Any, bits: int, filter: str | Sequence[float] = "second", full_scale: float = 1.0,
                dither: str = "none", seed: int | None = None) -> ShapingResult:
    """Quantize ``x`` (1-D) to N bits on the ADC grid with error-feedback noise shaping (see the module
    docstring for the loop, the filters and the bound). ``dither`` ("none", "rpdf", "tpdf") is added at
    the quantizer input (non-subtractive), reproducible with ``seed``."""
    x = as_signal(x, "x")
    bits = check_bits(bits)
    h = shaping_filter(filter)
    kind = check_dither_kind(dither)
    step = adc_step(bits, full_scale)
    d = make_dither(kind, x.size, step, np.random.default_rng(seed))
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    dmax = {"none": 0.0, "rpdf": step / 2, "tpdf": step}[kind]
    emax = step / 2 + dmax  # the largest quantizer error without saturation
    inv = 1.0 / step
    taps = len(h)
    hist = [0.0] * taps  # e[n-1], e[n-2], ... (most recent first)
    coeffs = list(h)
    codes = np.empty(x.size, dtype=np.int32)
    qerr = np.empty(x.size)
    saturated = 0
    xs, ds = x.tolist(), d.tolist()
    for n in range(x.size):
        fb = 0.0
        for c, e in zip(coeffs, hist, strict=True):
            fb += c * e
        v = xs[n] - fb
        k = round((v + ds[n]) * inv)  # Python's round: half to even
        if k > qmax:
            k, saturated = qmax, saturated + 1
        elif k < qmin:
            k, saturated = qmin, saturated + 1
        e = k * step - v
        codes[n] = k
        qerr[n] = e
        if e > emax:  # only on saturated samples: feed back at most a normal error, so the loop recovers
            e = emax
        elif e < -emax:
            e = -emax
        hist.insert(0, e)
        hist.pop()
    values = codes.astype(np.float64) * step
    bound = emax * (1 + sum(abs(c) for c in h))
    err = x - values
    return ShapingResult(h, bits, step, kind, bound, float(np.max(np.abs(err))), saturated, values, codes, err, qerr)


__all__ = ["SHAPING_FILTERS", "ShapingResult", "inband_noise_gain", "noise_shape", "noise_transfer",
           "shaping_filter"]
