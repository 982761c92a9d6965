"""Rewriting an ONNX graph into a quantized one: weights become integer (or fp8) initializers behind
``DequantizeLinear``; inputs get a ``QuantizeLinear → DequantizeLinear`` pair (static) or a per-token
``MatMulInteger`` path (dynamic). Shared by :func:`export_onnx` and :func:`quantize_onnx`.

Weight sites are the nodes whose weight operand is a constant: ``MatMul`` (B of shape [K, N]),
``Gemm`` (B, ``transB`` honoured), ``Conv`` and ``ConvTranspose``. Weights are quantized in the
torch layout (output channel first, see :mod:`quantscope.nn.wrap`) with the core ops, so the codes
and scales in the file are exactly those of the PyTorch simulation.

Activation codes use ONNX's own rounding (round half to even of ``x / scale``, saturating), which is
our ``nearest_even`` rounding; the only difference to the simulation is ``x / Δ`` against
``x · (1/Δ)``, at most one code on exact ties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.formats import FloatFormat, IntFormat
from ..core.qtensor import QTensor
from ..core.spec import QParams, QuantSpec
from .graph import Namer, initializer_map, to_array

WEIGHT_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")


@dataclass
class WeightSite:
    """One node whose weight operand is a constant initializer.

    ``kind``: the torch layer type it corresponds to ("Linear", "Conv2d", "ConvTranspose2d"...);
    ``transposed``: the ONNX array is the transpose of the torch layout ([K, N] for MatMul).
    ``channels``: input width (features, or channels of a convolution including its groups).
    """

    node: Any
    name: str
    kind: str
    weight_name: str
    transposed: bool
    channels: int
    weight_shape: tuple[int, ...] = field(default=())

    def torch_weight(self, model: Any) -> torch.Tensor:
        """The weight in torch layout (float32), e.g. (out, in) for a Linear."""
        arr = to_array(initializer_map(model)[self.weight_name]).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(arr.T if self.transposed else arr))


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def find_weight_sites(model: Any) -> list[WeightSite]:
    """Every MatMul / Gemm / Conv / ConvTranspose node with a float constant weight, in graph order."""
    inits = initializer_map(model)
    sites = []
    for node in model.graph.node:
        if node.op_type not in WEIGHT_OPS or len(node.input) < 2 or node.input[1] not in inits:
            continue
        t = inits[node.input[1]]
        if t.data_type not in (1, 10, 16):  # float, float16, bfloat16
            continue
        dims = tuple(int(d) for d in t.dims)
        name = node.name or node.input[1]
        if node.op_type == "MatMul":
            if len(dims) != 2:
                continue
            sites.append(WeightSite(node, name, "Linear", node.input[1], True, dims[0], dims[::-1]))
        elif node.op_type == "Gemm":
            if _attr(node, "transA", 0) or _attr(node, "alpha", 1.0) != 1.0 or len(dims) != 2:
                continue
            trans_b = bool(_attr(node, "transB", 0))
            shape = dims if trans_b else dims[::-1]
            sites.append(WeightSite(node, name, "Linear", node.input[1], not trans_b, shape[1], shape))
        elif len(dims) in (3, 4, 5):
            n = len(dims) - 2
            group = int(_attr(node, "group", 1))
            if node.op_type == "Conv":
                sites.append(WeightSite(node, name, f"Conv{n}d", node.input[1], False, dims[1] * group, dims))
            else:
                sites.append(WeightSite(node, name, f"ConvTranspose{n}d", node.input[1], False, dims[0], dims))
    return sites


# ----------------------------------------------------------------------------------- code types
def _onnx_code_type(spec: QuantSpec, opset: int) -> tuple[int, int]:
    """(TensorProto data type, minimum opset) for the codes of ``spec``; errors when ONNX has none."""
    from onnx import TensorProto as T

    fmt = spec.format
    if isinstance(fmt, IntFormat):
        if fmt.power_of_two_scale:
            pass  # a power-of-two scale is still a float scale in ONNX
        if fmt.bits == 4 and opset >= 21:
            return (T.INT4 if fmt.qmin < 0 else T.UINT4), 21
        if fmt.bits <= 8:
            return (T.INT8 if fmt.qmin < 0 else T.UINT8), 13
        if fmt.bits <= 16 and opset >= 21:
            return (T.INT16 if fmt.qmin < 0 else T.UINT16), 21
        return T.INT32, 13
    if isinstance(fmt, FloatFormat) and fmt.bits == 8:
        if (fmt.exponent_bits, fmt.mantissa_bits) == (4, 3):
            return T.FLOAT8E4M3FN, 19
        if (fmt.exponent_bits, fmt.mantissa_bits) == (5, 2):
            return T.FLOAT8E5M2, 19
    raise ValueError(f"format {fmt} has no ONNX QuantizeLinear/DequantizeLinear type (ONNX has int4/int8/int16/"
                     f"int32 and float8 E4M3FN/E5M2); use an int8, int4 or fp8 recipe for ONNX")


def required_opset(spec: QuantSpec) -> int:
    """The lowest opset that can hold ``spec`` as QDQ (13: int8 per-channel; 19: fp8; 21: int4,
    int16 and per-group (blocked) scales)."""
    need = _onnx_code_type(spec, 99)[1]
    from ..core.granularity import PerGroup

    if isinstance(spec.granularity, PerGroup):
        need = max(need, 21)
    return need


def _codes_tensor(name: str, codes: np.ndarray, data_type: int) -> Any:
    """An initializer holding integer codes (or fp8 bit patterns) as ``data_type``."""
    from onnx import TensorProto as T
    from onnx import helper

    dims = list(codes.shape)
    if data_type in (T.FLOAT8E4M3FN, T.FLOAT8E5M2):
        return helper.make_tensor(name, data_type, dims, codes.astype(np.uint8).tobytes(), raw=True)
    if data_type in (T.INT4, T.UINT4):
        return helper.make_tensor(name, data_type, dims, codes.astype(np.int32).reshape(-1).tolist())
    np_type = {T.INT8: np.int8, T.UINT8: np.uint8, T.INT16: np.int16, T.UINT16: np.uint16, T.INT32: np.int32}
    from onnx import numpy_helper

    return numpy_helper.from_array(codes.astype(np_type[data_type]), name)


def _zero_tensor(name: str, shape: tuple[int, ...], data_type: int, values: np.ndarray | None) -> Any:
    vals = np.zeros(shape, dtype=np.int32) if values is None else values.astype(np.int32).reshape(shape)
    if data_type in (__import__("onnx").TensorProto.FLOAT8E4M3FN, __import__("onnx").TensorProto.FLOAT8E5M2):
        vals = np.zeros(shape, dtype=np.uint8)
    return _codes_tensor(name, vals, data_type)


def _float_tensor(name: str, values: np.ndarray) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(values, dtype=np.float32), name)


# --------------------------------------------------------------------------------------- weights
def _onnx_layout(site: WeightSite, qt: QTensor) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, int]]:
    """(codes, scale, zero_point, DQ attributes) in the ONNX array's layout."""
    from ..core.granularity import PerChannel, PerGroup, PerTensor

    codes = qt.codes.cpu().numpy()
    scale = qt.scale.float().cpu().numpy()
    zp = None if qt.zero_point is None else qt.zero_point.cpu().numpy()
    gran = qt.spec.granularity
    layout = qt.layout
    ndim = codes.ndim

    def onnx_axis(axis: int) -> int:
        axis %= ndim
        return (1 - axis) if site.transposed else axis

    if isinstance(gran, PerTensor):
        attrs: dict[str, int] = {}
        scale, zp = scale.reshape(()), None if zp is None else zp.reshape(())
    elif isinstance(gran, PerChannel):
        attrs = {"axis": onnx_axis(gran.axis)}
        scale, zp = scale.reshape(-1), None if zp is None else zp.reshape(-1)
    elif isinstance(gran, PerGroup):
        pshape = layout.param_shape
        scale = scale.reshape(pshape)
        zp = None if zp is None else zp.reshape(pshape)
        if site.transposed:
            scale, zp = scale.T, None if zp is None else zp.T
        attrs = {"axis": onnx_axis(gran.axis), "block_size": gran.size}
    else:
        raise ValueError(f"{site.name}: granularity {gran} has no ONNX form for weights")
    if site.transposed:
        codes = codes.T
    return np.ascontiguousarray(codes), np.ascontiguousarray(scale), zp, attrs


def dequantized_weight(model: Any, site: WeightSite, qt: QTensor, namer: Namer, opset: int) -> str:
    """Replace the site's float weight by integer codes + ``DequantizeLinear``; returns the name of
    the dequantized tensor now feeding the node. The old float initializer is removed when unused."""
    from onnx import helper

    data_type, need = _onnx_code_type(qt.spec, opset)
    if need > opset:
        raise ValueError(f"{site.name}: {qt.spec.format} weights need opset {need} (model has {opset})")
    codes, scale, zp, attrs = _onnx_layout(site, qt)
    if "block_size" in attrs and opset < 21:
        raise ValueError(f"{site.name}: per-group weight scales need opset 21 (model has {opset})")
    base = site.weight_name
    q_name, s_name, z_name = namer(base + "_quantized"), namer(base + "_scale"), namer(base + "_zero_point")
    out_name = namer(base + "_dequantized")
    g = model.graph
    g.initializer.extend([_codes_tensor(q_name, codes, data_type), _float_tensor(s_name, scale),
                          _zero_tensor(z_name, scale.shape, data_type, zp)])
    g.node.append(helper.make_node("DequantizeLinear", [q_name, s_name, z_name], [out_name],
                                   name=namer(site.name + "/weight_dequantize"), **attrs))
    site.node.input[1] = out_name
    return out_name


def drop_unused_initializers(model: Any) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


# ------------------------------------------------------------------------------------ activations
def activation_qdq(model: Any, site: WeightSite, spec: QuantSpec, qparams: QParams, namer: Namer,
                   cache: dict[tuple[Any, ...], str]) -> str:
    """Insert ``QuantizeLinear → DequantizeLinear`` on the site's input with static ``qparams`` (one
    scale for the tensor). Asymmetric and symmetric int8 codes are written as uint8 with the zero
    point shifted by 128 (the same grid, and the u8·s8 kernels ONNX Runtime runs fastest on x86).
    Pairs with equal parameters on the same tensor are shared."""
    from onnx import TensorProto as T
    from onnx import helper

    from ..core.granularity import PerTensor

    if not isinstance(spec.granularity, PerTensor):
        raise ValueError(f"{site.name}: static activation quantization in ONNX needs one scale per tensor "
                         f"(granularity 'tensor'), got {spec.granularity}")
    fmt = spec.format
    source = site.node.input[0]
    scale = float(qparams.scale.reshape(-1)[0])
    zp = 0 if qparams.zero_point is None else int(qparams.zero_point.reshape(-1)[0])
    if isinstance(fmt, IntFormat) and fmt.bits == 8 and fmt.qmin == -128 and fmt.qmax == 127:
        data_type, zp_value = T.UINT8, np.array(zp + 128)
    elif isinstance(fmt, IntFormat) and fmt.bits == 8 and fmt.qmin == 0:
        data_type, zp_value = T.UINT8, np.array(zp)
    else:
        data_type, _ = _onnx_code_type(spec, 99)
        if isinstance(fmt, IntFormat):
            raise ValueError(f"{site.name}: ONNX activations are quantized to int8/uint8 (or fp8); "
                             f"{fmt} has no saturating QuantizeLinear form")
        zp_value = None
    key = (source, scale, int(zp_value) if zp_value is not None else None, data_type)
    if key in cache:
        site.node.input[0] = cache[key]
        return cache[key]
    s_name, z_name = namer(source + "_scale"), namer(source + "_zero_point")
    q_out, dq_out = namer(source + "_quantized"), namer(source + "_dequantized")
    g = model.graph
    g.initializer.extend([_float_tensor(s_name, np.array(scale)), _zero_tensor(z_name, (), data_type, zp_value)])
    g.node.extend([
        helper.make_node("QuantizeLinear", [source, s_name, z_name], [q_out], name=namer(site.name + "/input_quantize")),
        helper.make_node("DequantizeLinear", [q_out, s_name, z_name], [dq_out],
                         name=namer(site.name + "/input_dequantize")),
    ])
    cache[key] = dq_out
    site.node.input[0] = dq_out
    return dq_out


def dynamic_matmul(model: Any, site: WeightSite, qt: QTensor, input_spec: QuantSpec, namer: Namer,
                   opset: int) -> None:
    """Replace a MatMul/Gemm by per-token dynamic int8: ``s = max|x| / qmax`` per row (computed at run
    time), ``q = round(x / s)`` as uint8 with zero point 128, ``MatMulInteger`` with the int8 weight
    codes, then ``y = int32 · s · scale_w (+ bias)``. Weights must be symmetric int8, per channel or
    per tensor; the input format symmetric int8 (one scale per token)."""
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    from ..core.granularity import PerChannel, PerTensor, PerToken

    wfmt, ifmt = qt.spec.format, input_spec.format
    ok_w = isinstance(wfmt, IntFormat) and wfmt.bits == 8 and wfmt.symmetric and wfmt.qmin < 0 and isinstance(
        qt.spec.granularity, (PerChannel, PerTensor))
    ok_i = isinstance(ifmt, IntFormat) and ifmt.bits == 8 and ifmt.symmetric and ifmt.qmin < 0 and isinstance(
        input_spec.granularity, (PerToken, PerTensor))
    if site.kind != "Linear" or not (ok_w and ok_i):
        raise ValueError(f"{site.name}: dynamic activation quantization in ONNX is per-token (or per-tensor) "
                         f"symmetric int8 inputs with symmetric int8 per-channel weights of a MatMul/Gemm; got "
                         f"weights {qt.spec}, inputs {input_spec} on a {site.kind}")
    per_token = isinstance(input_spec.granularity, PerToken)
    node, g = site.node, model.graph
    x = node.input[0]
    codes, scale, _, _ = _onnx_layout(site, qt)  # codes [K, N] when transposed
    if not site.transposed:  # Gemm with transB=1 holds [N, K]
        codes, scale = codes.T, scale
    base = site.name
    nm = {k: namer(f"{base}/{k}") for k in ("abs", "amax", "step", "scaled", "rounded", "shifted", "clipped",
                                              "codes", "acc", "accf", "rescaled", "out")}
    w_name, ws_name = namer(site.weight_name + "_quantized"), namer(site.weight_name + "_scale")
    c = {k: namer(f"{base}/{k}") for k in ("qmax", "tiny", "offset", "lo", "hi", "azp", "axes")}
    qmax = float(ifmt.qmax)
    g.initializer.extend([
        numpy_helper.from_array(np.ascontiguousarray(codes.astype(np.int8)), w_name),
        _float_tensor(ws_name, np.asarray(scale, dtype=np.float32).reshape(-1)),
        _float_tensor(c["qmax"], np.array(qmax)), _float_tensor(c["tiny"], np.array(np.finfo(np.float32).tiny)),
        _float_tensor(c["offset"], np.array(128.0)), _float_tensor(c["lo"], np.array(0.0)),
        _float_tensor(c["hi"], np.array(255.0)), numpy_helper.from_array(np.array(128, dtype=np.uint8), c["azp"]),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), c["axes"]),
    ])
    if not per_token:
        reduce = helper.make_node("ReduceMax", [nm["abs"]], [nm["amax"]], name=nm["amax"], keepdims=0)
    elif opset >= 18:
        reduce = helper.make_node("ReduceMax", [nm["abs"], c["axes"]], [nm["amax"]], name=nm["amax"], keepdims=1)
    else:
        reduce = helper.make_node("ReduceMax", [nm["abs"]], [nm["amax"]], name=nm["amax"], keepdims=1, axes=[-1])
    new = [
        helper.make_node("Abs", [x], [nm["abs"]], name=nm["abs"]),
        reduce,
        helper.make_node("Div", [nm["amax"], c["qmax"]], [nm["step"] + "_raw"], name=nm["step"] + "_raw"),
        helper.make_node("Max", [nm["step"] + "_raw", c["tiny"]], [nm["step"]], name=nm["step"]),
        helper.make_node("Div", [x, nm["step"]], [nm["scaled"]], name=nm["scaled"]),
        helper.make_node("Round", [nm["scaled"]], [nm["rounded"]], name=nm["rounded"]),
        helper.make_node("Add", [nm["rounded"], c["offset"]], [nm["shifted"]], name=nm["shifted"]),
        helper.make_node("Clip", [nm["shifted"], c["lo"], c["hi"]], [nm["clipped"]], name=nm["clipped"]),
        helper.make_node("Cast", [nm["clipped"]], [nm["codes"]], name=nm["codes"], to=T.UINT8),
        helper.make_node("MatMulInteger", [nm["codes"], w_name, c["azp"]], [nm["acc"]], name=nm["acc"]),
        helper.make_node("Cast", [nm["acc"]], [nm["accf"]], name=nm["accf"], to=T.FLOAT),
        helper.make_node("Mul", [nm["accf"], nm["step"]], [nm["rescaled"]], name=nm["rescaled"]),
    ]
    bias = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2] else None
    final = node.output[0]
    if bias is None:
        new.append(helper.make_node("Mul", [nm["rescaled"], ws_name], [final], name=nm["out"]))
    else:
        new.append(helper.make_node("Mul", [nm["rescaled"], ws_name], [nm["out"]], name=nm["out"]))
        new.append(helper.make_node("Add", [nm["out"], bias], [final], name=namer(f"{base}/bias")))
    index = list(g.node).index(node)
    g.node.remove(node)
    for k, n in enumerate(new):
        g.node.insert(index + k, n)
