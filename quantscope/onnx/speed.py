"""Does the quantized model actually run faster, and does it compute what we simulated?

:func:`bench_speed` measures ONNX Runtime latency (median and p90 over repeats, after warm-up,
float and quantized runs interleaved so machine noise hits both alike) on 1 and 2 threads, reads the
graph ORT really executes (``SessionOptions.optimized_model_filepath``) to say which quantized
layers run as int8 kernels, which stayed float, and which Q/DQ pairs were left unfused, and compares
every layer's output of the int8 execution against the simulation (the same QDQ graph evaluated
literally in float, with all graph optimizations off), flagging layers where they diverge.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..error.accumulate import SqnrAccumulator
from . import graph as G
from .calibrate import MATMULNBITS_ACCURACY_KEY, feed, session, with_outputs

INT8_OPS = frozenset({
    "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
    "QGemm", "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "QLinearConcat", "QLinearSoftmax", "QAttention", "QLinearReduceMean",
    "NhwcQLinearConv", "QLinearWhere", "QEmbedLayerNormalization", "DynamicQuantizeLSTM"})
WEIGHT_ONLY_OPS = frozenset({"MatMulNBits", "MatMulBnb4", "GatherBlockQuantized"})
INT8_ACCURACY_LEVEL = 4
"""``MatMulNBits`` attribute ``accuracy_level`` at which ORT's CPU kernel quantizes the activations to int8
(blockwise, at run time) and multiplies in integers: the node then is an int8 kernel, not weight-only."""
FLOAT_COMPUTE_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "FusedConv", "FusedMatMul", "FusedGemm",
                               "NchwcConv", "ConvTransposeWithDynamicPads"})
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
LAYERS_KEY = "quantscope.layers"


def annotate_layers(model: Any, layers: list[dict[str, str]]) -> None:
    """Record the quantized layers (name, op, output tensor, weight, input) in the model's metadata,
    so a speed report can find them in any later graph."""
    for prop in list(model.metadata_props):
        if prop.key == LAYERS_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = LAYERS_KEY, json.dumps(layers)


def read_layers(model: Any) -> list[dict[str, str]]:
    for prop in model.metadata_props:
        if prop.key == LAYERS_KEY:
            return list(json.loads(prop.value))
    return []


@dataclass
class Latency:
    """ORT latency of one model on ``threads`` threads: milliseconds per batch, items per second."""

    model: str
    threads: int
    median_ms: float
    p90_ms: float
    items_per_s: float


@dataclass
class LayerStatus:
    """How ORT executes one quantized layer: ``status`` is ``int8`` (an integer kernel; this includes
    ``MatMulNBits`` at accuracy level 4, which quantizes float activations to int8 at run time),
    ``weight-only`` (integer weights, float math), ``float`` (float kernel after dequantizing) or
    ``fused`` (merged into a neighbour without its own node); ``ops`` the node types found, with
    ``MatMulNBits``'s accuracy level in brackets; ``ort_quantizes_input``: ORT quantizes the layer's float
    input to int8 at run time on its own (``MatMulNBits`` at accuracy level 4)."""

    name: str
    status: str
    ops: str
    ort_quantizes_input: bool = False
    sim_vs_ort_sqnr_db: float = math.nan
    diverges: bool = False


@dataclass
class SpeedReport:
    """Latency of the float and the quantized model, file sizes (bytes), the kernels ORT chose for
    every quantized layer, Q/DQ nodes left in the executed graph, and simulation-vs-ORT SQNR (dB)."""

    float_path: str
    quant_path: str
    float_bytes: int
    quant_bytes: int
    batch_items: int
    latencies: list[Latency]
    layers: list[LayerStatus]
    op_counts: dict[str, int]
    unfused_qdq: list[str] = field(default_factory=list)
    output_sim_vs_ort_sqnr_db: float = math.nan
    notes: list[str] = field(default_factory=list)

    def speedup(self, threads: int) -> float:
        """Float latency / quantized latency (median) on ``threads`` threads."""
        lat = {(x.model, x.threads): x.median_ms for x in self.latencies}
        return lat[("float", threads)] / lat[("quantized", threads)]

    def counts(self) -> Counter[str]:
        return Counter(x.status for x in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _measure(paths: dict[str, str], feeds: dict[str, dict[str, np.ndarray]], threads: int, warmup: int,
             repeats: int, rounds: int) -> dict[str, list[float]]:
    # no spinning: after a run ORT's workers would otherwise busy-wait for a while and take the cores from
    # the next model's run (on a 2-core machine this alone made 2-thread timings swing by 1.5x)
    sessions = {k: session(p, threads=threads, optimization="all", spinning=False) for k, p in paths.items()}
    times: dict[str, list[float]] = {k: [] for k in paths}
    for k, s in sessions.items():
        for _ in range(warmup):
            s.run(None, feeds[k])
    per_round = max(1, repeats // rounds)
    for _ in range(rounds):  # interleave so that slow phases of a shared machine hit both
        for k, s in sessions.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                s.run(None, feeds[k])
                times[k].append(time.perf_counter() - t0)
    return times


def compare_latency(paths: dict[str, str | os.PathLike], batch: Any, threads: int = 2, warmup: int = 5,
                    repeats: int = 60, rounds: int = 20) -> dict[str, float]:
    """Median latency (ms) of several ONNX models on the same input ``batch``, timed in alternation
    (``rounds`` rounds, each running every model ``repeats / rounds`` times) so that slow phases of a
    shared machine hit all of them alike; ratios of these medians are the fair speed-ups."""
    times = _timings(paths, batch, threads, warmup, repeats, rounds)
    return {k: float(np.median(ts)) * 1e3 for k, ts in times.items()}


def _timings(paths: dict[str, str | os.PathLike], batch: Any, threads: int, warmup: int, repeats: int,
             rounds: int) -> dict[str, list[float]]:
    """Seconds of every run of every model (in round order), timed in alternation by :func:`_measure`."""
    names = {k: os.fspath(p) for k, p in paths.items()}
    feeds = {k: feed(session(p, optimization="disable"), batch) for k, p in names.items()}
    return _measure(names, feeds, threads, warmup, repeats, rounds)


def compare_speedups(paths: dict[str, str | os.PathLike], batch: Any, baseline: str, threads: int = 2,
                     warmup: int = 5, repeats: int = 60, rounds: int = 20) -> tuple[dict[str, float], dict[str, float]]:
    """(median ms per model, paired speed-up of every model over ``baseline``), timed as
    :func:`compare_latency`. The paired speed-up is the median over the ``rounds`` of
    ``baseline's median / model's median`` within the round: the models of one round run back to back
    (well under a second), so a slow phase of a shared machine that spans a round cancels out of its
    ratio instead of landing on whichever model it happened to hit."""
    if baseline not in paths:
        raise ValueError(f"baseline {baseline!r} is not one of the models {sorted(paths)}")
    times = _timings(paths, batch, threads, warmup, repeats, rounds)
    per_round = max(1, repeats // rounds)

    def round_medians(ts: list[float]) -> np.ndarray:
        return np.median(np.asarray(ts).reshape(-1, per_round), axis=1)

    base = round_medians(times[baseline])
    paired = {k: float(np.median(base / round_medians(ts))) for k, ts in times.items()}
    return {k: float(np.median(ts)) * 1e3 for k, ts in times.items()}, paired


def _accuracy_level(node: Any) -> int:
    for a in node.attribute:
        if a.name == "accuracy_level":
            return int(a.i)
    return 0


def layer_kernels(optimized: Any, layer_names: list[str]) -> tuple[list[LayerStatus], list[str]]:
    """Classify each quantized layer by the nodes of ORT's optimized graph that carry its name (ORT keeps
    one original node name on a fused node; our rewrites name every node ``<layer>/...``)."""
    nodes = list(optimized.graph.node)
    out = []
    for name in layer_names:
        mine = [n for n in nodes if n.name == name or n.name.startswith(name + "/")]
        ops = {n.op_type for n in mine}
        nbits_int8 = any(n.op_type == "MatMulNBits" and _accuracy_level(n) == INT8_ACCURACY_LEVEL for n in mine)
        if INT8_OPS & ops or nbits_int8:
            status = "int8"
        elif WEIGHT_ONLY_OPS & ops:
            status = "weight-only"
        elif FLOAT_COMPUTE_OPS & ops:
            status = "float"
        else:
            status = "fused"
        shown = sorted({f"MatMulNBits[accuracy_level={_accuracy_level(n)}]" if n.op_type == "MatMulNBits"
                        else n.op_type for n in mine})
        out.append(LayerStatus(name, status, ",".join(shown), ort_quantizes_input=nbits_int8))
    consumers = G.consumers(optimized)
    unfused = []
    for n in nodes:
        if n.op_type == "DequantizeLinear":
            users = {c.op_type for c in consumers.get(n.output[0], [])}
            if users & FLOAT_COMPUTE_OPS:
                unfused.append(f"{n.name}: DequantizeLinear feeds float {'/'.join(sorted(users & FLOAT_COMPUTE_OPS))}")
    return out, unfused


def kernel_notes(statuses: list[LayerStatus], layers_meta: list[dict[str, str]]) -> list[str]:
    """Warnings a user needs to read the census: layers quantized weight-only by the recipe (float input)
    that ORT runs with int8 activations anyway (``MatMulNBits`` at accuracy level 4, ORT's default)."""
    changed = [st.name for st, meta in zip(statuses, layers_meta, strict=True)
               if st.ort_quantizes_input and meta.get("input", "float") == "float"]
    if not changed:
        return []
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return [f"{len(changed)} weight-only layer(s) ({shown}) run in ORT's MatMulNBits at accuracy level "
            f"{INT8_ACCURACY_LEVEL}: ORT quantizes their activations to int8 at run time, which the recipe does not "
            f"simulate, so the output differs from the simulation by more than float rounding. To run what was "
            f"simulated (float activations, usually as fast), create the session with "
            f"SessionOptions.add_session_config_entry('{MATMULNBITS_ACCURACY_KEY}', '0') "
            f"(quantscope.onnx.calibrate.session(..., matmul_nbits_accuracy=0))."]


def divergence(quant_model: Any, outputs: list[str], batches: list[Any]) -> tuple[dict[str, float], float]:
    """SQNR (dB) of every tensor in ``outputs`` and of the model's first output: ORT with all graph
    optimizations (int8 kernels) against the same graph with none (the QDQ simulation in float)."""
    graph_outputs = [o.name for o in quant_model.graph.output]
    model = with_outputs(quant_model, outputs)
    sim, real = session(model, optimization="disable"), session(model, optimization="all")
    names = [o.name for o in sim.get_outputs()]
    acc = {n: SqnrAccumulator() for n in names}
    for i, batch in enumerate(batches):
        f = feed(sim, batch, i)
        for n, a, b in zip(names, sim.run(names, f), real.run(names, f), strict=True):
            if np.issubdtype(np.asarray(a).dtype, np.floating):
                acc[n].add(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    per_layer = {n: acc[n].sqnr_db for n in outputs if acc[n].n}
    first = graph_outputs[0]
    return per_layer, acc[first].sqnr_db if acc[first].n else math.nan


def bench_speed(float_path: str | os.PathLike, quant_path: str | os.PathLike, batches: Iterable[Any],
                threads: tuple[int, ...] = (1, 2), warmup: int = 3, repeats: int = 20, rounds: int = 4,
                batch_items: int | None = None, flag_db: float = 30.0) -> SpeedReport:
    """Latency of float vs quantized in ONNX Runtime (CPU) and what ORT ran for every quantized layer.

    ``batches``: inputs (as for :func:`quantize_onnx`); the first is timed, up to four are used for
    the simulation-vs-ORT comparison. ``batch_items``: items per timed batch (default: its axis 0)
    for throughput. Layers whose int8 output differs from the simulation by less than ``flag_db``
    SQNR are flagged.
    """
    batches = list(batches)
    if not batches:
        raise ValueError("bench_speed needs at least one input batch")
    float_path, quant_path = os.fspath(float_path), os.fspath(quant_path)
    quant_model = G.load_model(quant_path)
    G.load_model(float_path)  # readable-file check with a clear error
    feeds = {"float": feed(session(float_path, optimization="disable"), batches[0]),
             "quantized": feed(session(quant_path, optimization="disable"), batches[0])}
    n_items = batch_items or int(next(iter(feeds["float"].values())).shape[0])
    latencies = []
    for t in threads:
        times = _measure({"float": float_path, "quantized": quant_path}, feeds, t, warmup, repeats, rounds)
        for k, ts in times.items():
            med = float(np.median(ts))
            latencies.append(Latency(k, t, med * 1e3, float(np.percentile(ts, 90)) * 1e3, n_items / med))
    with tempfile.TemporaryDirectory() as tmp:
        opt_path = os.path.join(tmp, "optimized.onnx")
        session(quant_path, threads=1, optimization="all", optimized_path=opt_path)
        optimized = G.load_model(opt_path)
    layers_meta = read_layers(quant_model)
    statuses, unfused = layer_kernels(optimized, [x["name"] for x in layers_meta])
    per_layer, final = divergence(quant_model, [x["output"] for x in layers_meta], batches[:4])
    for st, meta in zip(statuses, layers_meta, strict=True):
        st.sim_vs_ort_sqnr_db = per_layer.get(meta["output"], math.nan)
        st.diverges = bool(st.sim_vs_ort_sqnr_db < flag_db)
    return SpeedReport(float_path, quant_path, os.path.getsize(float_path), os.path.getsize(quant_path), n_items,
                       latencies, statuses, dict(Counter(n.op_type for n in optimized.graph.node)), unfused, final,
                       kernel_notes(statuses, layers_meta))
