"""Question: does our ONNX quantizer keep real models closer to float than ONNX Runtime's own quantizer?

Four models that exist as ``.onnx`` files: the MiniLM sentence encoder (exported here) and the three
PP-OCRv4 models of ``rapidocr-onnxruntime`` (text recognizer, text detector, direction classifier). Each
is quantized in the same run from the same float file, with the same calibration batches, by
``quantscope.onnx.quantize_onnx`` (several recipes) and by ``onnxruntime.quantization`` (``quantize_static``
in QDQ format, per-channel int8 weights and uint8 activations, MinMax / Entropy / Percentile calibration,
and ``quantize_dynamic``). Every row: the model's task metric on held-out data (different seeds or
sentences than the calibration data), the SQNR of the first model output against float on the same
held-out inputs, the wall time of the quantize call, the file size, and ORT CPU latency (median, 2
threads, all variants of a model timed in alternation with the float model).

"ours (selected)" is the one recipe per model with the best task metric on a small selection set
(neither calibration nor evaluation data), chosen before the held-out metrics are read; the targets use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402

from quantscope.models import ocr  # noqa: E402
from quantscope.models.minilm import (  # noqa: E402
    calibration_sentences,
    export_minilm_onnx,
    heldout_sentences,
    load_minilm,
    onnx_batches,
    onnx_embed,
)
from quantscope.models.text_render import render_lines, render_pages  # noqa: E402
from quantscope.nn.recipes import Recipe, get  # noqa: E402
from quantscope.onnx import graph as G  # noqa: E402
from quantscope.onnx import quantize_onnx  # noqa: E402
from quantscope.onnx.calibrate import session  # noqa: E402
from quantscope.onnx.qdq import find_weight_sites  # noqa: E402
from quantscope.onnx.speed import INT8_OPS, bench_speed, compare_speedups  # noqa: E402

THREADS = 2
REC_EVAL_LINES = 200  # 300 would add ~1 min of evaluation; 200 lines keep the whole script near 10 min
DET_EVAL_PAGES = 8
CLS_EVAL_LINES = 96  # every second one rotated by 180 degrees
ORT_WEIGHT_OPS = ["MatMul", "Gemm", "Conv", "ConvTranspose"]  # the ops quantize_onnx quantizes
# ORT's Entropy/Percentile calibration keeps every intermediate tensor of every batch in memory (19.6 GB peak
# on the recognizer); they run in a child process whose address space is capped at this many bytes.
MEMORY_CAP = int(0.6 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


@contextlib.contextmanager
def quiet(workdir: str | None = None) -> Any:
    """Keep ORT's quantization chatter (print and logging) out of the markdown on stdout, and run in
    ``workdir`` (ORT's symbolic shape inference drops a debug model into the working directory when it fails)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                contextlib.chdir(workdir or os.getcwd()):
            yield
    finally:
        logging.disable(previous)


class Recorder:
    """An ORT session that keeps the first output of every run (for the output SQNR)."""

    def __init__(self, sess: Any) -> None:
        self._sess = sess
        self.outputs: list[np.ndarray] = []

    def run(self, names: Any, feeds: Any, *args: Any) -> Any:
        out = self._sess.run(names, feeds, *args)
        self.outputs.append(np.asarray(out[0]))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sess, name)


def sqnr_db(ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    r = np.concatenate([x.reshape(-1) for x in ref]).astype(np.float64)
    g = np.concatenate([x.reshape(-1) for x in got]).astype(np.float64)
    noise = float(((r - g) ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(float((r**2).sum()) / noise)


def short_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if "Too many bins" in text:
        text = "Too many bins for data range"
    elif "inhomogeneous" in text:
        text = "inhomogeneous shape (calibration batches differ in shape)"
    elif "QLinearConv" in text and "zero point" in text:
        text = "ORT run: QLinearConv result zero point must be a scalar"
    elif (isinstance(exc, MemoryError) or type(exc).__name__ == "BrokenProcessPool" or "bfc_arena" in text
          or "bad_alloc" in text):
        return f"failed: out of memory under the {MEMORY_CAP / 2**30:.0f} GB cap"
    return f"failed: {type(exc).__name__}: {text[:90]}"


# ------------------------------------------------------------------------------------- ORT peers


class ListReader:
    """onnxruntime CalibrationDataReader over a list of input dicts."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self.batches, self.i = batches, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return self.batches[self.i - 1]

    def rewind(self) -> None:
        self.i = 0


def ort_opset13(src: str, dst: str) -> tuple[str, float, str]:
    """The float file at opset >= 13 (per-channel QDQ needs it). ORT's quantizer does not upgrade an
    opset-11/12 model itself: it writes per-channel DequantizeLinear nodes with an ``axis`` that the
    opset rejects, and the result does not load. Path, seconds, note."""
    import onnx
    from onnx import version_converter

    t0 = time.perf_counter()
    model = onnx.load(src)
    version = G.opset(model)
    if version >= 13:
        return src, 0.0, f"opset {version}"
    onnx.save(version_converter.convert_version(model, 13), dst)
    return dst, time.perf_counter() - t0, f"opset {version} upgraded to 13 with onnx.version_converter"


def ort_preprocess(src: str, dst: str) -> tuple[float, str]:
    """ORT's recommended pre-processing (symbolic shape inference, graph optimization, ONNX shape
    inference); where symbolic shape inference fails on the model, it is skipped. Seconds of the
    call that succeeded, and what was done."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        t0 = time.perf_counter()
        with quiet(os.path.dirname(dst)):
            quant_pre_process(src, dst)
        return time.perf_counter() - t0, "`quant_pre_process` in full"
    except Exception as exc:  # noqa: BLE001 - ORT raises bare Exception/AssertionError here
        reason = " ".join(str(exc).split())[:60] or type(exc).__name__
        t0 = time.perf_counter()
        with quiet(os.path.dirname(dst)):
            quant_pre_process(src, dst, skip_symbolic_shape=True)
        return (time.perf_counter() - t0,
                f"`quant_pre_process` without symbolic shape inference (with it: {reason})")


def ort_static(src: str, dst: str, calib: list[dict[str, np.ndarray]], method: str,
               op_types: list[str] | None = None, extra: dict[str, Any] | None = None) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    kw: dict[str, Any] = {} if op_types is None else {"op_types_to_quantize": op_types}
    if extra is not None:
        kw["extra_options"] = extra
    with quiet(os.path.dirname(dst)):
        quantize_static(src, dst, ListReader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method), **kw)


def _limit_memory(cap: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _timed_ort_static(src: str, dst: str, calib: list[dict[str, np.ndarray]], method: str) -> float:
    t0 = time.perf_counter()
    ort_static(src, dst, calib, method)
    return time.perf_counter() - t0


def capped_ort_static(src: str, dst: str, calib: list[dict[str, np.ndarray]], method: str) -> float:
    """ort_static in a fresh child process with at most MEMORY_CAP bytes of address space; the seconds of
    the quantize call (measured in the child)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=_limit_memory, initargs=(MEMORY_CAP,)) as pool:
        return pool.submit(_timed_ort_static, src, dst, calib, method).result()


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ort_dynamic(src: str, dst: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet(os.path.dirname(dst)):
        quantize_dynamic(src, dst, per_channel=True, weight_type=QuantType.QInt8)


# ------------------------------------------------------------------------------------- our recipes


def variant(base: Recipe, name: str, **changes: Any) -> Recipe:
    return dataclasses.replace(base, name=name, default=dataclasses.replace(base.default, **changes))


def smoothed(path: str, base: Recipe, alpha: float, name: str) -> Recipe:
    """``base`` with SmoothQuant ``alpha`` on every layer that can take it: grouped (depthwise) convs and
    ConvTranspose are refused by quantize_onnx, and a layer whose input comes straight from another
    quantized Conv/MatMul is left unsmoothed too (ORT would fuse that producer into a QLinearConv whose
    output scale is per-channel, which it cannot run; see the report). Layers reading the same tensor
    share the decision."""
    sites = find_weight_sites(G.constants_to_initializers(G.load_model(path)))
    produced = {s.node.output[0] for s in sites}

    def refused(s: Any) -> bool:
        group = next((a.i for a in s.node.attribute if a.name == "group"), 1)
        return s.kind.startswith("ConvTranspose") or group > 1 or s.node.input[0] in produced

    plain = {s.node.input[0] for s in sites if refused(s)}
    overrides = tuple((s.name, base.default) for s in sites if s.node.input[0] in plain)
    return dataclasses.replace(base, name=name, default=dataclasses.replace(base.default, smooth_alpha=alpha),
                               overrides=overrides + base.overrides)


def ocr_variants(path: str) -> dict[str, Recipe]:
    w8a8 = get("w8a8")
    return {
        "w8a8": w8a8,
        "w8a8, minmax inputs": variant(w8a8, "w8a8-in-minmax", input_calibrator="minmax"),
        "w8a8, percentile inputs": variant(w8a8, "w8a8-in-percentile", input_calibrator="percentile"),
        "w8a8, MSE weights": variant(w8a8, "w8a8-w-mse", weight_calibrator="mse"),
        "w8a8, MSE weights, percentile inputs": variant(w8a8, "w8a8-w-mse-in-percentile", weight_calibrator="mse",
                                                        input_calibrator="percentile"),
        "w8a8 + SmoothQuant 0.5": smoothed(path, w8a8, 0.5, "w8a8-smooth0.5"),
    }


# ------------------------------------------------------------------------------------------ tasks


@dataclass
class Task:
    """One model: its float file, data, how to run and score it, and the recipes of ours to try."""

    name: str
    float_path: str
    calib: list[dict[str, np.ndarray]]
    timing_feed: dict[str, np.ndarray]
    # (path, "eval" | "select") -> (raw result, first outputs); "select" data is neither calibration nor evaluation
    run: Callable[[str, str], tuple[Any, list[np.ndarray]]]
    score: Callable[[Any, Any], dict[str, float]]  # (float raw, quantized raw) -> metrics
    columns: list[tuple[str, str, str]]  # (metric key, header, format)
    key: Callable[[dict[str, float]], tuple[float, ...]]  # larger is better
    ours: dict[str, str | Recipe]
    data_note: str
    tie_keys: tuple[str, ...] = ()  # metric keys shown when the first metric ties
    ort_note: str = ""
    prep_seconds: float = math.nan


@dataclass
class Row:
    method: str
    family: str  # float | ours | ort
    path: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    sqnr_db: float = math.nan
    val_metrics: dict[str, float] = field(default_factory=dict)
    val_sqnr_db: float = math.nan
    seconds: float = math.nan
    nbytes: int = 0
    latency_ms: float = math.nan
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def minilm_task(tmp: str) -> Task:
    model, tok = load_minilm()
    path = os.path.join(tmp, "minilm.onnx")
    with quiet():
        export_minilm_onnx(path, model, tok)
    sentences = calibration_sentences()
    heldout = heldout_sentences()

    data = {"eval": heldout, "select": sentences[128:]}

    def run(p: str, split: str) -> tuple[Any, list[np.ndarray]]:
        rec = Recorder(session(p, optimization="all"))
        return onnx_embed(rec, tok, data[split]), rec.outputs

    def score(ref: Any, got: Any) -> dict[str, float]:
        cos = (ref * got).sum(-1)
        return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min())}

    return Task("MiniLM sentence encoder", path, onnx_batches(tok, sentences[:128], 16),
                onnx_batches(tok, heldout, 16)[0], run, score,
                [("cos_mean", "cosine mean", ".5f"), ("cos_min", "cosine min", ".5f")],
                lambda m: (m["cos_mean"],), {"w8a8": "w8a8", "w8a8-hybrid": "w8a8-hybrid",
                                             "w8a8-dynamic": "w8a8-dynamic"},
                f"calibration: the first 128 built-in sentences (batches of 16); selection: the other "
                f"{len(sentences) - 128}; evaluation: {len(heldout)} held-out sentences, cosine between float "
                f"and quantized sentence embeddings")


def rec_task() -> Task:
    path = str(ocr.ocr_model_path("rec"))
    lines = render_lines(REC_EVAL_LINES, seed=7)
    data = {"eval": lines, "select": render_lines(48, seed=3)}

    def run(p: str, split: str) -> tuple[Any, list[np.ndarray]]:
        rec = Recorder(session(p, optimization="all"))
        preds, sc = ocr.evaluate_rec(rec, data[split])
        return (preds, sc), rec.outputs

    def score(ref: Any, got: Any) -> dict[str, float]:
        (fp, _), (qp, qs) = ref, got  # as ocr.compare_rec, with the float run shared by all rows
        chars = sum(len(f) for f in fp)
        edits = sum(ocr.edit_distance(q, f) for f, q in zip(fp, qp, strict=True))
        return {"agree": sum(f == q for f, q in zip(fp, qp, strict=True)) / len(fp),
                "cer_vs_float": edits / chars if chars else float(edits > 0),
                "acc": qs.exact_line_accuracy, "cer": qs.cer}

    eval_batches = list(ocr.rec_batches(lines, 16))
    return Task("PP-OCRv4 recognizer (rec)", path, list(ocr.rec_batches(render_lines(64, seed=1), 16)),
                eval_batches[len(eval_batches) // 2], run, score,
                [("agree", "lines = float", ".3f"), ("cer_vs_float", "CER vs float", ".4f"),
                 ("acc", "exact lines", ".3f"), ("cer", "CER", ".4f")],
                lambda m: (m["agree"], -m["cer_vs_float"]), dict(ocr_variants(path)),
                f"calibration: 64 rendered lines (seed 1, batches of 16); selection: 48 lines (seed 3); "
                f"evaluation: {REC_EVAL_LINES} lines (seed 7; reduced from 300 to keep the run short): exact-line "
                f"agreement with the float model, CER against the float readings, and exact-line accuracy / CER "
                f"against ground truth", tie_keys=("agree", "cer_vs_float"))


def det_task() -> Task:
    path = str(ocr.ocr_model_path("det"))
    images = [p.image for p in render_pages(DET_EVAL_PAGES, seed=7)]
    data = {"eval": images, "select": [p.image for p in render_pages(2, seed=3)]}

    def run(p: str, split: str) -> tuple[Any, list[np.ndarray]]:
        maps = ocr.det_probability_maps(session(p, optimization="all"), data[split])
        return maps, maps

    return Task("PP-OCRv4 detector (det)", path, list(ocr.det_inputs([p.image for p in render_pages(8, seed=1)])),
                next(ocr.det_inputs(images[:1])), run, lambda ref, got: {"iou": ocr.det_map_iou(ref, got)},
                [("iou", "map IoU vs float", ".4f")],
                lambda m: (m["iou"],), dict(ocr_variants(path)),
                f"calibration: 8 rendered pages (seed 1); selection: 2 pages (seed 3); evaluation: "
                f"{DET_EVAL_PAGES} pages (seed 7): IoU of the text maps binarized at 0.3, float vs quantized")


def cls_task() -> Task:
    path = str(ocr.ocr_model_path("cls"))
    lines = render_lines(CLS_EVAL_LINES, seed=7)
    images = [line.image.rotate(180) if i % 2 else line.image for i, line in enumerate(lines)]
    val_lines = render_lines(32, seed=3)
    val_images = [line.image.rotate(180) if i % 2 else line.image for i, line in enumerate(val_lines)]
    data = {"eval": images, "select": val_images}

    def run(p: str, split: str) -> tuple[Any, list[np.ndarray]]:
        probs = ocr.cls_probabilities(session(p, optimization="all"), data[split])
        return probs, [probs]

    def score(ref: Any, got: Any) -> dict[str, float]:  # as ocr.cls_agreement, float run shared
        return {"agree": float(np.mean(ref.argmax(1) == got.argmax(1))), "prob_diff": float(np.abs(ref - got).mean())}

    return Task("PP-OCR direction classifier (cls)", path,
                list(ocr.cls_inputs([line.image for line in render_lines(64, seed=1)])),
                next(ocr.cls_inputs(images[:8])), run, score,
                [("agree", "labels = float", ".3f"), ("prob_diff", "mean abs prob diff", ".4f")],
                lambda m: (m["agree"], -m["prob_diff"]), dict(ocr_variants(path)),
                f"calibration: 64 upright rendered lines (seed 1, batches of 8); selection: 32 lines (seed 3), "
                f"half rotated 180 degrees; evaluation: {CLS_EVAL_LINES} lines (seed 7), every second one "
                f"rotated by 180 degrees: label agreement with float and mean absolute probability difference",
                tie_keys=("agree", "prob_diff"))


# ---------------------------------------------------------------------------------------- running


def evaluate(task: Task, row: Row, refs: dict[str, tuple[Any, list[np.ndarray]]]) -> None:
    """Task metrics and output SQNR on the evaluation data (and, for our rows, on the selection data)."""
    try:
        splits = ("select", "eval") if row.family == "ours" else ("eval",)
        for split in splits:
            raw, outs = task.run(row.path, split)
            metrics, sq = task.score(refs[split][0], raw), sqnr_db(refs[split][1], outs)
            if split == "eval":
                row.metrics, row.sqnr_db = metrics, sq
            else:
                row.val_metrics, row.val_sqnr_db = metrics, sq
        row.nbytes = os.path.getsize(row.path)
    except Exception as exc:  # noqa: BLE001 - a model ORT cannot run is a result, not a crash
        row.error = short_error(exc)


def run_task(task: Task, tmp: str) -> list[Row]:
    refs = {split: task.run(task.float_path, split) for split in ("eval", "select")}
    rows = [Row("float", "float", task.float_path, task.score(refs["eval"][0], refs["eval"][0]), math.inf,
                nbytes=os.path.getsize(task.float_path))]
    stem = os.path.join(tmp, task.name.split()[0].lower() + task.name.split()[-1].strip("()"))
    for i, (name, recipe) in enumerate(task.ours.items()):
        row = Row(f"ours {name}", "ours", f"{stem}-ours{i}.onnx")
        try:
            result = quantize_onnx(task.float_path, row.path, recipe, calib=task.calib, show_progress=False,
                                   analyze=False)
            row.seconds = result.seconds
        except Exception as exc:  # noqa: BLE001
            row.error = short_error(exc)
        if row.ok:
            evaluate(task, row, refs)
        rows.append(row)
    src, up_seconds, up_note = ort_opset13(task.float_path, f"{stem}-opset13.onnx")
    pre = f"{stem}-pre.onnx"
    pre_seconds, pre_note = ort_preprocess(src, pre)
    task.prep_seconds, task.ort_note = up_seconds + pre_seconds, f"{up_note}; {pre_note}"
    peers: list[tuple[str, Callable[[str], float]]] = [
        ("ORT static MinMax", lambda dst: timed(lambda: ort_static(pre, dst, task.calib, "MinMax"))),
        ("ORT static Entropy", lambda dst: capped_ort_static(pre, dst, task.calib, "Entropy")),
        ("ORT static Percentile", lambda dst: capped_ort_static(pre, dst, task.calib, "Percentile")),
        ("ORT static MinMax, MatMul/Gemm/Conv only",
         lambda dst: timed(lambda: ort_static(pre, dst, task.calib, "MinMax", ORT_WEIGHT_OPS))),
        ("ORT static MinMax, no pre-processing",
         lambda dst: timed(lambda: ort_static(src, dst, task.calib, "MinMax"))),
        ("ORT quantize_dynamic", lambda dst: timed(lambda: ort_dynamic(pre, dst))),
    ]
    for i, (name, fn) in enumerate(peers):
        row = Row(name, "ort", f"{stem}-ort{i}.onnx")
        t0 = time.perf_counter()
        try:
            row.seconds = fn(row.path)
        except Exception as exc:  # noqa: BLE001 - e.g. "Too many bins for data range"
            row.seconds = time.perf_counter() - t0
            row.error = short_error(exc)
        if row.ok:
            evaluate(task, row, refs)
        rows.append(row)
    latency(task, rows)
    return rows


def latency(task: Task, rows: list[Row], repeat: int = 7) -> None:
    """Median ms per batch on THREADS threads, every model of the task timed in alternation (ORT threads
    do not spin between runs, so one session's idle workers never compete with the next one's)."""
    live = [r for r in rows if r.ok]
    sessions = [session(r.path, threads=THREADS, optimization="all", spinning=False) for r in live]
    feeds = [{i.name: task.timing_feed[i.name] for i in s.get_inputs()} for s in sessions]
    for s, f in zip(sessions, feeds, strict=True):
        s.run(None, f)
    times: list[list[float]] = [[] for _ in live]
    for _ in range(repeat):
        for k, (s, f) in enumerate(zip(sessions, feeds, strict=True)):
            t0 = time.perf_counter()
            s.run(None, f)
            times[k].append(time.perf_counter() - t0)
    for r, t in zip(live, times, strict=True):
        r.latency_ms = statistics.median(t) * 1e3


def select_ours(task: Task, rows: list[Row]) -> Row | None:
    """Our row with the best task metric on the selection data (ties: the better output SQNR there)."""
    ours = [r for r in rows if r.family == "ours" and r.ok]
    return max(ours, key=lambda r: (*task.key(r.val_metrics), r.val_sqnr_db)) if ours else None


def fmt(value: float, spec: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, spec)


def table(task: Task, rows: list[Row], chosen: Row | None) -> str:
    float_ms = rows[0].latency_ms
    k0, h0, f0 = task.columns[0]
    cols = ["method"] + [c[1] for c in task.columns] + ["output SQNR dB", "quantize s", "MB", "ORT ms (2 thr)",
                                                         "speed-up", f"selection: {h0} / SQNR dB"]
    out = []
    for r in rows:
        name = r.method + (" **(selected)**" if r is chosen else "")
        if not r.ok:
            blank = [""] * len(task.columns)
            out.append([name, r.error] + blank[1:] + ["", fmt(r.seconds, ".1f"), "", "", "", ""])
            continue
        select = (f"{format(r.val_metrics[k0], f0)} / {fmt(r.val_sqnr_db, '.1f')}" if r.val_metrics else "")
        out.append([name] + [fmt(r.metrics[k], f) for k, _, f in task.columns]
                   + [fmt(r.sqnr_db, ".1f"), fmt(r.seconds, ".1f"), f"{r.nbytes / 1e6:.2f}", fmt(r.latency_ms, ".1f"),
                      fmt(float_ms / r.latency_ms, ".2f"), select])
    return markdown_table(cols, out)


def minilm_speed(task: Task, rows: list[Row]) -> tuple[list[str], dict[str, Any]]:
    """bench_speed for our w8a8-hybrid model and ORT's quantize_dynamic model."""
    heldout_batches = [task.timing_feed]
    picks = [r for r in rows if r.ok and r.method in ("ours w8a8-hybrid", "ORT quantize_dynamic")]
    lines, table_rows, info = [], [], {}
    for r in picks:
        rep = bench_speed(task.float_path, r.path, heldout_batches, threads=(1, THREADS))
        lat = {(x.model, x.threads): x.median_ms for x in rep.latencies}
        info[r.method] = rep
        census = dict(rep.counts()) if rep.layers else {}
        int8_ops = {k: v for k, v in sorted(rep.op_counts.items()) if k in INT8_OPS}
        table_rows.append([r.method, f"{lat[('float', 1)]:.1f}", f"{lat[('quantized', 1)]:.1f}",
                           f"{rep.speedup(1):.2f}x", f"{lat[('float', THREADS)]:.1f}",
                           f"{lat[('quantized', THREADS)]:.1f}", f"{rep.speedup(THREADS):.2f}x",
                           ", ".join(f"{k} {v}" for k, v in census.items()) or "n/a (no layer metadata)",
                           len(rep.unfused_qdq) if rep.layers else "n/a",
                           ", ".join(f"{k} {v}" for k, v in int8_ops.items()) or "none"])
        if rep.unfused_qdq:
            lines.append(f"- {r.method}: unfused Q/DQ: " + "; ".join(rep.unfused_qdq[:5])
                         + (" ..." if len(rep.unfused_qdq) > 5 else ""))
    md = [f"`bench_speed` (batch of {task.timing_feed['input_ids'].shape[0]} held-out sentences, median of 20 "
          f"interleaved runs after warm-up):", "",
          markdown_table(["model", "float ms 1 thr", "int8 ms 1 thr", "speed-up 1 thr", "float ms 2 thr",
                          "int8 ms 2 thr", "speed-up 2 thr", "layer census", "unfused Q/DQ",
                          "int8 ops in ORT's graph"], table_rows), ""] + lines
    return md, info


def joint_speed(task: Task, ours: Row, peer: Row,
                repeats: int = 120) -> tuple[list[str], dict[int, tuple[float, float]]]:
    """Float, ours and the peer timed in one interleaved loop per thread count (the speed-up target's
    measurement): medians of ``repeats`` runs each, in 30 alternating rounds."""
    import onnx

    from quantscope.onnx import graph as G

    # our rewrite also reorders the exported erf-GELUs so that ORT fuses them (exact, float-only): time the
    # float model with the same reordering too, so the int8 share of the speed-up is visible
    fused = onnx.load(task.float_path)
    G.fusable_gelu(fused)
    fused_path = os.path.splitext(ours.path)[0] + "-float-gelu-fused.onnx"
    onnx.save(fused, fused_path)
    speed, out = {}, []
    for threads in (1, THREADS):
        ms, paired = compare_speedups({"float": task.float_path, "float_gelu": fused_path, "ours": ours.path,
                                       "peer": peer.path}, task.timing_feed, "float", threads=threads, warmup=5,
                                      repeats=repeats, rounds=30)
        speed[threads] = (paired["ours"], paired["peer"])
        out.append([str(threads), f"{ms['float']:.1f}", f"{ms['float_gelu']:.1f}", f"{ms['ours']:.1f}",
                    f"{ms['peer']:.1f}", f"{ms['float'] / ms['ours']:.2f}x / {paired['ours']:.2f}x",
                    f"{ms['float'] / ms['peer']:.2f}x / {paired['peer']:.2f}x",
                    f"{paired['ours'] / paired['float_gelu']:.2f}x"])
    md = [f"Speed-up target, measured jointly (float, float with the GELUs reordered as our rewrite does, "
          f"{ours.method} and {peer.method} alternating in 30 rounds, {repeats} runs each). Speed-ups as ratio of "
          f"the medians / median of the per-round ratios (paired: a slow phase of the shared machine that spans a "
          f"round cancels out; the target uses the paired figure):", "",
          markdown_table(["threads", "float ms", "float, GELU fused ms", "ours ms", "peer ms", "ours speed-up",
                          "peer speed-up", "ours vs GELU-fused float (paired)"], out)]
    return md, speed


def main() -> str:
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    import onnxruntime
    import torch

    torch.set_num_threads(THREADS)
    start = time.perf_counter()
    sections: list[str] = []
    targets: list[list[str]] = []
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        builders: list[Callable[[], Task]] = [lambda: minilm_task(tmp), rec_task, det_task, cls_task]
        for build in builders:
            t0 = time.perf_counter()
            task = build()
            rows = run_task(task, tmp)
            chosen = select_ours(task, rows)
            body = [f"#### {task.name}", "", f"Data: {task.data_note}. Float model "
                    f"{rows[0].nbytes / 1e6:.2f} MB. ORT preparation ({task.prep_seconds:.1f} s, not in the "
                    f"quantize column): {task.ort_note}; every ORT row but 'no pre-processing' quantizes the "
                    f"pre-processed file.", "", table(task, rows, chosen), ""]
            ort_rows = [r for r in rows if r.family == "ort" and r.ok]
            if task.name.startswith("MiniLM"):
                md, info = minilm_speed(task, rows)
                body += md + [""]
                hybrid = next((r for r in rows if r.method == "ours w8a8-hybrid" and r.ok), None)
                rep = info.get("ours w8a8-hybrid")
                ort_dyn = next((r for r in rows if r.method == "ORT quantize_dynamic" and r.ok), None)
                if hybrid is not None and rep is not None and ort_dyn is not None:
                    md, speed = joint_speed(task, hybrid, ort_dyn)
                    body += md + [""]
                    ours_x, ort_x = speed[THREADS]
                    cos_ok = hybrid.metrics["cos_mean"] >= 0.999
                    if ours_x >= 1.8 and cos_ok:
                        status = "met"
                    elif cos_ok and ort_x < 1.8 and ours_x >= ort_x:
                        status = f"met against the peer (on this CPU ORT's own int8 reaches {ort_x:.2f}x, not 1.8x)"
                    else:
                        status = "missed"
                    targets.append(["MiniLM int8 >= 1.8x faster than fp32 in ORT on 2 threads, mean cosine >= 0.999 "
                                    "(ours w8a8-hybrid; where the CPU keeps the peer below 1.8x: >= the peer's "
                                    "speed-up in the same run)", status,
                                    f"2 threads {ours_x:.2f}x vs ORT quantize_dynamic {ort_x:.2f}x; 1 thread "
                                    f"{speed[1][0]:.2f}x vs {speed[1][1]:.2f}x; "
                                    f"cosine {hybrid.metrics['cos_mean']:.5f} "
                                    f"vs {ort_dyn.metrics['cos_mean']:.5f}"])
            if chosen is not None and ort_rows:
                best = max(ort_rows, key=lambda r: task.key(r.metrics))
                better = task.key(chosen.metrics) > task.key(best.metrics)
                failed = [r.method.removeprefix("ORT ") for r in rows if r.family == "ort" and not r.ok]
                # the compared metrics: the first column, plus the tie-breaker when the first ties
                shown = task.columns[:1] if chosen.metrics[task.columns[0][0]] != best.metrics[task.columns[0][0]] \
                    else [c for c in task.columns if c[0] in task.tie_keys]

                def figures(r: Row, cols: list[tuple[str, str, str]] = shown) -> str:
                    return ", ".join(f"{h} {format(r.metrics[k], f)}" for k, h, f in cols)

                targets.append([f"{task.name}: better task metric than every ORT W8A8 configuration",
                                "met" if better else "missed",
                                f"{chosen.method}: {figures(chosen)} vs best ORT ({best.method}): {figures(best)}"
                                + (f"; ORT failed: {', '.join(failed)}" if failed else "")])
            ort_minmax = next((r for r in rows if r.method == "ORT static MinMax" and r.ok), None)
            ours_static = next((r for r in rows if r.method == "ours w8a8" and r.ok), None)
            if chosen is not None and ort_minmax is not None:
                extra = (f"; ours w8a8 {ours_static.seconds:.1f} s" if ours_static is not None
                         and ours_static is not chosen else "")
                targets.append([f"{task.name}: our quantize time <= ORT static MinMax",
                                "met" if chosen.seconds <= ort_minmax.seconds else "missed",
                                f"{chosen.method} {chosen.seconds:.1f} s vs {ort_minmax.seconds:.1f} s "
                                f"({ort_minmax.seconds + task.prep_seconds:.1f} s with ORT's preparation){extra}"])
            body.append(f"_{task.name}: {time.perf_counter() - t0:.0f} s in all._")
            sections.append("\n".join(body) + "\n")
    total = time.perf_counter() - start
    md = [f"### ONNX models: quantscope `quantize_onnx` vs ONNX Runtime's quantizer "
          f"(onnxruntime {onnxruntime.__version__})",
          "",
          "Same float file, same calibration batches, same run. ORT peers: `quantize_static` (QDQ, per-channel "
          "int8 weights, uint8 activations) with MinMax, Entropy and Percentile calibration, MinMax restricted to "
          "the ops we quantize (MatMul/Gemm/Conv/ConvTranspose), MinMax on the file without pre-processing, and "
          "`quantize_dynamic` (per-channel int8 weights). Failures are rows. Ours: `w8a8` = int8 per-channel "
          "weights, static asymmetric int8 per-tensor inputs (MSE-calibrated); the OCR variants change the "
          "calibrators or add SmoothQuant (alpha 0.5; not on depthwise convs, nor on inputs that come straight "
          "from another quantized conv, which ORT cannot run). Our models quantize only "
          "MatMul/Gemm/Conv inputs and weights (not the embedding table: hence MiniLM's size). `output SQNR` is "
          "on the evaluation inputs (first model output). **(selected)**: our recipe with the best task metric "
          "on the selection data (ties: output SQNR there; last column), picked without the evaluation data. "
          "`quantize s` is the quantize call only (failed rows: the time until the failure); `ORT ms` the median "
          "of 7 alternated runs of one evaluation "
          "batch on 2 threads, `speed-up` float ms / row ms. ORT's per-channel QDQ needs opset 13 and ORT does "
          "not upgrade older models itself (its output then fails to load), so the ORT rows start from the float "
          f"file upgraded to opset 13 (as `quantize_onnx` does internally). ORT's Entropy and Percentile "
          f"calibration keep every intermediate tensor of every calibration batch in memory, so they run in a child "
          f"process capped at {MEMORY_CAP / 2**30:.0f} GB (uncapped, on the recognizer they peaked at 19.6 GB in a "
          f"separate measurement and then failed on its batches of different widths, as on MiniLM's different "
          f"sentence lengths). Script wall time {total:.0f} s; "
          f"1-minute load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (on a "
          f"shared machine the latencies are noisy; the interleaving keeps ratios fairer than absolute ms).", ""]
    md += sections
    md += ["#### Targets", "", markdown_table(["target", "status", "figures"], targets), ""]
    return "\n".join(md)


if __name__ == "__main__":
    print(main())
