import pytest
import torch

import quantscope as qs
from quantscope.calibrate import resolve_calibrator


def test_streaming_and_merge_equal_one_pass():
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 16, generator=g) * (i + 1) for i in range(6)]
    spec = qs.QuantSpec(qs.int8(symmetric=False), granularity=qs.per_channel(1))
    whole = qs.MinMaxCalibrator(spec).update(torch.cat(batches))
    a, b = qs.MinMaxCalibrator(spec), qs.MinMaxCalibrator(spec)
    for x in batches[:4]:
        a.update(x)
    for x in batches[4:]:
        b.update(x)
    merged = a.merge(b)
    assert torch.equal(merged.qparams().scale, whole.qparams().scale)
    assert torch.equal(merged.qparams().zero_point, whole.qparams().zero_point)
    assert torch.equal(b.merge(a).min_, whole.min_)  # order independent


def test_calibrator_contract_errors():
    spec = qs.QuantSpec(qs.int8())
    c = qs.MinMaxCalibrator(spec)
    assert c.spec is spec and not c.is_fitted
    with pytest.raises(qs.NotFittedError):
        c.qparams()
    tok = qs.MinMaxCalibrator(qs.QuantSpec(qs.int8(), granularity=qs.per_token()))
    tok.update(torch.randn(2, 4))
    with pytest.raises(ValueError, match="dynamic"):
        tok.update(torch.randn(3, 4))
    with pytest.raises(ValueError, match="NaN"):
        qs.MinMaxCalibrator(spec).update(torch.tensor([1.0, float("nan")]))
    with pytest.raises(TypeError, match="merge"):
        c.merge(object())
    with pytest.raises(TypeError, match="calibrator must be"):
        resolve_calibrator(3, spec)


def test_registry_accepts_user_calibrators():
    class HalfRange(qs.MinMaxCalibrator):
        def qparams(self):
            qp = super().qparams()
            return qs.QParams(qp.scale / 2, qp.zero_point)

    qs.register_calibrator("half-range", HalfRange)
    x = torch.linspace(-1, 1, 101)
    y = qs.fake_quantize(x, qs.int8(), calibrator="half-range")
    assert y.abs().max().item() == pytest.approx(0.5, abs=1e-2)
