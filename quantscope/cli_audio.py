"""``quantscope audio``: quantize an audio file (uniform N bits with dither / noise shaping, or a G.711 /
IMA ADPCM codec), print SQNR and ENOB, write the result and an HTML report."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def _band(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--band must be LO:HI in Hz, e.g. 0:4000, got {text!r}") from exc
    if not (0 <= lo < hi):
        raise argparse.ArgumentTypeError(f"--band needs 0 <= LO < HI, got {text!r}")
    return lo, hi


def cmd_audio(args: argparse.Namespace) -> int:
    from .report.progress import progress
    from .report.tables import fmt_num, render_table
    from .signal.audio import AudioFileError, read_audio, write_audio
    from .signal.pipeline import CODEC_BITS, quantize_audio

    try:
        audio = read_audio(args.file)
        bits = args.bits
        if args.companding is not None and bits is not None and bits != CODEC_BITS[args.companding]:
            print(f"quantscope audio: note: {args.companding} codes have {CODEC_BITS[args.companding]} bits; "
                  f"ignoring --bits {bits}", file=sys.stderr)
            bits = None
        if args.companding is None and bits is None:
            bits = 8
        result = quantize_audio(audio.samples, audio.sample_rate, bits, dither=args.dither, shape=args.shape,
                                codec=args.companding, seed=args.seed, band_hz=args.band)
    except (AudioFileError, ValueError, TypeError) as exc:
        print(f"quantscope audio: error: {exc}", file=sys.stderr)
        return 2
    from .report.signal_report import metrics_rows

    print(render_table(f"{args.file}: {audio.frames:,} frames x {audio.channels} channel(s), "
                       f"{audio.sample_rate} Hz, {audio.bits}-bit {audio.encoding}",
                       ["metric", "value"], metrics_rows(result), width=120))
    sq = "undefined (the signal is all zero)" if result.sqnr_db is None else f"{fmt_num(result.sqnr_db)} dB"
    en = "undefined" if result.enob is None else f"{fmt_num(result.enob)} bits"
    print(f"SQNR: {sq}")
    print(f"ENOB: {en}")
    if args.out:
        try:
            write_audio(args.out, result.output, audio.sample_rate, bits=result.output_bits)
        except (AudioFileError, ValueError) as exc:
            print(f"quantscope audio: error: cannot write {args.out}: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {args.out} ({result.output_bits}-bit PCM)")
    curve = None
    if args.html or args.json:
        curve = _rd_curve(result, args.quiet or not args.html, progress)
    if args.json:
        from ._files import atomic_write_json

        data = {"file": os.fspath(args.file), "input": audio.to_dict(), "result": result.to_dict(),
                "rate_distortion": curve.to_dict() if curve is not None else None}
        atomic_write_json(args.json, data)
        print(f"wrote {args.json}")
    if args.html:
        from .report.html import write_html
        from .report.signal_report import audio_report

        extra = {result.mode: (float(result.bits), float(result.error_var + result.error_mean ** 2))}
        page = audio_report(result, curve, f"quantscope audio: {os.path.basename(args.file)}",
                            source=os.fspath(args.file), extra_rd=extra)
        write_html(args.html, page)
        print(f"wrote {args.html}")
    return 0


def _rd_curve(result: Any, quiet: bool, progress: Any) -> Any:
    """Bits sweep 1..16 of the uniform quantizer on the first channel."""
    from .signal.ratedistortion import adc_quantizer, rate_distortion_sweep

    x = result.input[:, 0]
    if not (x != 0).any():
        return None  # all-silent: distortion against rate says nothing
    quant, step = adc_quantizer(1.0)
    with progress(16, "rate-distortion sweep", enabled=not quiet) as advance:
        return rate_distortion_sweep(x, quant, range(1, 17), step=step, name="uniform quantizer, channel 1",
                                     on_step=advance)



def add_parser(sub: Any) -> None:
    """Register the ``audio`` subcommand on the subparsers object ``sub``."""
    a = sub.add_parser("audio", help="quantize an audio file (N bits with dither / noise shaping, or mu-law, A-law, "
                                     "IMA ADPCM), print SQNR and ENOB, write the result and an HTML report")
    a.add_argument("file", help="a WAV file (8/16/24/32-bit PCM or float) or anything soundfile reads (FLAC...)")
    a.add_argument("--bits", type=int, default=None,
                   help="bits of the uniform quantizer, 1..16 (default 8; fixed by the codec with --companding)")
    a.add_argument("--dither", default="none", choices=["none", "rpdf", "tpdf"],
                   help="non-subtractive dither before the quantizer (tpdf: error variance Δ²/4 for any signal)")
    a.add_argument("--shape", nargs="?", const="second", default=None, metavar="FILTER",
                   help="error-feedback noise shaping; FILTER is first, second (default), lipshitz or fweighted")
    a.add_argument("--companding", choices=["mulaw", "alaw", "adpcm"],
                   help="use a codec instead: G.711 mu-law or A-law (8 bit) or IMA ADPCM (4 bit)")
    a.add_argument("--out", metavar="PATH", help="write the quantized audio (.wav, or .flac via soundfile)")
    a.add_argument("--html", metavar="PATH", help="write a self-contained HTML report with plots")
    a.add_argument("--json", metavar="PATH", help="write the metrics (and the rate-distortion sweep) as JSON")
    a.add_argument("--band", type=_band, default=(0.0, 4000.0), metavar="LO:HI",
                   help="band for the in-band SQNR, Hz (default 0:4000)")
    a.add_argument("--seed", type=int, default=0, help="seed of the dither (default 0)")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=cmd_audio)
