import math

import numpy as np
import pytest
import torch

import quantscope as qs


def test_metrics_match_hand_computation():
    x = np.array([1.0, -2.0, 3.0, 0.5], dtype=np.float32)
    xh = np.array([1.1, -2.0, 2.5, 0.5], dtype=np.float32)
    r = qs.error(x, xh)
    e = x.astype(np.float64) - xh.astype(np.float64)
    assert r.mse == pytest.approx(np.mean(e**2))
    assert r.rmse == pytest.approx(math.sqrt(np.mean(e**2)))
    assert r.max_abs == pytest.approx(0.5)
    assert r.mean == pytest.approx(np.mean(e))
    assert r.sqnr_db == pytest.approx(10 * math.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(e**2)))
    assert r.bound is None and r.n == 4
    assert qs.error(x, x).sqnr_db == math.inf


def test_uniform_noise_matches_delta_squared_over_twelve_and_6db_per_bit():
    """Uniform input over the whole grid, round to nearest: MSE -> Δ²/12, SQNR -> 6.02·N dB."""
    g = torch.Generator().manual_seed(0)
    for bits in (4, 6, 8, 10):
        step = 1.0 / 2 ** (bits - 1)
        x = torch.rand(2_000_000, generator=g) * (2 - step) - 1  # [-1, 1 - step]: no clipping
        q = qs.quantize(x, qs.integer(bits), qparams=qs.QParams(step))
        r = qs.error(x, q)
        assert r.mse == pytest.approx(step**2 / 12, rel=0.01)
        assert r.sqnr_db == pytest.approx(10 * math.log10(r.signal_power / (step**2 / 12)), abs=0.05)
        if bits >= 8:
            assert r.sqnr_db == pytest.approx(6.0206 * bits, abs=0.05)
        assert r.bound == pytest.approx(step / 2) and r.bound_holds and abs(r.mean) < step / 100
        assert r.clipped_fraction == 0.0


def test_bound_and_clipping_share_reported():
    x = torch.linspace(-2, 2, 4001)
    q = qs.quantize(x, qs.int8(), qparams=qs.QParams(1 / 127))  # range [-128/127, 1]: half is clipped
    r = qs.error(x, q)
    assert r.bound_holds and r.clipped_fraction == pytest.approx(0.5, abs=0.01)
    assert r.max_abs > 0.9  # clipped elements are measured but not covered by the bound
    for fmt in (qs.fp8_e4m3(), qs.nf4(), qs.mxfp4(), qs.fixed(m=1, n=6)):
        r = qs.error(x, qs.quantize(x, fmt))
        assert r.bound_holds and r.max_bound_ratio <= 1.0 + 1e-5


def test_report_prints_a_table_and_serializes():
    x = torch.randn(1000)
    r = qs.error(x, qs.quantize(x, qs.int4()))
    text = str(r)
    assert "SQNR (dB)" in text and "guaranteed bound" in text
    d = r.to_dict()
    assert d["sqnr_db"] == r.sqnr_db and d["spec"].startswith("int4")


def test_error_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        qs.error(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="no finite"):
        qs.error(torch.tensor([float("nan")]), torch.tensor([1.0]))
