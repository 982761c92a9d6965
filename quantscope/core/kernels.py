"""Fused CPU kernels (``_kernels.c``) behind a small typed interface, run on torch's thread count.

The kernels are optional: if the extension was not built (no C compiler), or
``QUANTSCOPE_DISABLE_KERNELS=1`` is set, or inside ``with kernels.disabled():``, every operation
takes the torch reference path in :mod:`quantscope.core.grid`, which gives identical bits.
Work is split into one region per thread; ctypes releases the GIL during each call.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import torch

from .formats import FloatFormat, IntFormat, MXFormat
from .granularity import Layout

ROUNDING_CODES = {"nearest_even": 0, "nearest_away": 1, "floor": 2, "ceil": 3, "toward_zero": 4}
TYPE_CODES = {torch.float32: 0, torch.int8: 1, torch.uint8: 2, torch.int16: 3, torch.int32: 4}
SPECIAL_CODES = {"ieee": 0, "fn": 1, "none": 2}
MIN_ELEMENTS_PER_THREAD = 1 << 16


class _Region(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int64) for n in
                ("outer", "length", "inner", "group", "p_outer", "p_inner", "o_begin", "o_end", "k_begin", "k_end")]


class _FloatFormat(ctypes.Structure):
    _fields_ = [("exp_bits", ctypes.c_int32), ("man_bits", ctypes.c_int32), ("bias", ctypes.c_int32),
                ("emin", ctypes.c_int32), ("emax", ctypes.c_int32), ("special", ctypes.c_int32),
                ("max_value", ctypes.c_float)]


_state = threading.local()
_lib: ctypes.CDLL | None = None
_lib_error: str | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _load() -> ctypes.CDLL | None:
    global _lib, _lib_error
    if _lib is not None or _lib_error is not None:
        return _lib
    try:
        spec = importlib.util.find_spec("quantscope.core._kernels")
        if spec is None or spec.origin is None:
            raise ImportError("the extension quantscope.core._kernels was not built")
        lib = ctypes.CDLL(spec.origin)
        p, i64, i32, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_float
        region, ffmt = ctypes.POINTER(_Region), ctypes.POINTER(_FloatFormat)
        ci = ctypes.c_int
        lib.qs_int_quant.argtypes = [p, p, ci, region, p, p, f32, f32, ci, ci]
        lib.qs_float_quant.argtypes = [p, p, ci, region, p, ffmt, ci, ci, ci]
        lib.qs_int_dequant.argtypes = [p, ci, p, region, p, p]
        lib.qs_lut_dequant.argtypes = [p, ci, p, region, p, p]
        lib.qs_mx_quant.argtypes = [p, p, p, p, region, ffmt, ci, i32, i32, f32, ci, ci]
        lib.qs_int_sq_err.argtypes = [p, i64, i64, p, p, i64, i64, f32, f32, ci, p]
        lib.qs_hist_count.argtypes = [p, i64, i64, i64, i64, p, i64, p]
        lib.qs_nearest_centroid.argtypes = [p, i64, p, p, i64, p, i64, i64, p, p]
        for name in ("qs_int_quant", "qs_float_quant", "qs_int_dequant", "qs_lut_dequant", "qs_mx_quant",
                     "qs_int_sq_err", "qs_hist_count", "qs_nearest_centroid"):
            getattr(lib, name).restype = i64
        _lib = lib
    except (ImportError, OSError, AttributeError) as exc:  # no compiler at install time: reference path
        _lib_error = str(exc)
    return _lib


def available() -> bool:
    """True when the fused kernels are built and not disabled."""
    if os.environ.get("QUANTSCOPE_DISABLE_KERNELS") == "1" or getattr(_state, "disabled", False):
        return False
    return _load() is not None


def load_error() -> str | None:
    _load()
    return _lib_error


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Force the torch reference path in this thread (used to test kernels against it)."""
    old = getattr(_state, "disabled", False)
    _state.disabled = True
    try:
        yield
    finally:
        _state.disabled = old


def on_cpu(t: torch.Tensor) -> bool:
    """Can the kernels process this tensor (built, enabled, on the CPU)?"""
    return available() and t.device.type == "cpu"


def usable(x: torch.Tensor, rounding: str) -> bool:
    """Can the kernels quantize ``x`` with this rounding mode (stochastic rounding needs torch's RNG)?"""
    return on_cpu(x) and rounding in ROUNDING_CODES


def _executor(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="quantscope")
            _pool_size = n
        return _pool


def _regions(layout: Layout, align: int = 1) -> list[_Region]:
    """Cut the (outer, length) plane into one region per thread (along outer when it is big enough)."""
    base = (layout.outer, layout.length, layout.inner, layout.group, layout.p_outer, layout.p_inner)
    n = max(1, min(torch.get_num_threads(), layout.numel // MIN_ELEMENTS_PER_THREAD))
    if n == 1:
        return [_Region(*base, 0, layout.outer, 0, layout.length)]
    out = []
    if layout.outer >= n:
        cuts = [layout.outer * i // n for i in range(n + 1)]
        for a, b in pairwise(cuts):
            if b > a:
                out.append(_Region(*base, a, b, 0, layout.length))
        return out
    units = -(-layout.length // align)
    per_row = max(1, -(-n // layout.outer))
    for o in range(layout.outer):
        cuts = [min(layout.length, (units * i // per_row) * align) for i in range(per_row + 1)]
        for a, b in pairwise(cuts):
            if b > a:
                out.append(_Region(*base, o, o + 1, a, b))
    return out


def _run(fn: ctypes._CFuncPtr, regions: list[_Region], *args: object) -> int:
    """Call ``fn(*args[:k], region, *args[k:])`` for every region in parallel; sum the results."""
    def call(r: _Region) -> int:
        return fn(*[ctypes.byref(r) if a is _REGION else a for a in args])

    if len(regions) == 1:
        results = [call(regions[0])]
    else:
        results = list(_executor(len(regions)).map(call, regions))
    if any(r < 0 for r in results):
        raise RuntimeError("quantscope kernel rejected its arguments (this is a bug; please report it)")
    return sum(results)


_REGION = object()  # placeholder for the per-thread region argument


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _float_format(fmt: FloatFormat) -> _FloatFormat:
    return _FloatFormat(fmt.exp_bits, fmt.man_bits, fmt.bias, fmt.emin, fmt.emax,
                        SPECIAL_CODES[fmt.special], fmt.max_value)


def _output(x: torch.Tensor, dtype: torch.dtype, out: torch.Tensor | None) -> torch.Tensor:
    """``out`` when it is a usable buffer (contiguous CPU, right dtype and size), else a new tensor."""
    if out is not None and out.dtype == dtype and out.is_contiguous() and out.numel() == x.numel():
        return out
    return torch.empty(x.shape, dtype=dtype)


def int_quant(x: torch.Tensor, layout: Layout, scale: torch.Tensor | None, zero_point: torch.Tensor | None,
              fmt: IntFormat, rounding: str, out_dtype: torch.dtype, passthrough: bool,
              out: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Fake-quantized values (out_dtype float32) or integer codes of contiguous float32 ``x``."""
    out = _output(x, out_dtype, out)
    bad = _run(_lib.qs_int_quant, _regions(layout), _ptr(x), _ptr(out), TYPE_CODES[out_dtype], _REGION,
               _ptr(scale), _ptr(zero_point), float(fmt.qmin), float(fmt.qmax), ROUNDING_CODES[rounding],
               int(passthrough))
    return out, bad


def float_quant(x: torch.Tensor, layout: Layout, scale: torch.Tensor | None, fmt: FloatFormat, rounding: str,
                overflow: str, out_dtype: torch.dtype, passthrough: bool, out: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, int]:
    out = _output(x, out_dtype, out)
    f = _float_format(fmt)
    bad = _run(_lib.qs_float_quant, _regions(layout), _ptr(x), _ptr(out), TYPE_CODES[out_dtype], _REGION,
               _ptr(scale), ctypes.byref(f), ROUNDING_CODES[rounding], int(overflow == "nonsaturating"),
               int(passthrough))
    return out, bad


def int_dequant(codes: torch.Tensor, layout: Layout, scale: torch.Tensor, zero_point: torch.Tensor | None
                ) -> torch.Tensor:
    out = torch.empty(codes.shape, dtype=torch.float32)
    _run(_lib.qs_int_dequant, _regions(layout), _ptr(codes), TYPE_CODES[codes.dtype], _ptr(out), _REGION,
         _ptr(scale), _ptr(zero_point))
    return out


def lut_dequant(codes: torch.Tensor, layout: Layout, scale: torch.Tensor | None, table: torch.Tensor
                ) -> torch.Tensor:
    out = torch.empty(codes.shape, dtype=torch.float32)
    table = table.contiguous()
    _run(_lib.qs_lut_dequant, _regions(layout), _ptr(codes), TYPE_CODES[codes.dtype], _ptr(out), _REGION,
         _ptr(scale), _ptr(table))
    return out


def mx_quant(x: torch.Tensor, layout: Layout, fmt: MXFormat, rounding: str, want_values: bool, want_codes: bool,
             code_dtype: torch.dtype, passthrough: bool, out: torch.Tensor | None = None
             ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, int]:
    """One pass per block: values (fake quantization) and/or element codes + E8M0 scale codes."""
    values = _output(x, torch.float32, out) if want_values else None
    codes = torch.empty(x.shape, dtype=code_dtype) if want_codes else None
    scodes = torch.empty(layout.param_shape3, dtype=torch.uint8) if want_codes else None
    elem = fmt.element
    int_elem = isinstance(elem, IntFormat)
    f = _FloatFormat() if int_elem else _float_format(elem)
    bad = _run(_lib.qs_mx_quant, _regions(layout, align=layout.group), _ptr(x), _ptr(values), _ptr(codes),
               _ptr(scodes), _REGION, ctypes.byref(f), int(int_elem), fmt.emax_elem, fmt.element_step_exp,
               float(elem.qmax if int_elem else elem.max_value), ROUNDING_CODES[rounding], int(passthrough))
    return values, codes, scodes, bad


def int_sq_err(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None, fmt: IntFormat,
               rounding: str) -> torch.Tensor:
    """Squared quantization error summed over each row of ``x`` (P, n) float32 (finite values), for
    T candidate parameters ``scale`` / ``zero_point`` of shape (T, P): a (T, P) float64 tensor. One pass
    per candidate with no intermediate tensor (the MSE range search's inner loop); candidates are split
    over the threads."""
    x = x.contiguous()
    T, P = scale.shape
    scale = scale.to(torch.float32).contiguous()
    zp = None if zero_point is None else zero_point.to(torch.int32).contiguous()
    out = torch.empty(T, P, dtype=torch.float64)
    threads = max(1, min(torch.get_num_threads(), T, -(-(T * x.numel()) // MIN_ELEMENTS_PER_THREAD)))
    cuts = [T * i // threads for i in range(threads + 1)]

    def call(a: int, b: int) -> int:
        return _lib.qs_int_sq_err(_ptr(x), P, x.shape[1], _ptr(scale), _ptr(zp), a, b, float(fmt.qmin),
                                  float(fmt.qmax), ROUNDING_CODES[rounding], _ptr(out))

    spans = [(a, b) for a, b in pairwise(cuts) if b > a]
    results = [call(*spans[0])] if len(spans) == 1 else list(_executor(len(spans)).map(lambda ab: call(*ab), spans))
    if any(r < 0 for r in results):
        raise RuntimeError("quantscope kernel rejected its arguments (this is a bug; please report it)")
    return out


def hist_count(rows: torch.Tensor, scale: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin counts (P, bins) int64 of ``rows`` (P, n) float32: value x of row p goes to bin
    ``floor(x · scale[p]) + bins/2`` (``scale[p]`` a power of two that maps the row into the bins; a
    negative value whose product underflows counts in the bin below zero); NaN is skipped. The
    columns are split over the threads, each with its own counts, summed at the end."""
    rows = rows.contiguous()
    P, n = rows.shape
    scale = scale.to(torch.float32).contiguous()
    threads = max(1, min(torch.get_num_threads(), -(-rows.numel() // MIN_ELEMENTS_PER_THREAD)))
    cuts = [n * i // threads for i in range(threads + 1)]
    spans = [(a, b) for a, b in pairwise(cuts) if b > a]
    parts = [torch.zeros(P, bins, dtype=torch.int64) for _ in spans]

    def call(k: int) -> int:
        a, b = spans[k]
        return _lib.qs_hist_count(_ptr(rows), P, n, a, b, _ptr(scale), bins, _ptr(parts[k]))

    results = [call(0)] if len(spans) == 1 else list(_executor(len(spans)).map(call, range(len(spans))))
    if any(r < 0 for r in results):
        raise MemoryError("quantscope kernel could not allocate its histogram buffers")
    out = parts[0]
    for extra in parts[1:]:
        out += extra
    return out


NEAREST_MAX_DIM = 64  # beyond this a matrix product (torch.bmm) computes the distances faster


def nearest_centroid(X: torch.Tensor, C: torch.Tensor, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Nearest of the (B, k, d) centroids ``C`` for each of the (B, n, d) float32 points ``X`` with
    squared norms ``xn`` (B, n): (labels (B, n) int64, squared distances (B, n) float32 >= 0), lowest
    index among exact ties; computed as ``||x||² − 2·x·c + ||c||²`` without a distance matrix. None
    when the kernel cannot run here (then use the matrix-product path). Points split over threads."""
    if not on_cpu(X) or X.dtype != torch.float32:
        return None
    B, n, d = X.shape
    k = C.shape[1]
    kpad = -(-k // 16) * 16
    X, xn = X.contiguous(), xn.to(torch.float32).contiguous()
    CT = torch.zeros(B, d, kpad, dtype=torch.float32)
    CT[:, :, :k] = (-2.0 * C.to(torch.float32)).transpose(1, 2)
    cn = torch.full((B, kpad), float("inf"), dtype=torch.float32)
    cn[:, :k] = (C.to(torch.float32) ** 2).sum(-1)
    labels = torch.empty(B, n, dtype=torch.int64)
    dists = torch.empty(B, n, dtype=torch.float32)
    per_problem = max(1, min(torch.get_num_threads(), -(-n * k * d // (MIN_ELEMENTS_PER_THREAD * 16))))
    jobs = [(b, n * h // per_problem, n * (h + 1) // per_problem) for b in range(B) for h in range(per_problem)]

    def call(job: tuple[int, int, int]) -> int:
        b, a, e = job
        return _lib.qs_nearest_centroid(_ptr(X[b]), d, _ptr(CT[b]), _ptr(cn[b]), kpad, _ptr(xn[b]), a, e,
                                        _ptr(labels[b]), _ptr(dists[b]))

    threads = min(torch.get_num_threads(), len(jobs))
    results = [call(j) for j in jobs] if threads <= 1 else list(_executor(threads).map(call, jobs))
    if any(r < 0 for r in results):
        return None
    return labels, dists
