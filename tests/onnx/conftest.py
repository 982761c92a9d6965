"""Shared ONNX fixtures: a small synthetic ONNX CNN+MLP (built with onnx.helper) with its batches, a tiny
randomly initialised BERT, and the digits CNN from the PyTorch tests."""

import numpy as np
import pytest

from tests.nn.conftest import digits  # noqa: F401  (fixture re-export)

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def make_tiny_onnx(path, opset: int = 17, seed: int = 0) -> str:
    """x [N,3,8,8] -> Conv 3->8 -> Relu -> Conv 8->8 -> Relu -> Flatten -> Gemm 512->16 (transB) -> Relu ->
    MatMul 16->4 -> Add bias -> y [N,4]. Weight names are module-like; node names are the layer names."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def w(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("conv1.weight", w(8, 3, 3, 3)), ("conv1.bias", w(8, scale=0.1)),
        ("conv2.weight", w(8, 8, 3, 3, scale=0.2)), ("conv2.bias", w(8, scale=0.1)),
        ("fc1.weight", w(16, 512, scale=0.05)), ("fc1.bias", w(16, scale=0.1)),
        ("fc2.weight_t", w(16, 4, scale=0.3)), ("fc2.bias", w(4, scale=0.1))]]
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Flatten", ["r2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc1.weight", "fc1.bias"], ["g1"], name="fc1", transB=1),
        helper.make_node("Relu", ["g1"], ["r3"], name="relu3"),
        helper.make_node("MatMul", ["r3", "fc2.weight_t"], ["m2"], name="fc2"),
        helper.make_node("Add", ["m2", "fc2.bias"], ["y"], name="fc2_bias"),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def tiny_batches(n: int = 6, batch: int = 8, seed: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)} for _ in range(n)]


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    return make_tiny_onnx(tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_bert():
    """A 2-layer BERT (hidden 32) with seeded random weights, and a tokenizer-free padded batch."""
    import torch

    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    model = transformers.BertModel(config).eval()
    return model


def bert_batch(batch: int = 4, seq: int = 12, seed: int = 0, pad: bool = True):
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 120, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    if pad:
        for i in range(batch):
            n = int(torch.randint(3, seq + 1, (1,), generator=g))
            mask[i, n:] = 0
            ids[i, n:] = 0
    return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": mask}


def sqnr_db(ref, test) -> float:
    ref, test = np.asarray(ref, dtype=np.float64), np.asarray(test, dtype=np.float64)
    noise = ((ref - test) ** 2).sum()
    return float("inf") if noise == 0 else float(10 * np.log10((ref ** 2).sum() / noise))
