"""The fused calibration kernels: the squared-error kernel behind the MSE range search agrees with
fake_quantize (and the search picks the same ranges with and without it); the histogram kernel counts
exactly as the torch path."""

import pytest
import torch

import quantscope as qs
from quantscope.calibrate.histogram import MSECalibrator
from quantscope.core import kernels
from quantscope.core.scales import qparams_from_range

pytestmark = pytest.mark.skipif(not kernels.available(), reason="fused kernels not built")


@pytest.mark.parametrize("fmt", [qs.int8(), qs.int8(symmetric=False), qs.int4(), qs.integer(3, signed=False)])
@pytest.mark.parametrize("rounding", ["nearest_even", "nearest_away", "floor", "ceil", "toward_zero"])
def test_sq_err_equals_fake_quantize_error(fmt, rounding):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 1037, generator=g) * torch.logspace(-2, 1, 7)[:, None]  # 1037: a ragged tail
    shrink = torch.tensor([0.3, 0.7, 1.0])[:, None]
    lo, hi = x.amin(1)[None] * shrink, x.amax(1)[None] * shrink
    qp = qparams_from_range(lo.float(), hi.float(), qs.QuantSpec(fmt))
    got = kernels.int_sq_err(x, qp.scale, qp.zero_point, fmt, rounding)
    spec = qs.QuantSpec(fmt, granularity=qs.per_channel(0), rounding=rounding)
    for t in range(3):
        zp = None if qp.zero_point is None else qp.zero_point[t]
        y = qs.fake_quantize(x, spec, qparams=qs.QParams(qp.scale[t], zp))
        want = ((x.double() - y.double()) ** 2).sum(1)
        torch.testing.assert_close(got[t], want, rtol=1e-5, atol=0)


@pytest.mark.parametrize("fmt", [qs.int8(), qs.int8(symmetric=False), qs.int4()])
def test_mse_search_same_ranges_with_and_without_kernel(fmt):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(64, 300, generator=g) * torch.rand(64, 1, generator=g)
    w[3, :4] = 6.0  # outliers worth clipping
    spec = qs.QuantSpec(fmt, granularity=qs.per_channel(0))
    fused = MSECalibrator(spec).update(w).qparams()
    with kernels.disabled():
        ref = MSECalibrator(spec).update(w).qparams()
    err = lambda qp: ((qs.fake_quantize(w, spec, qparams=qp) - w) ** 2).sum(1)  # noqa: E731
    # the two differ only in float32 vs float64 summation: same ranges, or ties within 1e-5 relative MSE
    torch.testing.assert_close(err(fused), err(ref), rtol=1e-5, atol=0)
    assert (fused.scale == ref.scale).float().mean() > 0.95


def test_histogram_kernel_counts_equal_the_torch_path():
    """The sketch's one-pass C histogram gives exactly the torch path's counts: several groups of very
    different ranges, NaN skipped, a negative value that underflows to -0 in the bin below zero, values
    on bin edges, and streaming that doubles R (folding) between batches."""
    from quantscope.calibrate.sketch import GroupSketch
    from quantscope.core import kernels

    if not kernels.available():
        pytest.skip("kernels not built")
    g = torch.Generator().manual_seed(5)
    batches = []
    for k in range(3):
        x = torch.randn(3, 30000, generator=g) * torch.tensor([[1e-3], [1.0], [40.0]]) * (4.0 ** k)
        x[0, 11] = float("nan")
        x[1, 12] = -1e-44  # underflows to -0 after scaling
        x[2, :64] = torch.arange(64, dtype=torch.float32) - 32.0  # exact bin edges
        batches.append(x)
    sketches = []
    for use_kernel in (True, False):
        s = GroupSketch(3, 1024, raw_limit=16)
        for x in batches:
            if use_kernel:
                s.add(x)
            else:
                with kernels.disabled():
                    s.add(x)
        sketches.append(s)
    assert torch.equal(sketches[0].counts, sketches[1].counts)
    assert torch.equal(sketches[0].exp, sketches[1].exp)
    assert int(sketches[0].counts.sum()) == 3 * 3 * 30000 - 3  # the NaNs are not counted


def test_one_shot_mse_searches_exact_values_of_long_rows():
    """quantize(w, calibrator='mse') on rows longer than the streaming raw limit (1024) still searches
    the exact values (as a calibrator built to keep them), not bin centers."""
    g = torch.Generator().manual_seed(2)
    w = torch.randn(6, 1536, generator=g) ** 3  # heavy tails: the optimum clips
    spec = qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0))
    got = qs.quantize(w, spec, calibrator="mse").scale
    exact = MSECalibrator(spec, raw_limit=1536).update(w).qparams().scale
    binned = MSECalibrator(spec).update(w).qparams().scale
    assert torch.equal(got, exact)
    assert not torch.equal(exact.reshape(-1), binned.reshape(-1))  # the bins would have given other ranges
