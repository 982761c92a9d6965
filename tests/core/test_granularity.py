import pytest
import torch

import quantscope as qs


def test_parameter_shapes():
    x = torch.randn(6, 10, 7)
    assert qs.quantize(x, qs.int8()).scale.shape == ()
    assert qs.quantize(x, qs.QuantSpec(qs.int8(), granularity=qs.per_channel(1))).scale.shape == (10,)
    assert qs.quantize(x, qs.QuantSpec(qs.int8(), granularity=qs.per_channel(-1))).scale.shape == (7,)
    assert qs.quantize(x, qs.QuantSpec(qs.int8(), granularity=qs.per_group(4, axis=1))).scale.shape == (6, 3, 7)
    assert qs.quantize(x, qs.QuantSpec(qs.int8(), granularity=qs.per_token())).scale.shape == (6, 10, 1)


def test_per_group_scales_follow_the_groups_with_a_short_last_group():
    x = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    q = qs.quantize(x, qs.QuantSpec(qs.int8(), granularity=qs.per_group(4, axis=1)))
    expect = torch.stack([x[:, 0:4].abs().amax(1), x[:, 4:8].abs().amax(1), x[:, 8:10].abs().amax(1)], 1) / 127
    assert torch.equal(q.scale, expect)


def test_per_group_along_a_leading_axis():
    x = torch.randn(10, 5, generator=torch.Generator().manual_seed(1))
    spec = qs.QuantSpec(qs.int4(), granularity=qs.per_group(4, axis=0))
    q = qs.quantize(x, spec)
    assert q.scale.shape == (3, 5)
    assert torch.equal(q.scale[2], x[8:].abs().amax(0) / 7)
    t = qs.quantize(x.T.contiguous(), qs.QuantSpec(qs.int4(), granularity=qs.per_group(4, axis=1)))
    assert torch.equal(t.dequantize().T, q.dequantize())


def test_per_channel_and_per_token_match_manual_reductions():
    x = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(2))
    for axis in range(3):
        q = qs.quantize(x, qs.QuantSpec(qs.int8(), granularity=qs.per_channel(axis)))
        dims = [d for d in range(3) if d != axis]
        assert torch.equal(q.scale, x.abs().amax(dim=dims) / 127)
    q = qs.quantize(x, qs.QuantSpec(qs.int8(symmetric=False), granularity=qs.per_token()))
    lo, hi = x.amin(-1, keepdim=True).clamp_max(0), x.amax(-1, keepdim=True).clamp_min(0)
    assert torch.allclose(q.scale, (hi - lo) / 255)


def test_granularity_errors():
    with pytest.raises(ValueError, match="0-d"):
        qs.quantize(torch.tensor(1.0), qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0)))
    with pytest.raises(TypeError, match="axis"):
        qs.per_channel("0").layout((3,))
    with pytest.raises(TypeError, match="granularity"):
        qs.QuantSpec(qs.int8(), granularity="per_tensor")
