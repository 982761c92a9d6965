"""Bit-exact agreement with the references: torch's fake-quantize ops and float8 casts, ml_dtypes."""

import ml_dtypes
import numpy as np
import pytest
import torch

import quantscope as qs
from quantscope.core import kernels
from tests.conftest import bits_equal

PATHS = ["kernel", "reference"]


def run(path, fn, *a, **k):
    if path == "kernel":
        return fn(*a, **k)
    with kernels.disabled():
        return fn(*a, **k)


def every_fp32_class(n=400_000, seed=0):
    """Random bit patterns (all finite classes: normals, subnormals, huge), plus dense sweeps."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(-2**31, 2**31 - 1, (n,), generator=g, dtype=torch.int64).to(torch.int32).view(torch.float32)
    raw = raw[torch.isfinite(raw)]
    sweep = torch.linspace(-70000, 70000, 200_001)
    small = torch.randn(100_000, generator=g) * torch.logspace(-45, 0, 100_000)
    specials = torch.tensor([0.0, -0.0, 1.4e-45, -1.4e-45, 1.17549435e-38, 3.4028235e38, -3.4028235e38,
                             448.0, 464.0, 464.00003, 479.99997, 480.0, 57344.0, 61440.0, 61439.996, 65504.0,
                             65520.0, 2.0**-9, 2.0**-10, 3 * 2.0**-11, 2.0**-16, 2.0**-17, 2.0**-24, 2.0**-25])
    return torch.cat([raw, sweep, small, specials])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("qmin, qmax, signed", [(-128, 127, True), (0, 255, False)])
def test_per_tensor_affine_matches_torch(path, qmin, qmax, signed):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300_000, generator=g) * 4
    fmt = qs.integer(8, signed=signed, symmetric=False)
    for scale, zp in [(0.0123, 0), (0.1, 5), (1 / 3, -3 if signed else 3), (0.077, 17), (2.0**-5, 0)]:
        ours = run(path, qs.fake_quantize, x, fmt, qparams=qs.QParams(scale, zp))
        ref = torch.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)
        assert bits_equal(ours, ref), (scale, zp)
        q = run(path, qs.quantize, x, fmt, qparams=qs.QParams(scale, zp))
        ref_codes = torch.clamp(torch.round(x * (1.0 / torch.tensor(scale))) + zp, qmin, qmax)
        assert torch.equal(q.codes.to(torch.float32), ref_codes)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_per_channel_affine_matches_torch(path, axis):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 24, 40, generator=g) * 3
    c = x.shape[axis]
    scale = torch.rand(c, generator=g) * 0.05 + 1e-3
    zp = torch.randint(-10, 10, (c,), generator=g, dtype=torch.int32)
    spec = qs.QuantSpec(qs.int8(symmetric=False), granularity=qs.per_channel(axis))
    ours = run(path, qs.fake_quantize, x, spec, qparams=qs.QParams(scale, zp))
    ref = torch.fake_quantize_per_channel_affine(x, scale, zp, axis, -128, 127)
    assert bits_equal(ours, ref)


@pytest.mark.parametrize("path", PATHS)
def test_calibrated_symmetric_int8_matches_torch_with_same_scale(path):
    x = torch.randn(64, 128, generator=torch.Generator().manual_seed(3))
    spec = qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0))
    q = run(path, qs.quantize, x, spec)
    ref = torch.fake_quantize_per_channel_affine(x, q.scale, torch.zeros(64, dtype=torch.int32), 0, -128, 127)
    assert bits_equal(q.dequantize(), ref)
    assert torch.allclose(q.scale, x.abs().amax(dim=1) / 127)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fmt, dtype, overflow", [
    (qs.fp8_e4m3(scaled=False), torch.float8_e4m3fn, "saturate"),  # torch saturates E4M3 casts to +-448
    (qs.fp8_e5m2(scaled=False), torch.float8_e5m2, "nonsaturating"),  # ... and overflows E5M2 to Inf
    (qs.fp16(), torch.float16, "nonsaturating"),
    (qs.bf16(), torch.bfloat16, "nonsaturating"),
])
def test_float_casts_match_torch_for_every_finite_input_class(path, fmt, dtype, overflow):
    x = every_fp32_class()
    spec = qs.QuantSpec(fmt, overflow=overflow)
    ours = run(path, qs.fake_quantize, x, spec)
    ref = x.to(dtype).float()
    same = (ours.view(torch.int32) == ref.view(torch.int32)) | (torch.isnan(ours) & torch.isnan(ref))
    assert bool(same.all()), x[~same][:5]
    codes = run(path, qs.quantize, x, spec).codes
    ref_codes = x.to(dtype).view(torch.uint8 if fmt.bits == 8 else torch.int16)
    nan = torch.isnan(ref)
    assert torch.equal(codes[~nan], ref_codes[~nan])


def test_e4m3_nonsaturating_overflow_is_nan_per_ocp():
    x = torch.tensor([448.0, 463.99, 464.0, 464.01, 1e6, -1e6])
    y = qs.fake_quantize(x, qs.QuantSpec(qs.fp8_e4m3(scaled=False), overflow="nonsaturating"))
    assert y[:3].tolist() == [448.0, 448.0, 448.0]  # 464 is a tie: rounds to even (448)
    assert bool(torch.isnan(y[3:]).all())


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fmt, dtype, overflow", [
    (qs.fp6_e3m2(scaled=False), ml_dtypes.float6_e3m2fn, "saturate"),  # no Inf/NaN: casts saturate
    (qs.fp6_e2m3(scaled=False), ml_dtypes.float6_e2m3fn, "saturate"),
    (qs.fp4_e2m1(scaled=False), ml_dtypes.float4_e2m1fn, "saturate"),
    (qs.fp8_e4m3(scaled=False), ml_dtypes.float8_e4m3fn, "nonsaturating"),  # ml_dtypes: OCP NaN on overflow
    (qs.fp8_e5m2(scaled=False), ml_dtypes.float8_e5m2, "nonsaturating"),
])
def test_small_floats_match_ml_dtypes(path, fmt, dtype, overflow):
    x = every_fp32_class(100_000, seed=5)
    x = x[x.abs() < 3e38]
    spec = qs.QuantSpec(fmt, overflow=overflow)
    ours = run(path, qs.fake_quantize, x, spec)
    ref = torch.from_numpy(x.numpy().astype(dtype).astype(np.float32))
    same = (ours.view(torch.int32) == ref.view(torch.int32)) | (torch.isnan(ours) & torch.isnan(ref))
    assert bool(same.all()), x[~same][:5]
    codes = run(path, qs.quantize, x, spec).codes
    ref_codes = torch.from_numpy(x.numpy().astype(dtype).view(np.uint8))
    assert torch.equal(codes[~torch.isnan(ref)], ref_codes[~torch.isnan(ref)])


def test_e8m0_scale_bytes_match_ml_dtypes():
    x = torch.randn(4, 256, generator=torch.Generator().manual_seed(4)) * torch.logspace(-30, 30, 4)[:, None]
    q = qs.quantize(x, qs.mxfp4())
    stored = q.packed()["scale"].numpy()
    decoded = stored.view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    np.testing.assert_array_equal(decoded, q.scale.reshape(-1).numpy())
