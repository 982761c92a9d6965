"""``quantize_model``: apply a recipe to a ``torch.nn.Module`` (a new model by default).

1. Find the target layers (Linear, Conv*, ConvTranspose*, Embedding), apply ignore / override patterns.
2. Static input activations: run the calibration batches through the float model (``no_grad``, eval
   mode, a progress bar) and stream every targeted layer's input into its calibrator (bounded memory).
3. Quantize every weight, replace every targeted layer by a :class:`QuantizedModule`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from ..algorithms.smoothquant import smooth_input, smooth_weight
from ..calibrate import resolve_calibrator
from ..core.ops import quantize
from ..core.spec import QParams, QuantSpec
from ..report.progress import progress
from .recipes import LayerRule, Recipe, get, pattern_matches
from .wrap import SUPPORTED, QuantizedModule, layer_spec


def describe_batch(batch: Any) -> str:
    if isinstance(batch, torch.Tensor):
        return f"a tensor of shape {tuple(batch.shape)}"
    if isinstance(batch, (tuple, list)):
        return f"a {type(batch).__name__} of {len(batch)} items"
    if isinstance(batch, Mapping):
        return f"a dict with keys {sorted(batch)}"
    return f"a {type(batch).__name__}"


def call_model(model: nn.Module, batch: Any, index: int = 0) -> Any:
    """Run ``model`` on one batch: a tensor (one input), a tuple/list (positional inputs) or a dict
    (keyword inputs, e.g. a tokenizer's output)."""
    try:
        if isinstance(batch, torch.Tensor):
            return model(batch)
        if isinstance(batch, (tuple, list)):
            return model(*batch)
        if isinstance(batch, Mapping):
            return model(**batch)
    except TypeError as exc:
        raise ValueError(f"calling the model on calibration batch #{index} ({describe_batch(batch)}) failed: {exc}. "
                         f"Batches must be what the model's forward takes: a tensor, a tuple of positional inputs, "
                         f"or a dict of keyword inputs") from exc
    raise ValueError(f"calibration batch #{index} is {describe_batch(batch)}; expected a tensor, a tuple/list of "
                     f"positional inputs or a dict of keyword inputs (e.g. a tokenizer's output)")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)


def run_batches(model: nn.Module, batches: Iterable[Any], description: str, show: bool = True,
                on_output: Callable[[int, Any], None] | None = None) -> int:
    """Feed every batch through ``model`` (eval mode, no grad) with a progress bar; returns the count."""
    items = list(batches) if not hasattr(batches, "__len__") else batches
    n = 0
    with eval_mode(model), progress(len(items), description, enabled=show) as advance:
        for i, batch in enumerate(items):
            out = call_model(model, batch, i)
            if on_output is not None:
                on_output(i, out)
            n += 1
            advance(f"batch {i + 1}")
    if n == 0:
        raise ValueError("the calibration data is empty; give at least one batch")
    return n


def select_layers(model: nn.Module, recipe: Recipe) -> list[tuple[str, nn.Module, LayerRule]]:
    """(name, module, rule) of every layer the recipe quantizes; errors when nothing matches."""
    found, candidates = [], []
    for name, module in model.named_modules():
        if isinstance(module, QuantizedModule):
            raise ValueError(f"{name} is already quantized; quantize the float model")
        if isinstance(module, SUPPORTED) and type(module).__name__ in recipe.targets:
            candidates.append(name)
            rule = recipe.rule_for(name)
            if rule is not None:
                found.append((name, module, rule))
    for pattern in [p for p, _ in recipe.overrides] + list(recipe.ignore):
        if not any(pattern_matches(pattern, n) for n in candidates):
            sample = ", ".join(candidates[:8]) + (" ..." if len(candidates) > 8 else "")
            raise ValueError(f"layer pattern {pattern!r} matches no quantizable layer; layers are: {sample or 'none'}")
    if not found:
        kinds = ", ".join(recipe.targets)
        raise ValueError(f"the model has no layer this recipe quantizes (targets: {kinds}; "
                         f"{len(candidates)} candidate(s), all ignored)" if candidates else
                         f"the model has no quantizable layer (looked for {kinds})")
    return found


def input_spec_for(module: nn.Module, rule: LayerRule) -> QuantSpec | None:
    if rule.input_format is None or isinstance(module, nn.Embedding):
        return None
    if rule.input_mode == "static" and rule.input_granularity == "token":
        raise ValueError("per-token activation scales depend on each input: use input_mode='dynamic'")
    return layer_spec(module, rule.input_format, rule.input_granularity, "input", rule.rounding)


def _set_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    if name == "":
        return new
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
    return model


def quantize_model(model: nn.Module, recipe: str | Recipe, calib: Iterable[Any] | None = None,
                   inplace: bool = False, show_progress: bool = True) -> nn.Module:
    """Quantize ``model`` with ``recipe`` (a name from ``qs.recipes.names()`` or a Recipe).

    ``calib``: the calibration batches (needed when the recipe has static activation quantization);
    each batch is a tensor, a tuple of positional inputs or a dict of keyword inputs. Returns a new
    model (``inplace=True`` modifies ``model``); the float model is never changed otherwise.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    recipe = get(recipe)
    if calib is not None and not hasattr(calib, "__len__"):
        calib = list(calib)  # SmoothQuant statistics and calibration each take a pass
    qmodel = model if inplace else copy.deepcopy(model)
    layers = select_layers(qmodel, recipe)
    specs = {name: input_spec_for(module, rule) for name, module, rule in layers}
    static = [(n, m, r) for n, m, r in layers if specs[n] is not None and r.input_mode == "static"]
    smoothing = _smoothing_factors(qmodel, layers, calib, show_progress)
    in_qparams: dict[str, QParams] = {}
    if static:
        if calib is None:
            raise ValueError(f"recipe {recipe.name!r} quantizes activations statically: pass calib=batches")
        cals = {n: resolve_calibrator(r.input_calibrator, specs[n]) for n, _, r in static}
        def observe(name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
            def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
                x = args[0].detach()
                if name in smoothing:
                    x = smooth_input(x, smoothing[name], -1 if isinstance(module, nn.Linear) else 1)
                cals[name].update(x)  # returns nothing: the input passes unchanged

            return hook

        hooks = [m.register_forward_pre_hook(observe(n)) for n, m, _ in static]
        try:
            run_batches(qmodel, calib, "calibrating activations", show_progress)
        finally:
            for h in hooks:
                h.remove()
        for n, _, _ in static:
            if not cals[n].is_fitted:
                raise ValueError(f"layer {n} never ran during calibration; check that the batches exercise it")
            in_qparams[n] = cals[n].qparams()
    with torch.no_grad(), progress(len(layers), "quantizing weights", enabled=show_progress) as advance:
        for name, module, rule in layers:
            weight_q = None
            if rule.weight_format is not None:
                spec = layer_spec(module, rule.weight_format, rule.weight_granularity, "weight", rule.rounding)
                w = module.weight.detach()
                if name in smoothing:
                    w = smooth_weight(w, smoothing[name])
                weight_q = quantize(w, spec, calibrator=rule.weight_calibrator)
            wrapped = QuantizedModule(module, name, weight_q, specs[name], rule.input_mode, in_qparams.get(name),
                                      smoothing.get(name))
            qmodel = _set_module(qmodel, name, wrapped)
            advance(name)
    apply_matmul_rules(qmodel, recipe)
    qmodel.quantscope_recipe = recipe
    return qmodel


def _smoothing_factors(model: nn.Module, layers: list[tuple[str, nn.Module, LayerRule]], calib: Iterable[Any] | None,
                       show_progress: bool) -> dict[str, torch.Tensor]:
    """SmoothQuant factors s (per input channel) of the layers whose rule sets ``smooth_alpha``, from
    one pass over the calibration batches (max |x| per channel) and the weight's max |W| per input."""
    from ..algorithms.smoothquant import channel_absmax, search_alpha, smoothing_scales

    smoothed = [(n, m, r) for n, m, r in layers
                if r.smooth_alpha is not None and not isinstance(m, nn.Embedding)]  # embedding inputs are ids
    if not smoothed:
        return {}
    for n, m, r in smoothed:
        if not isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) or getattr(m, "groups", 1) != 1:
            raise ValueError(f"{n}: SmoothQuant applies to Linear and ungrouped Conv layers; set smooth_alpha=None "
                             f"for it (or ignore it)")
        if r.smooth_alpha == "auto" and not isinstance(m, nn.Linear):
            raise ValueError(f"{n}: smooth_alpha='auto' searches Linear layers only; give a number for convolutions")
    if calib is None:
        raise ValueError("SmoothQuant (smooth_alpha) needs activation statistics: pass calib=batches")
    act: dict[str, torch.Tensor] = {}
    sample: dict[str, list[torch.Tensor]] = {}
    rows = 4096

    def observe(name: str, auto: bool) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            m = channel_absmax(args[0], -1 if isinstance(module, nn.Linear) else 1)
            act[name] = m if name not in act else torch.maximum(act[name], m)
            if auto and sum(len(t) for t in sample.get(name, [])) < rows:
                sample.setdefault(name, []).append(args[0].detach().reshape(-1, args[0].shape[-1])[:rows].float())

        return hook

    hooks = [m.register_forward_pre_hook(observe(n, r.smooth_alpha == "auto")) for n, m, r in smoothed]
    try:
        run_batches(model, calib, "SmoothQuant statistics", show_progress)
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for n, m, r in smoothed:
        if n not in act:
            raise ValueError(f"layer {n} never ran during calibration; check that the batches exercise it")
        if r.smooth_alpha == "auto":
            wspec = layer_spec(m, r.weight_format, r.weight_granularity, "weight", r.rounding)
            _, out[n] = search_alpha(torch.cat(sample[n])[:rows], [m.weight.detach()], input_spec_for(m, r), wspec,
                                     act[n])
        else:
            out[n] = smoothing_scales(act[n], channel_absmax(m.weight, 1), float(r.smooth_alpha))
    return out


def apply_matmul_rules(model: nn.Module, recipe: Recipe) -> None:
    """Hook the matrix products of the modules the recipe's matmul rules name (errors when none match)."""
    if not recipe.matmuls:
        return
    from .matmul import quantize_matmuls, use_eager_attention

    use_eager_attention(model)
    for rule in recipe.matmuls:
        matched = [m for n, m in model.named_modules() if n and pattern_matches(rule.pattern, n)]
        if not matched:
            raise ValueError(f"matmul pattern {rule.pattern!r} matches no module of the model")
        for module in matched:
            quantize_matmuls(module, rule.format, rule.granularity)


def quantized_layers(model: nn.Module) -> list[tuple[str, QuantizedModule]]:
    """The (name, wrapper) pairs of a model returned by :func:`quantize_model`."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantizedModule)]
