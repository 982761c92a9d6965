"""Decomposition of the error into its kinds, and the comparison with theory."""

import math

import pytest
import torch

import quantscope as qs
from quantscope.error import theory
from tests.conftest import laplace


def test_shares_add_up():
    x = torch.randn(200, 64, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.1, 3, 64)
    for spec, cal in [(qs.QuantSpec(qs.int4(), granularity=qs.per_channel(1)), "percentile"),
                      (qs.QuantSpec(qs.fp8_e4m3()), "mse"), (qs.QuantSpec(qs.nf4()), "minmax"),
                      (qs.QuantSpec(qs.int8(), rounding="floor"), "mse"), (qs.QuantSpec(qs.mxfp4()), "minmax")]:
        r = qs.error(x, qs.quantize(x, spec, calibrator=cal), theory=False)
        d = r.decomposition
        assert d.clipping_share + d.granular_share == pytest.approx(1.0, abs=1e-9)
        assert d.clipping_mse + d.granular_mse == pytest.approx(r.mse, rel=1e-9)
        assert d.static_mse + d.dynamic_mse == pytest.approx(r.mse, rel=1e-9)
        assert 0 <= d.static_share <= 1 and 0 <= d.level_static_share <= 1 and 0 <= d.bias_share <= 1
        assert 0 < d.level_utilization <= 1 and 0 <= d.code_entropy_bits <= math.log2(d.levels_total) + 1e-9


def test_fine_uniform_quantizer_on_smooth_data_matches_delta_squared_over_twelve():
    t = torch.linspace(0, 1, 1_000_001)
    x = torch.sin(2 * math.pi * 3 * t) + 0.3 * torch.cos(2 * math.pi * 7 * t)  # smooth, busy signal
    q = qs.quantize(x, qs.integer(12), qparams=qs.QParams(2.0**-10))
    d = qs.error(x, q).decomposition
    assert d.granular_ratio == pytest.approx(1.0, abs=0.05)
    assert d.granular_mse == pytest.approx((2.0**-10) ** 2 / 12, rel=0.05) and d.clipping_mse == 0


def test_clipping_vs_granular_tells_too_narrow_from_too_coarse():
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(1))
    narrow = qs.error(x, qs.quantize(x, qs.int8(), qparams=qs.QParams(1.0 / 127)))  # clips at ±1
    wide = qs.error(x, qs.quantize(x, qs.int4(), calibrator="minmax"))
    assert narrow.clipping_share > 0.99 and narrow.clipped_fraction == pytest.approx(0.317, abs=0.01)
    assert wide.granular_share == 1.0 and wide.clipped_fraction == 0.0


def test_truncation_bias_and_static_error():
    x = torch.rand(100_000, generator=torch.Generator().manual_seed(2)) * 4 - 2
    step = 2.0**-4
    r = qs.error(x, qs.quantize(x, qs.QuantSpec(qs.int8(), rounding="floor"), qparams=qs.QParams(step)))
    d = r.decomposition
    assert r.mean == pytest.approx(step / 2, rel=0.02)  # floor: error uniform on [0, Δ)
    assert d.bias_share == pytest.approx(0.75, abs=0.02)  # (Δ/2)² / (Δ²/3)
    assert d.nearest_mse == pytest.approx(step**2 / 12, rel=0.02)
    assert d.granular_ratio == pytest.approx(1.0, abs=0.03)  # against Δ²/3 for floor
    assert d.static_share == pytest.approx(0.75, abs=0.02)  # one group: its mean error is the bias


def test_level_usage():
    x = torch.rand(200_000, generator=torch.Generator().manual_seed(3)) * 2 - 1
    d = qs.error(x, qs.quantize(x, qs.uint8(symmetric=False), qparams=qs.QParams(1 / 127.5, 128))).decomposition
    assert d.levels_total == 256 and d.levels_used >= 255
    assert d.code_entropy_bits == pytest.approx(8.0, abs=0.01)
    assert d.distinct_inputs_per_level == pytest.approx(torch.unique(x).numel() / d.levels_used)
    d = qs.error(x, qs.quantize(x, qs.int16())).decomposition
    assert d.level_utilization < 1 and d.levels_total == 65536


@pytest.mark.parametrize("distribution", ["gauss", "laplace"])
def test_theory_reports_the_distance_to_the_limits(distribution):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(400_000, generator=g) if distribution == "gauss" else laplace(400_000, seed=4)
    lloyd = qs.calibrate.LloydMaxCalibrator(3).update(x).codebook()
    t = qs.error(x, qs.quantize(x, lloyd)).theory
    assert t.distribution == distribution and t.levels == 8
    assert t.gap_to_lloyd_max_db == pytest.approx(0.0, abs=0.05)  # Lloyd-Max reaches its own limit
    assert t.gap_to_rate_distortion_db > 0  # no scalar quantizer reaches the R-D bound
    t = qs.error(x, qs.quantize(x, qs.int4(), calibrator="mse")).theory
    assert t.gap_to_optimal_uniform_db < 0.25  # int4 is midtread (-8..7), the optimum 16-level grid midrise


def test_theory_constants():
    assert theory.sine_sqnr_db(16) == pytest.approx(98.09, abs=0.01)
    assert theory.optimal_uniform_mse("gauss", 16) == pytest.approx(0.01154, rel=0.002)  # Max (1960)
    assert theory.lloyd_max_mse("gauss", 16) == pytest.approx(0.009497, rel=0.002)
    assert theory.lloyd_max_mse("laplace", 2) == pytest.approx(0.5, rel=1e-3)  # b² = 1/2 at unit variance
    assert theory.rate_distortion_mse(4.0, 2) == 0.25
    with pytest.raises(ValueError, match="distribution"):
        theory.optimal_uniform_mse("cauchy", 4)
