"""quantize_onnx on a small synthetic model: a valid QDQ file, ORT agrees with the float model within the
quantization error, the codes are the PyTorch simulation's, recipes' ignore/targets work, bad input fails clearly."""

import numpy as np
import onnx
import pytest
import torch

import quantscope as qs
from quantscope.nn.recipes import LayerRule, Recipe, get
from quantscope.onnx import quantize_onnx
from quantscope.onnx.calibrate import session
from quantscope.onnx.quantize import analyze_onnx
from quantscope.onnx.speed import read_layers
from tests.onnx.conftest import make_tiny_onnx, sqnr_db, tiny_batches


def run(path, batches):
    s = session(str(path), optimization="disable")
    return np.concatenate([s.run(None, b)[0] for b in batches])


@pytest.mark.parametrize("recipe", ["w8a8", "w8", "w8a8-dynamic", "w4g32", "fp8"])
def test_recipes_write_valid_models_close_to_float(tiny_onnx, tmp_path, recipe):
    calib, evaluate = tiny_batches(6), tiny_batches(2, seed=9)
    out = tmp_path / f"{recipe}.onnx"
    if recipe == "w8a8-dynamic":
        with pytest.raises(ValueError, match="MatMul/Gemm .Linear. nodes only"):
            quantize_onnx(tiny_onnx, tmp_path / "x.onnx", recipe, calib=calib, show_progress=False)
        recipe = get(recipe)
        recipe = Recipe(recipe.name, recipe.default, targets=("Linear",))
    res = quantize_onnx(tiny_onnx, out, recipe, calib=calib, show_progress=False)
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    ref, got = run(tiny_onnx, evaluate), run(out, evaluate)
    name = recipe if isinstance(recipe, str) else recipe.name
    floor = {"w8a8": 28, "w8": 35, "w8a8-dynamic": 30, "w4g32": 12, "fp8": 20}[name]
    assert sqnr_db(ref, got) > floor
    ops = {n.op_type for n in model.graph.node}
    assert "DequantizeLinear" in ops or "MatMulInteger" in ops
    names = [x.name for x in res.layers]
    assert "fc1" in names and "fc2" in names
    if name != "w8a8-dynamic":
        assert {"conv1", "conv2"} <= set(names)
    assert [x["name"] for x in read_layers(model)] == names
    assert np.isfinite(res.output_sqnr_db["y"])


def test_weight_codes_are_the_simulation_codes(tiny_onnx, tmp_path):
    """The int8 initializer behind DequantizeLinear equals qs.quantize of the torch-layout weight."""
    out = tmp_path / "w8.onnx"
    quantize_onnx(tiny_onnx, out, "w8", show_progress=False)
    model = onnx.load(str(out))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    float_w = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(tiny_onnx).graph.initializer}
    spec = qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0))
    q = qs.quantize(torch.from_numpy(float_w["fc2.weight_t"].T.copy()), spec)
    assert np.array_equal(inits["fc2.weight_t_quantized"], q.codes.numpy().T)
    assert np.allclose(inits["fc2.weight_t_scale"], q.scale.numpy().reshape(-1))
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == "fc2.weight_t_quantized"]
    assert dict((a.name, a.i) for a in dq[0].attribute)["axis"] == 1  # output channels of the [K, N] MatMul weight


def test_static_activation_matches_fake_quantize(tiny_onnx, tmp_path):
    """The QDQ pair on fc1's input reproduces fake_quantize with the calibrated parameters (<= 1 step)."""
    from quantscope.onnx.calibrate import with_outputs

    calib = tiny_batches(6)
    out = tmp_path / "w8a8.onnx"
    quantize_onnx(tiny_onnx, out, "w8a8", calib=calib, show_progress=False, analyze=False)
    model = onnx.load(str(out))
    fc1 = next(n for n in model.graph.node if n.name == "fc1")
    dq = next(n for n in model.graph.node if n.output[0] == fc1.input[0])
    q = next(n for n in model.graph.node if n.output[0] == dq.input[0])
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    scale, zp = float(inits[q.input[1]]), int(inits[q.input[2]])
    s = session(with_outputs(model, [q.input[0], dq.output[0]]), optimization="disable")
    x, xq = s.run([q.input[0], dq.output[0]], calib[0])
    sim = np.clip(np.round(x / scale) + zp, 0, 255)
    assert np.abs((sim - zp) * scale - xq).max() <= scale * 1.001
    assert np.mean(np.abs((sim - zp) * scale - xq) > 1e-6) < 1e-3


def test_dynamic_per_token_path_matches_simulation(tiny_onnx, tmp_path):
    """MatMulInteger with run-time per-token scales equals fake-quantized x times the dequantized weight."""
    from quantscope.onnx.calibrate import with_outputs

    batches = tiny_batches(2)
    out = tmp_path / "dyn.onnx"
    linear = Recipe("dyn", get("w8a8-dynamic").default, targets=("Linear",))
    quantize_onnx(tiny_onnx, out, linear, calib=batches, show_progress=False, analyze=False)
    model = onnx.load(str(out))
    assert any(n.op_type == "MatMulInteger" for n in model.graph.node)
    sq = session(with_outputs(model, ["r3", "m2"]), optimization="disable")
    x_np, got = sq.run(["r3", "m2"], batches[0])
    x = torch.from_numpy(x_np)  # fc2's input in the quantized model
    w = torch.from_numpy(onnx.numpy_helper.to_array(
        {t.name: t for t in onnx.load(tiny_onnx).graph.initializer}["fc2.weight_t"]).T.copy())
    xq = qs.fake_quantize(x, qs.QuantSpec(qs.int8(), granularity=qs.per_token()))
    wq = qs.fake_quantize(w, qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0)))
    assert sqnr_db((xq @ wq.T).numpy(), got) > 60


def test_ignore_and_targets_keep_layers_float(tiny_onnx, tmp_path):
    recipe = get("w8a8").with_overrides(ignore=("conv1",))
    res = quantize_onnx(tiny_onnx, tmp_path / "a.onnx", recipe, calib=tiny_batches(3), show_progress=False)
    assert "conv1" not in [x.name for x in res.layers] and ("conv1", "ignored by the recipe") in res.kept_float
    linear_only = Recipe("lin", LayerRule(weight_format=qs.int8()), targets=("Linear",))
    res = quantize_onnx(tiny_onnx, tmp_path / "b.onnx", linear_only, show_progress=False)
    assert sorted(x.name for x in res.layers) == ["fc1", "fc2"]
    assert {n for n, _ in res.kept_float} == {"conv1", "conv2"}


def test_smoothquant_keeps_the_float_function(tiny_onnx, tmp_path):
    """With 16-bit quantization SmoothQuant's x/s and W*s leave the output unchanged up to rounding."""
    rule = LayerRule(weight_format=qs.int16(), input_format=qs.int16(symmetric=False), input_calibrator="minmax",
                     smooth_alpha=0.5)
    recipe = Recipe("s16", rule, targets=("Linear",))
    calib = tiny_batches(4)
    out = tmp_path / "s.onnx"
    res = quantize_onnx(tiny_onnx, out, recipe, calib=calib, show_progress=False)
    assert res.output_sqnr_db["y"] > 60
    assert all(x["smoothed"] for x in read_layers(onnx.load(str(out))))


def test_opset_is_raised_for_int4_and_old_models(tmp_path):
    old = make_tiny_onnx(tmp_path / "old.onnx", opset=11)
    res = quantize_onnx(old, tmp_path / "w8.onnx", "w8", show_progress=False)
    assert res.opset == 13
    res = quantize_onnx(old, tmp_path / "w4.onnx", "w4g32", show_progress=False)
    assert res.opset == 21
    assert onnx.TensorProto.INT4 in {t.data_type for t in onnx.load(str(tmp_path / "w4.onnx")).graph.initializer}


def test_analyze_ranks_layers(tiny_onnx):
    res = analyze_onnx(tiny_onnx, "w8a8", tiny_batches(3), show_progress=False)
    assert all(np.isfinite(x.sensitivity_db) for x in res.layers)
    ranked = res.ranked()
    assert ranked[0].sensitivity_db == min(x.sensitivity_db for x in res.layers)
    assert res.path == ""


# ------------------------------------------------------------------------------------------ bad input
def test_bad_files(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        quantize_onnx(empty, tmp_path / "o.onnx", "w8", show_progress=False)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07not a protobuf at all" * 10)
    with pytest.raises(ValueError, match="not a readable ONNX model|no graph nodes"):
        quantize_onnx(junk, tmp_path / "o.onnx", "w8", show_progress=False)
    with pytest.raises(FileNotFoundError):
        quantize_onnx(tmp_path / "missing.onnx", tmp_path / "o.onnx", "w8", show_progress=False)
    assert not (tmp_path / "o.onnx").exists()


def test_bad_recipes_and_data(tiny_onnx, tmp_path):
    out = tmp_path / "o.onnx"
    with pytest.raises(ValueError, match="pass calib"):
        quantize_onnx(tiny_onnx, out, "w8a8", show_progress=False)
    with pytest.raises(ValueError, match="empty"):
        quantize_onnx(tiny_onnx, out, "w8a8", calib=[], show_progress=False)
    with pytest.raises(ValueError, match="matches no node"):
        quantize_onnx(tiny_onnx, out, get("w8").with_overrides(ignore=("nope.*",)), show_progress=False)
    with pytest.raises(ValueError, match="no ONNX QuantizeLinear/DequantizeLinear type"):
        quantize_onnx(tiny_onnx, out, "nf4", show_progress=False)
    with pytest.raises(ValueError, match="model takes"):
        quantize_onnx(tiny_onnx, out, "w8a8", calib=[{"wrong": np.zeros((1, 3, 8, 8), np.float32)}],
                      show_progress=False)
    assert not out.exists()


def test_smoothed_conv_after_conv_runs_with_all_optimizations(tiny_onnx, tmp_path):
    """conv2 reads conv1's output (through a Relu ORT fuses): the smoothed input must not become a per-channel
    QuantizeLinear that ORT folds into a QLinearConv with per-channel output zero points (which it rejects)."""
    rule = LayerRule(weight_format=qs.int8(), input_format=qs.int8(symmetric=False), smooth_alpha=0.5)
    out = tmp_path / "s.onnx"
    res = quantize_onnx(tiny_onnx, out, Recipe("s", rule), calib=tiny_batches(4), show_progress=False)
    assert res.output_sqnr_db["y"] > 20
    batch = tiny_batches(1, seed=5)[0]
    ref = session(str(out), optimization="disable").run(None, batch)[0]
    got = session(str(out), optimization="all").run(None, batch)[0]
    assert sqnr_db(ref, got) > 30


def _exported_gelu_model(path, shared_x_reader: bool = False):
    """MatMul -> GELU written as PyTorch's exporter does, x · (0.5 · (1 + erf(x / √2))) -> MatMul."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "fc1.weight_t"),
             numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "fc2.weight_t"),
             numpy_helper.from_array(np.array(1.4142135, np.float32), "sqrt2"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    nodes = [helper.make_node("MatMul", ["x", "fc1.weight_t"], ["h"], name="fc1"),
             helper.make_node("Div", ["h", "sqrt2"], ["hs"], name="gelu_div"),
             helper.make_node("Erf", ["hs"], ["e"], name="gelu_erf"),
             helper.make_node("Add", ["e", "one"], ["a"], name="gelu_add"),
             helper.make_node("Mul", ["half", "a"], ["p"], name="gelu_half"),
             helper.make_node("Mul", ["h", "p"], ["g"], name="gelu_mul"),
             helper.make_node("MatMul", ["g", "fc2.weight_t"], ["y"], name="fc2")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])]
    if shared_x_reader:  # the 0.5·(1+erf) factor is read elsewhere too: must stay as it is
        outputs.append(helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 16]))
    graph = helper.make_graph(nodes, "gelu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              outputs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def test_exported_gelu_is_reordered_exactly_so_ort_fuses_it(tmp_path):
    import collections

    import onnxruntime as ort

    from quantscope.onnx import graph as G

    src = _exported_gelu_model(tmp_path / "g.onnx")
    m = onnx.load(src)
    assert G.fusable_gelu(m) == 1
    onnx.save(m, tmp_path / "r.onnx")
    x = np.random.default_rng(1).standard_normal((64, 8)).astype(np.float32) * 3
    before = session(src, optimization="disable").run(None, {"x": x})[0]
    after = session(str(tmp_path / "r.onnx"), optimization="disable").run(None, {"x": x})[0]
    assert np.array_equal(before, after)  # bit for bit: ·0.5 commutes with rounding
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(tmp_path / "r.onnx"), so, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)
    assert ops["Erf"] == 0 and ops["Gelu"] + ops["BiasGelu"] == 1
    shared = onnx.load(_exported_gelu_model(tmp_path / "s.onnx", shared_x_reader=True))
    assert G.fusable_gelu(shared) == 0  # an intermediate with another reader is left alone
    res = quantize_onnx(src, tmp_path / "q.onnx", "w8a8-dynamic", show_progress=False, analyze=False)
    assert res.layers and G.fusable_gelu(onnx.load(tmp_path / "q.onnx")) == 0  # already reordered in the output
