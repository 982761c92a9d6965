"""Properties of the uniform quantizer for every rounding mode (hypothesis), on both code paths."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import quantscope as qs
from quantscope.core import kernels

EPS = float(np.finfo(np.float32).eps)
finite_f32 = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)
scales = st.floats(0.0010000000474974513, 10.0, allow_nan=False, width=32)
PATHS = ["kernel", "reference"]


def fq(x, spec, qparams, path, generator=None):
    if path == "kernel":
        return qs.fake_quantize(x, spec, qparams=qparams, generator=generator)
    with kernels.disabled():
        return qs.fake_quantize(x, spec, qparams=qparams, generator=generator)


def slack(x, y):
    return 4 * EPS * np.maximum(np.abs(x), np.abs(y))


@pytest.mark.parametrize("path", PATHS)
@given(x=arrays(np.float32, st.integers(1, 200), elements=finite_f32), scale=scales, zp=st.integers(-20, 20))
def test_round_to_nearest_error_at_most_half_step(path, x, scale, zp):
    spec = qs.QuantSpec(qs.int16(symmetric=False))
    y = fq(x, spec, qs.QParams(scale, zp), path)
    s = np.float32(scale)
    lo, hi = (spec.format.qmin - zp) * s, (spec.format.qmax - zp) * s
    inside = (x >= lo) & (x <= hi)
    err = np.abs(x.astype(np.float64) - y)
    assert np.all(err[inside] <= s / 2 + slack(x, y)[inside])


@pytest.mark.parametrize("path", PATHS)
@given(x=arrays(np.float32, st.integers(1, 200), elements=finite_f32), k=st.integers(-8, 4))
def test_power_of_two_step_bound_is_exact(path, x, k):
    """With Δ = 2^k every step of the arithmetic is exact: |x - Q(x)| <= Δ/2 with no slack at all."""
    s = 2.0**k
    y = fq(x, qs.int16(), qs.QParams(s), path)
    inside = np.abs(x) <= 32767 * s
    assert np.all(np.abs(x.astype(np.float64) - y)[inside] <= s / 2)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", ["floor", "ceil", "toward_zero"])
@given(x=arrays(np.float32, st.integers(1, 200), elements=finite_f32), k=st.integers(-6, 3))
def test_directed_rounding_error_sign_and_size(path, mode, x, k):
    s = 2.0**k  # exact arithmetic, so the sign statements hold exactly
    y = fq(x, qs.QuantSpec(qs.int16(), rounding=mode), qs.QParams(s), path)
    inside = np.abs(x) <= 32767 * s
    xv, yv = x[inside].astype(np.float64), y[inside].astype(np.float64)  # compare without subtracting
    if mode == "floor":  # error x - Q(x) in [0, step)
        assert np.all((yv <= xv) & (xv < yv + s))
    elif mode == "ceil":  # error in (-step, 0]
        assert np.all((yv - s < xv) & (xv <= yv))
    else:  # truncation: |Q(x)| <= |x| < |Q(x)| + step
        assert np.all((np.abs(yv) <= np.abs(xv)) & (np.abs(xv) < np.abs(yv) + s))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", ["nearest_even", "nearest_away", "floor", "ceil", "toward_zero"])
@given(x=arrays(np.float32, st.integers(2, 100), elements=finite_f32), scale=scales)
def test_idempotent_and_monotone(path, mode, x, scale):
    spec = qs.QuantSpec(qs.int8(), rounding=mode)
    qp = qs.QParams(scale)
    y = fq(x, spec, qp, path)
    assert np.array_equal(fq(y, spec, qp, path), y)  # Q(Q(x)) == Q(x)
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(y[order]) >= 0)  # x1 <= x2  =>  Q(x1) <= Q(x2)


@pytest.mark.parametrize("path", PATHS)
def test_saturation_clamps_to_extreme_levels(path):
    x = np.array([-1e6, -200.0, -128.6, 126.9, 127.6, 300.0, 1e9], dtype=np.float32)
    y = fq(x, qs.int8(), qs.QParams(1.0), path)
    np.testing.assert_array_equal(y, [-128, -128, -128, 127, 127, 127, 127])
    y = fq(x, qs.int8(restricted_range=True), qs.QParams(1.0), path)
    assert y.min() == -127


def test_ties_follow_the_mode():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], dtype=np.float32)
    expect = {"nearest_even": [-2, -2, -0, 0, 2, 2], "nearest_away": [-3, -2, -1, 1, 2, 3],
              "floor": [-3, -2, -1, 0, 1, 2], "ceil": [-2, -1, -0, 1, 2, 3], "toward_zero": [-2, -1, -0, 0, 1, 2]}
    for path in PATHS:
        for mode, want in expect.items():
            y = fq(x, qs.QuantSpec(qs.int8(), rounding=mode), qs.QParams(1.0), path)
            np.testing.assert_array_equal(y, np.array(want, dtype=np.float32), err_msg=f"{mode} {path}")


def test_wrap_overflow_is_twos_complement():
    x = np.array([127.0, 128.0, 129.0, -129.0, 300.0], dtype=np.float32)
    y = qs.fake_quantize(x, qs.QuantSpec(qs.int8(), overflow="wrap"), qparams=qs.QParams(1.0))
    np.testing.assert_array_equal(y, [127, -128, -127, 127, 44])


@pytest.mark.parametrize("fmt", [qs.int8(), qs.fp8_e4m3(), qs.nf4(), qs.mxfp4()])
def test_stochastic_rounding_is_unbiased(fmt):
    """Mean error over 10^5 draws of the same values is within 4 standard errors of 0."""
    gen = torch.Generator().manual_seed(7)
    base = torch.rand(64, generator=gen) * 2 - 1
    base[::32] = 1.0  # fixes every group's scale (absmax) for every draw, with no clipping
    x = base.repeat(100_000 // 64 + 1)[:100_000 // 64 * 64].reshape(-1, 64)
    spec = qs.QuantSpec(fmt, granularity=qs.per_group(64) if not isinstance(fmt, qs.MXFormat) else None,
                        rounding="stochastic")
    y = qs.fake_quantize(x, spec, generator=gen)
    e = (x - y).double().flatten()
    se = e.std() / np.sqrt(e.numel())
    assert abs(float(e.mean())) <= 4 * float(se)
    # per value too: the mean of Q(x) over draws converges to x
    per_value = (x - y).double().mean(dim=0)
    assert float(per_value.abs().max()) < 0.02
    # and draws are reproducible with the same seed
    y2 = qs.fake_quantize(x, spec, generator=torch.Generator().manual_seed(7).manual_seed(7))
    y3 = qs.fake_quantize(x, spec, generator=torch.Generator().manual_seed(7))
    assert torch.equal(y2, y3)
