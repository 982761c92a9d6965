import math

import pytest
import torch

from quantscope.error.theory import lloyd_max_mse, rate_distortion_mse
from quantscope.vq import (
    ProductQuantizer,
    codebook_usage,
    error_report,
    gaussian_mixture,
    gaussian_rd_waterfill,
    gaussian_vq_vs_scalar,
    rate_sweep,
)
from quantscope.vq.analysis import best_scalar_mse


def test_vq_in_two_dims_beats_best_scalar_on_gaussian():
    pts = gaussian_vq_vs_scalar(2, (2,), n_train=20_000, n_test=20_000, n_iter=30)
    for p in pts:
        assert p.mse < p.lloyd_max  # space-filling + shape advantage
        assert p.mse > p.rd_white  # and Shannon's bound still holds


@pytest.mark.slow
def test_vq_gain_over_scalar_grows_with_rate():
    pts = gaussian_vq_vs_scalar(2, (2, 3), n_train=30_000, n_test=30_000, n_iter=40)
    for p in pts:
        assert p.mse < p.lloyd_max  # space-filling + shape advantage
        assert p.mse > p.rd_white  # and Shannon's bound still holds
        assert p.gain_over_scalar_db > 0.1


def test_waterfill_reduces_to_rd_for_white_and_beats_it_otherwise():
    assert gaussian_rd_waterfill([2.0] * 8, 1.5) == pytest.approx(rate_distortion_mse(2.0, 1.5))
    v = [4.0, 1.0, 0.25, 0.01]
    d = gaussian_rd_waterfill(v, 1.0)
    assert d < rate_distortion_mse(sum(v) / 4, 1.0)
    # the water level θ solves Σ max(0, ½·log2(σ²/θ)) = R·d, and D = mean(min(θ, σ²))
    theta = (4 * d - 0.01) / 3
    assert sum(max(0.0, 0.5 * math.log2(x / theta)) for x in v) == pytest.approx(4.0, rel=1e-6)


def test_best_scalar_equals_lloyd_max_for_equal_variances():
    assert best_scalar_mse([1.0, 1.0], 2.0) == pytest.approx(lloyd_max_mse("gauss", 4))
    assert best_scalar_mse([1.0, 1.0], 0.0) == 1.0
    # unequal variances: bits go to the larger one first
    assert best_scalar_mse([100.0, 1.0], 0.5) == pytest.approx((100 * lloyd_max_mse("gauss", 2) + 1) / 2)


def test_codebook_usage():
    codes = torch.tensor([[0, 1], [1, 1], [2, 1], [3, 1]])
    u = codebook_usage(codes, 4)
    assert u[0].used == 4 and u[0].perplexity == pytest.approx(4.0) and u[0].utilization == 1.0
    assert u[1].used == 1 and u[1].perplexity == pytest.approx(1.0) and u[1].entropy_bits == 0.0


def test_error_report_parts_add_up():
    X = gaussian_mixture(2000, 16, seed=11)
    pq = ProductQuantizer(4, 8).fit(X)
    r = error_report(pq, X)
    assert r.mse == pytest.approx(pq.distortion(X), rel=1e-5)
    assert sum(r.per_dimension) == pytest.approx(r.mse, rel=1e-5)
    assert sum(r.per_subspace) == pytest.approx(r.mse, rel=1e-5)
    assert r.bytes_per_vector == 4 and r.bits_per_dim == 2.0 and r.compression_ratio == 16.0
    assert len(r.usage) == 4 and all(0 < u.utilization <= 1 for u in r.usage)
    assert math.isfinite(r.sqnr_db) and r.to_dict()["compression_ratio"] == 16.0


def test_rate_sweep_points():
    X = gaussian_mixture(2000, 8, seed=12)
    pts = rate_sweep(X, lambda b: ProductQuantizer(4, b), [2, 4])
    assert [p.bits_per_dim for p in pts] == [1.0, 2.0]
    assert pts[1].mse < pts[0].mse
    assert all(p.rd_gaussian <= p.lloyd_max for p in pts)


def test_error_report_prints_a_summary():
    import quantscope as qs

    X = qs.vq.gaussian_mixture(3000, 16, seed=0)
    text = str(qs.vq.error_report(qs.vq.ProductQuantizer(4, 6).fit(X), X))
    assert "3 bytes/vector" in text and "SQNR" in text and "worst sub-space" in text and "perplexity" in text
