"""Per-layer error analysis of a quantized model: where error is made, where it is carried, and why.

For every quantized layer, on the same batches:

* weight SQNR and input-activation SQNR (the input as it arrives in the quantized model vs its
  quantized version), with the clipping share of each;
* local output SQNR: the float model's input to this layer through the float layer vs through the
  quantized layer (only this layer quantized), i.e. error *made* here;
* cumulative output SQNR: float model vs quantized model at this layer's output, i.e. error made here
  plus error *carried in*;
* predicted output noise: step²/12 of weights and inputs propagated through the weights
  (Σ_j E[x_j²]·var(e_w,ij) + Σ_j W_ij²·var(e_x,j)), next to the measured one, flagged when they disagree
  by more than 2x ("clipping" when over 20% of the input error is saturation, "noise > model: outliers?"
  when measured noise is larger, as heavy-tailed or correlated errors make it);
* sensitivity: the final-output SQNR when only this layer is quantized.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.bounds import error_bound
from ..core.ops import quantize
from ..core.spec import QuantSpec
from ..error.accumulate import SqnrAccumulator
from ..error.metrics import ErrorReport, error
from ..report.progress import progress

WEIGHT_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Embedding)
SAMPLE = 20_000  # input values kept per layer for histograms


@dataclass(frozen=True)
class LayerError:
    """The error of one layer's weight under one spec; ``nbytes`` is its true packed storage."""

    name: str
    shape: tuple[int, ...]
    nbytes: int
    report: ErrorReport


def weight_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Named layers whose ``weight`` would be quantized (Linear, Conv1d/2d/3d, Embedding)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]


def weight_errors(model: torch.nn.Module, spec: QuantSpec, layers: Iterable[tuple[str, torch.nn.Module]] | None = None,
                  on_layer: Callable[[str], None] | None = None) -> list[LayerError]:
    """Quantize every weight with ``spec`` (weights are not modified) and measure the error per layer."""
    out = []
    for name, module in (weight_layers(model) if layers is None else layers):
        w = module.weight.detach()
        q = quantize(w, spec)
        out.append(LayerError(name, tuple(w.shape), q.nbytes, error(w, q, theory=False)))
        if on_layer is not None:
            on_layer(name)
    return out


def first_tensor(out: Any) -> torch.Tensor:
    """The tensor a model's output is judged by: itself, the first item of a tuple, or the first tensor
    value of a dict / ``ModelOutput`` (``last_hidden_state`` for Hugging Face encoders)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict) or hasattr(out, "values"):
        for v in out.values():
            if isinstance(v, torch.Tensor):
                return v
    if isinstance(out, (tuple, list)) and out:
        return first_tensor(out[0])
    raise ValueError(f"cannot find a tensor in the model output ({type(out).__name__}); pass output_fn=")





@dataclass(frozen=True)
class LayerAnalysis:
    name: str
    kind: str
    weight_spec: str
    input_spec: str
    weight_sqnr_db: float
    weight_clipping_share: float
    input_sqnr_db: float
    input_clipping_share: float
    local_output_sqnr_db: float
    cumulative_output_sqnr_db: float
    predicted_output_mse: float
    measured_output_mse: float
    noise_ratio: float
    flag: str
    sensitivity_db: float


@dataclass
class ModelAnalysis:
    """All layers (model order) and the whole model's final-output SQNR."""

    layers: list[LayerAnalysis]
    output_sqnr_db: float
    samples: dict[str, tuple[torch.Tensor, tuple[float, float] | None]] = field(default_factory=dict, repr=False)

    def ranked(self) -> list[LayerAnalysis]:
        """Layers from the most sensitive (lowest final SQNR when quantized alone) to the least."""
        return sorted(self.layers, key=lambda r: r.sensitivity_db)

    def to_dict(self) -> dict[str, Any]:
        return {"output_sqnr_db": self.output_sqnr_db, "layers": [asdict(r) for r in self.layers]}

    def table(self, top: int | None = None) -> str:
        from ..report.tables import render_table

        rows = [[r.name, r.sensitivity_db, r.local_output_sqnr_db, r.cumulative_output_sqnr_db, r.weight_sqnr_db,
                 r.input_sqnr_db, r.input_clipping_share, r.noise_ratio, r.flag or "-"]
                for r in self.ranked()[:top]]
        return render_table(f"layers by sensitivity (model output SQNR {self.output_sqnr_db:.2f} dB)",
                            ["layer", "sensitivity dB", "local dB", "cumulative dB", "weight dB", "input dB",
                             "input clip share", "measured/predicted", "flag"], rows, width=170)


def _flag(ratio: float, clip: float) -> str:
    if not math.isfinite(ratio):
        return ""
    if clip > 0.2:
        return "clipping"
    if ratio > 2.0:
        return "noise > model: outliers?"
    if ratio < 0.5:
        return "noise < model"
    return ""


def _predicted_noise(module: nn.Module, w_float: torch.Tensor, wq: Any, x_m2: torch.Tensor,
                     x_noise: float) -> float:
    """Σ_j E[x_j²]·var(e_w,ij) + var(e_x)·Σ_j W_ij², averaged over outputs (Linear/Conv/Embedding)."""
    w = w_float.detach().double()
    if wq is not None:
        layout = wq.layout
        scale = wq.scale.cpu() if wq.scale is not None else None
        bound, _ = error_bound(w.float().cpu(), wq.spec, scale, wq.zero_point, layout)
        factor = 1 / 3 if wq.spec.rounding in ("nearest_even", "nearest_away") else 4 / 3  # (2·bound)²/12
        var_w = (bound.double() ** 2) * factor
    else:
        var_w = torch.zeros_like(w)
    if isinstance(module, nn.Embedding):
        return float(var_w.mean())
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        w, var_w = w.transpose(0, 1), var_w.transpose(0, 1)
    per_in = x_m2.double().reshape(1, -1, *([1] * (w.dim() - 2)))  # E[x_c²] for input channel c
    weight_part = (var_w * per_in).flatten(1).sum(1).mean()
    input_part = x_noise * (w * w).flatten(1).sum(1).mean()
    return float(weight_part + input_part)


def analyze_model(float_model: nn.Module, quant_model: nn.Module, batches: Iterable[Any],
                  output_fn: Callable[[Any], torch.Tensor] | None = None, sensitivity: bool = True,
                  show_progress: bool = True) -> ModelAnalysis:
    """Per-layer analysis of ``quant_model`` (from :func:`quantize_model`) against ``float_model``.

    ``batches``: as for calibration (tensors, tuples or dicts); ``output_fn`` maps a model output to the
    tensor to compare (default: :func:`first_tensor`).
    """
    from .quantize_model import call_model, eval_mode, quantized_layers
    from .wrap import QuantizedModule

    batches = list(batches)
    if not batches:
        raise ValueError("analysis needs at least one batch")
    out_fn = output_fn or first_tensor
    qlayers = quantized_layers(quant_model)
    if not qlayers:
        raise ValueError("quant_model has no quantized layer; build it with qs.quantize_model")
    fmods = dict(float_model.named_modules())
    missing = [n for n, _ in qlayers if n not in fmods]
    if missing:
        raise ValueError(f"float_model has no layer named {missing[0]}; pass the model quant_model was made from")

    local = {n: SqnrAccumulator() for n, _ in qlayers}
    cumulative = {n: SqnrAccumulator() for n, _ in qlayers}
    inputs = {n: SqnrAccumulator() for n, _ in qlayers}
    m2: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    x_noise: dict[str, list[float]] = {n: [] for n, _ in qlayers}
    float_out: dict[str, torch.Tensor] = {}
    samples: dict[str, torch.Tensor] = {}
    final = SqnrAccumulator()
    float_finals: list[torch.Tensor] = []

    def float_hook(name: str, qmod: QuantizedModule) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            x = args[0]
            float_out[name] = output.detach()
            local[name].add(output, qmod(x, *args[1:]))  # observers are off during the float pass
            if x.is_floating_point():
                channel_axis = 1 if not isinstance(module, (nn.Linear, nn.Embedding)) else -1
                xs = x.detach().double().movedim(channel_axis, 0).reshape(x.shape[channel_axis], -1)
                m2[name] = m2.get(name, 0) + (xs * xs).sum(1)
                counts[name] = counts.get(name, 0) + xs.shape[1]
                if name not in samples:
                    samples[name] = x.detach().reshape(-1)[:SAMPLE].float().clone()
            else:
                m2.setdefault(name, torch.zeros(1, dtype=torch.float64))
                counts[name] = counts.get(name, 0) + 1
        return hook

    def quant_hook(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            cumulative[name].add(float_out[name], output)
        return hook

    def observer(mod: QuantizedModule, x: torch.Tensor, xq: torch.Tensor) -> None:
        if mod.input_spec is None or not x.is_floating_point():
            return
        q = quantize(x.detach(), mod.input_spec, qparams=mod.input_qparams if mod.input_mode == "static" else None)
        r = error(x.detach(), q, theory=False)
        inputs[mod.layer_name].add(x, xq, (r.decomposition.clipping_mse if r.decomposition else 0.0) * r.n)
        x_noise[mod.layer_name].append(r.decomposition.granular_mse_predicted if r.decomposition else 0.0)

    qmods = dict(qlayers)
    handles = [fmods[n].register_forward_hook(float_hook(n, qmods[n])) for n in qmods]
    handles += [m.register_forward_hook(quant_hook(n)) for n, m in qlayers]
    for m in qmods.values():
        m.input_observer = observer
    steps = len(batches) * (1 + (len(qlayers) if sensitivity else 0))
    try:
        with progress(steps, "analyzing layers", enabled=show_progress) as advance, eval_mode(
                float_model), eval_mode(quant_model):
            for i, batch in enumerate(batches):
                for m in qmods.values():
                    m.input_observer = None  # the float pass only reads
                ref = out_fn(call_model(float_model, batch, i))
                float_finals.append(ref)
                for m in qmods.values():
                    m.input_observer = observer
                final.add(ref, out_fn(call_model(quant_model, batch, i)))
                advance(f"batch {i + 1}")
    finally:
        for h in handles:
            h.remove()
        for m in qmods.values():
            m.input_observer = None

    sens: dict[str, float] = {}
    if sensitivity:
        sens = _sensitivity(float_model, qlayers, batches, float_finals, out_fn, show_progress)

    results = []
    for name, mod in qlayers:
        fmod = fmods[name]
        wq = mod.weight_q
        if wq is not None:
            wr = error(fmod.weight.detach(), wq, theory=False)
            w_db, w_clip = wr.sqnr_db, wr.clipping_share or 0.0
        else:
            w_db, w_clip = math.inf, 0.0
        x_m2 = m2.get(name, torch.zeros(1, dtype=torch.float64)) / max(counts.get(name, 1), 1)
        xn = float(sum(x_noise[name]) / len(x_noise[name])) if x_noise[name] else 0.0
        predicted = _predicted_noise(fmod, fmod.weight, wq, x_m2, xn)
        measured = local[name].mse
        ratio = measured / predicted if predicted > 0 else math.nan
        in_acc = inputs[name]
        results.append(LayerAnalysis(
            name=name, kind=type(mod.inner).__name__,
            weight_spec="float" if wq is None else str(wq.spec),
            input_spec="float" if mod.input_spec is None else f"{mod.input_spec} ({mod.input_mode})",
            weight_sqnr_db=w_db, weight_clipping_share=w_clip,
            input_sqnr_db=in_acc.sqnr_db if in_acc.n else math.inf, input_clipping_share=in_acc.clipping_share,
            local_output_sqnr_db=local[name].sqnr_db, cumulative_output_sqnr_db=cumulative[name].sqnr_db,
            predicted_output_mse=predicted, measured_output_mse=measured, noise_ratio=ratio,
            flag=_flag(ratio, in_acc.clipping_share), sensitivity_db=sens.get(name, math.nan)))
    clip_points = {}
    for name, mod in qlayers:
        if mod.input_spec is not None and mod.input_mode == "static" and mod.input_qparams is not None:
            from ..core.bounds import clip_range

            layout = mod.input_spec.granularity.layout(tuple(samples.get(name, torch.zeros(1)).shape))
            lo, hi = clip_range(mod.input_spec, mod.input_qparams.scale, mod.input_qparams.zero_point, layout)
            clip_points[name] = (float(lo.min()), float(hi.max()))
    return ModelAnalysis(results, final.sqnr_db, {n: (s, clip_points.get(n)) for n, s in samples.items()})


def _sensitivity(float_model: nn.Module, qlayers: list[tuple[str, nn.Module]], batches: list[Any],
                 refs: list[torch.Tensor], out_fn: Callable[[Any], torch.Tensor], show: bool) -> dict[str, float]:
    """Final-output SQNR with only one layer quantized, for every layer."""
    import copy

    from .quantize_model import _set_module, call_model, eval_mode

    probe = copy.deepcopy(float_model)
    originals = dict(probe.named_modules())
    out = {}
    with progress(len(qlayers) * len(batches), "sensitivity (one layer at a time)", enabled=show) as advance, \
            eval_mode(probe):
        for name, qmod in qlayers:
            _set_module(probe, name, qmod)
            acc = SqnrAccumulator()
            try:
                for i, batch in enumerate(batches):
                    acc.add(refs[i], out_fn(call_model(probe, batch, i)))
                    advance(name)
            finally:
                _set_module(probe, name, originals[name])
            out[name] = acc.sqnr_db
    return out
