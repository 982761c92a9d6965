"""Companding: logarithmic quantizers that keep the SQNR roughly constant over a wide range of levels.

G.711 (ITU-T, 1972), bit-exact with the classic Sun reference code that Python's ``audioop`` uses:

μ-law  16-bit PCM → 14 bits (arithmetic shift by 2) → magnitude clipped to 8159, biased by 33, 8 segments
       of 16 steps each (step doubling per segment), all bits inverted. Code 0xFF/0x7F decode to 0.
A-law  16-bit PCM → 13 bits (shift by 3); segment 0 and 1 share step 2 (in 13-bit units), then doubling;
       even bits inverted (XOR 0x55). There is no exact zero: the smallest levels are ±8 (16-bit units).

Both map 16-bit PCM to 8-bit codes; relative error is bounded by about half a segment's step ratio, i.e.
SQNR ≈ 38 dB for a full-scale sine (vs 50 dB for uniform 8 bits) and stays near it over a ~40 dB range
of levels where uniform 8-bit coding loses 6 dB per halving.

Also the continuous companding curves (μ = 255, A = 87.6) for float signals in [-1, 1], with
:func:`companded_quantize` quantizing uniformly in the companded domain.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

LAWS = ("mulaw", "alaw")
_SEG_U_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_A_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159


def _pcm16(x: Any, name: str = "pcm") -> np.ndarray:
    """``x`` as an int32 array of 16-bit PCM values, else a clear error."""
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer 16-bit PCM samples (-32768..32767), got dtype {a.dtype}; "
                        f"convert floats with np.round(x * 32768) first")
    a = a.astype(np.int64)
    if a.size and (a.min() < -32768 or a.max() > 32767):
        raise ValueError(f"{name} must lie in -32768..32767 (16-bit PCM), got range [{a.min()}, {a.max()}]")
    return a.astype(np.int32)


def _codes8(c: Any, name: str = "codes") -> np.ndarray:
    a = np.asarray(c)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer 8-bit codes (0..255), got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError(f"{name} must lie in 0..255, got range [{a.min()}, {a.max()}]")
    return a.astype(np.int32)


def ulaw_encode(pcm: Any) -> np.ndarray:
    """G.711 μ-law codes (uint8) of 16-bit PCM samples; equals ``audioop.lin2ulaw(..., 2)``."""
    v = _pcm16(pcm) >> 2  # 14-bit
    mask = np.where(v < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(v), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_SEG_U_END, mag, side="left")
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF))
    return (code ^ mask).astype(np.uint8)


def ulaw_decode(codes: Any) -> np.ndarray:
    """16-bit PCM (int16) of G.711 μ-law codes; equals ``audioop.ulaw2lin(..., 2)``."""
    u = ~_codes8(codes) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def alaw_encode(pcm: Any) -> np.ndarray:
    """G.711 A-law codes (uint8) of 16-bit PCM samples; equals ``audioop.lin2alaw(..., 2)``."""
    v = _pcm16(pcm) >> 3  # 13-bit
    neg = v < 0
    mask = np.where(neg, 0x55, 0xD5)
    mag = np.where(neg, -v - 1, v)
    seg = np.searchsorted(_SEG_A_END, mag, side="left")
    s = np.minimum(seg, 7)
    quant = np.where(s < 2, mag >> 1, mag >> s) & 0x0F
    code = np.where(seg >= 8, 0x7F, (s << 4) | quant)
    return (code ^ mask).astype(np.uint8)


def alaw_decode(codes: Any) -> np.ndarray:
    """16-bit PCM (int16) of G.711 A-law codes; equals ``audioop.alaw2lin(..., 2)``."""
    a = _codes8(codes) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def check_law(law: Any) -> str:
    if not isinstance(law, str) or law.lower().replace("-", "").replace("_", "") not in LAWS:
        raise ValueError(f"law must be one of {LAWS}, got {law!r}")
    return law.lower().replace("-", "").replace("_", "")


def g711_roundtrip(pcm: Any, law: str) -> tuple[np.ndarray, np.ndarray]:
    """(8-bit codes, decoded 16-bit PCM) of 16-bit PCM through G.711 ``law`` ("mulaw" or "alaw")."""
    law = check_law(law)
    if law == "mulaw":
        c = ulaw_encode(pcm)
        return c, ulaw_decode(c)
    c = alaw_encode(pcm)
    return c, alaw_decode(c)


# ---------------------------------------------------------------------------- continuous companding curves
def compress(x: Any, law: str = "mulaw", mu: float = 255.0, a: float = 87.6) -> np.ndarray:
    """The companding curve F(x) for x in [-1, 1]: μ-law sgn(x)·ln(1+μ|x|)/ln(1+μ); A-law
    sgn(x)·A|x|/(1+ln A) below 1/A, sgn(x)·(1+ln(A|x|))/(1+ln A) above."""
    law = check_law(law)
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    m = np.abs(x)
    if law == "mulaw":
        y = np.log1p(mu * m) / math.log1p(mu)
    else:
        small = m < 1 / a
        y = np.where(small, a * m, 1 + np.log(np.maximum(a * m, 1e-300))) / (1 + math.log(a))
    return np.sign(x) * y


def expand(y: Any, law: str = "mulaw", mu: float = 255.0, a: float = 87.6) -> np.ndarray:
    """Inverse of :func:`compress`."""
    law = check_law(law)
    y = np.clip(np.asarray(y, dtype=np.float64), -1.0, 1.0)
    m = np.abs(y)
    if law == "mulaw":
        x = np.expm1(m * math.log1p(mu)) / mu
    else:
        t = m * (1 + math.log(a))
        x = np.where(t < 1, t / a, np.exp(t - 1) / a)
    return np.sign(y) * x


def companded_quantize(x: Any, bits: int, law: str = "mulaw", mu: float = 255.0, a: float = 87.6) -> np.ndarray:
    """Compress, quantize uniformly to ``bits`` bits on [-1, 1) (the ADC grid, round to nearest), expand.

    A float model of G.711 (which is a piecewise-linear approximation of the μ = 255 / A = 87.6 curves).
    """
    from .adc import as_signal, quantize_samples

    x = as_signal(x, "x")
    _, yq = quantize_samples(compress(x, law, mu, a), bits)
    return expand(yq, law, mu, a)


__all__ = ["LAWS", "alaw_decode", "alaw_encode", "check_law", "companded_quantize", "compress", "expand",
           "g711_roundtrip", "ulaw_decode", "ulaw_encode"]
