"""ADC simulation: sample a signal at ``fs`` Hz and quantize it to N-bit two's-complement codes.

The converter maps the full-scale range [-FS, FS) onto the codes -2^(N-1) .. 2^(N-1)-1 of a
*mid-tread* quantizer with step Δ = 2·FS / 2^N: code k stands for k·Δ, zero is a level, the top level
is FS − Δ. Rounding and overflow go through :mod:`quantscope.core` (any rounding mode, ``saturate`` or
two's-complement ``wrap``); an optional ``clip_level`` < FS models an analog front end that clips first.

Guarantee (round to nearest, no saturation): |x − x̂| <= Δ/2 + |x|·2^-24 (the core rounds inputs to float32
first, which moves them by at most half a float32 ulp), and for a busy signal the error is close to
white with variance Δ²/12, so a full-scale sine gives SQNR ≈ 6.02·N + 1.76 dB.
Supported resolutions: 1..16 bits (the core's integer formats).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_BITS, MAX_BITS = 1, 16


def check_bits(bits: Any, name: str = "bits", lo: int = MIN_BITS, hi: int = MAX_BITS) -> int:
    """``bits`` as an int in [lo, hi], else a TypeError/ValueError naming the argument and the fix."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{name} must be an integer number of bits in {lo}..{hi}, got {type(bits).__name__} "
                        f"{bits!r}")
    if not lo <= int(bits) <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, got {bits}; pick a resolution the quantizer supports")
    return int(bits)


def as_signal(x: Any, name: str = "x") -> np.ndarray:
    """A 1-D, non-empty, finite float64 copy of ``x`` (list, numpy array or torch tensor)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}") from exc
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one channel of samples), got shape {a.shape}; "
                         f"pass one channel at a time")
    if a.size == 0:
        raise ValueError(f"{name} is empty (zero samples); there is nothing to quantize")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} NaN/Inf samples (first at index {int(np.argmax(bad))}); "
                         f"clean the signal first")
    return a


def _check_positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return v


def adc_step(bits: int, full_scale: float = 1.0) -> float:
    """The step Δ = 2·FS / 2^N of an N-bit converter with range [-FS, FS)."""
    return 2.0 * full_scale / 2.0 ** check_bits(bits)


def quantize_samples(x: np.ndarray, bits: int, full_scale: float = 1.0, rounding: str = "nearest_even",
                     overflow: str = "saturate", seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Codes (int32) and reconstructed values (float64, code·Δ) of samples ``x`` on the N-bit grid.

    Quantized by :func:`quantscope.quantize` with an integer format and the fixed scale Δ (inputs are
    rounded to float32 first, as everywhere in the core). ``seed`` drives ``rounding="stochastic"``.
    """
    import torch

    from ..core.formats import IntFormat
    from ..core.ops import quantize
    from ..core.spec import QParams, QuantSpec

    bits = check_bits(bits)
    step = adc_step(bits, _check_positive(full_scale, "full_scale"))
    # 1 bit has codes {-1, 0}: no positive level, so it is written as an asymmetric format with zero point 0
    fmt = IntFormat(bits, symmetric=bits > 1)
    spec = QuantSpec(fmt, rounding=rounding, overflow=overflow)
    qp = QParams(torch.tensor(step, dtype=torch.float32), None if bits > 1 else torch.tensor(0))
    gen = None
    if spec.rounding == "stochastic":
        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    q = quantize(np.ascontiguousarray(x, dtype=np.float64), spec, qparams=qp, generator=gen)
    codes = q.codes.cpu().numpy().astype(np.int32)
    return codes, codes.astype(np.float64) * step


def sample(signal: Callable[[np.ndarray], Any] | Any, fs: float, n_samples: int | None = None,
           duration: float | None = None, source_fs: float | None = None, t0: float = 0.0) -> np.ndarray:
    """Sample ``signal`` at ``fs`` Hz: ``n_samples`` samples (or ``duration`` seconds) from time ``t0``.

    ``signal`` is either a function of time (seconds, numpy array in, array out) or a finely sampled
    array taken as continuous, with its rate ``source_fs``: it is read at t = t0 + n/fs by linear
    interpolation (exact where the instants fall on its own samples, e.g. integer decimation).
    """
    fs = _check_positive(fs, "fs")
    if callable(signal):
        if n_samples is None:
            if duration is None:
                raise ValueError("give n_samples or duration (seconds) when signal is a function of time")
            n_samples = int(round(_check_positive(duration, "duration") * fs))
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        t = t0 + np.arange(int(n_samples), dtype=np.float64) / fs
        out = np.asarray(signal(t), dtype=np.float64)
        if out.shape != t.shape:
            raise ValueError(f"signal(t) must return one value per instant: got shape {out.shape} for {t.shape}")
        return as_signal(out, "signal(t)")
    src = as_signal(signal, "signal")
    if source_fs is None:
        raise ValueError("signal is an array: give source_fs, the rate it was finely sampled at (Hz)")
    source_fs = _check_positive(source_fs, "source_fs")
    span = (src.size - 1) / source_fs
    if n_samples is None:
        n_samples = int(math.floor((span - t0) * fs)) + 1 if duration is None else int(round(duration * fs))
    if n_samples < 1:
        raise ValueError("the requested window holds no sample; check t0, duration and the rates")
    t = t0 + np.arange(int(n_samples), dtype=np.float64) / fs
    if t[-1] > span * (1 + 1e-12):
        raise ValueError(f"sampling up to t={t[-1]:.6g} s runs past the end of the signal ({span:.6g} s)")
    pos = t * source_fs
    idx = np.rint(pos)
    exact = np.abs(pos - idx) < 1e-9
    out = np.interp(t, np.arange(src.size) / source_fs, src)
    out[exact] = src[idx[exact].astype(np.int64)]
    return out


@dataclass(frozen=True)
class ADCResult:
    """One conversion. Arrays: ``x`` (the sampled analog values), ``codes`` (int32), ``values`` (code·Δ)
    and ``error`` (x − values). Metrics in dB; ``sqnr_db`` is None (``sqnr_note`` says why) for an
    all-zero signal. ``enob`` is from the sine fit (SINAD, corrected to full scale) when the input is a
    sine, else from the noise: log2(2·FS / (√12·rms error)) — both give N for an ideal converter."""

    bits: int
    fs: float
    full_scale: float
    step: float
    rounding: str
    overflow: str
    n: int
    sqnr_db: float | None
    sqnr_note: str
    theory_sqnr_db: float
    enob: float | None
    enob_method: str
    sinad_db: float | None
    sine_freq_hz: float | None
    error_mean: float
    error_var: float
    noise_model_var: float
    max_abs_error: float
    clipped_fraction: float
    x: np.ndarray = field(repr=False)
    codes: np.ndarray = field(repr=False)
    values: np.ndarray = field(repr=False)
    error: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Every scalar field (the arrays are left out)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("x", "codes", "values", "error")}

    def error_spectrum(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(freqs Hz, PSD of x − x̂ in units²/Hz, the white-noise floor (Δ²/12)/(fs/2) of the model)."""
        from .spectrum import power_spectrum

        f, p = power_spectrum(self.error, self.fs)
        return f, p, self.noise_model_var / (self.fs / 2)


def sqnr(x: np.ndarray, x_hat: np.ndarray) -> tuple[float | None, str]:
    """(10·log10(Σx² / Σ(x − x̂)²) in dB, note). None with a note when the signal is all zero (SQNR is
    undefined); +inf when the reconstruction is exact."""
    sig = float(np.sum(np.square(x)))
    noise = float(np.sum(np.square(x - x_hat)))
    if sig == 0:
        return None, "undefined: the signal is all zero"
    if noise == 0:
        return math.inf, "exact: no quantization error"
    return 10 * math.log10(sig / noise), ""


def _looks_like_sine(x: np.ndarray) -> bool:
    """Cheap pre-check before the sine fit: 99% of the (Hann-windowed) energy lies in 9 bins around the peak."""
    p = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size))) ** 2
    k = int(np.argmax(p))
    total = float(p.sum())
    return total > 0 and float(p[max(k - 4, 0):k + 5].sum()) >= 0.99 * total


def measure(x: np.ndarray, values: np.ndarray, codes: np.ndarray, bits: int, fs: float, full_scale: float,
            rounding: str = "nearest_even", overflow: str = "saturate", noise_model_var: float | None = None
            ) -> ADCResult:
    """The metrics of a conversion whose analog input ``x`` and reconstruction ``values`` are known."""
    from ..error.theory import noise_factor, sine_sqnr_db
    from .spectrum import enob_from_noise, enob_from_sinad, sine_fit

    step = adc_step(bits, full_scale)
    err = x - values
    s, note = sqnr(x, values)
    sinad = freq = None
    enob: float | None
    method = "noise: log2(2·FS/(√12·rms error))"
    if s is not None and x.size >= 64 and _looks_like_sine(x):
        fit_in = sine_fit(x, fs)
        if fit_in.sinad_db > 60 and fit_in.amplitude > 0:  # the input is a sine: ENOB from the output's fit
            fit = sine_fit(values, fs)
            sinad, freq = fit.sinad_db, fit.freq_hz
            enob = enob_from_sinad(fit.sinad_db, fit.amplitude, full_scale)
            method = "sine fit: (SINAD − 1.76 + 20·log10(FS/A)) / 6.02"
    var = float(np.var(err))
    mse = float(np.mean(err * err))
    if sinad is None:
        enob = enob_from_noise(mse, full_scale) if s is not None else None
        if s is None:
            method = "undefined: the signal is all zero"
    qmin, qmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    rounded = np.round(x / step)
    clipped = float(np.mean((rounded < qmin) | (rounded > qmax)))
    model = noise_model_var if noise_model_var is not None else noise_factor(rounding) * step * step
    return ADCResult(bits, float(fs), float(full_scale), step, rounding, overflow, int(x.size), s, note,
                     sine_sqnr_db(bits), enob, method, sinad, freq, float(np.mean(err)), var, model,
                     float(np.max(np.abs(err))), clipped, x, codes, values, err)


def adc(signal: Callable[[np.ndarray], Any] | Any, fs: float, bits: int, *, n_samples: int | None = None,
        duration: float | None = None, source_fs: float | None = None, full_scale: float = 1.0,
        clip_level: float | None = None, rounding: str = "nearest_even", overflow: str = "saturate",
        seed: int | None = None) -> ADCResult:
    """Sample ``signal`` at ``fs`` Hz (see :func:`sample`) and convert it with an N-bit ADC.

    ``signal`` may also be an already sampled array when ``source_fs`` is None and neither ``n_samples``
    nor ``duration`` is given (it is then taken as the samples at ``fs``). ``clip_level`` clips the
    analog input to [-clip_level, clip_level] before the converter (errors then include clipping).
    Returns an :class:`ADCResult` with SQNR, ENOB, the error moments and the error signal.
    """
    from ..core.rounding import normalize_rounding

    bits = check_bits(bits)
    fs = _check_positive(fs, "fs")
    full_scale = _check_positive(full_scale, "full_scale")
    rounding = normalize_rounding(rounding)
    if callable(signal) or source_fs is not None or n_samples is not None or duration is not None:
        x = sample(signal, fs, n_samples=n_samples, duration=duration, source_fs=source_fs)
    else:
        x = as_signal(signal, "signal")
    analog = x if clip_level is None else np.clip(x, -(c := _check_positive(clip_level, "clip_level")), c)
    codes, values = quantize_samples(analog, bits, full_scale, rounding, overflow, seed)
    return measure(x, values, codes, bits, fs, full_scale, rounding, overflow)


__all__ = ["ADCResult", "adc", "adc_step", "as_signal", "check_bits", "measure", "quantize_samples", "sample",
           "sqnr", "MIN_BITS", "MAX_BITS"]
