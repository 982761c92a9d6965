"""Small helpers on ONNX graphs: safe loading, opset upgrade, initializers, producers/consumers,
unique names and atomic saving. Every function takes and returns plain ``onnx.ModelProto`` objects."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import numpy as np

DEFAULT_DOMAIN = ("", "ai.onnx")


def require_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX support needs the 'onnx' extra: pip install 'quantscope[onnx]'") from exc
    return onnx


def require_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError("running ONNX models needs onnxruntime: pip install 'quantscope[onnx]'") from exc
    return onnxruntime


def load_model(path: str | os.PathLike) -> Any:
    """Read an ``.onnx`` file; a missing, empty or corrupt file gets a ValueError that says so."""
    onnx = require_onnx()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no ONNX model at {path!r}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path!r} is empty: not an ONNX model (re-export or re-download it)")
    try:
        model = onnx.load(path)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ValueError(f"{path!r} is not a readable ONNX model ({type(exc).__name__}: {exc}); "
                         f"the file may be truncated or not ONNX at all") from exc
    if len(model.graph.node) == 0:
        raise ValueError(f"{path!r} has no graph nodes: not a usable ONNX model")
    return model


def opset(model: Any) -> int:
    """The model's default-domain opset version."""
    for imp in model.opset_import:
        if imp.domain in DEFAULT_DOMAIN:
            return int(imp.version)
    return 1


def ensure_opset(model: Any, minimum: int) -> Any:
    """The model at opset >= ``minimum`` (converted with onnx's version converter when needed).

    Per-channel QuantizeLinear/DequantizeLinear need opset 13, float8 19, int4 and blocked scales 21.
    """
    require_onnx()
    if opset(model) >= minimum:
        return model
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, minimum)
    except Exception as exc:
        raise ValueError(f"could not convert the model from opset {opset(model)} to {minimum}, which the "
                         f"requested quantization needs ({exc}); re-export the model at opset >= {minimum}"
                         ) from exc


def constants_to_initializers(model: Any) -> Any:
    """Move tensor-valued ``Constant`` nodes into graph initializers (exporters such as paddle2onnx
    store every weight that way), so weights can be found and replaced in one place."""
    g = model.graph
    keep = []
    for node in g.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            t = node.attribute[0].t
            t.name = node.output[0]
            g.initializer.append(t)
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)
    return model


def initializer_map(model: Any) -> dict[str, Any]:
    return {t.name: t for t in model.graph.initializer}


def to_array(tensor: Any) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(tensor)


def consumers(model: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            if name:
                out[name].append(node)
    return out


def producers(model: Any) -> dict[str, Any]:
    return {o: node for node in model.graph.node for o in node.output}


class Namer:
    """Fresh tensor/node names that collide with nothing in the model."""

    def __init__(self, model: Any) -> None:
        g = model.graph
        self.used = {t.name for t in g.initializer} | {v.name for v in g.input} | {v.name for v in g.output}
        self.used |= {n.name for n in g.node} | {o for n in g.node for o in n.output}

    def __call__(self, base: str) -> str:
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name


def _scalar_constants(model: Any) -> dict[str, float]:
    """Names of one-element float constants (initializers or Constant nodes) and their values."""
    from onnx import numpy_helper

    out = {}
    for t in model.graph.initializer:
        if int(np.prod(t.dims)) == 1 and t.data_type in (1, 10, 11):
            out[t.name] = float(numpy_helper.to_array(t).reshape(-1)[0])
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and int(np.prod(a.t.dims)) == 1 and a.t.data_type in (1, 10, 11):
                    out[n.output[0]] = float(numpy_helper.to_array(a.t).reshape(-1)[0])
    return out


def fusable_gelu(model: Any) -> int:
    """Reorder exported erf-GELUs ``x · (0.5 · (1 + erf(x / √2)))`` (the form PyTorch's exporter writes)
    into ``(x · (1 + erf(x / √2))) · 0.5``, the form ONNX Runtime fuses into one Gelu kernel; in place,
    returns how many. Exact: scaling by 0.5 commutes with float rounding, so every value is unchanged
    (outside underflow); only nodes whose intermediate results have no other reader are touched."""
    consts = _scalar_constants(model)
    cons, prods = consumers(model), producers(model)

    def const_of(node: Any, other_than: str) -> float | None:
        rest = [i for i in node.input if i != other_than]
        return consts.get(rest[0]) if len(rest) == 1 else None

    graph_outputs = {o.name for o in model.graph.output}

    def only_reader(name: str) -> Any:
        readers = cons.get(name, [])
        return readers[0] if len(readers) == 1 and name not in graph_outputs else None

    count = 0
    for erf in [n for n in model.graph.node if n.op_type == "Erf"]:
        scaled = prods.get(erf.input[0])
        if scaled is None or scaled.op_type not in ("Div", "Mul") or len(scaled.input) != 2:
            continue
        x = next((i for i in scaled.input if i not in consts), None)
        c = None if x is None else const_of(scaled, x)
        if c is None or abs((c if scaled.op_type == "Div" else 1.0 / c) - 2.0 ** 0.5) > 1e-5:
            continue
        add = only_reader(erf.output[0])
        if add is None or add.op_type != "Add" or const_of(add, erf.output[0]) != 1.0:
            continue
        half = only_reader(add.output[0])
        if half is None or half.op_type != "Mul" or const_of(half, add.output[0]) != 0.5:
            continue
        final = only_reader(half.output[0])
        if final is None or final.op_type != "Mul" or sorted(final.input) != sorted([x, half.output[0]]):
            continue
        half_name = next(i for i in half.input if i != add.output[0])
        half.input[:] = [x, add.output[0]]  # x · (1 + erf)
        final.input[:] = [half.output[0], half_name]  # · 0.5
        count += 1
    return count


def topological_sort(model: Any) -> None:
    """Reorder ``model.graph.node`` so every node comes after the producers of its inputs."""
    g = model.graph
    ready = {t.name for t in g.initializer} | {v.name for v in g.input} | {""}
    pending = list(g.node)
    ordered: list[Any] = []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.input if i not in ready})[:5]
            raise ValueError(f"the graph has a cycle or undefined inputs: {missing}")
        pending = rest
    del g.node[:]
    g.node.extend(ordered)


def check(model: Any) -> None:
    """``onnx.checker`` (full check, with shape inference) with a clear error."""
    onnx = require_onnx()
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ValueError(f"the written model does not pass onnx.checker: {exc}") from exc


def serialize(model: Any) -> bytes:
    return model.SerializeToString()


def save_model(model: Any, path: str | os.PathLike, validate: bool = True) -> None:
    """Check the model, then write it atomically (temporary file + rename)."""
    from .._files import atomic_write_bytes

    if validate:
        check(model)
    atomic_write_bytes(path, serialize(model))
