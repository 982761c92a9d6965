"""Running an ONNX model in ONNX Runtime while reading chosen intermediate tensors, one batch at a
time (memory bounded by one batch's activations), and handing them to a callback."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..report.progress import progress
from .graph import require_ort

_NP_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
             "tensor(float16)": np.float16, "tensor(double)": np.float64, "tensor(uint8)": np.uint8,
             "tensor(int8)": np.int8, "tensor(bool)": np.bool_}


MATMULNBITS_ACCURACY_KEY = "session.qdq_matmulnbits_accuracy_level"
"""ORT session option read when its extended optimizations fuse a weight-only DequantizeLinear -> MatMul
into a ``MatMulNBits`` node: accuracy level 4 (ORT's default) quantizes the activations to int8 at run time
(blockwise, dynamic), which a weight-only recipe does not do; 0 (or 1) keeps float activations."""


def session(model: Any, threads: int | None = None, optimization: str = "basic",
            optimized_path: str | None = None, spinning: bool = True,
            matmul_nbits_accuracy: int | None = None) -> Any:
    """An ONNX Runtime CPU session for a ModelProto or a path. ``optimization``: disable | basic |
    extended | all; ``optimized_path``: where ORT saves the graph it actually runs; ``spinning=False``:
    ORT's worker threads sleep as soon as a run ends instead of busy-waiting for the next one (for
    sessions whose runs alternate with our own computation, which would otherwise compete with them
    for the cores); ``matmul_nbits_accuracy``: the accuracy level of the ``MatMulNBits`` nodes ORT makes
    from weight-only layers (None: ORT's default, 4 = int8 activations; 0: float activations, what the
    weight-only simulation computes), see :data:`MATMULNBITS_ACCURACY_KEY`."""
    ort = require_ort()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[optimization]
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    if optimized_path is not None:
        so.optimized_model_filepath = optimized_path
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if matmul_nbits_accuracy is not None:
        if matmul_nbits_accuracy not in (0, 1, 2, 3, 4):
            raise ValueError(f"matmul_nbits_accuracy must be 0 (float activations), 1 (fp32), 2 (fp16), 3 (bf16) "
                             f"or 4 (int8 activations), got {matmul_nbits_accuracy!r}")
        so.add_session_config_entry(MATMULNBITS_ACCURACY_KEY, str(matmul_nbits_accuracy))
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


def feed(sess: Any, batch: Any, index: int = 0) -> dict[str, np.ndarray]:
    """A batch as ORT's input dict: a mapping of input name to array, a sequence of arrays in input
    order, or one array for a single-input model. Arrays are cast to the input's declared type."""
    inputs = sess.get_inputs()
    names = [i.name for i in inputs]
    if isinstance(batch, Mapping):
        unknown = sorted(set(batch) - set(names))
        missing = [n for n in names if n not in batch]
        if unknown or missing:
            extra = (f" (unknown: {unknown})" if unknown else "") + (f" (missing: {missing})" if missing else "")
            raise ValueError(f"batch #{index} has inputs {sorted(batch)} but the model takes {names}{extra}")
        items = {n: batch[n] for n in names}
    elif isinstance(batch, Sequence) and not isinstance(batch, np.ndarray):
        if len(batch) != len(names):
            raise ValueError(f"batch #{index} has {len(batch)} arrays but the model takes {len(names)} inputs {names}")
        items = dict(zip(names, batch, strict=True))
    else:
        if len(names) != 1:
            raise ValueError(f"batch #{index} is one array but the model takes {len(names)} inputs {names}; "
                             f"pass a dict of input name to array")
        items = {names[0]: batch}
    out = {}
    for info in inputs:
        arr = np.asarray(items[info.name].numpy() if hasattr(items[info.name], "numpy") else items[info.name])
        want = _NP_TYPES.get(info.type)
        if want is not None and arr.dtype != want:
            arr = arr.astype(want)
        out[info.name] = arr
    return out


def with_outputs(model: Any, names: Iterable[str]) -> Any:
    """A copy of ``model`` that also returns the tensors ``names`` as graph outputs."""
    from onnx import TensorProto, helper

    copy = type(model)()
    copy.CopyFrom(model)
    existing = {o.name for o in copy.graph.output}
    for name in names:
        if name not in existing:
            copy.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
            existing.add(name)
    return copy


def run_collect(model: Any, names: Sequence[str], batches: Iterable[Any],
                on_batch: Callable[[int, dict[str, np.ndarray]], None], description: str = "running ONNX model",
                show_progress: bool = True, max_batches: int | None = None) -> int:
    """Run every batch through ``model`` and call ``on_batch(i, {name: array})`` with the requested
    intermediate tensors (plus the model outputs). Returns the number of batches; errors when none."""
    sess = session(with_outputs(model, names), spinning=False)  # our statistics run between its batches
    out_names = [o.name for o in sess.get_outputs()]
    items = batches if hasattr(batches, "__len__") else list(batches)
    total = len(items) if max_batches is None else min(len(items), max_batches)
    n = 0
    with progress(total, description, enabled=show_progress) as advance:
        for i, batch in enumerate(items):
            if i >= total:
                break
            values = sess.run(out_names, feed(sess, batch, i))
            on_batch(i, dict(zip(out_names, values, strict=True)))
            n += 1
            advance(f"batch {i + 1}")
    if n == 0:
        raise ValueError("the calibration data is empty; give at least one batch")
    return n
