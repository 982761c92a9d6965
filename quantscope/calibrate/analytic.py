"""ACIQ: analytic clipping from a fitted Gaussian or Laplace model (Banner et al., 2019).

The data's mean, standard deviation σ, mean absolute deviation b and kurtosis come from the streaming
sketch. With M bits the expected MSE of clipping at ±α around the mean is modelled as

    Laplace(b):  2·b²·exp(-α/b)                                  + α² / (3·4^M)
    Gauss(σ):    2·[(α²+σ²)·Q(α/σ) - α·σ·φ(α/σ)]                 + α² / (3·4^M)

(clipping noise + uniform granular noise Δ²/12 with Δ = 2α / 2^M), minimized over α numerically.
``distribution="auto"`` picks Laplace when the kurtosis exceeds 4.5 (Gauss: 3, Laplace: 6).
"""

from __future__ import annotations

import math

import torch

from ..core.formats import IntFormat
from ..core.spec import QuantSpec, as_spec
from .histogram import HistogramCalibrator
from .sketch import DEFAULT_RAW_LIMIT

DISTRIBUTIONS = ("auto", "gauss", "laplace")


def _phi(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _upper_tail(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(z / math.sqrt(2))


def gauss_clip_mse(alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """E[(|x| - α)² ; |x| > α] for x ~ N(0, σ²)."""
    z = alpha / sigma
    return 2 * ((alpha**2 + sigma**2) * _upper_tail(z) - alpha * sigma * _phi(z))


def laplace_clip_mse(alpha: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """E[(|x| - α)² ; |x| > α] for x ~ Laplace(0, b)."""
    return 2 * b**2 * torch.exp(-alpha / b)


def _model_mse(alpha: torch.Tensor, scale: torch.Tensor, bits: float, distribution: str) -> torch.Tensor:
    clip = gauss_clip_mse(alpha, scale) if distribution == "gauss" else laplace_clip_mse(alpha, scale)
    return clip + alpha**2 / (3 * 4.0**bits)


def optimal_alpha(scale: torch.Tensor, bits: float, distribution: str, grid: int = 256) -> torch.Tensor:
    """α minimizing clipping + granular MSE for σ (gauss) or b (laplace) per group: a grid over
    (0, 40·scale], then a second grid between the best point's neighbours (relative error ~ 1e-5)."""
    lo = torch.zeros_like(scale)
    hi = 40 * scale
    for _ in range(2):
        t = lo[None] + (hi - lo)[None] * torch.linspace(0.0, 1.0, grid + 1, dtype=torch.float64)[1:, None]
        best = _model_mse(t, scale[None], bits, distribution).argmin(dim=0)
        step = (hi - lo) / grid
        center = t.gather(0, best[None]).squeeze(0)
        lo, hi = (center - step).clamp_min(1e-30 * scale), center + step
    return (lo + hi) / 2


def effective_bits(spec: QuantSpec) -> float:
    fmt = spec.format
    if isinstance(fmt, IntFormat):
        return math.log2(fmt.qmax - fmt.qmin + 1)
    return float(fmt.bits)


class ACIQCalibrator(HistogramCalibrator):
    """Analytic clipping: fit Gauss or Laplace, clip at the α that minimizes the modelled MSE."""

    def __init__(self, spec: QuantSpec, distribution: str = "auto", bins: int | None = None,
                 raw_limit: int = DEFAULT_RAW_LIMIT) -> None:
        super().__init__(spec, bins, raw_limit)
        self.distribution = distribution

    def _range(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")
        mu, sigma, b, kurtosis = self.hist_.moments()
        sigma, b = sigma.clamp_min(1e-30), b.clamp_min(1e-30)
        bits = effective_bits(as_spec(self.spec))
        a_gauss = optimal_alpha(sigma, bits, "gauss")
        a_laplace = optimal_alpha(b, bits, "laplace")
        if self.distribution == "gauss":
            alpha = a_gauss
        elif self.distribution == "laplace":
            alpha = a_laplace
        else:
            alpha = torch.where(kurtosis > 4.5, a_laplace, a_gauss)
        self.kurtosis_ = kurtosis
        return mu - alpha, mu + alpha
