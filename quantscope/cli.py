"""The ``quantscope`` command: a thin layer over the public API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def _write_json_atomic(path: str, data: object) -> None:
    from ._files import atomic_write_json

    atomic_write_json(path, data)


def cmd_demo(args: argparse.Namespace) -> int:
    from .models.minilm_demo import demo_specs, run_study
    from .report.progress import progress
    from .report.tables import render_table

    specs = demo_specs()
    if args.formats:
        unknown = [n for n in args.formats if n not in specs]
        if unknown:
            print(f"unknown demo format(s) {unknown}; choose from: {', '.join(specs)}", file=sys.stderr)
            return 2
        specs = {n: specs[n] for n in args.formats}
    with progress(len(specs), "quantizing MiniLM weights", enabled=not args.quiet) as advance:
        rows, facts = run_study(specs, on_progress=advance)
    print(f"all-MiniLM-L6-v2: {int(facts['weights']):,} weights in {int(facts['layers'])} Linear/Embedding layers, "
          f"{facts['float32_megabytes']:.1f} MB in float32")
    table = [[r.name, r.megabytes, r.bits_per_weight, r.sqnr_db, f"{r.worst_layer} ({r.worst_sqnr_db:.1f})",
              r.bound_holds, r.clipped_fraction, r.embedding_cosine] for r in rows]
    print(render_table("weight quantization of MiniLM (weights only; activations stay float)",
                       ["format", "MB", "bits/weight", "SQNR dB", "worst layer (SQNR dB)", "bound holds",
                        "clipped", "embedding cosine"], table, width=160))
    print("SQNR: 10·log10(Σw²/Σ(w-ŵ)²) over all weights. bound holds: every in-range weight is within its "
          "guaranteed error (Δ/2 for integers, half an ulp for floats). embedding cosine: mean cosine between "
          "sentence embeddings of the float model and the weight-quantized model over 16 sentences.")
    if args.json:
        _write_json_atomic(args.json, {"model": "all-MiniLM-L6-v2", **facts, "rows": [r.to_dict() for r in rows]})
        print(f"wrote {args.json}")
    return 0


def cmd_formats(args: argparse.Namespace) -> int:
    from .core.formats import CodebookFormat, FixedFormat, FloatFormat, IntFormat, MXFormat, builtin_formats
    from .report.tables import render_table

    rows = []
    for name, f in builtin_formats().items():
        if isinstance(f, (IntFormat, FixedFormat)):
            levels, rng = f"{f.qmax - f.qmin + 1}", f"[{f.qmin}, {f.qmax}]" + (
                f" x 2^-{f.fraction_length}" if isinstance(f, FixedFormat) else " x scale")
        elif isinstance(f, FloatFormat):
            levels, rng = "-", f"±{f.max_value:g}, min subnormal {f.min_subnormal:g}"
        elif isinstance(f, MXFormat):
            levels, rng = "-", f"elements ±{f.max_abs:g} x 2^e per {f.block_size}"
        else:
            assert isinstance(f, CodebookFormat)
            levels, rng = f"{len(f.levels)}", f"[{f.levels[0]:g}, {f.levels[-1]:g}]" + (" x absmax" if f.normalized
                                                                                       else "")
        rows.append([name, type(f).__name__.replace("Format", ""), f.bits, levels, rng])
    print(render_table("built-in number formats", ["name", "family", "bits", "levels", "range"], rows, width=130))
    return 0


def parse_format(name: str) -> object:
    """A built-in format name (``quantscope formats``) or intN / uintN with an optional -asym."""
    import re

    from .core.formats import builtin_formats, integer

    known = builtin_formats()
    if name in known:
        return known[name]
    m = re.fullmatch(r"(u?)int(\d+)(-asym)?", name)
    if m:
        return integer(int(m.group(2)), signed=not m.group(1), symmetric=not m.group(3))
    raise ValueError(f"unknown format {name!r}; run `quantscope formats` for the list (or intN, uintN, intN-asym)")


def parse_granularity(text: str | None, ndim: int) -> object:
    """``tensor``, ``channel[:AXIS]``, ``group:SIZE[:AXIS]`` or ``token`` (None: channel 0 for 2-D+)."""
    from .core.granularity import per_channel, per_group, per_tensor, per_token

    if text is None:
        return per_channel(0) if ndim >= 2 else per_tensor()
    parts = text.split(":")
    try:
        if parts[0] == "tensor" and len(parts) == 1:
            return per_tensor()
        if parts[0] == "token" and len(parts) == 1:
            return per_token()
        if parts[0] == "channel" and len(parts) <= 2:
            return per_channel(int(parts[1]) if len(parts) == 2 else 0)
        if parts[0] == "group" and len(parts) in (2, 3):
            return per_group(int(parts[1]), int(parts[2]) if len(parts) == 3 else -1)
    except ValueError:
        pass
    raise ValueError(f"bad granularity {text!r}; use tensor, channel[:AXIS], group:SIZE[:AXIS] or token")


def cmd_tensor(args: argparse.Namespace) -> int:
    from . import error, quantize
    from .core.formats import MXFormat
    from .core.spec import QuantSpec
    from .report.progress import progress
    from .report.tables import render_error_report, render_table
    from .tensorfile import TensorFileError, load_float_tensors

    try:
        fmt = parse_format(args.format)
        tensors = load_float_tensors(args.file, args.tensor)
        specs = {}
        for name, t in tensors.items():
            gran = None if isinstance(fmt, MXFormat) and args.granularity is None else parse_granularity(
                args.granularity, t.dim())
            spec = QuantSpec(fmt, granularity=gran, rounding=args.rounding, overflow=args.overflow)
            spec.granularity.layout(tuple(t.shape))  # validates the granularity against the shape
            specs[name] = spec
    except (TensorFileError, ValueError, TypeError) as exc:
        print(f"quantscope tensor: error: {exc}", file=sys.stderr)
        return 2
    reports, sections = {}, []
    steps = len(tensors) * (1 + (2 if args.html and not args.no_sweeps else 0))
    with progress(steps, "quantizing tensors", enabled=not args.quiet) as advance:
        for i, (name, t) in enumerate(tensors.items()):
            try:
                q = quantize(t, specs[name], calibrator=args.calibrator)
            except ValueError as exc:
                print(f"quantscope tensor: error: {name}: {exc}", file=sys.stderr)
                return 2
            r = error(t, q)
            reports[name] = r
            advance(name)
            if args.html:
                from .report.html import tensor_section

                x, x_hat, _ = r._data
                sections.append(tensor_section(r, x, x_hat, q, f"{name} {tuple(t.shape)}", sweeps=not args.no_sweeps,
                                               calibrator=args.calibrator, anchor=f"t{i}",
                                               on_step=lambda s: None))
                for _ in range(2 if not args.no_sweeps else 0):
                    advance(name)
    rows = [[n, "x".join(map(str, tensors[n].shape)) or "scalar", r.sqnr_db, r.mse, r.clipping_share,
             r.clipped_fraction, r.bound_holds, r.bits_per_value] for n, r in reports.items()]
    print(render_table(f"{args.file}: {args.format}, calibrator {args.calibrator}",
                       ["tensor", "shape", "SQNR dB", "MSE", "clipping share", "clipped", "bound holds",
                        "bits/value"], rows, width=150))
    if len(reports) == 1:
        print(render_error_report(next(iter(reports.values()))))
    if args.sweep or args.uncertainty:
        from .error.sweep import calibration_uncertainty, sweep_bits, sweep_clipping, with_bits
        from .report.tables import render_sweep, render_uncertainty

        for name, t in tensors.items():
            spec = specs[name]
            print(f"\n{name}:")
            if args.sweep:
                try:
                    with_bits(spec, 4)
                    print(render_sweep(sweep_bits(t, spec, range(2, 9), calibrator=args.calibrator), "bits"))
                except ValueError as exc:
                    print(f"(no bit sweep: {exc})")
                try:
                    print(render_sweep(sweep_clipping(t, spec, [i / 10 for i in range(1, 11)]), "clipping ratio"))
                except ValueError as exc:
                    print(f"(no clipping sweep: {exc})")
            if args.uncertainty:
                try:
                    print(render_uncertainty(calibration_uncertainty(t, spec, calibrator=args.calibrator)))
                except ValueError as exc:
                    print(f"(no calibration uncertainty: {exc})")
    if args.json:
        data = {"file": os.fspath(args.file), "calibrator": args.calibrator,
                "tensors": {n: json.loads(r.to_json()) for n, r in reports.items()}}
        _write_json_atomic(args.json, data)
        print(f"wrote {args.json}")
    if args.html:
        from .report.html import html_document, write_html

        summary = "<h2>Summary</h2>" + _html_summary(rows)
        write_html(args.html, html_document(f"quantscope: {os.path.basename(args.file)}", [summary] + sections,
                                            intro=f"format {args.format}, calibrator {args.calibrator}."))
        print(f"wrote {args.html}")
    return 0


def _html_summary(rows: list[list[object]]) -> str:
    from .report.html import _table

    return _table([tuple(r) for r in rows], ("tensor", "shape", "SQNR dB", "MSE", "clipping share", "clipped",
                                            "bound holds", "bits/value"))


def _load_recipe(text: str) -> object:
    from .nn.recipes import Recipe, get

    if text.endswith((".json", ".yaml", ".yml")):
        if not os.path.isfile(text):
            raise ValueError(f"recipe file {text} does not exist")
        return Recipe.load(text)
    return get(text)


def cmd_quantize(args: argparse.Namespace, write: bool = True) -> int:
    import time

    if args.model.endswith(".onnx"):
        return cmd_quantize_onnx(args, write)

    from .models.loader import load_bundle
    from .nn.analyze import analyze_model
    from .nn.io import packed_bytes, save_model
    from .nn.quantize_model import quantize_model, quantized_layers
    from .report.tables import render_table
    from .tensorfile import TensorFileError

    t0 = time.perf_counter()
    try:
        recipe = _load_recipe(args.recipe)
        bundle = load_bundle(args.model, args.calib, args.batch_size)
        if not bundle.evaluate:
            raise ValueError(f"{args.model} comes without input batches; return (model, batches) from the "
                             f"function or pass --calib FILE")
        qmodel = quantize_model(bundle.model, recipe, calib=bundle.calib, show_progress=not args.quiet)
        analysis = analyze_model(bundle.model, qmodel, bundle.evaluate, show_progress=not args.quiet)
    except (ValueError, TypeError, FileNotFoundError, TensorFileError) as exc:
        print(f"quantscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    size_q = packed_bytes(qmodel)
    rows: list[tuple[str, object]] = [
        ("model", bundle.name), ("recipe", f"{recipe.name}: {recipe.description}" if recipe.description
                                 else recipe.name),
        ("layers quantized", len(quantized_layers(qmodel))),
        ("size float (MB)", bundle.float_bytes / 1e6), ("size quantized, packed (MB)", size_q / 1e6),
        ("compression", f"{bundle.float_bytes / size_q:.2f}x"), ("output SQNR (dB)", analysis.output_sqnr_db)]
    if bundle.embed is not None:
        ref, got = bundle.embed(bundle.model), bundle.embed(qmodel)
        cos = (ref * got).sum(-1)
        rows += [("embedding cosine, mean", float(cos.mean())), ("embedding cosine, min", float(cos.min()))]
    for i, r in enumerate(analysis.ranked()[:5]):
        rows.append((f"sensitive layer #{i + 1}", f"{r.name} ({r.sensitivity_db:.1f} dB alone)"))
    if write and args.out:
        on_disk = save_model(qmodel, args.out)
        rows.append(("written", f"{args.out} ({on_disk / 1e6:.2f} MB on disk)"))
    if args.report:
        from .report.html import model_report, write_html

        write_html(args.report, model_report(analysis, f"quantscope {args.command}: {bundle.name} {recipe.name}",
                                             rows))
        rows.append(("report", args.report))
    rows.append(("wall time (s)", time.perf_counter() - t0))
    print(render_table(f"quantscope {args.command}", ["", "value"], [list(r) for r in rows], width=140))
    print(analysis.table(top=args.top))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    return cmd_quantize(args, write=False)


def _onnx_errors() -> tuple[type[BaseException], ...]:
    return ValueError, TypeError, FileNotFoundError, ImportError


def cmd_quantize_onnx(args: argparse.Namespace, write: bool) -> int:
    """``quantscope quantize|analyze MODEL.onnx``: ONNX-native quantization through ONNX Runtime."""
    import math
    import time

    from .models.onnx_inputs import batches_for
    from .report.tables import render_table

    t0 = time.perf_counter()
    try:
        recipe = _load_recipe(args.recipe)
        if write and not args.out:
            raise ValueError("give --out PATH.onnx for the quantized model (or use `quantscope analyze`)")
        if write and not args.out.endswith(".onnx"):
            raise ValueError(f"--out must name an .onnx file, got {args.out}")
        data = batches_for(args.model, args.calib, args.batch_size)
        if write:
            from .onnx import quantize_onnx

            result = quantize_onnx(args.model, args.out, recipe, calib=data.calib, show_progress=not args.quiet)
        else:
            from .onnx.quantize import analyze_onnx

            result = analyze_onnx(args.model, recipe, data.calib, show_progress=not args.quiet)
    except _onnx_errors() as exc:
        print(f"quantscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if data.synthetic:
        print(f"warning: {data.description}", file=sys.stderr)
    rows: list[tuple[str, object]] = [
        ("model", args.model),
        ("recipe", f"{recipe.name}: {recipe.description}" if recipe.description else recipe.name),
        ("data", data.description), ("opset", result.opset), ("nodes quantized", len(result.layers)),
        ("nodes kept float", len(result.kept_float)), ("size float (MB)", result.float_bytes / 1e6),
        ("size quantized (MB)", result.quant_bytes / 1e6)]
    rows += [(f"output {k}: SQNR (dB)", v) for k, v in result.output_sqnr_db.items()]
    for i, x in enumerate(result.ranked()[:3]):
        how = (f"{x.sensitivity_db:.1f} dB alone" if not math.isnan(x.sensitivity_db)
               else f"{x.output_sqnr_db:.1f} dB accumulated")
        rows.append((f"most harmful node #{i + 1}", f"{x.name} ({how})"))
    if write:
        rows.append(("written", f"{args.out} (checked with onnx.checker)"))
    if args.report:
        from .report.html import onnx_report, write_html

        write_html(args.report, onnx_report(result, f"quantscope {args.command}: {os.path.basename(args.model)} "
                                                    f"{recipe.name}", rows))
        rows.append(("report", args.report))
    rows.append(("wall time (s)", time.perf_counter() - t0))
    print(render_table(f"quantscope {args.command}", ["", "value"], [list(r) for r in rows], width=140))
    layer_rows = [[x.name, x.op, x.weight, x.input, x.weight_sqnr_db, x.input_sqnr_db, x.output_sqnr_db,
                   x.sensitivity_db] for x in result.ranked()[:args.top]]
    print(render_table(f"nodes, most harmful first (top {args.top})",
                       ["node", "op", "weight", "input", "weight dB", "input dB", "output dB", "alone dB"],
                       layer_rows, width=160))
    return 0


def cmd_bench_speed(args: argparse.Namespace) -> int:
    """``quantscope bench-speed QUANT.onnx --float FLOAT.onnx``."""
    from .models.onnx_inputs import batches_for
    from .onnx.speed import bench_speed
    from .report.tables import render_table

    try:
        threads = tuple(int(t) for t in args.threads.split(","))
        if not threads or min(threads) < 1:
            raise ValueError(f"--threads takes positive counts like 1,2, got {args.threads}")
        data = batches_for(args.float, args.calib, args.batch_size)
        report = bench_speed(args.float, args.model, data.evaluate or data.calib, threads=threads,
                             repeats=args.repeats)
    except _onnx_errors() as exc:
        print(f"quantscope bench-speed: error: {exc}", file=sys.stderr)
        return 2
    rows = [[x.model, x.threads, x.median_ms, x.p90_ms, x.items_per_s] for x in report.latencies]
    print(render_table(f"ONNX Runtime latency ({data.description}, batch of {report.batch_items})",
                       ["model", "threads", "median ms", "p90 ms", "items/s"], rows))
    summary = [[f"speed-up, {t} thread(s)", f"{report.speedup(t):.2f}x"] for t in threads]
    summary += [["size float / quantized (MB)", f"{report.float_bytes / 1e6:.2f} / {report.quant_bytes / 1e6:.2f}"],
                ["layers by kernel", ", ".join(f"{k}: {v}" for k, v in sorted(report.counts().items()))],
                ["unfused Q/DQ", len(report.unfused_qdq)],
                ["model output, simulation vs ORT (dB)", report.output_sim_vs_ort_sqnr_db]]
    print(render_table("summary", ["", "value"], summary, width=140))
    layer_rows = [[x.name, x.status, x.ops, x.sim_vs_ort_sqnr_db, "DIVERGES" if x.diverges else ""]
                  for x in report.layers]
    print(render_table("how ONNX Runtime runs each quantized layer", ["layer", "status", "ORT nodes",
                                                                       "sim vs ORT dB", "flag"], layer_rows, width=160))
    for u in report.unfused_qdq[:20]:
        print(f"unfused: {u}")
    for note in report.notes:
        print(f"note: {note}")
    if args.json:
        _write_json_atomic(args.json, report.to_dict())
    if args.html:
        from .report.html import speed_report, write_html

        write_html(args.html, speed_report(report, f"quantscope bench-speed: {os.path.basename(args.model)}"))
        print(f"wrote {args.html}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="quantscope", description="Make quantization error visible, bounded and small.")
    p.add_argument("--version", action="version", version=f"quantscope {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="quantize every weight of the MiniLM sentence model in several formats and "
                                    "print storage, SQNR, guaranteed bounds and the embedding cosine")
    d.add_argument("--formats", nargs="+", metavar="NAME", help="only these rows (names as printed)")
    d.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_demo)
    f = sub.add_parser("formats", help="list the built-in number formats with their bits and ranges")
    f.set_defaults(func=cmd_formats)
    t = sub.add_parser("tensor", help="quantize the tensors of a .npy/.npz/.safetensors/.pt file and report the "
                                      "error: metrics, decomposition, theory; optional HTML with plots and JSON")
    t.add_argument("file", help="a .npy, .npz, .safetensors or .pt/.pth file (torch files load weights only)")
    t.add_argument("--tensor", nargs="+", metavar="NAME", help="only these tensors (default: every float tensor)")
    t.add_argument("--format", default="int8", help="number format, e.g. int4, int8-asym, fp8_e4m3, nf4, mxfp4")
    t.add_argument("--granularity", help="tensor, channel[:AXIS], group:SIZE[:AXIS] or token "
                                         "(default: channel 0 for 2-D+ tensors, the block for MX formats)")
    t.add_argument("--calibrator", default="minmax", choices=["minmax", "ema", "percentile", "mse", "kl", "aciq"])
    t.add_argument("--rounding", default="nearest_even",
                   choices=["nearest_even", "nearest", "nearest_away", "floor", "ceil", "toward_zero", "stochastic"])
    t.add_argument("--overflow", default="saturate", choices=["saturate", "wrap", "nonsaturating"])
    t.add_argument("--html", metavar="PATH", help="write a self-contained HTML report with plots")
    t.add_argument("--json", metavar="PATH", help="write the reports as JSON")
    t.add_argument("--no-sweeps", action="store_true", help="HTML without the bits / clipping sweeps (faster)")
    t.add_argument("--sweep", action="store_true", help="print error vs bit width and vs clipping ratio tables")
    t.add_argument("--uncertainty", action="store_true",
                   help="print how the calibrated scale and SQNR vary with calibration-set size (bootstrap)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_tensor)
    from .nn.recipes import names as recipe_names

    for cmd, helptext in (("quantize", "quantize a model with a recipe, analyze it layer by layer, save it"),
                          ("analyze", "quantize a model in memory and print the per-layer analysis (no model "
                                      "written)")):
        c = sub.add_parser(cmd, help=helptext)
        c.add_argument("model", help="minilm (built in), a Hugging Face model directory, module:function "
                                     "returning a model or (model, batches), or an .onnx file")
        c.add_argument("--recipe", default="w8a8", help=f"a built-in recipe ({', '.join(recipe_names())}) "
                                                        f"or a recipe .json/.yaml file")
        c.add_argument("--calib", metavar="FILE", help="calibration data: a text file (one sentence per line) for "
                                                        "text models, else a tensor file batched along dim 0; for "
                                                        ".onnx models an .npz of input arrays")
        c.add_argument("--batch-size", type=int, default=16, help="batch size for --calib tensor files")
        if cmd == "quantize":
            c.add_argument("--out", metavar="PATH", help="write the quantized model here (a directory of "
                                                          "safetensors + JSON; a .onnx file for ONNX models)")
        c.add_argument("--report", metavar="PATH", help="write the per-layer HTML report")
        c.add_argument("--top", type=int, default=10, help="layers shown in the terminal table (most sensitive)")
        c.add_argument("--quiet", action="store_true", help="no progress bars")
        c.set_defaults(func=cmd_quantize if cmd == "quantize" else cmd_analyze)
    b = sub.add_parser("bench-speed", help="ONNX Runtime latency of a quantized .onnx against its float model, "
                                           "which layers ran as int8 kernels, and simulation-vs-ORT divergence")
    b.add_argument("model", help="the quantized .onnx model")
    b.add_argument("--float", required=True, metavar="PATH", help="the float .onnx model it was made from")
    b.add_argument("--calib", metavar="FILE", help="inputs: an .npz of input arrays (default: recognised models "
                                                   "get real inputs, others random ones)")
    b.add_argument("--batch-size", type=int, default=16, help="batch size for --calib files")
    b.add_argument("--threads", default="1,2", help="thread counts to time, comma-separated (default 1,2)")
    b.add_argument("--repeats", type=int, default=20, help="timed runs per model and thread count")
    b.add_argument("--json", metavar="PATH", help="write the report as JSON")
    b.add_argument("--html", metavar="PATH", help="write the report as a self-contained HTML page")
    b.set_defaults(func=cmd_bench_speed)
    from .cli_audio import add_parser as _audio
    _audio(sub)
    from .cli_image import add_parser as _image
    _image(sub)
    from .cli_vectors import add_parser as _vectors
    _vectors(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "analyze":
        args.out = None
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
