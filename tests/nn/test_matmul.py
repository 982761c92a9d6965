"""Attention matmuls: both operands of every product inside the matched modules are quantized."""

import json

import pytest
import torch
from torch import nn

import quantscope as qs
from quantscope.nn import LayerRule, Recipe, quantize_model
from quantscope.nn.recipes import MatmulRule


class TinyAttention(nn.Module):
    def forward(self, q, k, v):
        p = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1)
        return torch.matmul(p, v)


class TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 48)
        self.attention = TinyAttention()
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        q, k, v = self.proj(x).chunk(3, dim=-1)
        return self.out(self.attention(q, k, v))


def manual(model, x, fmt):
    def fq(t, side):
        g = qs.per_token() if side == "left" else qs.per_group(t.shape[-2], axis=-2)
        return qs.fake_quantize(t, qs.QuantSpec(fmt, granularity=g))

    q, k, v = model.proj(x).chunk(3, dim=-1)
    s = fq(q, "left") @ fq(k.transpose(-1, -2), "right")
    p = torch.softmax(s / 4.0, dim=-1)
    return model.out(fq(p, "left") @ fq(v, "right"))


def test_products_are_computed_from_quantized_operands():
    torch.manual_seed(0)
    model = TinyModel().eval()
    x = torch.randn(2, 5, 16)
    recipe = Recipe("attn", LayerRule(weight_format=qs.int8()), ignore=("proj", "out"),
                    matmuls=(MatmulRule("attention", qs.int4(), "token"),), targets=("Linear",))
    with pytest.raises(ValueError, match="no layer this recipe quantizes"):
        quantize_model(model, recipe)
    recipe = Recipe("attn", LayerRule(weight_format=qs.int8()), matmuls=(MatmulRule("attention", qs.int4(), "token"),))
    q = quantize_model(model, recipe, show_progress=False)
    with torch.no_grad():
        got = q(x)
        want = manual(q, x, qs.int4())
        plain = quantize_model(model, "w8", show_progress=False)(x)
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, plain, atol=1e-3)


def test_matmul_rules_serialize_and_validate():
    r = qs.recipes.get("w8a8-dynamic-attn")
    assert Recipe.from_dict(json.loads(r.to_json())) == r
    with pytest.raises(ValueError, match="granularity"):
        MatmulRule("x", qs.int8(), "channel")
    model = TinyModel()
    bad = Recipe("b", LayerRule(weight_format=qs.int8()), matmuls=(MatmulRule("decoder.*", qs.int8()),))
    with pytest.raises(ValueError, match="matches no module"):
        quantize_model(model, bad, show_progress=False)


def test_matmul_hooks_survive_save_and_load(tmp_path):
    torch.manual_seed(1)
    model = TinyModel().eval()
    x = torch.randn(3, 5, 16)
    recipe = Recipe("attn", LayerRule(weight_format=qs.int8()), matmuls=(MatmulRule("attention", qs.int4()),))
    q = quantize_model(model, recipe, show_progress=False)
    qs.save(q, tmp_path / "m")
    loaded = qs.load(tmp_path / "m", TinyModel())
    with torch.no_grad():
        assert torch.equal(loaded(x), q(x))
