"""Question: how close does each recipe keep the MiniLM sentence model, against torch.ao's dynamic int8?

Held-out sentences (never used for calibration; calibration uses the built-in sentence set). For every
recipe: mean and min cosine between the float and quantized sentence embeddings, SQNR of the final
hidden states, model bytes (true packed size; torch.ao: its serialized state dict), quantization wall
time. Peer: `torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, torch.qint8)`, same run.
"""

from __future__ import annotations

import copy
import io
import json
import math
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402

import quantscope as qs  # noqa: E402
from quantscope.models.minilm import (  # noqa: E402
    calibration_sentences,
    embed,
    heldout_sentences,
    load_minilm,
    text_batches,
)
from quantscope.nn.analyze import first_tensor  # noqa: E402
from quantscope.nn.io import packed_bytes  # noqa: E402


def output_sqnr(model: nn.Module, qmodel: nn.Module, batches: list) -> float:
    with torch.no_grad():
        ref = torch.cat([first_tensor(model(**b)).reshape(-1) for b in batches]).double()
        got = torch.cat([first_tensor(qmodel(**b)).reshape(-1) for b in batches]).double()
    return 10 * math.log10(float((ref**2).sum() / ((ref - got) ** 2).sum()))


def main() -> str:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    model, tok = load_minilm()
    calib = text_batches(tok, calibration_sentences())
    heldout = heldout_sentences()
    batches = text_batches(tok, heldout)
    ref = embed(model, tok, heldout)
    float_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    rows, records = [], []

    def record(name: str, qmodel: nn.Module, nbytes: int, seconds: float) -> None:
        cos = (embed(qmodel, tok, heldout) * ref).sum(-1)
        sq = output_sqnr(model, qmodel, batches)
        rows.append([name, f"{float(cos.mean()):.5f}", f"{float(cos.min()):.5f}", sq, nbytes / 1e6,
                     float_bytes / nbytes, seconds])
        records.append(dict(method=name, cos_mean=float(cos.mean()), cos_min=float(cos.min()), output_sqnr_db=sq,
                            bytes=nbytes, seconds=seconds))

    t0 = time.perf_counter()
    peer = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    peer_time = time.perf_counter() - t0
    buf = io.BytesIO()
    torch.save(peer.state_dict(), buf)
    record("torch.ao quantize_dynamic (int8)", peer, buf.getbuffer().nbytes, peer_time)
    for name in qs.recipes.names():
        t0 = time.perf_counter()
        q = qs.quantize_model(model, name, calib=calib, show_progress=False)
        record(f"quantscope {name}", q, packed_bytes(q), time.perf_counter() - t0)
    peer_cos = records[0]["cos_mean"]
    int8 = [r for r in records[1:] if r["method"].split()[-1] in ("w8a8", "w8a8-dynamic", "w8")]
    beats = all(r["cos_mean"] > peer_cos for r in int8)
    w8a8 = next(r for r in records if r["method"] == "quantscope w8a8")
    (Path(__file__).resolve().parent / "minilm_ptq.json").write_text(json.dumps(records, indent=2))
    md = [f"### MiniLM post-training quantization, {len(heldout)} held-out sentences", "",
          f"Float model {float_bytes / 1e6:.1f} MB. Calibration: the {len(calibration_sentences())} built-in "
          f"sentences. Every int8 recipe of ours beats torch.ao's mean cosine ({peer_cos:.4f}): "
          f"**{'yes' if beats else 'NO'}**. Static W8A8 mean cosine {w8a8['cos_mean']:.4f} "
          f"(target >= 0.999: **{'met' if w8a8['cos_mean'] >= 0.999 else 'not yet'}**).", "",
          markdown_table(["method", "cosine mean", "cosine min", "output SQNR dB", "MB", "compression",
                          "quantize s"], rows), ""]
    return "\n".join(md)


if __name__ == "__main__":
    print(main())
