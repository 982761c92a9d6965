"""Quantize audio the way ``quantscope audio`` does: a uniform N-bit quantizer (optionally dithered and
noise shaped) or a codec (G.711 μ-law / A-law, IMA ADPCM), channel by channel, with the metrics.

Samples are float64 in [-1, 1) (what :func:`quantscope.signal.audio.read_audio` returns), so the full
scale is FS = 1 and the uniform grid is the N-bit ADC grid (Δ = 2^(1−N)). Codecs take 16-bit PCM: the
input is rounded to 16 bits first (exact for 16-bit files) and the error is measured against the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .adc import adc_step, check_bits, quantize_samples, sqnr
from .dither import check_dither_kind, dithered_quantize, error_moments
from .shaping import noise_shape, shaping_filter
from .spectrum import band_power, enob_from_noise

CODECS = ("mulaw", "alaw", "adpcm")
CODEC_BITS = {"mulaw": 8, "alaw": 8, "adpcm": 4}


@dataclass(frozen=True)
class AudioQuantResult:
    """What quantizing one piece of audio did.

    ``bits``: code bits per sample; ``sqnr_db`` over all channels (None when the input is all zero,
    ``sqnr_note`` then says so); ``enob`` = log2(2 / (√12·rms error)) (an ideal rounding quantizer of
    N bits gives N); ``theory_sqnr_db`` 6.02·N + 1.76 (full-scale sine, uniform only);
    ``noise_model_var``: the error variance the theory predicts for the uniform modes (Δ²/12 plain,
    Δ²/4 TPDF, and × Σ(1, h²) when shaped), None for codecs; ``band_sqnr_db``: SQNR inside ``band_hz``.
    ``output`` (frames, channels) is what gets written, ``output_bits`` its container depth;
    ``shaping_filter`` the feedback coefficients h when noise shaping was on.
    """

    mode: str
    bits: int
    sample_rate: int
    frames: int
    channels: int
    sqnr_db: float | None
    sqnr_note: str
    enob: float | None
    theory_sqnr_db: float | None
    step: float | None
    error_mean: float
    error_var: float
    noise_model_var: float | None
    max_abs_error: float
    band_hz: tuple[float, float]
    band_sqnr_db: float | None
    saturated: int
    output_bits: int
    shaping_filter: tuple[float, ...] | None
    input: np.ndarray = field(repr=False)
    output: np.ndarray = field(repr=False)

    @property
    def error(self) -> np.ndarray:
        """input − output (e = x − x̂), (frames, channels)."""
        return self.input - self.output

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("input", "output")}
        out["band_hz"] = list(self.band_hz)
        return out


def _frames(samples: Any) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"samples must have shape (frames,) or (frames, channels), got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("the audio has zero samples; there is nothing to quantize")
    if not np.isfinite(x).all():
        raise ValueError("the audio holds NaN or Inf samples")
    return x


def _codec(x: np.ndarray, codec: str) -> np.ndarray:
    from .adpcm import adpcm_roundtrip
    from .audio import to_pcm_codes
    from .companding import g711_roundtrip

    pcm = to_pcm_codes(x, 16).astype(np.int16)
    decoded = adpcm_roundtrip(pcm)[1] if codec == "adpcm" else g711_roundtrip(pcm, codec)[1]
    return decoded.astype(np.float64) / 32768.0


def quantize_audio(samples: Any, sample_rate: int, bits: int | None = 8, *, dither: str = "none",
                   shape: str | list[float] | None = None, codec: str | None = None, seed: int | None = 0,
                   band_hz: tuple[float, float] = (0.0, 4000.0)) -> AudioQuantResult:
    """Quantize ``samples`` ((frames,) or (frames, channels) in [-1, 1)) and measure the error.

    Uniform mode (``codec=None``): ``bits`` in 1..16 on the grid k·2^(1−N), round to nearest, saturating;
    ``dither`` "none" / "rpdf" / "tpdf" (non-subtractive, reproducible with ``seed``); ``shape`` a
    noise-shaping filter name or FIR (see :mod:`quantscope.signal.shaping`). Codec mode: ``codec`` one
    of "mulaw", "alaw", "adpcm" (8, 8, 4 bits; ``bits`` must be None or equal to that).
    """
    x = _frames(samples)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    dither = check_dither_kind(dither)
    saturated = 0
    h: tuple[float, ...] | None = None
    step: float | None = None
    model: float | None = None
    theory: float | None = None
    if codec is not None:
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS} or None, got {codec!r}")
        if bits is not None and bits != CODEC_BITS[codec]:
            raise ValueError(f"{codec} codes have {CODEC_BITS[codec]} bits per sample; got bits={bits} "
                             f"(leave bits unset with a codec)")
        if dither != "none" or shape is not None:
            raise ValueError("dither and noise shaping apply to the uniform quantizer; not with a codec")
        bits = CODEC_BITS[codec]
        y = np.column_stack([_codec(x[:, c], codec) for c in range(x.shape[1])])
        mode = {"mulaw": "G.711 μ-law (8 bit)", "alaw": "G.711 A-law (8 bit)", "adpcm": "IMA ADPCM (4 bit)"}[codec]
        out_bits = 16
    else:
        bits = check_bits(bits)
        step = adc_step(bits)
        theory = 20 * math.log10(2) * bits + 10 * math.log10(1.5)
        cols = []
        h = shaping_filter(shape) if shape is not None else None
        for c in range(x.shape[1]):
            ch_seed = None if seed is None else seed + c
            if h is not None:
                r = noise_shape(x[:, c], bits, list(h), dither=dither, seed=ch_seed)
                saturated += r.saturated
                cols.append(r.values)
            elif dither != "none":
                cols.append(dithered_quantize(x[:, c], bits, kind=dither, seed=ch_seed).values)
            else:
                cols.append(quantize_samples(x[:, c], bits)[1])
        y = np.column_stack(cols)
        if h is None:
            hi = 2 ** (bits - 1) - 1
            saturated = int(np.sum((x / step > hi + 0.5) | (x / step < -hi - 1.5)))  # beyond the top/bottom code
        model = error_moments(dither, False, step)[1] * (1 + sum(v * v for v in h) if h is not None else 1)
        names = [f"uniform {bits} bit"]
        if dither != "none":
            names.append(f"{dither.upper()} dither")
        if shape is not None:
            pretty = {"first": "first-order", "second": "second-order", "lipshitz": "Lipshitz",
                      "fweighted": "F-weighted"}
            names.append(f"{pretty.get(shape, 'custom') if isinstance(shape, str) else 'custom FIR'} noise shaping")
        mode = ", ".join(names)
        out_bits = next(b for b in (8, 16, 24, 32) if b >= bits)
    err = x - y
    s, note = sqnr(x, y)
    mse = float(np.mean(err * err))
    enob = None if s is None else enob_from_noise(mse, 1.0)
    lo, hi_f = band_hz
    hi_f = min(hi_f, sample_rate / 2)
    sig_b = sum(band_power(x[:, c], sample_rate, lo, hi_f) for c in range(x.shape[1]))
    noise_b = sum(band_power(err[:, c], sample_rate, lo, hi_f) for c in range(x.shape[1]))
    band = None if sig_b == 0 else (math.inf if noise_b == 0 else 10 * math.log10(sig_b / noise_b))
    return AudioQuantResult(mode, int(bits), int(sample_rate), int(x.shape[0]), int(x.shape[1]), s, note, enob,
                            theory, step, float(err.mean()), float(err.var()), model, float(np.abs(err).max()),
                            (float(lo), float(hi_f)), band, int(saturated), out_bits,
                            None if codec is not None or shape is None else tuple(h), x, y)


__all__ = ["AudioQuantResult", "CODECS", "CODEC_BITS", "quantize_audio"]
