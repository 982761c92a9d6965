"""ADC simulation: SQNR of a full-scale sine against 6.02N + 1.76 dB, ENOB from the sine fit, rounding
and overflow modes through the core, sampling, error spectrum, bad input."""

import math

import numpy as np
import pytest

from quantscope.error.theory import sine_sqnr_db
from quantscope.signal.adc import adc, adc_step, quantize_samples, sample, sqnr
from quantscope.signal.spectrum import sine_fit

FS_HZ = 48_000.0
F_SINE = FS_HZ * 0.0762939453125 * 1.0123  # incommensurate with fs: the error is close to white
N_SAMPLES = 1 << 15


def full_scale_sine(bits: int, full_scale: float = 1.0):
    amp = full_scale - adc_step(bits, full_scale)  # the largest sine the two's-complement grid holds symmetrically
    return lambda t: amp * np.sin(2 * np.pi * F_SINE * t + 0.3)


@pytest.mark.parametrize("full_scale", [1.0, 2.5])
def test_full_scale_sine_sqnr_matches_602n_plus_176_within_02_db(full_scale):
    for bits in range(6, 17):
        r = adc(full_scale_sine(bits, full_scale), FS_HZ, bits, n_samples=N_SAMPLES, full_scale=full_scale)
        assert r.theory_sqnr_db == pytest.approx(6.0206 * bits + 1.7609, abs=1e-3)
        assert abs(r.sqnr_db - sine_sqnr_db(bits)) <= 0.2, (bits, r.sqnr_db)
        assert r.clipped_fraction == 0
        assert r.max_abs_error <= r.step / 2 + full_scale * 2.0**-24  # Δ/2 plus half a float32 ulp of x


def test_enob_from_sine_fit_is_n_bits():
    for bits in range(6, 17):
        r = adc(full_scale_sine(bits), FS_HZ, bits, n_samples=N_SAMPLES)
        assert r.enob_method.startswith("sine fit")
        assert r.sine_freq_hz == pytest.approx(F_SINE, rel=1e-7)
        assert abs(r.enob - bits) < 0.05, (bits, r.enob)
        # SINAD from the fit agrees with the SQNR against the known input
        assert r.sinad_db == pytest.approx(r.sqnr_db, abs=0.1)


def test_enob_from_noise_for_a_non_sine_signal():
    u = np.random.default_rng(0).uniform(-1, 1, 50_000)
    for bits in (4, 8, 12):
        x = u * (1 - adc_step(bits))  # inside the range: no saturation
        r = adc(x, FS_HZ, bits)
        assert r.clipped_fraction == 0
        assert r.enob_method.startswith("noise")
        assert abs(r.enob - bits) < 0.03
        assert r.error_var == pytest.approx(r.step**2 / 12, rel=0.03)
        assert abs(r.error_mean) < 4 * r.step / math.sqrt(12 * x.size)


def test_four_parameter_sine_fit_recovers_the_sine():
    n = np.arange(4096)
    x = 0.7 * np.cos(2 * np.pi * 0.0371 * n - 1.1) + 0.05
    fit = sine_fit(x, 1.0)
    assert fit.amplitude == pytest.approx(0.7, rel=1e-9)
    assert fit.freq_hz == pytest.approx(0.0371, rel=1e-9)
    assert fit.phase == pytest.approx(-1.1, abs=1e-7)
    assert fit.offset == pytest.approx(0.05, abs=1e-9)


def test_rounding_modes_come_from_the_core():
    x = np.random.default_rng(1).uniform(-0.9, 0.9, 40_000)
    step = adc_step(6)
    r = adc(x, FS_HZ, 6, rounding="floor")  # e = x - Q(x) in [0, Δ)
    assert r.error.min() >= 0 and r.error.max() < step
    assert r.error_var == pytest.approx(step**2 / 12, rel=0.05)
    r = adc(x, FS_HZ, 6, rounding="ceil")
    assert r.error.max() <= 0 and r.error.min() > -step
    r = adc(x, FS_HZ, 6, rounding="stochastic", seed=3)  # unbiased, E[e²] = Δ²/6 for a spread input
    assert abs(r.error_mean) < 4 * step / math.sqrt(6 * x.size)
    assert np.mean(r.error**2) == pytest.approx(step**2 / 6, rel=0.05)
    assert r.noise_model_var == pytest.approx(step**2 / 6)
    again = adc(x, FS_HZ, 6, rounding="stochastic", seed=3)
    assert np.array_equal(r.codes, again.codes)


def test_overflow_saturate_wrap_and_clip_level():
    x = np.array([0.0, 0.5, 1.2, -1.3])
    codes, values = quantize_samples(x, 4)  # Δ = 1/8, codes -8..7
    assert codes.tolist() == [0, 4, 7, -8]
    codes, _ = quantize_samples(x, 4, overflow="wrap")  # 1.2/Δ = 9.6 -> 10 -> 10 - 16 = -6
    assert codes.tolist() == [0, 4, -6, 6]  # -1.3/Δ = -10.4 -> -10 -> 6
    r = adc(x, FS_HZ, 4, clip_level=0.25)
    assert r.values.tolist() == [0.0, 0.25, 0.25, -0.25]
    assert r.clipped_fraction == 0.5


def test_one_bit_converter():
    codes, values = quantize_samples(np.array([-0.9, -0.4, 0.1, 0.9]), 1)  # Δ = FS: levels -1 and 0
    assert codes.tolist() == [-1, 0, 0, 0] and values.tolist() == [-1.0, 0.0, 0.0, 0.0]


def test_sampling_a_function_and_a_finely_sampled_array():
    f = lambda t: np.sin(2 * np.pi * 50 * t)  # noqa: E731
    direct = sample(f, 1000.0, n_samples=100)
    fine = f(np.arange(100_001) / 100_000.0)
    decimated = sample(fine, 1000.0, source_fs=100_000.0, n_samples=100)
    assert np.array_equal(direct, decimated)  # integer decimation reads the samples exactly
    between = sample(fine, 3000.0, source_fs=100_000.0, n_samples=200)  # 100/3 is not an integer: interpolated
    assert np.max(np.abs(between - f(np.arange(200) / 3000.0))) < 2e-5
    assert sample(f, 1000.0, duration=0.25).size == 250
    with pytest.raises(ValueError, match="source_fs"):
        sample(fine, 1000.0, n_samples=10)
    with pytest.raises(ValueError, match="past the end"):
        sample(fine, 1000.0, source_fs=100_000.0, n_samples=5000)


def test_error_spectrum_is_white_at_the_model_floor():
    x = np.random.default_rng(2).uniform(-0.9, 0.9, N_SAMPLES)  # a busy signal: white error
    r = adc(x, FS_HZ, 10)
    f, psd, floor = r.error_spectrum()
    assert floor == pytest.approx(r.step**2 / 12 / (FS_HZ / 2))
    # every Welch bin averages 15 segments (~30 degrees of freedom): median within 10% of the floor
    assert np.median(psd) == pytest.approx(floor, rel=0.1)
    assert np.percentile(psd, 99) < 2.5 * floor  # no spectral line sticks out
    assert psd.sum() * (f[1] - f[0]) == pytest.approx(np.mean(r.error**2), rel=0.05)


def test_all_silent_signal_has_undefined_sqnr():
    r = adc(np.zeros(1000), FS_HZ, 8)
    assert r.sqnr_db is None and "all zero" in r.sqnr_note
    assert r.enob is None
    assert sqnr(np.zeros(5), np.zeros(5)) == (None, "undefined: the signal is all zero")
    assert sqnr(np.ones(5), np.ones(5))[0] == math.inf


@pytest.mark.parametrize("bits", [0, 17, -3])
def test_bits_out_of_range(bits):
    with pytest.raises(ValueError, match="bits must be in 1..16"):
        adc(np.ones(10) * 0.1, FS_HZ, bits)


def test_bad_input_errors():
    with pytest.raises(TypeError, match="bits"):
        adc(np.ones(10) * 0.1, FS_HZ, 8.5)
    with pytest.raises(TypeError, match="bits"):
        adc(np.ones(10) * 0.1, FS_HZ, True)
    with pytest.raises(ValueError, match="empty"):
        adc(np.array([]), FS_HZ, 8)
    with pytest.raises(ValueError, match="NaN"):
        adc(np.array([0.1, np.nan]), FS_HZ, 8)
    with pytest.raises(ValueError, match="1-D"):
        adc(np.zeros((3, 2)), FS_HZ, 8)
    with pytest.raises(ValueError, match="fs"):
        adc(np.zeros(3), -1.0, 8)
    with pytest.raises(ValueError, match="full_scale"):
        adc(np.zeros(3), FS_HZ, 8, full_scale=0.0)
    with pytest.raises(ValueError, match="rounding"):
        adc(np.zeros(3), FS_HZ, 8, rounding="sideways")
