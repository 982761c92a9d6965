"""The demo study: quantize every weight of MiniLM in several formats; measure what each costs.

For each spec: storage (true packed bytes), weight SQNR over the whole model, the worst layer, whether
every in-range weight met its guaranteed bound, and the end-to-end effect of weight-only quantization
on sentence embeddings (mean cosine to the float model's embeddings).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from ..core import formats as F
from ..core.granularity import per_channel, per_group, per_tensor
from ..core.ops import fake_quantize
from ..core.spec import QuantSpec
from ..nn.analyze import weight_errors, weight_layers
from .minilm import SENTENCES, embed, load_minilm


def demo_specs() -> dict[str, QuantSpec]:
    return {
        "int8 per-tensor": QuantSpec(F.int8(), granularity=per_tensor()),
        "int8 per-channel": QuantSpec(F.int8(), granularity=per_channel(0)),
        "fp8 E4M3 per-channel": QuantSpec(F.fp8_e4m3(), granularity=per_channel(0)),
        "MXFP8 (E4M3, block 32)": QuantSpec(F.mxfp8_e4m3()),
        "int4 per-channel": QuantSpec(F.int4(), granularity=per_channel(0)),
        "int4 per-group(128)": QuantSpec(F.int4(), granularity=per_group(128, axis=1)),
        "NF4 per-group(64)": QuantSpec(F.nf4()),
        "MXFP4 (E2M1, block 32)": QuantSpec(F.mxfp4()),
    }


@dataclass(frozen=True)
class StudyRow:
    name: str
    spec: str
    megabytes: float
    bits_per_weight: float
    sqnr_db: float
    worst_layer: str
    worst_sqnr_db: float
    bound_holds: bool
    clipped_fraction: float
    embedding_cosine: float
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def run_study(specs: dict[str, QuantSpec] | None = None,
              on_progress: Callable[[str], None] | None = None) -> tuple[list[StudyRow], dict[str, float]]:
    """Returns one row per spec and the float model's facts (parameter count, megabytes)."""
    specs = demo_specs() if specs is None else specs
    model, tokenizer = load_minilm()
    layers = weight_layers(model)
    reference = embed(model, tokenizer, SENTENCES)
    n_weights = sum(m.weight.numel() for _, m in layers)
    rows = []
    for name, spec in specs.items():
        t0 = time.perf_counter()
        errs = weight_errors(model, spec, layers)
        signal = sum(e.report.signal_power * e.report.n for e in errs)
        noise = sum(e.report.mse * e.report.n for e in errs)
        worst = min(errs, key=lambda e: e.report.sqnr_db)
        clipped = sum(e.report.clipped_fraction * e.report.n for e in errs) / n_weights
        qmodel = copy.deepcopy(model)
        with torch.no_grad():
            for _, module in weight_layers(qmodel):
                fake_quantize(module.weight, spec, out=module.weight.data)
        cosine = float((embed(qmodel, tokenizer, SENTENCES) * reference).sum(-1).mean())
        nbytes = sum(e.nbytes for e in errs)
        rows.append(StudyRow(name, str(spec), nbytes / 1e6, 8.0 * nbytes / n_weights,
                             math.inf if noise == 0 else 10 * math.log10(signal / noise), worst.name,
                             worst.report.sqnr_db, all(e.report.bound_holds for e in errs), clipped, cosine,
                             time.perf_counter() - t0))
        if on_progress is not None:
            on_progress(name)
    facts = {"weights": float(n_weights), "float32_megabytes": 4.0 * n_weights / 1e6, "layers": float(len(layers))}
    return rows, facts
