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
        if fmt.bits == 4 and opset >= 21:
            return (T.INT4 if fmt.qmin < 0 else T.UINT4), 21
        if fmt.bits <= 8:
            return (T.INT8 if fmt.qmin < 0 else T.UINT8), 13
        if fmt.bits <= 16 and opset >= 21:
            return (T.INT16 if fmt.qmin < 0 else T.UINT16), 21
        return T.INT32, 13
    if isinstance(fmt, FloatFormat) and fmt.bits == 8:
        if (fmt.exp_bits, fmt.man_bits) == (4, 3):
            return T.FLOAT8E4M3FN, 19
        if (fmt.exp_bits, fmt.man_bits) == (5, 2):
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
    """The zero-point initializer (float8 zero points are always +0)."""
    from onnx import TensorProto as T

    if values is None or data_type in (T.FLOAT8E4M3FN, T.FLOAT8E5M2):
        return _codes_tensor(name, np.zeros(shape, dtype=np.int32), data_type)
    return _codes_tensor(name, values.astype(np.int32).reshape(shape), data_type)


def _float_tensor(name: str, values: np.ndarray) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array(values, dtype=np.float32, order="C"), name)  # keeps 0-d scalars 0-d


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
                   cache: dict[tuple[Any, ...], str], smooth: np.ndarray | None = None,
                   producer_op: str | None = None) -> str:
    """Insert ``QuantizeLinear → DequantizeLinear`` on the site's input with static ``qparams`` (one
    scale for the tensor). Asymmetric and symmetric int8 codes are written as uint8 with the zero
    point shifted by 128 (the same grid, and the u8·s8 kernels ONNX Runtime runs fastest on x86).
    Pairs with equal parameters on the same tensor are shared.

    ``smooth`` (SmoothQuant factors s, shape (C,)): the QuantizeLinear takes the per-channel scale
    ``Δ·s_c`` along the channel axis and the DequantizeLinear the per-tensor ``Δ``, so the pair
    computes Q(x / s) at no extra cost (the weight was multiplied by s before quantizing). When the
    input comes straight from a MatMul/Gemm/Conv (``producer_op``), ONNX Runtime would fuse that node
    with the QuantizeLinear into a QLinear kernel, which takes one output scale only: then the
    division is an explicit ``Mul(x, 1/s)`` before a per-tensor pair."""
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
    elif isinstance(fmt, IntFormat) and fmt.bits == 16 and fmt.qmax - fmt.qmin == 65535:
        data_type, zp_value = (T.INT16 if fmt.qmin < 0 else T.UINT16), np.array(zp)
    else:
        data_type, _ = _onnx_code_type(spec, 99)
        if isinstance(fmt, IntFormat):
            raise ValueError(f"{site.name}: ONNX activations are quantized to int8/uint8, int16/uint16 or fp8; "
                             f"{fmt} has no saturating QuantizeLinear form")
        zp_value = None
    key = (source, scale, int(zp_value) if zp_value is not None else None, data_type,
           None if smooth is None else smooth.tobytes())
    if key in cache:
        site.node.input[0] = cache[key]
        return cache[key]
    s_name, z_name = namer(source + "_scale"), namer(source + "_zero_point")
    q_out, dq_out = namer(source + "_quantized"), namer(source + "_dequantized")
    g = model.graph
    g.initializer.extend([_float_tensor(s_name, np.array(scale)), _zero_tensor(z_name, (), data_type, zp_value)])
    q_scale, q_zp, q_attrs = s_name, z_name, {}
    q_source = source
    if smooth is not None and producer_op in WEIGHT_OPS:
        inv_name, q_source = namer(source + "_inv_smooth"), namer(source + "_smoothed")
        shape = (-1,) if site.kind == "Linear" else (-1,) + (1,) * int(site.kind[-2])
        g.initializer.append(_float_tensor(inv_name, (1.0 / smooth.astype(np.float64)).reshape(shape)))
        g.node.append(helper.make_node("Mul", [source, inv_name], [q_source], name=q_source))
    elif smooth is not None:
        q_scale, q_zp = namer(source + "_smoothed_scale"), namer(source + "_smoothed_zero_point")
        zps = None if zp_value is None else np.full(smooth.shape, int(zp_value))
        g.initializer.extend([_float_tensor(q_scale, (scale * smooth.astype(np.float64)).astype(np.float32)),
                              _zero_tensor(q_zp, smooth.shape, data_type, zps)])
        q_attrs = {"axis": -1 if site.kind == "Linear" else 1}
    g.node.extend([
        helper.make_node("QuantizeLinear", [q_source, q_scale, q_zp], [q_out],
                         name=namer(site.name + "/input_quantize"), **q_attrs),
        helper.make_node("DequantizeLinear", [q_out, s_name, z_name], [dq_out],
                         name=namer(site.name + "/input_dequantize")),
    ])
    cache[key] = dq_out
    site.node.input[0] = dq_out
    return dq_out


def check_dynamic(site: WeightSite, qt: QTensor, input_spec: QuantSpec) -> None:
    """Errors unless the site can run the per-token int8 path (see :func:`dynamic_input_codes`)."""
    from ..core.granularity import PerChannel, PerTensor, PerToken, PerTokenNormalized

    wfmt, ifmt = qt.spec.format, input_spec.format
    ok_w = isinstance(wfmt, IntFormat) and wfmt.bits == 8 and wfmt.symmetric and wfmt.qmin < 0 and isinstance(
        qt.spec.granularity, (PerChannel, PerTensor))
    ok_i = isinstance(ifmt, IntFormat) and ifmt.bits == 8 and (
        (ifmt.symmetric and (ifmt.qmin, ifmt.qmax) == (-128, 127) and isinstance(input_spec.granularity,
                                                                                (PerToken, PerTensor)))
        or (not ifmt.symmetric and ifmt.qmax - ifmt.qmin == 255
            and isinstance(input_spec.granularity, (PerTensor, PerTokenNormalized))))
    if site.kind != "Linear" or not (ok_w and ok_i):
        raise ValueError(f"{site.name}: dynamic activation quantization in ONNX is per-token (or per-tensor) "
                         f"symmetric int8, or per-tensor / token-normalized asymmetric int8/uint8 "
                         f"(DynamicQuantizeLinear) inputs with symmetric int8 per-channel weights of a MatMul/Gemm; "
                         f"got weights {qt.spec}, inputs {input_spec} on a {site.kind}")


@dataclass(frozen=True)
class DynamicCodes:
    """Tensor names of run-time int8 codes: ``codes`` (uint8), ``step`` (per tensor, or per row with
    shape [..., 1]), ``zero_point`` (None: the constant 128) and ``row_scale`` (token-normalized
    inputs: each row's max|x|, shape [..., 1], that the product is multiplied by; else None)."""

    codes: str
    step: str
    zero_point: str | None
    row_scale: str | None = None


def _row_max_abs(x: str, base: str, per_token: bool, opset: int, namer: Namer, g: Any) -> tuple[list[Any], str]:
    """Nodes computing ``max|x|`` over the last axis (keepdims) or the whole tensor, as max(max x, −min x):
    two read-only reductions, no |x| tensor written (cheaper than Abs + ReduceMax)."""
    from onnx import helper, numpy_helper

    nm = {k: namer(f"{base}/{k}") for k in ("max", "min", "neg_min", "amax")}
    axes = namer(f"{base}/axes_const")
    g.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), axes))
    new = []
    for op, key in (("ReduceMax", "max"), ("ReduceMin", "min")):
        if not per_token:
            new.append(helper.make_node(op, [x], [nm[key]], name=nm[key], keepdims=0))
        elif opset >= 18:
            new.append(helper.make_node(op, [x, axes], [nm[key]], name=nm[key], keepdims=1))
        else:
            new.append(helper.make_node(op, [x], [nm[key]], name=nm[key], keepdims=1, axes=[-1]))
    new += [
        helper.make_node("Neg", [nm["min"]], [nm["neg_min"]], name=nm["neg_min"]),
        helper.make_node("Max", [nm["max"], nm["neg_min"]], [nm["amax"]], name=nm["amax"]),
    ]
    return new, nm["amax"]


def dynamic_input_codes(model: Any, x: str, input_spec: QuantSpec, inv_smooth: np.ndarray | None, namer: Namer,
                        opset: int, cache: dict[tuple[Any, ...], DynamicCodes], channels: int = 0) -> DynamicCodes:
    """Per-token (or per-tensor) dynamic int8 codes of tensor ``x``, computed at run time:
    ``step = max(|x|) / 127`` per row, ``codes = round(x / step) + 128`` as uint8 (zero point 128:
    the symmetric int8 grid, in the u8 form x86 int8 kernels run fastest). ``inv_smooth``
    (SmoothQuant, shape (K,)) multiplies ``x`` first. An asymmetric per-tensor format uses ONNX's
    ``DynamicQuantizeLinear`` (uint8, scale and zero point from min/max including 0), which ONNX
    Runtime fuses with the MatMulInteger that follows; a token-normalized one divides every row by
    its max|x| first (``row_scale``, multiplied back after the product), so it runs through the same
    fused kernel. From opset 21 the per-token codes come from one blocked ``QuantizeLinear`` (block =
    the ``channels`` of a row). Shared by every consumer of the tensor."""
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    from ..core.granularity import PerToken, PerTokenNormalized

    per_token = isinstance(input_spec.granularity, PerToken)
    normalized = isinstance(input_spec.granularity, PerTokenNormalized)
    asymmetric = not input_spec.format.symmetric
    key = (x, per_token, normalized, asymmetric, None if inv_smooth is None else inv_smooth.tobytes())
    if key in cache:
        return cache[key]
    g = model.graph
    base = x + ("_token" if per_token else "_token_normalized" if normalized else "_tensor")
    if asymmetric:
        source = x
        if inv_smooth is not None:
            inv_name, source = namer(f"{base}/inv_smooth_const"), namer(f"{base}/smoothed")
            g.initializer.append(_float_tensor(inv_name, inv_smooth.reshape(-1)))
            g.node.append(helper.make_node("Mul", [x, inv_name], [source], name=source))
        row_scale = None
        if normalized:  # x / max(max|x_row|, tiny): an all-zero row divides to zeros
            new, amax = _row_max_abs(source, base, True, opset, namer, g)
            tiny, row_scale, scaled = (namer(f"{base}/tiny_const"), namer(f"{base}/row_scale"),
                                       namer(f"{base}/normalized"))
            g.initializer.append(_float_tensor(tiny, np.array(np.finfo(np.float32).tiny)))
            new += [helper.make_node("Max", [amax, tiny], [row_scale], name=row_scale),
                    helper.make_node("Div", [source, row_scale], [scaled], name=scaled)]
            g.node.extend(new)
            source = scaled
        outs = [namer(f"{base}/codes"), namer(f"{base}/step"), namer(f"{base}/zero_point")]
        g.node.append(helper.make_node("DynamicQuantizeLinear", [source], outs, name=namer(f"{base}/quantize")))
        cache[key] = DynamicCodes(outs[0], outs[1], outs[2], row_scale)
        return cache[key]
    nm = {k: namer(f"{base}/{k}") for k in ("smoothed", "raw_step", "step", "scaled", "rounded", "shifted", "codes")}
    c = {k: namer(f"{base}/{k}_const") for k in ("inv_qmax", "tiny", "offset", "inv_smooth")}
    g.initializer.extend([
        _float_tensor(c["inv_qmax"], np.array(1.0 / input_spec.format.qmax)),
        _float_tensor(c["tiny"], np.array(np.finfo(np.float32).tiny)), _float_tensor(c["offset"], np.array(128.0)),
    ])
    new = []
    source = x
    if inv_smooth is not None:
        g.initializer.append(_float_tensor(c["inv_smooth"], inv_smooth.reshape(-1)))
        new.append(helper.make_node("Mul", [x, c["inv_smooth"]], [nm["smoothed"]], name=nm["smoothed"]))
        source = nm["smoothed"]
    reduce_nodes, amax = _row_max_abs(source, base, per_token, opset, namer, g)
    new += reduce_nodes + [
        helper.make_node("Mul", [amax, c["inv_qmax"]], [nm["raw_step"]], name=nm["raw_step"]),
        helper.make_node("Max", [nm["raw_step"], c["tiny"]], [nm["step"]], name=nm["step"]),
    ]
    if per_token and opset >= 21 and channels > 0:  # one fused kernel: round(x / step) + 128, saturated
        zp1, shape, zps = namer(f"{base}/zero_point_const"), namer(f"{base}/step_shape"), namer(f"{base}/zero_points")
        g.initializer.append(numpy_helper.from_array(np.array([128], dtype=np.uint8), zp1))
        new += [
            helper.make_node("Shape", [nm["step"]], [shape], name=shape),
            helper.make_node("Expand", [zp1, shape], [zps], name=zps),
            helper.make_node("QuantizeLinear", [source, nm["step"], zps], [nm["codes"]], name=nm["codes"], axis=-1,
                             block_size=channels),
        ]
        g.node.extend(new)
        cache[key] = DynamicCodes(nm["codes"], nm["step"], None)
        return cache[key]
    new += [
        helper.make_node("Div", [source, nm["step"]], [nm["scaled"]], name=nm["scaled"]),
        helper.make_node("Round", [nm["scaled"]], [nm["rounded"]], name=nm["rounded"]),
        helper.make_node("Add", [nm["rounded"], c["offset"]], [nm["shifted"]], name=nm["shifted"]),
        helper.make_node("Cast", [nm["shifted"]], [nm["codes"]], name=nm["codes"], to=T.UINT8),
    ]
    g.node.extend(new)
    cache[key] = DynamicCodes(nm["codes"], nm["step"], None)
    return cache[key]


def dynamic_matmul(model: Any, site: WeightSite, qt: QTensor, dyn: DynamicCodes, namer: Namer) -> None:
    """Replace a MatMul/Gemm by ``MatMulInteger(codes, W_int8, zp) · step · scale_w (· row_scale)
    (+ bias)``; the input codes come from :func:`dynamic_input_codes`. With a per-tensor step the two
    scales are multiplied first (the pattern ONNX Runtime fuses into one DynamicQuantizeMatMul kernel)."""
    codes, step, zero_point = dyn.codes, dyn.step, dyn.zero_point
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    node, g = site.node, model.graph
    wcodes, scale, _, _ = _onnx_layout(site, qt)  # [K, N] when the ONNX weight is transposed
    if not site.transposed:  # Gemm with transB=1 holds [N, K]
        wcodes = wcodes.T
    base = site.name
    w_name, ws_name = namer(site.weight_name + "_quantized"), namer(site.weight_name + "_scale")
    nm = {k: namer(f"{base}/{k}") for k in ("acc", "accf", "rescaled", "out", "bias", "scales", "input_zero_point",
                                              "tensor_scaled")}
    g.initializer.extend([
        numpy_helper.from_array(np.ascontiguousarray(wcodes.astype(np.int8)), w_name),
        _float_tensor(ws_name, np.asarray(scale, dtype=np.float32).reshape(-1)),
    ])
    if zero_point is None:
        zero_point = nm["input_zero_point"]
        g.initializer.append(numpy_helper.from_array(np.array(128, dtype=np.uint8), zero_point))
    new = [
        helper.make_node("MatMulInteger", [codes, w_name, zero_point], [nm["acc"]], name=nm["acc"]),
        helper.make_node("Cast", [nm["acc"]], [nm["accf"]], name=nm["accf"], to=T.FLOAT),
    ]
    bias = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2] else None
    final = node.output[0]
    scaled = final if bias is None else nm["out"]
    if zero_point != nm["input_zero_point"]:  # per-tensor step: one Mul by step·scale_w
        new.append(helper.make_node("Mul", [step, ws_name], [nm["scales"]], name=nm["scales"]))
        if dyn.row_scale is None:
            new.append(helper.make_node("Mul", [nm["accf"], nm["scales"]], [scaled], name=nm["out"]))
        else:
            new.append(helper.make_node("Mul", [nm["accf"], nm["scales"]], [nm["tensor_scaled"]],
                                        name=nm["tensor_scaled"]))
            new.append(helper.make_node("Mul", [nm["tensor_scaled"], dyn.row_scale], [scaled], name=nm["out"]))
    else:
        new.append(helper.make_node("Mul", [nm["accf"], step], [nm["rescaled"]], name=nm["rescaled"]))
        new.append(helper.make_node("Mul", [nm["rescaled"], ws_name], [scaled], name=nm["out"]))
    if bias is not None:
        new.append(helper.make_node("Add", [nm["out"], bias], [final], name=nm["bias"]))
    g.node.remove(node)
    g.node.extend(new)
