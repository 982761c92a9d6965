"""What theory says the error should be.

* Additive-noise model: a uniform quantizer with step Δ adds noise of variance Δ²/12 (round to
  nearest), Δ²/3 (floor, ceil, toward zero: the error is uniform on [0, Δ)) or Δ²/6 (stochastic).
* Full-scale sine wave, N bits: SQNR = 6.02·N + 1.76 dB.
* For Gaussian and Laplace sources at R bits (2^R levels): the MSE of the best *uniform* quantizer,
  of the best quantizer of all (Lloyd-Max), and Shannon's rate-distortion bound σ²·2^(-2R), which
  no scalar or vector quantizer beats for a Gaussian source.

The optimal-quantizer MSEs are computed numerically (dense quadrature of the unit density, cached)
and reproduce Max (1960): 0.3634, 0.1175, 0.03454, 0.009497 for a unit Gaussian at 1-4 bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

DISTRIBUTIONS = ("gauss", "laplace")
_GRID = 100_001
LLOYD_MAX_LEVELS = 4096  # above this, the Panter-Dite high-rate formula


def sine_sqnr_db(bits: float) -> float:
    """SQNR of a full-scale sine quantized at ``bits`` bits: 6.02·N + 1.76 dB."""
    return 20 * math.log10(2) * bits + 10 * math.log10(1.5)


def noise_factor(rounding: str) -> float:
    """E[e²] / Δ² of the additive-noise model for a rounding mode."""
    if rounding in ("nearest_even", "nearest_away"):
        return 1 / 12
    if rounding == "stochastic":
        return 1 / 6
    return 1 / 3


@lru_cache(maxsize=8)
def _unit_density(distribution: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid and weights (density x spacing) of the unit-variance distribution."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    x = torch.linspace(-16, 16, _GRID, dtype=torch.float64)
    if distribution == "gauss":
        pdf = torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    else:
        b = 1 / math.sqrt(2)  # unit variance
        pdf = torch.exp(-x.abs() / b) / (2 * b)
    return x, pdf * (x[1] - x[0])


def _mse_of(levels: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> float:
    mids = (levels[1:] + levels[:-1]) / 2
    q = levels[torch.bucketize(x, mids)]
    return float(((x - q) ** 2 * w).sum())


@lru_cache(maxsize=64)
def optimal_uniform_mse(distribution: str, n_levels: int) -> float:
    """MSE of the best symmetric uniform (midrise for even counts) quantizer, unit variance."""
    x, w = _unit_density(distribution)
    k = torch.arange(n_levels, dtype=torch.float64) - (n_levels - 1) / 2
    best = math.inf
    lo, hi = 1e-4, 16.0 / max(n_levels - 1, 1) * 2
    for _ in range(4):  # grid search, then zoom in
        steps = torch.linspace(lo, hi, 60, dtype=torch.float64)
        errs = [_mse_of(k * s, x, w) for s in steps]
        i = min(range(len(errs)), key=errs.__getitem__)
        best = min(best, errs[i])
        lo, hi = float(steps[max(i - 1, 0)]), float(steps[min(i + 1, len(steps) - 1)])
    return best


# Panter-Dite: D ~ (1/12)·(∫ p(x)^(1/3) dx)^3 · N^-2 for N levels (unit variance)
PANTER_DITE = {"gauss": math.sqrt(3) * math.pi / 2, "laplace": 4.5}


@lru_cache(maxsize=64)
def lloyd_max_mse(distribution: str, n_levels: int) -> float:
    """MSE of the Lloyd-Max (optimal) quantizer with ``n_levels`` levels, unit variance.

    Lloyd iterations on the density, started from the asymptotically optimal point density
    (quantiles of p^(1/3)) so that they converge in a few hundred steps; Panter-Dite above 4096 levels.
    """
    if n_levels > LLOYD_MAX_LEVELS:
        _unit_density(distribution)  # validates the name
        return PANTER_DITE[distribution] / n_levels**2
    from ..calibrate.lloyd import lloyd_max

    x, w = _unit_density(distribution)
    companded = (w / w.sum()) ** (1 / 3)
    cdf = companded.cumsum(0) / companded.sum()
    q = (torch.arange(n_levels, dtype=torch.float64) + 0.5) / n_levels
    init = x[torch.searchsorted(cdf, q).clamp(max=x.numel() - 1)]
    _, mse = lloyd_max(x, w, n_levels, iters=1500, tol=1e-12, init=init)
    return mse


def rate_distortion_mse(variance: float, rate_bits: float) -> float:
    """σ²·2^(-2R): the Gaussian rate-distortion function (an upper bound on D(R) of any source)."""
    return variance * 2.0 ** (-2 * rate_bits)


def fit_distribution(x: torch.Tensor) -> tuple[str, float, float]:
    """('gauss' or 'laplace', mean, std): Laplace when the excess kurtosis says so (kurtosis > 4.5)."""
    x = x.to(torch.float64).reshape(-1)
    mean, std = float(x.mean()), float(x.std())
    if std == 0:
        return "gauss", mean, 0.0
    kurtosis = float((((x - mean) / std) ** 4).mean())
    return ("laplace" if kurtosis > 4.5 else "gauss"), mean, std


@dataclass(frozen=True)
class TheoryCheck:
    """How the measured MSE compares with the limits for the data's fitted distribution at this rate.

    Gaps are in dB (measured over reference): 0 dB means the limit is reached.
    """

    distribution: str
    sigma: float
    rate_bits: float
    levels: int
    optimal_uniform_mse: float
    lloyd_max_mse: float
    rate_distortion_mse: float
    gap_to_optimal_uniform_db: float
    gap_to_lloyd_max_db: float
    gap_to_rate_distortion_db: float


def theory_check(x: torch.Tensor, mse: float, levels: int) -> TheoryCheck:
    """Fit Gauss or Laplace to ``x`` and compare ``mse`` at ``levels`` levels (R = log2 levels)."""
    distribution, _, std = fit_distribution(x)
    var = std * std
    uniform = optimal_uniform_mse(distribution, levels) * var
    lloyd = lloyd_max_mse(distribution, levels) * var
    rate = math.log2(levels)
    rd = rate_distortion_mse(var, rate)

    def gap(ref: float) -> float:
        if mse == 0:
            return -math.inf
        return 10 * math.log10(mse / ref) if ref > 0 else math.inf

    return TheoryCheck(distribution, std, rate, levels, uniform, lloyd, rd, gap(uniform), gap(lloyd), gap(rd))
