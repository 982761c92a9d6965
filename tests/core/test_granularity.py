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


def _token_norm_spec(fmt=None):
    return qs.QuantSpec(fmt or qs.int8(symmetric=False), granularity=qs.per_token_normalized())


def test_per_token_normalized_is_rows_scaled_onto_one_grid():
    """Each row divided by its max|x|, one asymmetric grid for the whole normalized tensor, and
    multiplied back: equal to doing those steps by hand, and every element within half a row step."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 9, 48, generator=g) * torch.logspace(-4, 3, 45).reshape(5, 9, 1)  # 7 decades of row sizes
    x[1, 4] = 0.0  # an all-zero row stays exactly zero
    got = qs.fake_quantize(x, _token_norm_spec())
    m = x.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    flat = qs.quantize(x / m, qs.int8(symmetric=False))
    assert torch.equal(got, flat.dequantize() * m)
    assert torch.equal(got[1, 4], torch.zeros(48))
    # |x - Q(x)| <= m_row * Δ / 2 (+ float rounding of the division and the products)
    step = float(flat.scale)
    assert bool(((x - got).abs() <= m * step * (0.5 + 1e-5)).all())
    # rows 7 decades apart all keep ~8-bit relative precision (a per-tensor grid would zero the small ones)
    rel = (x - got).abs().amax(-1) / m.squeeze(-1)
    assert float(rel.max()) <= step / 2 * (1 + 1e-5)


def test_per_token_normalized_out_gradient_and_errors():
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    spec = _token_norm_spec()
    ref = qs.fake_quantize(x, spec)
    buf = torch.empty_like(x)
    assert qs.fake_quantize(x, spec, out=buf) is buf and torch.equal(buf, ref)
    xg = x.clone().requires_grad_(True)
    qs.fake_quantize(xg, spec).sum().backward()
    assert torch.equal(xg.grad, torch.ones_like(x))  # max|x| rows never clip: straight-through everywhere
    with pytest.raises(ValueError, match="fake_quantize"):
        qs.quantize(x, spec)
    bad = x.clone()
    bad[2, 5] = float("inf")
    with pytest.raises(ValueError, match="1 Inf"):
        qs.fake_quantize(bad, spec)
    with pytest.raises(ValueError, match="scaled format"):
        qs.QuantSpec(qs.fp16(), granularity=qs.per_token_normalized())
    with pytest.raises(ValueError, match="0-d"):
        qs.fake_quantize(torch.tensor(1.0), spec)
    assert qs.QuantSpec.from_dict(spec.to_dict()) == spec
    assert "per_token_normalized" in str(spec)
