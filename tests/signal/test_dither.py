"""Dither: the error moments each kind guarantees, checked statistically with fixed seeds and tolerances of
5 standard errors for the sample size."""

import math

import numpy as np
import pytest

from quantscope.signal.adc import adc_step
from quantscope.signal.dither import dithered_quantize, error_moments

BITS = 8
STEP = adc_step(BITS)
N = 100_000
# constant inputs at several positions a inside one step: x = (k + a)·Δ
FRACTIONS = (-0.5, -0.3, 0.0, 0.1, 0.25, 0.4999)


def _level(a: float) -> np.ndarray:
    return np.full(N, (37 + a) * STEP)


def _mean_tol(e: np.ndarray) -> float:
    return 5 * max(float(e.std()), 1e-12) / math.sqrt(e.size)


def _var_tol(e: np.ndarray) -> float:
    return 5 * float(np.std((e - e.mean()) ** 2)) / math.sqrt(e.size) + 1e-18


@pytest.mark.parametrize("a", FRACTIONS)
def test_tpdf_error_mean_and_variance_do_not_depend_on_the_input(a):
    r = dithered_quantize(_level(a), BITS, kind="tpdf", seed=11)
    assert abs(r.error_mean) <= _mean_tol(r.error)
    assert abs(r.error_var - STEP**2 / 4) <= _var_tol(r.error)
    assert (r.theory_mean, r.theory_var) == (0.0, pytest.approx(STEP**2 / 4))


def test_tpdf_on_a_sine_total_error_variance_is_a_quarter_step_squared():
    t = np.arange(200_000) / 48_000
    x = 0.8 * np.sin(2 * np.pi * 997 * t)
    r = dithered_quantize(x, BITS, kind="tpdf", seed=5)
    assert abs(r.error_mean) <= _mean_tol(r.error)
    assert abs(r.error_var - STEP**2 / 4) <= _var_tol(r.error)
    assert abs(np.corrcoef(r.error, x)[0, 1]) < 5 / math.sqrt(x.size)  # uncorrelated with the signal
    # the error power is the same wherever the input sits in its step (no noise modulation)
    frac = x / STEP - np.round(x / STEP)
    for lo in (-0.5, -0.25, 0.0, 0.25):
        sel = (frac >= lo) & (frac < lo + 0.25)
        assert abs(np.mean(r.error[sel] ** 2) - STEP**2 / 4) <= _var_tol(r.error[sel])


@pytest.mark.parametrize("a", FRACTIONS)
def test_rpdf_mean_is_independent_but_variance_depends_on_the_input(a):
    r = dithered_quantize(_level(a), BITS, kind="rpdf", seed=7)
    assert abs(r.error_mean) <= _mean_tol(r.error) + 1e-12
    expected = STEP**2 * abs(a) * (1 - abs(a))  # 0 on a level, Δ²/4 half way
    assert error_moments("rpdf", False, STEP, a)[1] == pytest.approx(expected)
    assert abs(r.error_var - expected) <= _var_tol(r.error) + 1e-12


@pytest.mark.parametrize("a", FRACTIONS)
def test_subtractive_dither_error_is_uniform_with_variance_step_squared_over_12(a):
    from scipy.stats import kstest

    r = dithered_quantize(_level(a), BITS, kind="rpdf", subtractive=True, seed=3)
    assert np.max(np.abs(r.error)) <= STEP / 2 * (1 + 1e-6)
    assert abs(r.error_mean) <= _mean_tol(r.error)
    assert abs(r.error_var - STEP**2 / 12) <= _var_tol(r.error)
    assert kstest(r.error[:20_000] / STEP, "uniform", args=(-0.5, 1.0)).pvalue > 1e-3


@pytest.mark.parametrize("a", (-0.3, 0.1, 0.25))
def test_without_dither_the_error_is_deterministic(a):
    r = dithered_quantize(_level(a), BITS, kind="none")
    assert r.error_var == pytest.approx(0.0, abs=1e-20)
    assert r.error_mean == pytest.approx(error_moments("none", False, STEP, a)[0], abs=STEP * 1e-5)


def test_dither_is_reproducible_with_a_seed():
    x = np.linspace(-0.5, 0.5, 1000)
    a = dithered_quantize(x, BITS, kind="tpdf", seed=1)
    b = dithered_quantize(x, BITS, kind="tpdf", seed=1)
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.dither, b.dither)
    assert np.max(np.abs(a.dither)) <= STEP  # TPDF lives on (-Δ, Δ)


def test_bad_arguments():
    with pytest.raises(ValueError, match="dither must be one of"):
        dithered_quantize(np.zeros(4), BITS, kind="gaussian")
    with pytest.raises(TypeError, match="subtractive"):
        dithered_quantize(np.zeros(4), BITS, subtractive="yes")
    with pytest.raises(ValueError, match="bits must be in"):
        dithered_quantize(np.zeros(4), 0)
    with pytest.raises(ValueError, match="empty"):
        dithered_quantize(np.zeros(0), BITS)
