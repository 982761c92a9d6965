"""export_onnx: float exports agree with PyTorch (also on padded batches), QDQ exports of quantized models
agree with the PyTorch simulation in ONNX Runtime (SQNR >= 35 dB for the int8 recipes)."""

import numpy as np
import onnx
import pytest
import torch

import quantscope as qs
from quantscope.onnx import export_onnx
from quantscope.onnx.calibrate import session
from quantscope.onnx.speed import read_layers
from tests.onnx.conftest import bert_batch, sqnr_db


def ort_run(path, feeds):
    s = session(str(path), optimization="disable")
    return s.run(None, {k: np.asarray(v) for k, v in feeds.items()})


def test_float_cnn_export_matches_torch(digits, tmp_path):
    model, x, _, _ = digits
    res = export_onnx(model, x[:4], tmp_path / "cnn.onnx")
    onnx.checker.check_model(onnx.load(res.path), full_check=True)
    got = ort_run(res.path, {res.input_names[0]: x[:37].numpy()})[0]  # another batch size: dynamic axis
    with torch.no_grad():
        ref = model(x[:37]).numpy()
    assert np.abs(got - ref).max() < 1e-4
    names = {n.name for n in onnx.load(res.path).graph.node}
    assert {"conv1", "conv2", "fc1", "fc2"} <= names  # nodes carry the module names


@pytest.mark.parametrize("recipe", ["w8a8", "w8a8-dynamic", "w8"])
def test_quantized_cnn_matches_simulation(digits, tmp_path, recipe):
    model, x, y, calib = digits
    if recipe == "w8a8-dynamic":
        rec = qs.recipes.get(recipe)
        recipe = qs.recipes.Recipe(rec.name, rec.default, targets=("Linear",))
    qm = qs.quantize_model(model, recipe, calib=calib, show_progress=False)
    res = export_onnx(qm, x[:4], tmp_path / "q.onnx")
    m = onnx.load(res.path)
    onnx.checker.check_model(m, full_check=True)
    assert [entry["name"] for entry in read_layers(m)] == [x.name for x in res.layers]
    got = ort_run(res.path, {res.input_names[0]: x.numpy()})[0]
    with torch.no_grad():
        sim = qm(x).numpy()
    assert sqnr_db(sim, got) >= 35
    assert (got.argmax(1) == sim.argmax(1)).mean() > 0.99


def test_int4_and_fp8_weights_export(digits, tmp_path):
    model, x, _, calib = digits
    for recipe, dtype, opset in (("w4g32", onnx.TensorProto.INT4, 21), ("fp8", onnx.TensorProto.FLOAT8E4M3FN, 19)):
        qm = qs.quantize_model(model, recipe, calib=calib, show_progress=False)
        res = export_onnx(qm, x[:4], tmp_path / f"{recipe}.onnx")
        m = onnx.load(res.path)
        assert res.opset >= opset
        assert dtype in {t.data_type for t in m.graph.initializer}
        got = ort_run(res.path, {res.input_names[0]: x[:64].numpy()})[0]
        with torch.no_grad():
            sim = qm(x[:64]).numpy()
        assert sqnr_db(sim, got) >= 30


def test_float_transformer_export_handles_padding(tiny_bert, tmp_path):
    """The attention mask stays an input: padded batches of other shapes agree with PyTorch."""
    res = export_onnx(tiny_bert, bert_batch(2, 8, pad=False), tmp_path / "bert.onnx")
    assert res.input_names == ["input_ids", "token_type_ids", "attention_mask"]
    batch = bert_batch(5, 11, seed=3, pad=True)
    got = ort_run(res.path, batch)[0]
    with torch.no_grad():
        ref = tiny_bert(**batch).last_hidden_state.numpy()
    mask = batch["attention_mask"].numpy().astype(bool)
    a, b = ref[mask], got[mask]
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert cos.min() >= 0.99999


@pytest.mark.parametrize("recipe", ["w8a8", "w8a8-dynamic", "w8a8-hybrid"])
def test_quantized_transformer_matches_simulation(tiny_bert, tmp_path, recipe):
    calib = [bert_batch(4, 12, seed=s) for s in range(4)]
    qm = qs.quantize_model(tiny_bert, recipe, calib=calib, show_progress=False)
    res = export_onnx(qm, bert_batch(2, 8, pad=False), tmp_path / "q.onnx")
    onnx.checker.check_model(onnx.load(res.path), full_check=True)
    batch = bert_batch(4, 10, seed=11)
    got = ort_run(res.path, batch)[0]
    with torch.no_grad():
        sim = qm(**batch).last_hidden_state.numpy()
    mask = batch["attention_mask"].numpy().astype(bool)
    assert sqnr_db(sim[mask], got[mask]) >= 35


def test_export_rejects_bad_input(digits, tmp_path):
    model, x, _, _ = digits
    with pytest.raises(ValueError, match="example_inputs"):
        export_onnx(model, "not a tensor", tmp_path / "a.onnx")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        export_onnx("model", x[:2], tmp_path / "a.onnx")
    qm = qs.quantize_model(model, "nf4", show_progress=False)
    with pytest.raises(ValueError, match="no ONNX QuantizeLinear/DequantizeLinear type"):
        export_onnx(qm, x[:2], tmp_path / "a.onnx")
    assert not (tmp_path / "a.onnx").exists()


def test_mlp_with_flat_float_input_keeps_features_fixed(tmp_path):
    """A (batch, features) float input: only the batch axis is dynamic (a batch of one is fine too)."""
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)).eval()
    res = export_onnx(mlp, torch.randn(1, 6), tmp_path / "mlp.onnx")
    x = torch.randn(9, 6)
    got = ort_run(res.path, {res.input_names[0]: x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - mlp(x).numpy()).max() < 1e-5


def test_hybrid_recipe_runs_every_linear_as_one_fused_int8_kernel(tiny_bert, tmp_path):
    """w8a8-hybrid's token-normalized FFN inputs (x / max|x_row| → DynamicQuantizeLinear) fuse like its
    per-tensor ones: ORT's optimized graph keeps no bare MatMulInteger, QuantizeLinear or float MatMul
    on a weight, and every Linear runs as DynamicQuantizeMatMul / MatMulIntegerToFloat."""
    import collections

    import onnxruntime as ort

    calib = [bert_batch(4, 12, seed=s) for s in range(2)]
    qm = qs.quantize_model(tiny_bert, "w8a8-hybrid", calib=calib, show_progress=False)
    res = export_onnx(qm, bert_batch(2, 8, pad=False), tmp_path / "q.onnx")
    ops = collections.Counter(n.op_type for n in onnx.load(res.path).graph.node)
    assert ops["Div"] >= 2 and ops["DynamicQuantizeLinear"] >= 2  # the two FFN-down inputs, normalized
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(res.path, so, providers=["CPUExecutionProvider"])
    opt = collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in tiny_bert.modules())  # 12 in the encoder + pooler
    assert opt["DynamicQuantizeMatMul"] + opt["MatMulIntegerToFloat"] == n_linear
    assert opt["MatMulInteger"] == 0 and opt["QuantizeLinear"] == 0


def test_token_norm_inputs_are_dynamic_only():
    with pytest.raises(ValueError, match="input_mode='dynamic'"):
        qs.LayerRule(weight_format=qs.int8(), input_format=qs.int8(symmetric=False), input_granularity="token-norm")
    with pytest.raises(ValueError, match="weight granularity"):
        qs.LayerRule(weight_format=qs.int8(), weight_granularity="token-norm")


def test_weight_only_export_runs_as_simulated_with_float_activation_matmulnbits(tiny_bert, tmp_path):
    """With all optimizations ORT fuses each weight-only Linear into MatMulNBits. At ORT's default accuracy
    level (4) that kernel quantizes the activations to int8, which the w8 recipe does not: the output then
    moves away from the simulation by the size of that extra quantization. At accuracy level 0 it computes
    what the simulation computes (float activations, int8 weights), up to float rounding; the kernel census
    says which one ran and what to set."""
    from quantscope.onnx.speed import kernel_notes, layer_kernels

    qm = qs.quantize_model(tiny_bert, "w8", show_progress=False)
    res = export_onnx(qm, bert_batch(2, 8, pad=False), tmp_path / "w8.onnx")
    batch = {k: np.asarray(v) for k, v in bert_batch(4, 10, seed=11).items()}
    with torch.no_grad():
        sim = qm(**{k: torch.from_numpy(v) for k, v in batch.items()}).last_hidden_state.numpy()
    mask = batch["attention_mask"].astype(bool)
    db = {}
    for level in (None, 0):
        opt = tmp_path / f"opt{level}.onnx"
        sess = session(res.path, optimization="all", optimized_path=str(opt), matmul_nbits_accuracy=level)
        db[level] = sqnr_db(sim[mask], sess.run(None, batch)[0][mask])
        meta = read_layers(onnx.load(res.path))
        statuses, _ = layer_kernels(onnx.load(opt), [m["name"] for m in meta])
        fused = [s for s in statuses if "MatMulNBits" in s.ops]
        assert len(fused) >= 12  # every encoder Linear (pooler may stay a Gemm)
        if level is None:
            assert all(s.status == "int8" and "accuracy_level=4" in s.ops for s in fused)
            assert kernel_notes(statuses, meta) and "matmul_nbits_accuracy=0" in kernel_notes(statuses, meta)[0]
        else:
            assert all(s.status == "weight-only" and "accuracy_level=0" in s.ops for s in fused)
            assert kernel_notes(statuses, meta) == []
    assert db[0] >= 80  # float rounding only
    assert db[None] < db[0] - 20  # int8 activations: a real change of what is computed
    with pytest.raises(ValueError, match="matmul_nbits_accuracy"):
        session(res.path, matmul_nbits_accuracy=7)
