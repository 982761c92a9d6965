"""Question: which calibrator gives the smallest quantization error, and how fast is it?

Same data, same run, same quantizer (signed symmetric integers of 4, 6 and 8 bits, one scale per
tensor): only the clipping range differs. Data: N(0,1) and Laplace(0,1) samples (2^20 each) and real
MiniLM tensors (the input activations of two Linear layers over 16 sentences, one weight matrix).
Every method is fed the data in 16 batches (streaming). Peers: ONNX Runtime's calibrators (MinMax,
Entropy, Percentile 99.999 from `onnxruntime.quantization.calibrate`), torch.ao's `MinMaxObserver`
and `HistogramObserver`. Metric: SQNR in dB (higher is better); time: calibration only (ms).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402

import quantscope as qs  # noqa: E402

BITS = (4, 6, 8)
BATCHES = 16
OURS = {"ours minmax": "minmax", "ours percentile 99.99": "percentile", "ours kl": "kl", "ours aciq": "aciq",
        "ours mse": "mse"}


def datasets() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n = 1 << 20
    u = torch.rand(n, generator=g, dtype=torch.float64) - 0.5
    out = {"N(0,1)": torch.randn(n, generator=g), "Laplace(0,1)": (-torch.sign(u) * torch.log1p(-2 * u.abs())).float()}
    from quantscope.models.minilm import SENTENCES, load_minilm

    model, tok = load_minilm()
    captured: dict[str, torch.Tensor] = {}
    names = {"encoder.layer.3.output.dense": "MiniLM act: layer 3 FFN down-proj input",
             "encoder.layer.5.attention.self.query": "MiniLM act: layer 5 attention input"}
    hooks = [dict(model.named_modules())[m].register_forward_hook(
        lambda mod, inp, out, key=key: captured.__setitem__(key, inp[0].detach().reshape(-1)))
        for m, key in names.items()]
    with torch.no_grad():
        batch = tok(SENTENCES, padding=True, return_tensors="pt")
        model(**batch)
    for h in hooks:
        h.remove()
    for key in names.values():
        out[key] = captured[key]
    out["MiniLM weight: layer 3 FFN up-proj"] = model.encoder.layer[3].intermediate.dense.weight.detach().reshape(-1)
    return out


def sqnr(x: torch.Tensor, scale: float, bits: int) -> float:
    q = qs.quantize(x, qs.integer(bits), qparams=qs.QParams(scale))
    return qs.error(x, q, theory=False).sqnr_db


def ort_range(method: str, batches: list[np.ndarray], bits: int) -> tuple[float, float]:
    from onnxruntime.quantization.calibrate import HistogramCollector

    with contextlib.redirect_stdout(io.StringIO()):
        if method == "MinMax":
            return min(float(b.min()) for b in batches), max(float(b.max()) for b in batches)
        c = HistogramCollector(method=method.lower(), symmetric=True, num_bins=2048,
                               num_quantized_bins=2 ** (bits - 1), percentile=99.999, scenario="same")
        for b in batches:
            c.collect({"x": b})
        lo, hi = c.compute_collection_result()["x"][:2]
    return float(lo), float(hi)


def torch_ao_scale(kind: str, batches: list[torch.Tensor], bits: int) -> float:
    from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver

    cls = MinMaxObserver if kind == "MinMaxObserver" else HistogramObserver
    obs = cls(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, quant_min=-(2 ** (bits - 1)),
              quant_max=2 ** (bits - 1) - 1)
    for b in batches:
        obs(b)
    scale, _ = obs.calculate_qparams()
    return float(scale)


def main() -> str:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    data = datasets()
    rows, summary, records = [], [], []
    for dname, x in data.items():
        batches = list(x.chunk(BATCHES))
        np_batches = [b.numpy() for b in batches]
        for bits in BITS:
            qmax = 2 ** (bits - 1) - 1
            results: dict[str, tuple[float, float]] = {}

            def timed(fn):  # median of 5 calibrations, after one untimed warm-up run
                fn()
                times, value = [], None
                for _ in range(5):
                    t0 = time.perf_counter()
                    value = fn()
                    times.append(time.perf_counter() - t0)
                return value, sorted(times)[2]

            for label, name in OURS.items():
                def ours(name=name, bits=bits, batches=batches):
                    cal = qs.calibrate.resolve_calibrator(name, qs.QuantSpec(qs.integer(bits)))
                    for b in batches:
                        cal.update(b)
                    return float(cal.qparams().scale)

                scale, sec = timed(ours)
                results[label] = (sqnr(x, scale, bits), sec)
            for method in ("MinMax", "Entropy", "Percentile"):
                try:
                    (lo, hi), sec = timed(lambda method=method, bits=bits, nb=np_batches: ort_range(method, nb, bits))
                    results[f"ORT {method}"] = (sqnr(x, max(abs(lo), abs(hi)) / qmax, bits), sec)
                except Exception as exc:  # ORT's histogram code can crash on narrow ranges
                    results[f"ORT {method}"] = (float("nan"), float("nan"))
                    print(f"ORT {method} failed on {dname} {bits}b: {exc}", file=sys.stderr)
            for kind in ("MinMaxObserver", "HistogramObserver"):
                scale, sec = timed(lambda kind=kind, bits=bits, tb=batches: torch_ao_scale(kind, tb, bits))
                results[f"torch.ao {kind}"] = (sqnr(x, scale, bits), sec)
            for label, (db, sec) in results.items():
                rows.append([dname, bits, label, db, sec * 1e3])
                records.append(dict(data=dname, bits=bits, method=label, sqnr_db=db, seconds=sec))
            ours = {k: v for k, v in results.items() if k.startswith("ours")}
            peers = {k: v for k, v in results.items() if not k.startswith("ours") and v[0] == v[0]}
            best_ours = max(ours, key=lambda k: ours[k][0])
            best_peer = max(peers, key=lambda k: peers[k][0])
            summary.append([dname, bits, best_ours, ours[best_ours][0], best_peer, peers[best_peer][0],
                            "yes" if ours[best_ours][0] >= peers[best_peer][0] - 1e-9 else "NO",
                            results["ours mse"][1] * 1e3, results["torch.ao HistogramObserver"][1] * 1e3])
    (Path(__file__).resolve().parent / "calibrators.json").write_text(json.dumps(records, indent=2))
    md = ["### Calibrators: SQNR at equal bits, same quantizer, same data (higher is better)", "",
          "Per-tensor signed symmetric integers; the only difference is the clipping range each method picks. "
          "Data streamed in 16 batches. `time` is calibration only, in ms (median of 5 runs after a warm-up).", "",
          markdown_table(["data", "bits", "best of ours", "SQNR dB", "best peer", "SQNR dB", "ours >= peer",
                          "ours mse ms", "torch.ao Histogram ms"], summary), "",
          "<details><summary>all methods</summary>", "",
          markdown_table(["data", "bits", "method", "SQNR dB", "time ms"], rows), "", "</details>", ""]
    return "\n".join(md)


if __name__ == "__main__":
    print(main())
