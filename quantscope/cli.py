"""The ``quantscope`` command: a thin layer over the public API."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence


def _write_json_atomic(path: str, data: object) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".quantscope-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
