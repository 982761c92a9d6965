"""bench_speed (latency, kernel census, simulation-vs-ORT divergence) and the ONNX command-line paths."""

import json

import numpy as np
import onnx
import pytest

from quantscope.cli import main
from quantscope.onnx import quantize_onnx
from quantscope.onnx.speed import (
    annotate_layers,
    bench_speed,
    compare_latency,
    compare_speedups,
    kernel_notes,
    layer_kernels,
    read_layers,
)
from tests.onnx.conftest import tiny_batches


@pytest.fixture(scope="module")
def quantized(tiny_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "tiny_w8a8.onnx"
    quantize_onnx(tiny_onnx, out, "w8a8", calib=tiny_batches(4), show_progress=False, analyze=False)
    return str(out)


def test_layer_metadata_round_trip(tiny_onnx):
    m = onnx.load(tiny_onnx)
    layers = [{"name": "fc1", "op": "Gemm", "output": "g1", "weight": "int8", "input": "float"}]
    annotate_layers(m, layers)
    annotate_layers(m, layers)  # replaces, never duplicates
    assert read_layers(m) == layers
    assert sum(p.key == "quantscope.layers" for p in m.metadata_props) == 1


def test_kernel_census_classifies_nodes():
    from onnx import helper

    nodes = [helper.make_node("MatMulIntegerToFloat", ["a", "b"], ["c"], name="q.proj/acc", domain="com.microsoft"),
             helper.make_node("DequantizeLinear", ["w", "s"], ["wd"], name="k.proj/weight_dequantize"),
             helper.make_node("MatMul", ["c", "wd"], ["d"], name="k.proj"),
             helper.make_node("MatMulNBits", ["d", "w2"], ["e"], name="v.proj", domain="com.microsoft"),
             helper.make_node("MatMulNBits", ["e", "w3"], ["f"], name="up.proj", domain="com.microsoft",
                              accuracy_level=4)]
    g = helper.make_graph(nodes, "g", [], [])
    names = ["q.proj", "k.proj", "v.proj", "o.proj", "up.proj"]
    statuses, unfused = layer_kernels(helper.make_model(g), names)
    # MatMulNBits at accuracy level 4 quantizes its activations to int8 at run time: an int8 kernel
    assert [s.status for s in statuses] == ["int8", "float", "weight-only", "fused", "int8"]
    assert statuses[2].ops == "MatMulNBits[accuracy_level=0]" and statuses[4].ops == "MatMulNBits[accuracy_level=4]"
    assert [s.ort_quantizes_input for s in statuses] == [False, False, False, False, True]
    assert len(unfused) == 1 and "k.proj/weight_dequantize" in unfused[0]
    meta = [{"name": n, "input": "float" if n != "q.proj" else "int8-asym per_tensor (dynamic)"} for n in names]
    notes = kernel_notes(statuses, meta)
    assert len(notes) == 1 and "1 weight-only layer(s) (up.proj)" in notes[0]
    assert "session.qdq_matmulnbits_accuracy_level" in notes[0]
    assert kernel_notes(statuses[:4], meta[:4]) == []


def test_bench_speed_reports_every_layer(tiny_onnx, quantized):
    rep = bench_speed(tiny_onnx, quantized, tiny_batches(2), threads=(1,), warmup=1, repeats=4, rounds=2)
    assert {(x.model, x.threads) for x in rep.latencies} == {("float", 1), ("quantized", 1)}
    assert all(x.median_ms > 0 and x.items_per_s > 0 for x in rep.latencies)
    assert rep.speedup(1) > 0
    assert [x.name for x in rep.layers] == ["conv1", "conv2", "fc1", "fc2"]
    assert all(x.status in ("int8", "float", "weight-only", "fused") for x in rep.layers)
    # the int8 execution follows the simulation closely on this small model
    assert rep.output_sim_vs_ort_sqnr_db > 30
    assert not any(x.diverges for x in rep.layers if np.isfinite(x.sim_vs_ort_sqnr_db))
    assert rep.float_bytes > rep.quant_bytes


def test_compare_latency_times_every_model(tiny_onnx, quantized):
    ms = compare_latency({"float": tiny_onnx, "w8a8": quantized, "again": tiny_onnx}, tiny_batches(1)[0], threads=1,
                         warmup=1, repeats=6, rounds=3)
    assert set(ms) == {"float", "w8a8", "again"} and all(v > 0 for v in ms.values())


def test_bench_speed_rejects_empty_input(tiny_onnx, quantized):
    with pytest.raises(ValueError, match="at least one input batch"):
        bench_speed(tiny_onnx, quantized, [])


def _npz(path, n=24):
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.standard_normal((n, 3, 8, 8)).astype(np.float32))
    return str(path)


def test_cli_quantize_analyze_and_bench_onnx(tiny_onnx, tmp_path, capsys):
    calib = _npz(tmp_path / "calib.npz")
    out, report = tmp_path / "q.onnx", tmp_path / "r.html"
    assert main(["quantize", tiny_onnx, "--recipe", "w8a8", "--calib", calib, "--out", str(out),
                 "--report", str(report), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "nodes quantized" in text and "fc1" in text
    onnx.checker.check_model(onnx.load(str(out)))
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64" in page and "http" not in page.split(
        "<body>")[1].split("quantscope error report")[0]
    assert main(["analyze", tiny_onnx, "--recipe", "w8a8", "--calib", calib, "--quiet", "--top", "2"]) == 0
    assert "most harmful node #1" in capsys.readouterr().out
    js, html = tmp_path / "speed.json", tmp_path / "speed.html"
    assert main(["bench-speed", str(out), "--float", tiny_onnx, "--calib", calib, "--threads", "1",
                 "--repeats", "4", "--json", str(js), "--html", str(html)]) == 0
    text = capsys.readouterr().out
    assert "speed-up, 1 thread(s)" in text and "how ONNX Runtime runs" in text
    data = json.loads(js.read_text())
    assert len(data["layers"]) == 4 and data["latencies"]
    assert "Kernels" in html.read_text()


def test_cli_onnx_bad_input(tiny_onnx, tmp_path, capsys):
    assert main(["quantize", tiny_onnx, "--recipe", "w8", "--out", str(tmp_path / "q.bin")]) == 2
    assert "--out must name an .onnx file" in capsys.readouterr().err
    assert main(["quantize", tiny_onnx, "--recipe", "w8"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing.onnx"), "--recipe", "w8"]) == 2
    assert "no ONNX model" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, wrong=np.zeros((4, 3, 8, 8), np.float32))
    assert main(["analyze", tiny_onnx, "--recipe", "w8a8", "--calib", str(bad)]) == 2
    assert "the model takes inputs ['x']" in capsys.readouterr().err
    assert main(["bench-speed", tiny_onnx, "--float", tiny_onnx, "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_cli_synthetic_data_warns(tiny_onnx, tmp_path, capsys):
    assert main(["quantize", tiny_onnx, "--recipe", "w8a8", "--out", str(tmp_path / "q.onnx"), "--quiet"]) == 0
    assert "synthetic random inputs" in capsys.readouterr().err


def test_compare_speedups_pairs_models_round_by_round(tiny_onnx, quantized):
    ms, paired = compare_speedups({"float": tiny_onnx, "w8a8": quantized}, tiny_batches(1)[0], "float", threads=1,
                                  warmup=1, repeats=6, rounds=3)
    assert set(ms) == set(paired) == {"float", "w8a8"}
    assert paired["float"] == 1.0 and paired["w8a8"] > 0 and all(v > 0 for v in ms.values())
    with pytest.raises(ValueError, match="baseline"):
        compare_speedups({"float": tiny_onnx}, tiny_batches(1)[0], "fp32", threads=1, repeats=2, rounds=1)
