"""Histogram-based calibrators: exact merge, optimality against theory, published Lloyd-Max MSEs."""

import math

import numpy as np
import pytest
import torch

import quantscope as qs
from quantscope.calibrate import (
    ACIQCalibrator,
    EMAMinMaxCalibrator,
    KLCalibrator,
    LloydMaxCalibrator,
    MSECalibrator,
    PercentileCalibrator,
)
from tests.conftest import laplace

NAMES = ["minmax", "ema", "percentile", "mse", "kl", "aciq"]


def gaussian(n=1_000_000, seed=0):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed))


def optimal_uniform_mse(levels: np.ndarray) -> float:
    """min over the step Δ of E[(x - Q(x))^2], x ~ N(0,1), Q = nearest of levels * Δ (dense quadrature)."""
    x = np.linspace(-12, 12, 480_001)
    pdf = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    dx = x[1] - x[0]
    best = math.inf
    for step in np.linspace(0.2, 0.5, 601):
        grid = levels * step
        mids = (grid[1:] + grid[:-1]) / 2
        q = grid[np.searchsorted(mids, x)]
        best = min(best, float(((x - q) ** 2 * pdf).sum() * dx))
    return best


@pytest.mark.parametrize("raw_limit", [0, 60, 1024])  # binned from the start, switching midway, exact values
@pytest.mark.parametrize("granularity", [qs.per_tensor(), qs.per_channel(1), qs.per_group(4, axis=1)])
@pytest.mark.parametrize("cls", [PercentileCalibrator, MSECalibrator, KLCalibrator, ACIQCalibrator])
def test_merged_states_equal_one_pass(cls, granularity, raw_limit):
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(40, 12, generator=g) * (3.0**i) for i in range(4)]
    spec = qs.QuantSpec(qs.int4(symmetric=False), granularity=granularity)
    whole = cls(spec, raw_limit=raw_limit)
    for x in batches:  # one pass over the stream
        whole.update(x)
    a, b = cls(spec, raw_limit=raw_limit), cls(spec, raw_limit=raw_limit)
    for x in batches[::2]:
        a.update(x)
    for x in batches[1::2]:
        b.update(x)
    m = a.merge(b)
    assert m.hist_.is_raw == whole.hist_.is_raw
    assert torch.equal(m.hist_.histogram(), whole.hist_.histogram())
    assert torch.equal(m.qparams().scale, whole.qparams().scale)
    assert torch.equal(m.qparams().zero_point, whole.qparams().zero_point)


def test_streaming_memory_is_bounded():
    c = MSECalibrator(qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0)))
    for _ in range(5):
        c.update(torch.randn(8, 50_000))
    assert c.hist_.counts.shape == (8, 2048)
    spec = qs.QuantSpec(qs.int4(), granularity=qs.per_group(32))
    many = PercentileCalibrator(spec, raw_limit=64).update(torch.randn(512, 1024))
    assert many.hist_.is_raw and many.hist_.raw.shape == (512 * 32, 32)  # small groups: exact values
    for _ in range(2):
        many.update(torch.randn(512, 1024))
    assert not many.hist_.is_raw and many.hist_.counts.numel() <= 1 << 24  # then bounded counts


def test_mse_clipping_reaches_the_optimal_uniform_quantizer():
    x = gaussian()
    # int4: levels -8..7 (the optimum is found by quadrature over the step)
    q = qs.quantize(x, qs.int4(), calibrator="mse")
    optimum = optimal_uniform_mse(np.arange(-8, 8, dtype=np.float64))
    assert qs.error(x, q).mse <= optimum * 1.01
    # 16-level uniform midrise quantizer: Max (1960) lists MSE 0.01154 at step 0.3352
    midrise = qs.codebook([(2 * k + 1) / 15 for k in range(-8, 8)], normalized=True)
    mse = qs.error(x, qs.quantize(x, midrise, calibrator="mse")).mse
    assert mse == pytest.approx(0.01154, rel=0.01)
    assert qs.error(x, qs.quantize(x, qs.int4(), calibrator="minmax")).mse > 2 * mse  # why calibration matters


@pytest.mark.parametrize("bits, published", [(1, 0.3634), (2, 0.1175), (3, 0.03454), (4, 0.009497)])
def test_lloyd_max_reaches_published_optimal_mse(bits, published):
    x = gaussian(2_000_000)
    fmt = LloydMaxCalibrator(bits).update(x).codebook()
    assert len(fmt.levels) == 2**bits
    assert qs.error(x, qs.quantize(x, fmt)).mse == pytest.approx(published, rel=0.01)


def test_lloyd_max_merge_and_normalized_codebook():
    x = gaussian(200_000)
    a = LloydMaxCalibrator(3).update(x[:100_000])
    b = LloydMaxCalibrator(3).update(x[100_000:])
    assert a.merge(b).codebook() == LloydMaxCalibrator(3).update(x).codebook()
    n = LloydMaxCalibrator(3, normalized=True).update(x).codebook()
    assert max(abs(v) for v in n.levels) == 1.0 and n.normalized


def test_percentile_clips_the_requested_share():
    x = gaussian()
    for p in (99.0, 99.9):
        q = qs.quantize(x, qs.int8(), calibrator=PercentileCalibrator(qs.QuantSpec(qs.int8()), percentile=p))
        clipped = float((x.abs() > q.scale * 127).float().mean())
        assert clipped == pytest.approx(1 - p / 100, rel=0.05)


def test_aciq_fits_the_distribution_and_banner_clipping():
    g = torch.Generator().manual_seed(3)
    lap = laplace(1_000_000, seed=3)
    c = ACIQCalibrator(qs.QuantSpec(qs.int4())).update(lap)
    assert c.qparams().scale.item() * 7 == pytest.approx(5.03, rel=0.02)  # Banner et al.: 5.03b at 4 bits
    assert c.kurtosis_.item() > 4.5  # recognized as Laplace
    gauss = torch.randn(1_000_000, generator=g)
    c = ACIQCalibrator(qs.QuantSpec(qs.int8())).update(gauss)
    assert c.qparams().scale.item() * 127 == pytest.approx(3.92, rel=0.05)  # Banner et al.: 3.92σ at 8 bits
    assert c.kurtosis_.item() < 4.5


def test_ema_moves_a_fraction_toward_each_batch():
    spec = qs.QuantSpec(qs.int8(symmetric=False))
    c = EMAMinMaxCalibrator(spec, averaging_constant=0.1)
    c.update(torch.tensor([-1.0, 1.0]))
    c.update(torch.tensor([-11.0, 21.0]))
    assert c.min_.item() == pytest.approx(-2.0) and c.max_.item() == pytest.approx(3.0)
    d = EMAMinMaxCalibrator(spec, averaging_constant=0.1).update(torch.tensor([-5.0, 5.0]))
    m = c.merge(d)
    assert m.max_.item() == pytest.approx((3.0 * 2 + 5.0) / 3)


@pytest.mark.parametrize("name", NAMES)
def test_every_named_calibrator_works_through_quantize(name):
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(5))
    for spec in [qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0)),
                 qs.QuantSpec(qs.int4(symmetric=False), granularity=qs.per_group(64)),
                 qs.QuantSpec(qs.fp8_e4m3()), qs.QuantSpec(qs.nf4()), qs.QuantSpec(qs.mxfp4())]:
        q = qs.quantize(x, spec, calibrator=name)
        r = qs.error(x, q)
        assert r.bound_holds and r.sqnr_db > 10, (name, spec)


def test_histogram_calibrator_errors():
    spec = qs.QuantSpec(qs.int8())
    with pytest.raises(qs.NotFittedError):
        MSECalibrator(spec).qparams()
    with pytest.raises(ValueError, match="NaN"):
        MSECalibrator(spec).update(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="fixed scale"):
        MSECalibrator(qs.QuantSpec(qs.fp16())).update(torch.ones(3))
    with pytest.raises(ValueError, match="power of two"):
        MSECalibrator(spec, bins=1000).update(torch.ones(3))
    with pytest.raises(ValueError, match="percentile"):
        PercentileCalibrator(spec, percentile=30).update(torch.randn(10)).qparams()
    with pytest.raises(TypeError, match="merge"):
        MSECalibrator(spec).merge(KLCalibrator(spec))
    c = PercentileCalibrator(qs.QuantSpec(qs.int8(), nonfinite="propagate")).update(torch.tensor([1.0, float("inf")]))
    assert c.hist_.n.item() == 1
