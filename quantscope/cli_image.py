"""``quantscope image``: reduce an image's bit depth (with dither), its palette, or JPEG-quantize its
DCT coefficients; print PSNR and SSIM, write the result and an HTML report."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any


def _run(img: Any, args: argparse.Namespace) -> tuple[Any, Any, list[tuple[str, Any]], str, float]:
    """(quantized uint8 image, result object, detail rows, rate-distortion kind, rate in bits per sample)."""
    from .signal.image import jpeg_quantize, reduce_bit_depth
    from .signal.palette import quantize_palette

    channels = 1 if img.ndim == 2 else img.shape[2]
    if args.bits is not None:
        r = reduce_bit_depth(img, args.bits, dither=args.dither)
        bound = "-" if args.dither == "floyd-steinberg" else (
            f"{r.step / 2 + 0.5:.2f}" if args.dither == "none" else f"< {r.step + 0.5:.2f}")
        rows = [("bits per channel", r.bits), ("dither", r.dither), ("step Δ (8-bit units)", r.step),
                ("guaranteed max |error|", bound), ("bits per pixel", r.bits_per_pixel)]
        return r.image, r, rows, "bits", float(r.bits)
    if args.palette is not None:
        r = quantize_palette(img, args.palette, method=args.method, space=args.space, seed=args.seed)
        rows = [("method", f"{r.method} in {r.space}"), ("colours asked / used", f"{r.colors} / {len(r.palette)}"),
                ("Lloyd iterations", r.iterations), ("bits per pixel (index)", r.bits_per_pixel)]
        return r.image, r, rows, "palette", r.bits_per_pixel / channels
    r = jpeg_quantize(img, args.jpeg_quality)
    rows = [("JPEG quality", r.quality), ("luma table DC / max", f"{int(r.luma_table[0, 0])} / "
                                                               f"{int(r.luma_table.max())}"),
            ("entropy estimate, bits per pixel", r.bits_per_pixel)]
    return r.image, r, rows, "jpeg", r.bits_per_pixel / channels


def _pil_comparison(img: Any, colors: int, ours: tuple[str, float, float, float]) -> list[tuple[Any, ...]]:
    from .signal.image_metrics import image_quality
    from .signal.palette import pil_methods, pil_quantize

    rows: list[tuple[Any, ...]] = [(ours[0], colors, ours[1], ours[2], ours[3])]
    for m in pil_methods():
        t0 = time.perf_counter()
        r = pil_quantize(img, colors, m)
        ms = (time.perf_counter() - t0) * 1e3
        q = image_quality(img, r.image)
        rows.append((f"PIL {m}", colors, q.psnr_db, q.ssim, ms))
    return rows


def cmd_image(args: argparse.Namespace) -> int:
    from .report.progress import progress
    from .report.tables import render_table
    from .signal.image_io import read_image, write_image
    from .signal.image_metrics import image_quality, image_rate_distortion

    if args.bits is None and args.dither != "none":
        print("quantscope image: error: --dither applies to --bits only", file=sys.stderr)
        return 2
    if args.palette is None and (args.method != "kmeans" or args.space != "oklab"):
        print("quantscope image: error: --method and --space apply to --palette only", file=sys.stderr)
        return 2
    try:
        img = read_image(args.file)
        t0 = time.perf_counter()
        out, result, rows, kind, rate = _run(img, args)
        seconds = time.perf_counter() - t0
    except (ValueError, TypeError) as exc:
        print(f"quantscope image: error: {exc}", file=sys.stderr)
        return 2
    q = image_quality(img, out)
    shape = f"{img.shape[1]}x{img.shape[0]} " + ("grey" if img.ndim == 2 else "RGB")
    table = [("image", shape), *rows, ("rate, bits per sample", rate), ("PSNR dB", q.psnr_db), ("SSIM", q.ssim),
             ("MSE", q.mse), ("max |error|", q.max_abs_error), ("time ms", seconds * 1e3)]
    print(render_table(f"quantscope image: {os.path.basename(args.file)}", ["metric", "value"],
                       [list(r) for r in table], width=100))
    comparison = None
    if args.palette is not None:
        comparison = _pil_comparison(img, args.palette, (f"ours {result.method} ({result.space})", q.psnr_db,
                                                         q.ssim, seconds * 1e3))
        print(render_table("palette methods, same image", ["method", "colours", "PSNR dB", "SSIM", "time ms"],
                           [list(r) for r in comparison], width=100))
    if args.out:
        try:
            write_image(args.out, out)
        except (ValueError, OSError) as exc:
            print(f"quantscope image: error: cannot write {args.out}: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {args.out}")
    curves = []
    if (args.html or args.json) and args.sweep != "none":
        kinds = [kind] if args.sweep == "own" else ["bits", "palette", "jpeg"]
        with progress(len(kinds), "rate-distortion sweeps", enabled=not args.quiet) as advance:
            for k in kinds:
                curves.append(image_rate_distortion(img, k, dither=args.dither if k == "bits" else "none",
                                                    method=args.method, space=args.space))
                advance(k)
    if args.json:
        from ._files import atomic_write_json

        data = {"file": os.fspath(args.file), "shape": list(img.shape), "kind": kind, "rate": rate,
                "result": result.to_dict(), "quality": q.to_dict(),
                "rate_distortion": [c.to_dict() for c in curves],
                "comparison": [list(r) for r in comparison] if comparison else None}
        atomic_write_json(args.json, data)
        print(f"wrote {args.json}")
    if args.html:
        from .report.html import write_html
        from .report.image_report import image_report

        page = image_report(img, out, f"quantscope image: {os.path.basename(args.file)}",
                            [(a, b) for a, b in table], palette=getattr(result, "palette", None),
                            comparison=comparison, curves=curves, here=(rate, q.mse))
        write_html(args.html, page)
        print(f"wrote {args.html}")
    return 0



def add_parser(sub: Any) -> None:
    """Register the ``image`` subcommand on the subparsers object ``sub``."""
    p = sub.add_parser("image", help="quantize an image (bit depth with dither, colour palette, or JPEG-style DCT), "
                                     "print PSNR and SSIM, write the result and an HTML report")
    p.add_argument("file", help="an image file Pillow reads (PNG, JPEG, BMP, TIFF, WebP, ...)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--bits", type=int, help="bits per channel, 1..8 (uniform levels over 0..255)")
    what.add_argument("--palette", type=int, metavar="COLORS", help="palette size, 2..256 colours")
    what.add_argument("--jpeg-quality", type=int, metavar="Q",
                      help="JPEG-style 8x8 DCT quantization with the IJG tables at quality 1..100")
    p.add_argument("--dither", default="none", choices=["none", "bayer", "floyd-steinberg"],
                   help="with --bits: ordered (8x8 Bayer) dither or Floyd-Steinberg error diffusion")
    p.add_argument("--method", default="kmeans", choices=["kmeans", "mediancut"], help="with --palette")
    p.add_argument("--space", default="oklab", choices=["oklab", "cielab", "rgb"],
                   help="with --palette: colour space of the fit (rgb minimises RGB error, the best PSNR)")
    p.add_argument("--out", metavar="PATH", help="write the quantized image (format from the extension)")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    p.add_argument("--json", metavar="PATH", help="write the metrics (and sweeps) as JSON")
    p.add_argument("--sweep", default="own", choices=["own", "all", "none"],
                   help="rate-distortion sweeps in the report: this method only (default), all three, none")
    p.add_argument("--seed", type=int, default=0, help="seed of the palette fit's pixel sample (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_image)
