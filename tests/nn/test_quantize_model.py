"""quantize_model on a real (small) CNN trained on scikit-learn's digits, recipes, bad input."""

import json

import pytest
import torch
from torch import nn

import quantscope as qs
from quantscope.nn import LayerRule, QuantizedModule, Recipe, quantize_model, quantized_layers, recipes
from tests.nn.conftest import accuracy


def test_float_cnn_is_accurate(digits):
    model, x, y, _ = digits
    assert accuracy(model, x, y) > 95


@pytest.mark.parametrize("name, max_drop", [("w8a8", 0.5), ("w8a8-dynamic", 0.5), ("w8", 0.5), ("fp8", 0.5),
                                            ("w4g32", 2.0), ("nf4", 2.0)])
def test_recipes_keep_accuracy(digits, name, max_drop):
    model, x, y, calib = digits
    base = accuracy(model, x, y)
    q = quantize_model(model, name, calib=calib, show_progress=False)
    assert base - accuracy(q, x, y) <= max_drop
    assert [n for n, _ in quantized_layers(q)] == ["conv1", "conv2", "fc1", "fc2"]


def test_float_model_is_untouched_unless_inplace(digits):
    model, x, _, calib = digits
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize_model(model, "w8a8", calib=calib, show_progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, QuantizedModule) for m in model.modules())
    assert isinstance(q.fc1, QuantizedModule) and q.fc1.input_mode == "static"
    clone = __import__("copy").deepcopy(model)
    out = quantize_model(clone, "w8", inplace=True, show_progress=False)
    assert out is clone and isinstance(clone.fc2, QuantizedModule)


def test_weights_are_on_the_grid_and_inputs_quantized(digits):
    model, x, _, calib = digits
    q = quantize_model(model, "w8a8", calib=calib, show_progress=False)
    w = q.fc1.inner.weight
    assert torch.equal(w, q.fc1.weight_q.dequantize())
    scale = q.fc1.weight_q.scale
    codes = w / scale[:, None]
    assert torch.allclose(codes, codes.round(), atol=1e-3)
    seen = {}
    q.fc1.input_observer = lambda mod, a, b: seen.update(x=a, xq=b)
    q(x[:8])
    step = q.fc1.input_qparams.scale
    assert torch.allclose(seen["xq"] / step, (seen["xq"] / step).round(), atol=1e-3)


def test_overrides_and_ignore_by_pattern(digits):
    model, x, y, calib = digits
    recipe = recipes.get("w8").with_overrides(("fc*", LayerRule(weight_format=qs.int4(), weight_granularity="channel")),
                                              ignore=("conv1",))
    q = quantize_model(model, recipe, show_progress=False)
    assert not isinstance(q.conv1, QuantizedModule)
    assert q.fc1.weight_q.spec.format == qs.int4() and q.conv2.weight_q.spec.format == qs.int8()
    r = Recipe("custom", LayerRule(weight_format=qs.int8()), overrides=(("re:fc[12]", LayerRule(
        weight_format=qs.int4(), weight_granularity="group:32")),))
    q = quantize_model(model, r, show_progress=False)
    assert q.fc1.weight_q.spec.granularity == qs.per_group(32, axis=1)
    assert q.fc2.weight_q.spec.granularity == qs.per_group(32, axis=1)  # 64 inputs >= 32: grouped too
    assert q.fc2.weight_q.spec.format == qs.int4()
    q = quantize_model(model, "w4g32", show_progress=False)
    assert q.conv1.weight_q.spec.granularity == qs.per_channel(0)  # 1 input channel < 32: per output channel
    assert q.conv2.weight_q.spec.granularity == qs.per_channel(0)  # 16 input channels < 32


def test_recipe_serialization_round_trip(tmp_path):
    for name in recipes.names():
        r = recipes.get(name)
        assert Recipe.from_dict(json.loads(r.to_json())) == r
        path = tmp_path / f"{name}.yaml"
        path.write_text(r.to_yaml())
        assert Recipe.load(str(path)) == r
    with pytest.raises(ValueError, match="unknown recipe keys"):
        Recipe.from_dict({"name": "x", "default": {}, "bits": 4})
    with pytest.raises(ValueError, match="unknown layer-rule keys"):
        LayerRule.from_dict({"weight_bits": 4})


def test_bad_input_gets_clear_errors(digits):
    model, x, _, calib = digits
    with pytest.raises(ValueError, match="built-in recipes: w8a8, w8a8-dynamic"):
        quantize_model(model, "int3-magic")
    with pytest.raises(ValueError, match="matches no quantizable layer; layers are: conv1, conv2, fc1, fc2"):
        quantize_model(model, recipes.get("w8").with_overrides(ignore=("decoder.*",)))
    with pytest.raises(ValueError, match="pass calib=batches"):
        quantize_model(model, "w8a8")
    with pytest.raises(ValueError, match="a dict with keys"):
        quantize_model(model, "w8a8", calib=[{"pixels": x[:4]}], show_progress=False)
    with pytest.raises(ValueError, match="expected a tensor, a tuple/list"):
        quantize_model(model, "w8a8", calib=["not a tensor"], show_progress=False)
    with pytest.raises(ValueError, match="empty"):
        quantize_model(model, "w8a8", calib=[], show_progress=False)
    with pytest.raises(ValueError, match="no quantizable layer"):
        quantize_model(nn.Sequential(nn.ReLU(), nn.Tanh()), "w8")
    with pytest.raises(ValueError, match="dynamic"):
        quantize_model(model, Recipe("bad", LayerRule(weight_format=qs.int8(), input_format=qs.int8(),
                                                       input_granularity="token")), calib=calib)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        quantize_model("model", "w8")
