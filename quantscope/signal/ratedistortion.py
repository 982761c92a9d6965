"""Rate-distortion view: sweep the bit width of any quantizer and set the measured distortion beside theory.

Generic on purpose: give a signal (or an image, any shape) and a function ``quantize(x, bits) -> x̂``;
each point records, at rate R = bits per sample,

* the measured MSE (and SQNR),
* the empirical entropy of the reconstructed values (the rate an ideal entropy coder would need),
* the uniform additive-noise model Δ²/12 when the quantizer's step Δ(bits) is known,
* Shannon's Gaussian rate-distortion function D(R) = σ²·2^(−2R) (``quantscope.error.theory``): no
  quantizer of a Gaussian source of variance σ² does better, and for any other source of the same
  variance D(R) is at most this (so beating it means the source is far from Gaussian, e.g. a sine or
  a picture with large flat areas).

At high rate a uniform quantizer's MSE sits on Δ²/12; followed by an ideal entropy coder it is
10·log10(πe/6) ≈ 1.53 dB above D(R) for a Gaussian source (the space-filling loss), while fixed-rate
uniform coding of a Gaussian loses more as R grows (its range must also cover the tails).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RDPoint:
    """One bit width: ``mse`` (units²), ``sqnr_db`` (None for an all-zero signal), ``entropy_bits`` (bits
    per sample of the reconstructed values), ``uniform_model_mse`` (Δ²/12 or None), ``gaussian_rd_mse``
    (σ²·2^(−2·bits)) and ``gap_to_rd_db`` = 10·log10(mse / gaussian_rd_mse)."""

    bits: int
    mse: float
    sqnr_db: float | None
    entropy_bits: float
    uniform_model_mse: float | None
    gaussian_rd_mse: float
    gap_to_rd_db: float


@dataclass(frozen=True)
class RDCurve:
    """A bits sweep of one quantizer on one signal (``variance`` σ² of the signal, ``n`` samples)."""

    name: str
    variance: float
    n: int
    points: tuple[RDPoint, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "variance": self.variance, "n": self.n, "points": [asdict(p) for p in self.points]}

    def rows(self) -> list[list[Any]]:
        """Table rows: bits, SQNR dB, MSE, Δ²/12, σ²·2^(−2R), gap to D(R) dB, entropy bits."""
        return [[p.bits, p.sqnr_db, p.mse, p.uniform_model_mse, p.gaussian_rd_mse, p.gap_to_rd_db, p.entropy_bits]
                for p in self.points]

    COLUMNS = ("bits", "SQNR dB", "MSE", "Δ²/12 model", "σ²·2^(-2R)", "gap to D(R) dB", "entropy bits")


def empirical_entropy(values: np.ndarray) -> float:
    """Entropy (bits per sample) of the distribution of distinct values in ``values``."""
    _, counts = np.unique(np.asarray(values).reshape(-1), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def rate_distortion_sweep(x: Any, quantize: Callable[[np.ndarray, int], Any], bits: Iterable[int] = range(1, 13),
                          step: Callable[[int], float] | None = None, name: str = "signal",
                          on_step: Callable[[str], None] | None = None) -> RDCurve:
    """Run ``quantize(x, b)`` for every ``b`` in ``bits`` and measure distortion against rate.

    ``x``: any array of real numbers (float64 internally; an image works as it is). ``quantize`` returns
    the reconstruction, same shape as x (any array type numpy can read). ``step(b)`` gives the step Δ
    for the Δ²/12 model (leave None for non-uniform quantizers). ``on_step(label)`` is called after
    each point (for a progress bar).
    """
    from ..error.theory import rate_distortion_mse

    if not callable(quantize):
        raise TypeError(f"quantize must be a function (x, bits) -> reconstruction, got {type(quantize).__name__}")
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.size == 0:
        raise ValueError("x is empty; there is nothing to quantize")
    if not np.isfinite(a).all():
        raise ValueError("x holds NaN or Inf values")
    bit_list = [int(b) for b in bits]
    if not bit_list:
        raise ValueError("bits is empty; give at least one bit width, e.g. range(1, 13)")
    var = float(a.var())
    power = float(np.mean(a * a))
    points = []
    for b in bit_list:
        xh = np.asarray(quantize(a, b), dtype=np.float64)
        if xh.shape != a.shape:
            raise ValueError(f"quantize(x, {b}) returned shape {xh.shape}, expected {a.shape}")
        mse = float(np.mean((a - xh) ** 2))
        sqnr = None if power == 0 else (math.inf if mse == 0 else 10 * math.log10(power / mse))
        rd = rate_distortion_mse(var, b)
        gap = (10 * math.log10(mse / rd) if mse > 0 else -math.inf) if rd > 0 else math.inf
        model = None if step is None else float(step(b)) ** 2 / 12
        points.append(RDPoint(b, mse, sqnr, empirical_entropy(xh), model, rd, gap))
        if on_step:
            on_step(f"{b} bits")
    return RDCurve(name, var, int(a.size), tuple(points))


def adc_quantizer(full_scale: float = 1.0, rounding: str = "nearest_even"
                  ) -> tuple[Callable[[np.ndarray, int], np.ndarray], Callable[[int], float]]:
    """(quantize, step) of the N-bit ADC grid over [-FS, FS), for :func:`rate_distortion_sweep`."""
    from .adc import adc_step, quantize_samples

    def quantize(x: np.ndarray, bits: int) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float64).reshape(-1)
        return quantize_samples(flat, bits, full_scale, rounding)[1].reshape(np.shape(x))

    return quantize, lambda bits: adc_step(bits, full_scale)


__all__ = ["RDCurve", "RDPoint", "adc_quantizer", "empirical_entropy", "rate_distortion_sweep"]
