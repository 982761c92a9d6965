"""Question: how fast is quantize -> dequantize, against torch's own ops and the memory-bandwidth ceiling?

A 256 MiB float32 tensor (8192 x 8192) on 2 threads. Throughput is GB/s of *input* (bytes of x / time),
median of 9 runs, measured in alternation with the peer when the peer is a torch op. Columns:

* ``ours (new out)``: ``qs.fake_quantize(x, spec)``, allocating its result like torch's ops do;
* ``ours (out=)``: the same writing into a preallocated buffer, like the ``copy_`` ceiling;
* ``ours q+dq``: ``qs.quantize(x, spec).dequantize()`` (codes materialized, two passes);
* ``peer``: torch's own op where torch has one, else the same computation as a chain of torch tensor
  ops (quantscope's reference path, which the kernels are tested bit-exact against).

Integer and fp8 rows use the same scale as the peer (given as qparams); ``ours calibrated`` adds the
min-max range pass that picks the scale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median_seconds, paired_median_seconds  # noqa: E402

import quantscope as qs  # noqa: E402
from quantscope.core import kernels  # noqa: E402

THREADS = 2
SHAPE = (8192, 8192)


def main() -> str:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    x = torch.randn(*SHAPE)
    gb = x.numel() * 4 / 1e9
    buf = torch.empty_like(x)

    def rate(fn):
        return gb / median_seconds(fn)

    ceiling = rate(lambda: buf.copy_(x))
    rows, records = [], []

    def add(name, spec, qparams, peer_name, peer_fn, interleave=True):
        ours_fns = [lambda: qs.fake_quantize(x, spec, qparams=qparams),
                    lambda: qs.fake_quantize(x, spec, qparams=qparams, out=buf),
                    lambda: qs.fake_quantize(x, spec),
                    lambda: qs.quantize(x, spec, qparams=qparams).dequantize()]
        copy = lambda: buf.copy_(x)  # noqa: E731  (the ceiling, measured in alternation with ours)
        if interleave:  # a torch op: measured in alternation with ours
            t = paired_median_seconds([ours_fns[0], peer_fn, copy] + ours_fns[1:])
            t = [t[0]] + t[3:] + [t[1], t[2]]
        else:  # the slow tensor-op chain churns gigabytes of temporaries: measure it on its own
            t = paired_median_seconds(ours_fns + [copy]) + [median_seconds(peer_fn, repeat=3)]
            t = t[:4] + [t[5], t[4]]
        ours, ours_out, calibrated, qdq, peer, row_ceiling = (gb / v for v in t)
        rec = dict(format=name, ours=ours, ours_out=ours_out, ours_calibrated=calibrated, ours_qdq=qdq,
                   peer=peer_name, peer_gbs=peer, speedup_vs_peer=ours / peer, copy_gbs=row_ceiling,
                   copy_over_ours_out=row_ceiling / ours_out)
        records.append(rec)
        rows.append([name, ours, ours_out, calibrated, qdq, peer_name, peer, f"{ours / peer:.2f}x", row_ceiling,
                     f"{row_ceiling / ours_out:.2f}x"])

    def reference(spec, qparams=None):
        def run():
            with kernels.disabled():
                qs.fake_quantize(x, spec, qparams=qparams)
        return run

    s = x.abs().max() / 127
    add("int8 per-tensor", qs.int8(), qs.QParams(s), "torch.fake_quantize_per_tensor_affine",
        lambda: torch.fake_quantize_per_tensor_affine(x, float(s), 0, -128, 127))
    sc = x.abs().amax(dim=1) / 127
    zp = torch.zeros(SHAPE[0], dtype=torch.int32)
    add("int8 per-channel", qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0)), qs.QParams(sc),
        "torch.fake_quantize_per_channel_affine",
        lambda: torch.fake_quantize_per_channel_affine(x, sc, zp, 0, -128, 127))
    g128 = qs.QuantSpec(qs.int4(), granularity=qs.per_group(128, axis=1))
    add("int4 per-group(128)", g128, None, "torch tensor-op chain", reference(g128), interleave=False)
    f8 = qs.QuantSpec(qs.fp8_e4m3(scaled=False))
    add("fp8 E4M3 (cast)", f8, None, "x.to(float8_e4m3fn).float()", lambda: x.to(torch.float8_e4m3fn).float())
    ours_codes, cast_only = (gb / v for v in paired_median_seconds(
        [lambda: qs.quantize(x, f8), lambda: x.to(torch.float8_e4m3fn)], repeat=15))
    f8s = qs.QuantSpec(qs.fp8_e4m3())
    add("fp8 E4M3 (scaled per-tensor)", f8s, qs.QParams(x.abs().max() / 448), "torch tensor-op chain",
        reference(f8s, qs.QParams(x.abs().max() / 448)), interleave=False)
    add("MXFP4", qs.mxfp4(), None, "torch tensor-op chain", reference(qs.mxfp4()), interleave=False)

    cols = ["format", "ours (new out)", "ours (out=)", "ours calibrated", "ours q+dq", "peer", "peer GB/s",
            "ours / peer", "copy_ GB/s", "copy_ / ours (out=)"]
    md = [f"### Quantize -> dequantize throughput, {SHAPE[0]}x{SHAPE[1]} float32 (256 MiB), {THREADS} threads",
          "", f"GB/s of input; `out.copy_(x)` into a preallocated buffer is the bandwidth ceiling "
          f"({ceiling:.2f} GB/s alone; each row measures it again in alternation with ours, as it varies "
          f"between runs on this machine). Allocating a fresh 256 MiB result costs page faults, which caps every "
          f"op that returns a new tensor (torch's included); `ours (out=)` writes into a preallocated buffer "
          f"like `copy_`. fp8 quantize only (codes, 1 byte out): ours {ours_codes:.2f} GB/s vs "
          f"`x.to(torch.float8_e4m3fn)` {cast_only:.2f} GB/s.", "", markdown_table(cols, rows), ""]
    out_dir = Path(__file__).resolve().parent
    (out_dir / "core_throughput.json").write_text(json.dumps(
        dict(ceiling_gbs=ceiling, fp8_codes=ours_codes, fp8_cast=cast_only, rows=records), indent=2))
    return "\n".join(md)


if __name__ == "__main__":
    print(main())
