"""Spectral helpers shared by the signal modules: power spectra, sine fits, SINAD/ENOB, band power.

Conventions: signals are 1-D float64 numpy arrays sampled at ``fs`` Hz; powers are mean squares in the
signal's units² (so a sine of amplitude A has power A²/2); power spectral densities are one-sided,
in units²/Hz, and integrate (sum · df) to the signal's power.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# 6.02 and 1.76 dB spelled exactly (as in quantscope.error.theory.sine_sqnr_db)
DB_PER_BIT = 20 * math.log10(2)
SINE_DB = 10 * math.log10(1.5)


def power_spectrum(x: np.ndarray, fs: float, segment: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Welch estimate of the one-sided power spectral density of ``x`` (Hann window, 50% overlap).

    Returns ``(freqs_hz, psd)`` with ``psd`` in units²/Hz; ``psd.sum() * (freqs[1] - freqs[0])`` is the
    mean square of ``x`` (up to the estimator's variance). ``segment`` defaults to min(len(x), 4096).
    """
    from scipy.signal import welch

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"power_spectrum needs a 1-D signal of at least 2 samples, got shape {x.shape}")
    seg = min(x.size, segment or 4096)
    freqs, psd = welch(x, fs=fs, window="hann", nperseg=seg, detrend=False, scaling="density")
    return freqs, psd


def band_power(x: np.ndarray, fs: float, f_lo: float, f_hi: float) -> float:
    """Mean-square power of ``x`` in the band [f_lo, f_hi] Hz, from the exact (unwindowed) FFT.

    By Parseval the powers of all bands add up to ``mean(x**2)``; the DC bin counts when ``f_lo <= 0``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n == 0:
        raise ValueError("band_power needs a non-empty signal")
    spec = np.abs(np.fft.rfft(x)) ** 2 / n**2
    weight = np.full(spec.size, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0  # the Nyquist bin appears once
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    sel = (freqs >= f_lo) & (freqs <= f_hi)
    return float((spec * weight)[sel].sum())


@dataclass(frozen=True)
class SineFit:
    """A sine ``offset + amplitude·cos(2π·freq·n/fs + phase)`` fitted to a record (IEEE 1057 four-parameter
    least squares). ``residual_power`` is the mean square of what the sine does not explain (noise and
    distortion), ``sinad_db`` = 10·log10((A²/2) / residual_power)."""

    amplitude: float
    freq_hz: float
    phase: float
    offset: float
    residual_power: float
    sinad_db: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _three_param(x: np.ndarray, w: float) -> tuple[np.ndarray, np.ndarray]:
    n = np.arange(x.size, dtype=np.float64)
    d = np.column_stack([np.cos(w * n), np.sin(w * n), np.ones_like(n)])
    coef, *_ = np.linalg.lstsq(d, x, rcond=None)
    return coef, d @ coef


def sine_fit(x: np.ndarray, fs: float, freq_hz: float | None = None, iterations: int = 30) -> SineFit:
    """Fit a sine to ``x``. With ``freq_hz`` known: the three-parameter (linear) fit; otherwise the
    frequency comes from the windowed FFT peak and is refined by Gauss-Newton (four-parameter fit)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 8:
        raise ValueError(f"sine_fit needs a 1-D record of at least 8 samples, got shape {x.shape}")
    if freq_hz is not None:
        w = 2 * math.pi * freq_hz / fs
        coef, model = _three_param(x, w)
    else:
        win = np.hanning(x.size)
        mag = np.abs(np.fft.rfft((x - x.mean()) * win))
        k = int(np.argmax(mag[1:])) + 1
        shift = 0.0
        if 1 <= k < mag.size - 1:  # parabolic interpolation of the log magnitude
            a, b, c = np.log(mag[k - 1:k + 2] + 1e-300)
            den = a - 2 * b + c
            shift = 0.5 * (a - c) / den if den != 0 else 0.0
        w = 2 * math.pi * (k + shift) / x.size
        coef, model = _three_param(x, w)
        n = np.arange(x.size, dtype=np.float64)
        for _ in range(iterations):
            a_, b_ = coef[0], coef[1]
            c, s = np.cos(w * n), np.sin(w * n)
            d = np.column_stack([c, s, np.ones_like(n), n * (-a_ * s + b_ * c)])
            step, *_ = np.linalg.lstsq(d, x, rcond=None)
            dw = step[3]
            w += dw
            coef = step[:3]
            if abs(dw) < 1e-13:
                break
        coef, model = _three_param(x, w)
    amplitude = float(math.hypot(coef[0], coef[1]))
    phase = float(math.atan2(-coef[1], coef[0]))
    resid = float(np.mean((x - model) ** 2))
    sig = amplitude**2 / 2
    sinad = math.inf if resid == 0 else (10 * math.log10(sig / resid) if sig > 0 else -math.inf)
    return SineFit(amplitude, float(w * fs / (2 * math.pi)), phase, float(coef[2]), resid, sinad)


def enob_from_sinad(sinad_db: float, amplitude: float | None = None, full_scale: float | None = None) -> float:
    """ENOB = (SINAD − 1.76 dB) / 6.02 dB, corrected to a full-scale sine when ``amplitude`` and
    ``full_scale`` are given (adds 20·log10(FS/A) to SINAD, IEEE 1241 style)."""
    corr = 0.0
    if amplitude is not None and full_scale is not None and amplitude > 0:
        corr = 20 * math.log10(full_scale / amplitude)
    return (sinad_db - SINE_DB + corr) / DB_PER_BIT


def enob_from_noise(noise_power: float, full_scale: float) -> float:
    """Bits of an ideal rounding quantizer over [-FS, FS) with the same noise: log2(2·FS / (√12·rms)).

    An ideal N-bit quantizer (Δ = 2·FS/2^N, noise Δ²/12) gives exactly N; infinity for zero noise.
    """
    if noise_power <= 0:
        return math.inf
    return math.log2(2 * full_scale / math.sqrt(12 * noise_power))


__all__ = ["power_spectrum", "band_power", "SineFit", "sine_fit", "enob_from_sinad", "enob_from_noise",
           "DB_PER_BIT", "SINE_DB"]
