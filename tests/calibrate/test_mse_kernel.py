"""The fused squared-error kernel behind the MSE range search agrees with fake_quantize, and the search
picks the same ranges with and without it."""

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
