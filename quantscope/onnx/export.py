"""``export_onnx``: a PyTorch model (float, or quantized by :func:`quantscope.quantize_model`) as a
standard ONNX graph.

1. The float structure is exported with PyTorch's ``torch.export``-based exporter (dynamic batch and
   sequence axes; Hugging Face models switched to eager attention so the padding mask stays a real
   input of the graph, never a traced constant).
2. Every Linear / Conv / ConvTranspose weight is found in the graph by value (the exporter may
   transpose or rename it) and its node is renamed to the module's name, so recipes and reports use
   the same layer names for the PyTorch model and its ONNX file.
3. A quantized model is then rewritten with the same QDQ machinery as :func:`quantize_onnx`, using
   the codes, scales and calibrated activation parameters of the PyTorch simulation.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..nn.quantize_model import quantized_layers
from ..nn.recipes import LayerRule
from ..nn.wrap import CONV, CONV_T, QuantizedModule
from . import graph as G
from .qdq import find_weight_sites
from .quantize import OnnxLayer, _describe, _needed_opset, _Plan, rewrite

_LAYERS = (nn.Linear,) + CONV + CONV_T


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote: path, opset, input/output names, the layers it quantized."""

    path: str
    opset: int
    input_names: list[str]
    output_names: list[str]
    layers: list[OnnxLayer]
    bytes: int


class _Positional(nn.Module):
    """Calls ``model(**dict(zip(names, args)))`` and returns the output's tensors as a tuple."""

    def __init__(self, model: nn.Module, names: list[str] | None) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *args: torch.Tensor) -> Any:
        out = self.model(**dict(zip(self.names, args, strict=True))) if self.names else self.model(*args)
        if isinstance(out, torch.Tensor):
            return out
        if isinstance(out, Mapping) or hasattr(out, "to_tuple"):
            values = out.to_tuple() if hasattr(out, "to_tuple") else tuple(out.values())
            return tuple(v for v in values if isinstance(v, torch.Tensor))
        return out


def _float_structure(model: nn.Module) -> nn.Module:
    """A copy with every QuantizedModule replaced by its inner layer (which holds the dequantized
    weight) and the attention-matmul hooks removed."""
    clone = copy.deepcopy(model)
    for name, module in list(clone.named_modules()):
        if isinstance(module, QuantizedModule):
            parent_name, _, child = name.rpartition(".")
            parent = clone.get_submodule(parent_name) if parent_name else clone
            setattr(parent, child, module.inner)
    for module in clone.modules():
        module._forward_pre_hooks.clear()
        module._forward_hooks.clear()
    if hasattr(clone, "set_attn_implementation"):
        clone.set_attn_implementation("eager")
    return clone


def _examples(example_inputs: Any) -> tuple[list[str] | None, tuple[torch.Tensor, ...]]:
    if isinstance(example_inputs, torch.Tensor):
        return None, (example_inputs,)
    if isinstance(example_inputs, Mapping):
        names = list(example_inputs)
        return names, tuple(torch.as_tensor(example_inputs[n]) for n in names)
    if isinstance(example_inputs, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in example_inputs):
        return None, tuple(example_inputs)
    raise ValueError("example_inputs must be a tensor, a tuple of tensors (positional inputs) or a dict of "
                     f"tensors (keyword inputs, e.g. a tokenizer's output); got {type(example_inputs).__name__}")


def _dynamic_shapes(args: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], tuple[dict[int, Any], ...]]:
    """Batch (axis 0) is dynamic for every input, the sequence axis (1) for token-like inputs: integer
    (batch, seq) ids and masks, and float (batch, seq, features) activations; a float (batch, features)
    input keeps its features fixed. torch.export specializes axes of size 1, so a batch of one is
    repeated to two."""
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    out_args, shapes = [], []
    for t in args:
        if t.dim() == 0:
            out_args.append(t)
            shapes.append({})
            continue
        if t.shape[0] == 1:
            t = torch.cat([t, t])
        dims: dict[int, Any] = {0: batch}
        token_like = (t.dim() == 2 and not t.is_floating_point()) or (t.dim() == 3 and t.is_floating_point())
        if token_like and t.shape[1] > 1:
            dims[1] = seq
        out_args.append(t)
        shapes.append(dims)
    return tuple(out_args), tuple(shapes)


def _digest(a: np.ndarray) -> tuple[tuple[int, ...], str]:
    return tuple(a.shape), hashlib.sha1(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def name_layers(onnx_model: Any, model: nn.Module) -> list[str]:
    """Rename the weight nodes of ``onnx_model`` after the modules of ``model`` they came from (matched
    by weight value, transposed or not). Returns the module names found."""
    sites = find_weight_sites(onnx_model)
    inits = G.initializer_map(onnx_model)
    by_digest: dict[Any, list[Any]] = {}
    for site in sites:
        by_digest.setdefault(_digest(G.to_array(inits[site.weight_name])), []).append(site)
    used_names = {n.name for n in onnx_model.graph.node}
    named: list[str] = []
    for name, module in model.named_modules():
        if not isinstance(module, _LAYERS) or not name:
            continue
        w = module.weight.detach().float().cpu().numpy()
        candidates = by_digest.get(_digest(w), []) + (by_digest.get(_digest(w.T), []) if w.ndim == 2 else [])
        site = next((s for s in candidates if s.node.name not in named), None)
        if site is None:
            continue
        if name in used_names and site.node.name != name:
            continue
        used_names.discard(site.node.name)
        site.node.name = name
        used_names.add(name)
        named.append(name)
    return named


def _plans_from_model(onnx_model: Any, model: nn.Module) -> tuple[list[_Plan], dict[str, Any], dict[str, Any]]:
    sites = {s.name: s for s in find_weight_sites(onnx_model)}
    plans, weights, input_qparams = [], {}, {}
    for name, wrapper in quantized_layers(model):
        if isinstance(wrapper.inner, nn.Embedding):
            continue  # embeddings stay float in ONNX (a DequantizeLinear before Gather would run every call)
        site = sites.get(name)
        if site is None:
            raise ValueError(f"layer {name} was not found in the exported graph (its weight may have been folded "
                             f"or fused by the exporter); ignore it in the recipe to keep it float")
        wq = wrapper.weight_q
        rule = LayerRule(weight_format=None if wq is None else wq.spec.format,
                         input_format=None if wrapper.input_spec is None else wrapper.input_spec.format,
                         input_mode=wrapper.input_mode)
        plan = _Plan(site, rule, None if wq is None else wq.spec, wrapper.input_spec)
        if wrapper.input_smoothing is not None:
            plan.smooth = wrapper.input_smoothing.cpu().numpy().astype(np.float32)
        if wq is not None:
            weights[site.weight_name] = wq
        if wrapper.input_spec is not None and wrapper.input_mode == "static":
            input_qparams[site.name] = wrapper.input_qparams
        plans.append(plan)
    return plans, weights, input_qparams


def export_onnx(model: nn.Module, example_inputs: Any, path: str | os.PathLike, opset: int = 18,
                input_names: list[str] | None = None, output_names: list[str] | None = None) -> ExportResult:
    """Export ``model`` (float or quantized) to ``path`` as ONNX; returns an :class:`ExportResult`.

    ``example_inputs``: a tensor, a tuple of positional tensors or a dict of keyword tensors (a
    tokenizer's output). Axis 0 of every input and axis 1 of token-like inputs stay dynamic. A
    quantized model becomes QDQ: weights as int8 / int4 / fp8 codes with ``DequantizeLinear``
    (per-channel axis or blocked scales), static inputs as ``QuantizeLinear → DequantizeLinear``
    with the calibrated scale and zero point, dynamic per-token inputs as a ``MatMulInteger``
    path. The file passes ``onnx.checker`` and is written atomically.
    """
    G.require_onnx()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    recipe = getattr(model, "quantscope_recipe", None)
    if recipe is not None and recipe.matmuls:
        raise ValueError(f"recipe {recipe.name!r} quantizes attention matmuls, which this exporter does not write "
                         f"as ONNX yet; export a model quantized without matmul rules")
    names, args = _examples(example_inputs)
    float_model = _float_structure(model).eval()
    wrapper = _Positional(float_model, names)
    args, shapes = _dynamic_shapes(args)
    in_names = input_names or names or [f"input_{i}" for i in range(len(args))]
    with torch.no_grad():
        out = wrapper(*args)
    n_out = 1 if isinstance(out, torch.Tensor) else len(out)
    if output_names is None and names is not None and n_out and not isinstance(out, torch.Tensor):
        raw = float_model(**dict(zip(names, args, strict=True)))
        keys = [k for k, v in (raw.items() if hasattr(raw, "items") else []) if isinstance(v, torch.Tensor)]
        output_names = keys if len(keys) == n_out else None
    out_names = output_names or [f"output_{i}" for i in range(n_out)]
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = os.path.join(tmp, "float.onnx")
        chatter = io.StringIO()  # the exporter prints progress lines and warns about axis names: keep them
        try:
            with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
                warnings.simplefilter("ignore")
                torch.onnx.export(wrapper, args, raw_path, dynamo=True, input_names=in_names,
                                  output_names=out_names, dynamic_shapes=(shapes,), opset_version=opset,
                                  external_data=False, verbose=False)
        except ImportError as exc:
            raise ImportError(f"exporting needs onnxscript: pip install 'quantscope[onnx]' ({exc})") from exc
        onnx_model = G.load_model(raw_path)
    name_layers(onnx_model, float_model)
    layers: list[OnnxLayer] = []
    if quantized_layers(model):
        plans, weights, input_qparams = _plans_from_model(onnx_model, model)
        need = _needed_opset(plans)
        if need > G.opset(onnx_model):
            onnx_model = G.ensure_opset(onnx_model, need)
            plans, weights, input_qparams = _plans_from_model(onnx_model, model)
        layers = [OnnxLayer(p.site.name, p.site.node.op_type, p.site.kind, _describe(p.weight_spec),
                            _describe(p.input_spec, p.rule.input_mode if p.input_spec is not None else ""))
                  for p in plans]
        onnx_model = rewrite(onnx_model, plans, weights, input_qparams, G.opset(onnx_model))
    G.save_model(onnx_model, path)
    return ExportResult(os.fspath(path), G.opset(onnx_model), in_names, out_names, layers, os.path.getsize(path))

