"""Rate-distortion sweeps: the Δ²/12 model, Shannon's bound for a Gaussian source, the 1.53 dB
space-filling gap of entropy-coded uniform quantization, and a user quantizer (the image path)."""

import math

import numpy as np
import pytest

from quantscope.signal.ratedistortion import adc_quantizer, empirical_entropy, rate_distortion_sweep


def test_uniform_source_sits_on_the_step_squared_over_12_model():
    x = np.random.default_rng(0).uniform(-0.9, 0.9, 200_000)  # inside the range: no saturation
    quant, step = adc_quantizer(1.0)
    curve = rate_distortion_sweep(x, quant, range(4, 13), step=step, name="uniform")
    for p in curve.points:
        assert p.uniform_model_mse == pytest.approx((2 / 2**p.bits) ** 2 / 12)
        assert p.mse == pytest.approx(p.uniform_model_mse, rel=0.05)
        assert p.entropy_bits == pytest.approx(p.bits + math.log2(0.9), abs=0.05)  # 90% of the levels, equally
        assert p.sqnr_db == pytest.approx(10 * math.log10(np.mean(x**2) / p.mse))


def test_no_quantizer_beats_the_gaussian_rate_distortion_bound():
    sigma = 0.1
    x = np.random.default_rng(1).normal(0, sigma, 200_000)
    quant, step = adc_quantizer(1.0)
    curve = rate_distortion_sweep(x, quant, range(1, 13), step=step)
    assert curve.variance == pytest.approx(sigma**2, rel=0.01)
    for p in curve.points:
        assert p.gaussian_rd_mse == pytest.approx(curve.variance * 2.0 ** (-2 * p.bits))
        assert p.mse >= p.gaussian_rd_mse  # at the fixed rate
        assert p.mse >= curve.variance * 2.0 ** (-2 * p.entropy_bits)  # and at the entropy-coded rate
        assert p.gap_to_rd_db == pytest.approx(10 * math.log10(p.mse / p.gaussian_rd_mse))
    # high rate: uniform quantization + ideal entropy coding is 10·log10(πe/6) = 1.53 dB above D(R)
    for p in curve.points:
        if 8 <= p.bits <= 10:
            gap = 10 * math.log10(p.mse / (curve.variance * 2.0 ** (-2 * p.entropy_bits)))
            assert gap == pytest.approx(10 * math.log10(math.pi * math.e / 6), abs=0.15)


def test_a_user_quantizer_on_an_image():
    img = np.random.default_rng(2).integers(0, 256, (64, 48)).astype(np.float64)

    def requantize(x, bits):  # keep the top `bits` bits of 8-bit pixels, reconstruct at mid-bin
        width = 2 ** (8 - bits)
        return np.floor(x / width) * width + (width - 1) / 2

    calls = []
    curve = rate_distortion_sweep(img, requantize, range(1, 9), step=lambda b: 2.0 ** (8 - b), name="image",
                                  on_step=calls.append)
    assert len(calls) == 8 and curve.n == img.size
    last = curve.points[-1]
    assert last.mse == 0 and last.sqnr_db == math.inf  # 8 bits of 8-bit pixels: lossless
    for p in curve.points[:5]:
        assert p.mse == pytest.approx(p.uniform_model_mse, rel=0.1)
    assert curve.to_dict()["points"][0]["bits"] == 1
    assert len(curve.rows()[0]) == len(curve.COLUMNS)


def test_entropy_and_silent_signal():
    assert empirical_entropy(np.array([1, 1, 2, 2])) == pytest.approx(1.0)
    assert empirical_entropy(np.zeros(10)) == 0.0
    quant, step = adc_quantizer()
    curve = rate_distortion_sweep(np.zeros(100), quant, [4], step=step)
    assert curve.points[0].sqnr_db is None and curve.points[0].mse == 0


def test_bad_arguments():
    quant, _ = adc_quantizer()
    with pytest.raises(ValueError, match="empty"):
        rate_distortion_sweep(np.array([]), quant)
    with pytest.raises(TypeError, match="quantize must be a function"):
        rate_distortion_sweep(np.ones(4), "round")
    with pytest.raises(ValueError, match="returned shape"):
        rate_distortion_sweep(np.ones(4) * 0.1, lambda x, b: x[:2], [4])
    with pytest.raises(ValueError, match="bits is empty"):
        rate_distortion_sweep(np.ones(4), quant, [])
    with pytest.raises(ValueError, match="NaN"):
        rate_distortion_sweep(np.array([np.nan]), quant)
