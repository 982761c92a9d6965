"""The public operations: types in and out, bad input, parameters, gradients."""

import numpy as np
import pytest
import torch

import quantscope as qs
from quantscope.core import kernels
from tests.conftest import bits_equal


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_in_numpy_out_same_dtype(dtype):
    x = np.random.default_rng(0).standard_normal((7, 40)).astype(dtype)
    y = qs.fake_quantize(x, qs.int8())
    assert isinstance(y, np.ndarray) and y.dtype == dtype and y.shape == x.shape
    q = qs.quantize(x, qs.int8())
    d = q.dequantize()
    assert isinstance(d, np.ndarray) and d.dtype == dtype
    assert isinstance(q.codes, torch.Tensor) and q.codes.dtype == torch.int8


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torch_in_torch_out_same_dtype(dtype):
    x = torch.randn(5, 64).to(dtype)
    y = qs.fake_quantize(x, qs.QuantSpec(qs.int4(), granularity=qs.per_group(32)))
    assert isinstance(y, torch.Tensor) and y.dtype == dtype and y.device == x.device
    assert qs.quantize(x, qs.fp8_e4m3()).dequantize().dtype == dtype


def test_fake_quantize_equals_quantize_then_dequantize():
    x = torch.randn(33, 130, generator=torch.Generator().manual_seed(0))
    for fmt in [qs.int8(), qs.int4(symmetric=False), qs.fp8_e5m2(), qs.nf4(), qs.mxfp6_e2m3(), qs.fixed(m=2, n=5)]:
        spec = qs.QuantSpec(fmt, granularity=qs.per_group(32) if fmt.family != "float" else None)
        assert bits_equal(qs.fake_quantize(x, spec), qs.quantize(x, spec).dequantize()), fmt.name


def test_noncontiguous_and_scalar_inputs():
    x = torch.randn(64, 48)[:, ::2]
    assert torch.equal(qs.fake_quantize(x, qs.int8()), qs.fake_quantize(x.contiguous(), qs.int8()))
    s = qs.quantize(torch.tensor(0.37), qs.int8())
    assert s.shape == () and s.dequantize().shape == ()


def test_kernel_threads_split_work_identically():
    x = torch.randn(3, 1_000_003, generator=torch.Generator().manual_seed(1))  # outer < threads: splits a row
    old = torch.get_num_threads()
    try:
        for spec in [qs.QuantSpec(qs.int8()), qs.QuantSpec(qs.int4(), granularity=qs.per_group(128)),
                     qs.QuantSpec(qs.mxfp4()), qs.QuantSpec(qs.fp8_e4m3(), granularity=qs.per_token())]:
            torch.set_num_threads(1)
            one = qs.quantize(x, spec)
            torch.set_num_threads(4)
            many = qs.quantize(x, spec)
            assert torch.equal(one.codes, many.codes) and torch.equal(one.scale, many.scale), spec
    finally:
        torch.set_num_threads(old)


# ------------------------------------------------------------------------------------------ bad input
def test_nan_and_inf_rejected_with_count_and_location():
    x = torch.randn(4, 100)
    x[1, 7] = float("nan")
    x[2, 3] = float("inf")
    x[3, 0] = float("nan")
    for path in ("kernel", "reference"):
        for op in (qs.quantize, qs.fake_quantize):
            for qp in (None, qs.QParams(0.1)):
                ctx = kernels.disabled() if path == "reference" else torch.no_grad()
                with ctx, pytest.raises(ValueError) as info:
                    op(x, qs.int8(), qparams=qp)
                msg = str(info.value)
                assert "2 NaN and 1 Inf" in msg and "(1, 7)" in msg and "nonfinite='propagate'" in msg


def test_nan_rejected_for_unscaled_and_mx_formats():
    x = torch.ones(2, 64)
    x[0, 5] = float("nan")
    for fmt in (qs.fp16(), qs.mxfp4(), qs.fixed(m=3, n=4), qs.codebook([-1.0, 0.0, 1.0])):
        with pytest.raises(ValueError, match="1 NaN"):
            qs.quantize(x, fmt)


@pytest.mark.parametrize("fmt", [qs.int8(), qs.fp8_e4m3(), qs.mxfp4(), qs.nf4(), qs.fp16()])
def test_nonfinite_propagate_passes_values_through(fmt, tmp_path):
    x = torch.randn(2, 64, generator=torch.Generator().manual_seed(2))
    x[0, 3], x[1, 9], x[1, 10] = float("nan"), float("inf"), -float("inf")
    spec = qs.QuantSpec(fmt, nonfinite="propagate")
    finite = torch.isfinite(x)
    clean = torch.where(finite, x, 0.0)
    y = qs.fake_quantize(x, spec)
    assert torch.isnan(y[0, 3]) and y[1, 9] == float("inf") and y[1, 10] == -float("inf")
    assert torch.equal(y[finite], qs.fake_quantize(clean, spec)[finite])  # calibration ignored them
    q = qs.quantize(x, spec)
    d = q.dequantize()
    assert torch.isnan(d[0, 3]) and d[1, 9] == float("inf") and torch.equal(d[finite], y[finite])
    q.to_safetensors(tmp_path / "q.safetensors")
    r = qs.QTensor.load(tmp_path / "q.safetensors").dequantize()
    assert torch.isnan(r[0, 3]) and r[1, 10] == -float("inf")
    with kernels.disabled():
        assert bits_equal(torch.nan_to_num(qs.fake_quantize(x, spec), posinf=1e30, neginf=-1e30),
                          torch.nan_to_num(y, posinf=1e30, neginf=-1e30))


@pytest.mark.parametrize("bad, exc, words", [
    (np.zeros((0, 3), dtype=np.float32), ValueError, "empty"),
    (torch.zeros(0), ValueError, "empty"),
    (np.arange(6), TypeError, "floating-point"),
    (torch.arange(6), TypeError, "x.float()"),
    (torch.zeros(3, dtype=torch.complex64), TypeError, "x.real"),
    (torch.zeros(3, dtype=torch.bool), TypeError, "floating-point"),
    ([1.0, 2.0], TypeError, "numpy array or torch tensor"),
])
def test_bad_arrays_get_clear_errors(bad, exc, words):
    with pytest.raises(exc, match=None) as info:
        qs.quantize(bad, qs.int8())
    assert words in str(info.value)


def test_bad_granularity_and_params():
    x = torch.randn(4, 100)
    with pytest.raises(ValueError, match="larger than axis"):
        qs.quantize(x, qs.QuantSpec(qs.int4(), granularity=qs.per_group(128, axis=1)))
    with pytest.raises(ValueError, match="out of range"):
        qs.quantize(x, qs.QuantSpec(qs.int8(), granularity=qs.per_channel(2)))
    with pytest.raises(ValueError, match="positive int"):
        qs.per_group(0)
    with pytest.raises(ValueError, match="needs 4"):
        qs.quantize(x, qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0)), qparams=qs.QParams(torch.ones(3)))
    with pytest.raises(ValueError, match="positive and finite"):
        qs.quantize(x, qs.int8(), qparams=qs.QParams(0.0))
    with pytest.raises(ValueError, match="symmetric"):
        qs.quantize(x, qs.int8(), qparams=qs.QParams(0.1, 3))
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        qs.quantize(x, qs.int8(symmetric=False), qparams=qs.QParams(0.1, 300))
    with pytest.raises(ValueError, match="fixed scale"):
        qs.quantize(x, qs.fp16(), qparams=qs.QParams(0.1))
    with pytest.raises(ValueError, match="do not pass a calibrator"):
        qs.quantize(x, qs.fixed(m=3, n=4), calibrator="minmax")
    with pytest.raises(ValueError, match="unknown calibrator"):
        qs.quantize(x, qs.int8(), calibrator="magic")


# --------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("fmt", [qs.int8(), qs.int4(), qs.int8(symmetric=False), qs.uint8(symmetric=False),
                                 qs.integer(3, symmetric=False), qs.fp8_e4m3(), qs.fp4_e2m1(), qs.nf4()])
def test_constant_channels_quantize_exactly(fmt):
    x = torch.tensor([[0.37] * 64, [-2.5e-3] * 64, [0.0] * 64, [1e30] * 64, [-7.0] * 64])
    spec = qs.QuantSpec(fmt, granularity=qs.per_channel(0))
    y = qs.fake_quantize(x, spec)
    if isinstance(fmt, qs.IntFormat) and not fmt.signed:
        return  # unsigned symmetric cannot hold negatives; checked below for asymmetric
    assert torch.equal(y, x), (fmt.name, y[:, 0])
    assert torch.isfinite(qs.quantize(x, spec).scale).all()


def test_asymmetric_range_includes_zero_exactly():
    x = torch.rand(1000) * 3 + 2  # all positive: the range is widened to [0, max]
    q = qs.quantize(x, qs.uint8(symmetric=False))
    assert q.zero_point.item() == 0
    assert qs.fake_quantize(torch.tensor([0.0]), qs.uint8(symmetric=False), qparams=qs.QParams(q.scale, q.zero_point)
                            ).item() == 0.0


def test_power_of_two_and_low_precision_scales():
    x = torch.randn(8, 64)
    q = qs.quantize(x, qs.QuantSpec(qs.int8(power_of_two_scale=True), granularity=qs.per_channel(0)))
    assert torch.equal(torch.log2(q.scale), torch.round(torch.log2(q.scale)))
    assert bool((q.scale >= x.abs().amax(1) / 127).all())  # rounded up: nothing extra is clipped
    q16 = qs.quantize(x, qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0), scale_dtype="float16"))
    assert torch.equal(q16.scale, q16.scale.half().float()) and bool((q16.scale >= x.abs().amax(1) / 127).all())
    with pytest.raises(ValueError, match="does not fit"):
        qs.quantize(torch.tensor([1e30, -1e30]), qs.QuantSpec(qs.int8(), scale_dtype="float16"))


def test_calibrator_object_fitted_elsewhere_is_reused():
    calib = qs.MinMaxCalibrator(qs.QuantSpec(qs.int8()))
    calib.update(torch.tensor([-4.0, 4.0]))
    q = qs.quantize(torch.tensor([0.5, 10.0]), qs.int8(), calibrator=calib)
    assert q.scale.item() == pytest.approx(4 / 127)
    assert q.dequantize()[1].item() == pytest.approx(4.0)  # clipped at the calibrated range
    with pytest.raises(ValueError, match="same spec"):
        qs.quantize(torch.ones(2), qs.int4(), calibrator=calib)


def test_straight_through_gradient_masks_clipped_values():
    x = torch.tensor([-3.0, -0.5, 0.2, 0.9, 5.0], requires_grad=True)
    y = qs.fake_quantize(x, qs.int8(), qparams=qs.QParams(1 / 127))  # range [-128/127, 1]
    assert y.requires_grad
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    w = torch.randn(16, 32, requires_grad=True)
    out = qs.fake_quantize(w, qs.QuantSpec(qs.fp8_e4m3(), granularity=qs.per_channel(0)))
    (out * 2).sum().backward()
    assert torch.equal(w.grad, torch.full_like(w, 2.0))  # absmax scaling: nothing clipped


def test_stochastic_rounding_needs_no_kernel_and_is_seeded():
    x = torch.randn(1000)
    spec = qs.QuantSpec(qs.int4(), rounding="stochastic")
    a = qs.quantize(x, spec, generator=torch.Generator().manual_seed(3)).codes
    b = qs.quantize(x, spec, generator=torch.Generator().manual_seed(3)).codes
    c = qs.quantize(x, spec, generator=torch.Generator().manual_seed(4)).codes
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_out_buffer_and_in_place():
    x = torch.randn(64, 300, generator=torch.Generator().manual_seed(5))
    for spec in [qs.int8(), qs.QuantSpec(qs.int4(), granularity=qs.per_group(128)), qs.mxfp4(), qs.fp8_e4m3(),
                 qs.nf4()]:
        want = qs.fake_quantize(x, spec)
        buf = torch.empty_like(x)
        assert qs.fake_quantize(x, spec, out=buf) is buf and bits_equal(buf, want)
        y = x.clone()
        qs.fake_quantize(y, spec, out=y)
        assert bits_equal(y, want)
    xn = x.numpy().astype(np.float64)
    bn = np.empty_like(xn)
    assert qs.fake_quantize(xn, qs.int8(), out=bn) is bn
    np.testing.assert_array_equal(bn, qs.fake_quantize(xn, qs.int8()))
    with pytest.raises(ValueError, match="shape"):
        qs.fake_quantize(x, qs.int8(), out=torch.empty(3))
    with pytest.raises(TypeError, match="same kind"):
        qs.fake_quantize(x, qs.int8(), out=np.empty((64, 300), np.float32))
    with pytest.raises(ValueError, match="autograd"):
        qs.fake_quantize(x.requires_grad_(), qs.int8(), out=torch.empty_like(x))
