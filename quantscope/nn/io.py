"""Save and load quantized models: one directory, no pickle.

    out/model.safetensors   packed weight codes + scales (+ zero points) of every quantized layer,
                            static input parameters, and every other tensor of the model as it is
    out/quantscope.json     what each layer's codes mean (specs, shapes, dtypes, input modes), the recipe
    out/recipe.json         the recipe alone, for people
    out/config.json         the Hugging Face config, when the model has one (so it can be rebuilt)

``load_model(dir, model)`` takes a float model of the same architecture (its weights may be random:
they are all replaced) and rebuilds the quantized model; its outputs equal the saved model's bit for bit.
The directory is written to a temporary sibling first and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import torch
from torch import nn

from ..core.arrays import Origin
from ..core.qtensor import QTensor
from ..core.spec import QParams, QuantSpec
from .quantize_model import _set_module, quantized_layers
from .recipes import Recipe
from .wrap import QuantizedModule

FORMAT = "quantscope.model"
VERSION = 1
WEIGHTS = "model.safetensors"
META = "quantscope.json"


def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of the model under its float-model name, except the quantized weights."""
    quant = {n for n, _ in quantized_layers(model)}
    out = {}
    for key, value in model.state_dict().items():
        for q in quant:
            if key.startswith(q + ".inner."):
                rest = key[len(q) + len(".inner."):]
                if rest == "weight" and model.get_submodule(q).weight_q is not None:
                    key = None
                else:
                    key = f"{q}.{rest}"
                break
        if key is not None:
            out[key] = value.detach().contiguous().clone()
    return out


def save_model(model: nn.Module, path: str | os.PathLike) -> int:
    """Write ``model`` (from :func:`quantize_model`) to directory ``path``; returns the bytes written."""
    from safetensors.torch import save_file

    layers = quantized_layers(model)
    if not layers:
        raise ValueError("the model has no quantized layer; quantize it with qs.quantize_model first")
    tensors: dict[str, torch.Tensor] = {f"float.{k}": v for k, v in _plain_state(model).items()}
    meta_layers: dict[str, Any] = {}
    for name, mod in layers:
        entry: dict[str, Any] = {"kind": type(mod.inner).__name__, "input_mode": mod.input_mode,
                                 "input_spec": None if mod.input_spec is None else mod.input_spec.to_dict()}
        if mod.weight_q is not None:
            q = mod.weight_q
            for k, v in q.packed().items():
                tensors[f"quant.{name}.weight.{k}"] = v.contiguous()
            entry.update(weight_spec=q.spec.to_dict(), weight_shape=list(q.shape), weight_dtype=str(q.dtype))
        if mod.input_smoothing is not None:
            tensors[f"quant.{name}.input.smoothing"] = mod.input_smoothing.float().contiguous()
        if mod.input_qparams is not None:
            tensors[f"quant.{name}.input.scale"] = mod.input_qparams.scale.float().contiguous()
            if mod.input_qparams.zero_point is not None:
                tensors[f"quant.{name}.input.zero_point"] = mod.input_qparams.zero_point.to(torch.int32).contiguous()
        meta_layers[name] = entry
    recipe = getattr(model, "quantscope_recipe", None)
    meta = {"format": FORMAT, "version": VERSION, "layers": meta_layers,
            "recipe": recipe.to_dict() if isinstance(recipe, Recipe) else None}
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".quantscope-model-", dir=parent)
    try:
        save_file(tensors, os.path.join(tmp, WEIGHTS), metadata={"format": FORMAT})
        with open(os.path.join(tmp, META), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
        if isinstance(recipe, Recipe):
            with open(os.path.join(tmp, "recipe.json"), "w", encoding="utf-8") as f:
                f.write(recipe.to_json())
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_json_string"):
            with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
                f.write(config.to_json_string())
        if os.path.exists(path):
            old = path.rstrip("/") + f".old-{os.getpid()}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory_bytes(path)


def directory_bytes(path: str | os.PathLike) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def packed_bytes(model: nn.Module) -> int:
    """True packed size: quantized weights at their bit width (+ scales) and every other tensor as is."""
    plain = sum(v.numel() * v.element_size() for v in _plain_state(model).values())
    quant = sum(m.weight_q.nbytes for _, m in quantized_layers(model) if m.weight_q is not None)
    return plain + quant


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    path = os.fspath(path)
    meta_path = os.path.join(path, META)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such model directory")
    if not os.path.isfile(meta_path) or not os.path.isfile(os.path.join(path, WEIGHTS)):
        raise ValueError(f"{path} is not a quantscope model directory (needs {META} and {WEIGHTS})")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta_path} is corrupt: {exc}") from exc
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{meta_path}: not a quantscope model of version {VERSION}")
    return meta


def load_model(path: str | os.PathLike, model: nn.Module) -> nn.Module:
    """Rebuild the quantized model saved in ``path`` on ``model`` (same float architecture, modified
    in place and returned)."""
    from safetensors import safe_open

    meta = read_meta(path)
    try:
        with safe_open(os.path.join(os.fspath(path), WEIGHTS), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise ValueError(f"{path}/{WEIGHTS} is not readable ({exc}); it may be truncated or corrupt") from exc
    plain = {k[len("float."):]: v for k, v in tensors.items() if k.startswith("float.")}
    layers = meta["layers"]
    quantized_weights = {f"{n}.weight" for n, e in layers.items() if "weight_spec" in e}
    expected = set(model.state_dict()) - quantized_weights
    missing, unexpected = expected - set(plain), set(plain) - expected
    if missing or unexpected:
        raise ValueError(f"{path} does not fit this model: missing {sorted(missing)[:5]}, unexpected "
                         f"{sorted(unexpected)[:5]}; pass a float model of the same architecture")
    with torch.no_grad():
        state = model.state_dict()
        for k, v in plain.items():
            state[k].copy_(v)
    for name, entry in layers.items():
        module = model.get_submodule(name)
        weight_q = None
        if "weight_spec" in entry:
            spec = QuantSpec.from_dict(entry["weight_spec"])
            prefix = f"quant.{name}.weight."
            parts = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            shape = tuple(entry["weight_shape"])
            origin = Origin(False, getattr(torch, entry["weight_dtype"].replace("torch.", "")), torch.device("cpu"))
            weight_q = QTensor._from_packed(parts, spec, shape, str(origin.dtype), False, f"{path}:{name}")
        input_spec = None if entry["input_spec"] is None else QuantSpec.from_dict(entry["input_spec"])
        qparams = None
        if f"quant.{name}.input.scale" in tensors:
            qparams = QParams(tensors[f"quant.{name}.input.scale"], tensors.get(f"quant.{name}.input.zero_point"))
        _set_module(model, name, QuantizedModule(module, name, weight_q, input_spec, entry["input_mode"], qparams,
                                                 tensors.get(f"quant.{name}.input.smoothing")))
    if meta.get("recipe"):
        from .quantize_model import apply_matmul_rules

        model.quantscope_recipe = Recipe.from_dict(meta["recipe"])
        apply_matmul_rules(model, model.quantscope_recipe)
    return model
