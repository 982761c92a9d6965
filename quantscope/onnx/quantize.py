"""``quantize_onnx``: quantize a model that exists only as an ``.onnx`` file.

1. Load it (Constant-node weights become initializers), find the weight sites (MatMul / Gemm / Conv /
   ConvTranspose with constant weights) and match them against the recipe (layer names are the
   node names; ``targets`` and ``ignore`` work as for PyTorch models).
2. Static activations: run the calibration batches in ONNX Runtime with the sites' inputs exposed as
   outputs, one batch at a time, into our calibrators (bounded memory: one batch's activations).
3. Quantize every weight with the core ops, rewrite the graph into QDQ form (see :mod:`.qdq`),
   check it with ``onnx.checker`` and write it atomically.
4. Analysis (when calibration data is given): per layer the weight SQNR, the input SQNR and the SQNR
   of the layer's output in the quantized model against the float model (error accumulated up to
   that layer), plus the SQNR of the model outputs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..algorithms.smoothquant import channel_absmax, search_alpha, smooth_input, smooth_weight, smoothing_scales
from ..calibrate import resolve_calibrator
from ..core.formats import FloatFormat
from ..core.granularity import PerToken
from ..core.ops import fake_quantize, quantize
from ..core.qtensor import QTensor
from ..core.spec import QParams, QuantSpec
from ..error.accumulate import SqnrAccumulator
from ..nn.recipes import LayerRule, Recipe, get, pattern_matches
from ..nn.wrap import layer_spec_for
from ..report.progress import progress
from . import graph as G
from .calibrate import feed, run_collect, session
from .qdq import (
    DynamicCodes,
    WeightSite,
    activation_qdq,
    check_dynamic,
    dequantized_weight,
    drop_unused_initializers,
    dynamic_input_codes,
    dynamic_matmul,
    find_weight_sites,
    required_opset,
)

SAMPLE_ROWS = 4096  # activation rows kept per tensor for smooth_alpha='auto'


@dataclass
class OnnxLayer:
    """One quantized node of an ONNX model and its measured errors (dB; NaN when not measured)."""

    name: str
    op: str
    kind: str
    weight: str
    input: str
    weight_sqnr_db: float = math.nan
    input_sqnr_db: float = math.nan
    output_sqnr_db: float = math.nan
    sensitivity_db: float = math.nan


@dataclass
class OnnxQuantResult:
    """What :func:`quantize_onnx` did: the layers it quantized, those it kept float (with the reason),
    file sizes in bytes, the SQNR of each model output, and the wall time in seconds."""

    path: str
    recipe: str
    opset: int
    layers: list[OnnxLayer]
    kept_float: list[tuple[str, str]]
    float_bytes: int
    quant_bytes: int
    seconds: float
    output_sqnr_db: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[dict[str, Any]]:
        return [{"layer": x.name, "op": x.op, "weight": x.weight, "input": x.input,
                 "weight SQNR dB": x.weight_sqnr_db, "input SQNR dB": x.input_sqnr_db,
                 "output SQNR dB": x.output_sqnr_db, "alone: model SQNR dB": x.sensitivity_db} for x in self.layers]

    def ranked(self) -> list[OnnxLayer]:
        """Layers from most to least harmful (lowest model-output SQNR when quantized alone; else
        lowest accumulated output SQNR)."""
        key = "sensitivity_db" if any(not math.isnan(x.sensitivity_db) for x in self.layers) else "output_sqnr_db"
        return sorted(self.layers, key=lambda x: (math.isnan(getattr(x, key)), getattr(x, key)))


@dataclass
class _Plan:
    site: WeightSite
    rule: LayerRule
    weight_spec: QuantSpec | None
    input_spec: QuantSpec | None
    smooth: np.ndarray | None = None  # SmoothQuant factors s (C,), once computed

    @property
    def channel_axis(self) -> int:
        return -1 if self.site.kind == "Linear" else 1

    def weight(self, model: Any) -> torch.Tensor:
        """The torch-layout weight to quantize (multiplied by s along its input axis when smoothed)."""
        w = self.site.torch_weight(model)
        return w if self.smooth is None else smooth_weight(w, torch.from_numpy(self.smooth))

    def smoothed_input(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return t if self.smooth is None else smooth_input(t, torch.from_numpy(self.smooth), self.channel_axis)


def _plans(model: Any, recipe: Recipe) -> tuple[list[_Plan], list[tuple[str, str]]]:
    sites = find_weight_sites(model)
    plans, kept = [], []
    names = [s.name for s in sites]
    for pattern in [p for p, _ in recipe.overrides] + list(recipe.ignore):
        if not any(pattern_matches(pattern, n) for n in names):
            sample = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
            raise ValueError(f"layer pattern {pattern!r} matches no node with a constant weight; nodes are: "
                             f"{sample or 'none'}")
    for site in sites:
        if site.kind not in recipe.targets:
            kept.append((site.name, f"{site.kind} is not among the recipe's targets"))
            continue
        rule = recipe.rule_for(site.name)
        if rule is None:
            kept.append((site.name, "ignored by the recipe"))
            continue
        wspec = None if rule.weight_format is None else layer_spec_for(
            site.kind, site.weight_shape, site.channels, rule.weight_format, rule.weight_granularity, "weight",
            rule.rounding)
        ispec = None
        if rule.input_format is not None:
            if rule.input_mode == "static" and rule.input_granularity != "tensor":
                raise ValueError(f"{site.name}: static ONNX activations take one scale per tensor; the recipe "
                                 f"asks for {rule.input_granularity!r} (use input_mode='dynamic' for per-token)")
            ispec = layer_spec_for(site.kind, site.weight_shape, site.channels, rule.input_format,
                                   rule.input_granularity, "input", rule.rounding)
            if rule.input_mode == "dynamic" and wspec is None:
                raise ValueError(f"{site.name}: dynamic ONNX activation quantization needs int8 weights too")
            if rule.input_mode == "dynamic" and site.kind != "Linear":
                raise ValueError(f"{site.name}: dynamic activation quantization in ONNX covers MatMul/Gemm (Linear) "
                                 f"nodes only, this is a {site.kind}; use targets=('Linear',) in the recipe or "
                                 f"ignore this node")
        plans.append(_Plan(site, rule, wspec, ispec))
    if not plans:
        raise ValueError(f"the ONNX model has no node the recipe {recipe.name!r} quantizes "
                         f"({len(sites)} node(s) with constant weights, all kept float)")
    return plans, kept


def _needed_opset(plans: list[_Plan]) -> int:
    need = 13
    for p in plans:
        if p.weight_spec is not None:
            need = max(need, required_opset(p.weight_spec))
        if p.input_spec is not None and isinstance(p.input_spec.format, FloatFormat):
            need = max(need, 19)
        if p.input_spec is not None and p.input_spec.format.bits == 16:
            need = max(need, 21)  # int16 QuantizeLinear
        if p.input_spec is not None and p.rule.input_mode == "dynamic" and isinstance(p.input_spec.granularity,
                                                                                       PerToken):
            need = max(need, 21)  # per-token codes with one blocked QuantizeLinear
    return need


def _describe(spec: QuantSpec | None, mode: str = "") -> str:
    """Short text for a spec: ``int8-asym per_tensor (static)``."""
    if spec is None:
        return "float"
    text = " ".join(str(spec).split()[:2])
    return f"{text} ({mode})" if mode else text


def _calibrate(model: Any, plans: list[_Plan], batches: list[Any], show: bool) -> dict[str, QParams]:
    static = [(i, p) for i, p in enumerate(plans) if p.input_spec is not None and p.rule.input_mode == "static"]
    if not static:
        return {}
    cals: dict[tuple[str, str, str, bool], Any] = {}
    keys, owner = {}, {}
    for i, p in static:
        key = (p.site.node.input[0], repr(p.input_spec), p.rule.input_calibrator, p.smooth is not None)
        if key not in cals:
            cals[key] = resolve_calibrator(p.rule.input_calibrator, p.input_spec)
            owner[key] = p
        keys[i] = key
    tensors = sorted({k[0] for k in cals})

    def update(_: int, values: dict[str, np.ndarray]) -> None:
        for key, cal in cals.items():
            cal.update(owner[key].smoothed_input(values[key[0]]))

    run_collect(model, tensors, batches, update, "calibrating activations (ONNX Runtime)", show)
    return {plans[i].site.name: cals[keys[i]].qparams() for i in keys}


def _smoothing(model: Any, plans: list[_Plan], batches: list[Any] | None, show: bool) -> None:
    """SmoothQuant factors for the plans whose rule has ``smooth_alpha`` (one vector per input tensor,
    shared by every layer reading it, from the activation and weight channel maxima)."""
    smoothed = [p for p in plans if p.rule.smooth_alpha is not None]
    if not smoothed:
        return
    if batches is None:
        raise ValueError("SmoothQuant (smooth_alpha) needs activation statistics: pass calib=batches")
    groups: dict[str, list[_Plan]] = {}
    for p in smoothed:
        if p.site.kind.startswith("ConvTranspose") or _group_count(p.site) > 1:
            raise ValueError(f"{p.site.name}: SmoothQuant applies to Linear and ungrouped Conv layers; ignore this "
                             f"layer or set smooth_alpha=None for it")
        groups.setdefault(p.site.node.input[0], []).append(p)
    readers = {}
    for p in plans:
        readers.setdefault(p.site.node.input[0], []).append(p)
    for tensor, members in groups.items():
        if len(members) != len(readers[tensor]) or len({m.rule.smooth_alpha for m in members}) != 1:
            names = ", ".join(m.site.name for m in readers[tensor])
            raise ValueError(f"layers reading {tensor!r} ({names}) must share one smooth_alpha: the input is divided "
                             f"once for all of them")
    for members in groups.values():
        if members[0].rule.smooth_alpha == "auto" and members[0].site.kind != "Linear":
            raise ValueError(f"{members[0].site.name}: smooth_alpha='auto' searches Linear layers only; give a "
                             f"number for convolutions")
    act: dict[str, torch.Tensor] = {}
    sample: dict[str, list[torch.Tensor]] = {}

    def update(_: int, values: dict[str, np.ndarray]) -> None:
        for tensor, members in groups.items():
            x = torch.from_numpy(values[tensor])
            m = channel_absmax(x, members[0].channel_axis)
            act[tensor] = m if tensor not in act else torch.maximum(act[tensor], m)
            if members[0].rule.smooth_alpha == "auto" and sum(len(r) for r in sample.get(tensor, [])) < SAMPLE_ROWS:
                sample.setdefault(tensor, []).append(x.reshape(-1, x.shape[-1])[:SAMPLE_ROWS].float())

    run_collect(model, sorted(groups), batches, update, "SmoothQuant statistics (ONNX Runtime)", show)
    for tensor, members in groups.items():
        weights = [m.site.torch_weight(model) for m in members]
        alpha = members[0].rule.smooth_alpha
        if alpha == "auto":
            _, s_t = search_alpha(torch.cat(sample[tensor])[:SAMPLE_ROWS], weights, members[0].input_spec,
                                  members[0].weight_spec, act[tensor])
        else:
            w = torch.stack([channel_absmax(w, 1) for w in weights]).amax(dim=0)
            s_t = smoothing_scales(act[tensor], w, float(alpha))
        for m in members:
            m.smooth = s_t.numpy().astype(np.float32)


def _group_count(site: WeightSite) -> int:
    for a in site.node.attribute:
        if a.name == "group":
            return int(a.i)
    return 1


def _fusable_producers(model: Any) -> dict[str, str]:
    """Op type producing each tensor, looking through Relu/Clip (which ONNX Runtime folds into the
    preceding Conv/MatMul when it builds QLinear kernels)."""
    nodes = G.producers(model)
    out = {}
    for name, node in nodes.items():
        seen = 0
        while node.op_type in ("Relu", "Clip") and node.input[0] in nodes and seen < 8:
            node, seen = nodes[node.input[0]], seen + 1
        out[name] = node.op_type
    return out


def rewrite(model: Any, plans: list[_Plan], weights: dict[str, QTensor], input_qparams: dict[str, QParams],
            opset: int) -> Any:
    """Turn the float graph into the quantized one (in place) and return it, topologically sorted.
    ``weights``: QTensor per weight initializer name; ``input_qparams``: static parameters per layer."""
    from .speed import annotate_layers

    G.fusable_gelu(model)  # exact reordering; lets ORT fuse the GELUs between the int8 layers
    annotate_layers(model, [{"name": p.site.name, "op": p.site.node.op_type, "output": p.site.node.output[0],
                             "weight": _describe(p.weight_spec),
                             "input": _describe(p.input_spec, p.rule.input_mode if p.input_spec is not None else ""),
                             "smoothed": p.smooth is not None} for p in plans])
    namer = G.Namer(model)
    producer = _fusable_producers(model)
    dq_cache: dict[str, str] = {}
    act_cache: dict[tuple[Any, ...], Any] = {}
    dyn_cache: dict[tuple[Any, ...], DynamicCodes] = {}
    for p in plans:
        site = p.site
        qt = weights.get(site.weight_name)
        if p.input_spec is not None and p.rule.input_mode == "dynamic":
            check_dynamic(site, qt, p.input_spec)
            inv = None if p.smooth is None else (1.0 / p.smooth).astype(np.float32)
            dyn = dynamic_input_codes(model, site.node.input[0], p.input_spec, inv, namer, opset, dyn_cache,
                                      site.channels)
            dynamic_matmul(model, site, qt, dyn, namer)
            continue
        if qt is not None:
            if site.weight_name in dq_cache:
                site.node.input[1] = dq_cache[site.weight_name]
            else:
                dq_cache[site.weight_name] = dequantized_weight(model, site, qt, namer, opset)
        if p.input_spec is not None:
            activation_qdq(model, site, p.input_spec, input_qparams[site.name], namer, act_cache, p.smooth,
                           producer.get(site.node.input[0]))
    drop_unused_initializers(model)
    G.topological_sort(model)
    return model


def prepare(path_in: str | os.PathLike, recipe: str | Recipe) -> tuple[Any, list[_Plan], list[tuple[str, str]], int]:
    """Load the float model, upgrade its opset as the recipe needs, and plan every site."""
    model = G.constants_to_initializers(G.load_model(path_in))
    recipe = get(recipe)
    plans, kept = _plans(model, recipe)
    need = max(_needed_opset(plans), G.opset(model))
    if need > G.opset(model):
        model = G.ensure_opset(model, need)
        plans, kept = _plans(model, recipe)
    return model, plans, kept, G.opset(model)


def _copy(model: Any) -> Any:
    out = type(model)()
    out.CopyFrom(model)
    return out


def _rebind(plans: list[_Plan], model: Any) -> list[_Plan]:
    """The same plans on the nodes of ``model`` (a copy of the graph they were made on)."""
    sites = {s.name: s for s in find_weight_sites(model)}
    return [dataclasses.replace(p, site=sites[p.site.name]) for p in plans]


@dataclass
class _Build:
    """Everything needed to write (or probe) the quantized graph: the float model at the target opset,
    the plans, quantized weights, static input parameters, and the layer records."""

    float_model: Any
    plans: list[_Plan]
    kept: list[tuple[str, str]]
    opset: int
    weights: dict[str, QTensor]
    input_qparams: dict[str, QParams]
    layers: list[OnnxLayer]
    recipe: Recipe
    batches: list[Any] | None

    def quantized(self, only: list[_Plan] | None = None) -> Any:
        """A fresh quantized graph (all layers, or just ``only``)."""
        model = _copy(self.float_model)
        return rewrite(model, _rebind(self.plans if only is None else only, model), self.weights,
                       self.input_qparams, self.opset)


def _weight_sqnr_db(w: torch.Tensor, w_hat: torch.Tensor) -> float:
    """SQNR (dB) of a weight tensor: float64 sums of w² and (w − ŵ)²."""
    acc = SqnrAccumulator()
    acc.add(w, w_hat)
    return acc.sqnr_db


def build(path_in: str | os.PathLike, recipe: str | Recipe, calib: Iterable[Any] | None = None,
          show_progress: bool = True) -> _Build:
    """Plan, calibrate (ONNX Runtime) and quantize the weights of the model at ``path_in``."""
    recipe = get(recipe)
    model, plans, kept, opset = prepare(path_in, recipe)
    batches = None if calib is None else list(calib)
    if batches is not None and not batches:
        raise ValueError("the calibration data is empty; give at least one batch")
    needs_static = any(p.input_spec is not None and p.rule.input_mode == "static" for p in plans)
    if needs_static and batches is None:
        raise ValueError(f"recipe {recipe.name!r} quantizes activations statically: pass calib=batches")
    _smoothing(model, plans, batches, show_progress)
    input_qparams = _calibrate(model, plans, batches, show_progress) if needs_static else {}
    weights: dict[str, QTensor] = {}
    layers = []
    with progress(len(plans), "quantizing weights", enabled=show_progress) as advance:
        for p in plans:
            layer = OnnxLayer(p.site.name, p.site.node.op_type, p.site.kind, _describe(p.weight_spec),
                              _describe(p.input_spec, p.rule.input_mode if p.input_spec is not None else ""))
            if p.weight_spec is not None:
                w = p.weight(model)
                if p.site.weight_name not in weights:
                    weights[p.site.weight_name] = quantize(w, p.weight_spec, calibrator=p.rule.weight_calibrator)
                layer.weight_sqnr_db = _weight_sqnr_db(w, weights[p.site.weight_name].dequantize())
            layers.append(layer)
            advance(p.site.name)
    return _Build(model, plans, kept, opset, weights, input_qparams, layers, recipe, batches)


def quantize_onnx(path_in: str | os.PathLike, path_out: str | os.PathLike, recipe: str | Recipe,
                  calib: Iterable[Any] | None = None, show_progress: bool = True, analyze: bool = True,
                  analysis_batches: int = 4) -> OnnxQuantResult:
    """Quantize the ONNX model at ``path_in`` with ``recipe`` and write a QDQ model to ``path_out``.

    ``calib``: batches for ONNX Runtime (a dict of input name to array, a list of arrays in input
    order, or one array), needed by recipes with static activations and used for the analysis (the
    first ``analysis_batches``). The output passes ``onnx.checker`` and is written atomically.
    ``seconds`` in the result is the time to quantize and write, without the analysis.
    """
    start = time.perf_counter()
    b = build(path_in, recipe, calib, show_progress)
    quant_model = b.quantized()
    G.save_model(quant_model, path_out)
    seconds = time.perf_counter() - start
    result = OnnxQuantResult(os.fspath(path_out), b.recipe.name, b.opset, b.layers, b.kept,
                             os.path.getsize(path_in), os.path.getsize(path_out), seconds)
    if analyze and b.batches is not None:
        result.output_sqnr_db = _analyze(b, quant_model, b.batches[:analysis_batches], show_progress)
    return result


def analyze_onnx(path_in: str | os.PathLike, recipe: str | Recipe, calib: Iterable[Any],
                 show_progress: bool = True, analysis_batches: int = 2, sensitivity: bool = True) -> OnnxQuantResult:
    """Quantize in memory and measure every layer: weight, input and accumulated output SQNR, and
    (``sensitivity``) the model-output SQNR with that layer alone quantized, which ranks the layers
    by how much they hurt. Nothing is written; ``path`` of the result is empty."""
    start = time.perf_counter()
    b = build(path_in, recipe, calib, show_progress)
    if b.batches is None:
        raise ValueError("analysis needs input batches: pass calib=batches")
    quant_model = b.quantized()
    seconds = time.perf_counter() - start
    batches = b.batches[:analysis_batches]
    result = OnnxQuantResult("", b.recipe.name, b.opset, b.layers, b.kept, os.path.getsize(path_in),
                             len(G.serialize(quant_model)), seconds)
    result.output_sqnr_db = _analyze(b, quant_model, batches, show_progress)
    if sensitivity:
        _sensitivity(b, batches, show_progress)
    return result


def _first_output(model: Any, batches: list[Any]) -> list[np.ndarray]:
    sess = session(model, optimization="disable")
    return [sess.run(None, feed(sess, batch, i))[0] for i, batch in enumerate(batches)]


def _sensitivity(b: _Build, batches: list[Any], show: bool) -> None:
    """Each layer's ``sensitivity_db``: SQNR of the first model output with only that layer quantized."""
    ref = _first_output(b.float_model, batches)
    with progress(len(b.plans), "sensitivity (one layer at a time)", enabled=show) as advance:
        for layer, plan in zip(b.layers, b.plans, strict=True):
            acc = SqnrAccumulator()
            for r, q in zip(ref, _first_output(b.quantized([plan]), batches), strict=True):
                acc.add(r.astype(np.float64), q.astype(np.float64))
            layer.sensitivity_db = acc.sqnr_db
            advance(layer.name)


def _analyze(b: _Build, quant_model: Any, batches: list[Any], show: bool) -> dict[str, float]:
    """Fill the layers' input/output SQNR from float vs quantized runs; returns the model outputs' SQNR."""
    float_model, plans, layers = b.float_model, b.plans, b.layers
    site_io = [(p.site.node.input[0], p.site.node.output[0]) for p in plans]
    outputs = [o.name for o in float_model.graph.output]
    names = sorted({n for io in site_io for n in io} | set(outputs))
    float_values: list[dict[str, np.ndarray]] = []
    inputs = [SqnrAccumulator() for _ in plans]

    def keep_float(_: int, values: dict[str, np.ndarray]) -> None:
        float_values.append({n: values[n] for n in names if n in values})
        for i, p in enumerate(plans):
            if p.input_spec is None:
                continue
            x = p.smoothed_input(values[site_io[i][0]])
            xq = fake_quantize(x, p.input_spec, qparams=b.input_qparams.get(p.site.name))
            inputs[i].add(x, xq)

    run_collect(float_model, names, batches, keep_float, "analysis: float model", show)
    out_acc = [SqnrAccumulator() for _ in plans]
    final = {n: SqnrAccumulator() for n in outputs}

    def compare(i: int, values: dict[str, np.ndarray]) -> None:
        ref = float_values[i]
        for k, (_, out) in enumerate(site_io):
            if out in values and out in ref:
                out_acc[k].add(torch.from_numpy(ref[out]), torch.from_numpy(values[out]))
        for n in outputs:
            final[n].add(torch.from_numpy(ref[n].astype(np.float64)), torch.from_numpy(values[n].astype(np.float64)))

    run_collect(quant_model, [o for _, o in site_io], batches, compare, "analysis: quantized model", show)
    for layer, acc_in, acc_out in zip(layers, inputs, out_acc, strict=True):
        layer.input_sqnr_db = acc_in.sqnr_db if acc_in.n else math.nan
        layer.output_sqnr_db = acc_out.sqnr_db if acc_out.n else math.nan
    return {n: acc.sqnr_db for n, acc in final.items()}
