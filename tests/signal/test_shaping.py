"""Error-feedback noise shaping: in-band noise reduction on an oversampled sine against the white-noise
model, the shaped spectrum against |NTF|², stability (the bound holds, nothing blows up)."""

import math

import numpy as np
import pytest

from quantscope.signal.adc import quantize_samples
from quantscope.signal.shaping import (
    SHAPING_FILTERS,
    inband_noise_gain,
    noise_shape,
    noise_transfer,
    shaping_filter,
)
from quantscope.signal.spectrum import band_power, power_spectrum

FS = 48_000.0
OSR = 16
N = 1 << 16
BITS = 8


def _oversampled_sine(amp: float = 0.5) -> np.ndarray:
    t = np.arange(N) / FS
    return amp * np.sin(2 * np.pi * (FS / (2 * OSR)) * 0.37 * t + 0.2)


def _inband(e: np.ndarray) -> float:
    return band_power(e, FS, 0.0, FS / (2 * OSR))


def test_theory_of_the_classic_filters():
    # first order: (2M/π)(π/M − sin(π/M)) ≈ π²/(3M²); second order ≈ π⁴/(5M⁴)
    m = OSR
    assert inband_noise_gain(SHAPING_FILTERS["first"], m) == pytest.approx(2 * m / math.pi * (math.pi / m - math.sin(
        math.pi / m)), rel=1e-6)
    assert inband_noise_gain(SHAPING_FILTERS["second"], m) == pytest.approx(math.pi**4 / (5 * m**4), rel=0.02)
    assert inband_noise_gain([0.0], m) == pytest.approx(1.0)


@pytest.mark.parametrize("name,min_db", [("first", 17.0), ("second", 33.0), ("lipshitz", 15.0), ("fweighted", 11.0)])
@pytest.mark.parametrize("dither", ["none", "tpdf"])
def test_inband_noise_reduction_on_an_oversampled_sine(name, min_db, dither):
    """In-band noise drops by at least ``min_db`` against the same quantizer without feedback, and within
    1 dB of the white-noise prediction (OSR 16: first −18.9 dB, second −35.3, Lipshitz −16.2, F-weighted −12.8)."""
    x = _oversampled_sine()
    plain = noise_shape(x, BITS, [0.0], dither=dither, seed=4)
    shaped = noise_shape(x, BITS, name, dither=dither, seed=4)
    gain_db = 10 * math.log10(_inband(shaped.error) / _inband(plain.error))
    predicted_db = 10 * math.log10(inband_noise_gain(shaping_filter(name), OSR))
    assert gain_db <= -min_db, gain_db
    assert abs(gain_db - predicted_db) <= 1.0, (gain_db, predicted_db)
    assert shaped.saturated == 0
    assert shaped.max_abs_error <= shaped.error_bound  # stable: the FIR feedback of a bounded error


def test_no_feedback_equals_plain_rounding_through_the_core():
    x = _oversampled_sine(0.77)
    r = noise_shape(x, BITS, [0.0])
    codes, _ = quantize_samples(x, BITS)
    assert np.array_equal(r.codes, codes)


def test_shaped_spectrum_follows_the_noise_transfer_function():
    x = _oversampled_sine()
    r = noise_shape(x, BITS, "second", dither="tpdf", seed=9)
    f, psd = power_spectrum(r.error, FS)
    white = np.var(r.quantizer_error) / (FS / 2)
    assert np.var(r.quantizer_error) == pytest.approx((2 / 2**BITS) ** 2 / 4, rel=0.03)  # TPDF: Δ²/4
    theory = white * noise_transfer(r.filter, f, FS)
    sel = f > FS / 8  # where the shaped noise is far above numerical noise
    ratio = psd[sel] / theory[sel]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)


def test_user_fir_and_stability_near_full_scale():
    h = [1.5, -0.6]
    bound_margin = (2 / 2**BITS) * (1 + sum(abs(v) for v in h))  # Δ/2·(1+Σ|h|) plus room for the top code
    x = _oversampled_sine(1.0 - bound_margin)
    r = noise_shape(x, BITS, h)
    assert r.saturated == 0 and r.max_abs_error <= r.error_bound



@pytest.mark.parametrize("name", sorted(SHAPING_FILTERS))
def test_the_loop_recovers_after_an_overload_burst(name):
    """A burst of overload (amplitude 1.4 for 2000 samples) saturates the quantizer; 100 samples after the
    burst every error is back inside the no-saturation bound (no limit cycle, no blow-up)."""
    x = _oversampled_sine(0.4)[:8000].copy()
    x[3000:5000] *= 3.5
    r = noise_shape(x, BITS, name)
    assert r.saturated > 0
    assert np.max(np.abs(r.error[5100:])) <= r.error_bound
    assert _inband(r.error[5100:]) < _inband(noise_shape(x[5100:], BITS, [0.0]).error)


def test_bad_filters():
    with pytest.raises(ValueError, match="unknown noise-shaping filter"):
        noise_shape(np.zeros(4), BITS, "ninth")
    with pytest.raises(ValueError, match="finite"):
        noise_shape(np.zeros(4), BITS, [1.0, float("nan")])
    with pytest.raises(ValueError, match="non-empty"):
        noise_shape(np.zeros(4), BITS, [])
    with pytest.raises(TypeError, match="filter must be"):
        noise_shape(np.zeros(4), BITS, 3)
    with pytest.raises(ValueError, match="osr"):
        inband_noise_gain([1.0], 0.5)
