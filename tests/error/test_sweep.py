import pytest
import torch

import quantscope as qs
from quantscope.error.sweep import calibration_uncertainty, sweep_bits, sweep_clipping, with_bits


def test_bit_sweep_gains_six_db_per_bit():
    x = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    pts = sweep_bits(x, qs.int8(), bits=range(4, 11), calibrator="mse")
    gains = [b.sqnr_db - a.sqnr_db for a, b in zip(pts, pts[1:], strict=False)]
    assert all(4.5 < g < 6.6 for g in gains), gains
    assert [p.value for p in pts] == list(range(4, 11))
    fixed = sweep_bits(x, qs.fixed(m=3, n=4), bits=[8, 10])
    assert fixed[1].sqnr_db > fixed[0].sqnr_db + 10


def test_with_bits_rejects_non_integer_formats():
    with pytest.raises(ValueError, match="make_spec"):
        with_bits(qs.QuantSpec(qs.fp8_e4m3()), 4)


def test_clipping_sweep_finds_the_clipping_tradeoff():
    x = torch.randn(200_000, generator=torch.Generator().manual_seed(1))
    pts = sweep_clipping(x, qs.int4())
    best = max(pts, key=lambda p: p.sqnr_db)
    assert 0.4 < best.value < 0.75  # a Gaussian's optimal 4-bit range is well inside its min-max range
    assert pts[-1].clipping_share == 0 and pts[0].clipping_share > 0.9
    mse = qs.error(x, qs.quantize(x, qs.int4(), calibrator="mse"), theory=False).sqnr_db
    assert mse >= best.sqnr_db - 0.05  # the MSE calibrator finds the optimum the sweep shows


def test_calibration_uncertainty_narrows_with_more_data():
    x = torch.randn(8192, 16, generator=torch.Generator().manual_seed(2))
    spec = qs.QuantSpec(qs.int8(), granularity=qs.per_channel(1))
    pts = calibration_uncertainty(x, spec, calibrator="percentile", sizes=[32, 512, 8192], n_boot=12)
    widths = [p.sqnr_db_hi - p.sqnr_db_lo for p in pts]
    assert widths[0] > widths[-1]
    assert pts[-1].scale_ratio_mean == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match="per-tensor or per-channel"):
        calibration_uncertainty(x, qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0)))
