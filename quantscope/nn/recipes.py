"""Named quantization recipes: plain data a user can print, edit and save as JSON or YAML.

A recipe says, for the layers it targets, how to quantize the weight and the input activation:

    Recipe(name, default=LayerRule(...), overrides=(("encoder.layer.0.*", LayerRule(...)),),
           ignore=("pooler.*",), targets=("Linear", "Conv2d", ...))

Layer names are matched with globs (``encoder.*.dense``) or regular expressions (``re:...``). Granularity
names are resolved per layer: ``channel`` is the output-channel axis of the weight (0 for Linear and Conv,
1 for ConvTranspose, the row for Embedding), ``group:G`` groups G elements along the input axis,
``tensor`` one scale, ``token`` one scale per row of the last axis (activations).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any

from ..core.formats import Format, format_from_dict, format_to_dict, fp8_e4m3, int4, int8, mxfp4, nf4

TARGETS = ("Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
           "Embedding")
INPUT_MODES = ("static", "dynamic")
CALIBRATOR_NAMES = ("minmax", "ema", "percentile", "mse", "kl", "aciq")


def _check_granularity(text: str, what: str) -> None:
    parts = text.split(":")
    names = ("tensor", "channel", "token") + (("token-norm",) if what == "input" else ())
    ok = (parts[0] in names and len(parts) == 1) or (
        parts[0] == "group" and len(parts) == 2 and parts[1].isdigit() and int(parts[1]) > 0)
    if not ok:
        raise ValueError(f"{what} granularity {text!r} is not one of {', '.join(names)}, group:G")


@dataclass(frozen=True)
class LayerRule:
    """How one layer is quantized. ``weight_format=None`` keeps the weight float; ``input_format=None``
    keeps the input activation float. ``smooth_alpha`` (0..1) applies SmoothQuant before quantizing:
    the input is divided and the weight multiplied per input channel by
    ``s = max|x|^α / max|W|^(1−α)`` (see :mod:`quantscope.algorithms.smoothquant`); ``"auto"``
    picks α per layer (Linear only) by the output error on the calibration data.

    Input granularity ``token-norm`` (Linear, dynamic): every token row is divided by its max|x|
    and the normalized tensor gets one grid (per-token precision that ONNX Runtime still runs as one
    fused dynamic int8 kernel; see :func:`quantscope.core.granularity.per_token_normalized`)."""

    weight_format: Format | None = None
    weight_granularity: str = "channel"
    weight_calibrator: str = "minmax"
    input_format: Format | None = None
    input_granularity: str = "tensor"
    input_mode: str = "static"
    input_calibrator: str = "minmax"
    rounding: str = "nearest_even"
    smooth_alpha: float | str | None = None

    def __post_init__(self) -> None:
        _check_granularity(self.weight_granularity, "weight")
        _check_granularity(self.input_granularity, "input")
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {INPUT_MODES}, got {self.input_mode!r}")
        if self.input_granularity == "token-norm" and self.input_mode != "dynamic":
            raise ValueError("input granularity 'token-norm' divides each row by its max|x| at run time: it needs "
                             "input_mode='dynamic'")
        for what, name in (("weight_calibrator", self.weight_calibrator), ("input_calibrator", self.input_calibrator)):
            if name not in CALIBRATOR_NAMES:
                raise ValueError(f"{what} must be one of {CALIBRATOR_NAMES}, got {name!r}")
        if self.smooth_alpha is not None:
            ok = self.smooth_alpha == "auto" or (isinstance(self.smooth_alpha, (int, float))
                                                 and not isinstance(self.smooth_alpha, bool)
                                                 and 0.0 <= float(self.smooth_alpha) <= 1.0)
            if not ok:
                raise ValueError(f"smooth_alpha (SmoothQuant migration strength) must be a number in [0, 1] or "
                                 f"'auto' (searched per layer), got {self.smooth_alpha!r}")
            if self.input_format is None or self.weight_format is None:
                raise ValueError("smooth_alpha moves activation range into the weight: it needs both "
                                 "weight_format and input_format")
        if self.weight_format is None and self.input_format is None:
            raise ValueError("a LayerRule quantizes nothing: give weight_format or input_format (to keep a layer "
                             "float, list it in the recipe's ignore patterns)")

    @property
    def needs_calibration(self) -> bool:
        return self.input_format is not None and self.input_mode == "static"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for k in ("weight_format", "input_format"):
            out[k] = None if getattr(self, k) is None else format_to_dict(getattr(self, k))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerRule:
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown layer-rule keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        kw = dict(data)
        for k in ("weight_format", "input_format"):
            if kw.get(k) is not None:
                kw[k] = format_from_dict(kw[k])
        return cls(**kw)


def pattern_matches(pattern: str, name: str) -> bool:
    """Glob (``encoder.*.dense``) or regular expression (``re:...``, full match)."""
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return fnmatch.fnmatchcase(name, pattern)


@dataclass(frozen=True)
class MatmulRule:
    """Quantize both operands of the matrix products inside modules matching ``pattern`` (dynamic)."""

    pattern: str
    format: Format
    granularity: str = "tensor"

    def __post_init__(self) -> None:
        if self.granularity not in ("tensor", "token"):
            raise ValueError(f"matmul granularity must be 'tensor' or 'token', got {self.granularity!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "format": format_to_dict(self.format), "granularity": self.granularity}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatmulRule:
        unknown = set(data) - {"pattern", "format", "granularity"}
        if unknown:
            raise ValueError(f"unknown matmul-rule keys {sorted(unknown)}; allowed: format, granularity, pattern")
        return cls(data["pattern"], format_from_dict(data["format"]), data.get("granularity", "tensor"))


@dataclass(frozen=True)
class Recipe:
    """A named plan: the default rule, per-pattern overrides (first match wins), layers kept float,
    and (optionally) the attention matmuls to quantize."""

    name: str
    default: LayerRule
    overrides: tuple[tuple[str, LayerRule], ...] = ()
    ignore: tuple[str, ...] = ()
    targets: tuple[str, ...] = TARGETS
    description: str = ""
    matmuls: tuple[MatmulRule, ...] = ()

    def __post_init__(self) -> None:
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown:
            raise ValueError(f"unknown target layer types {unknown}; allowed: {list(TARGETS)}")
        for pattern, rule in self.overrides:
            if not isinstance(pattern, str) or not isinstance(rule, LayerRule):
                raise TypeError("overrides must be (pattern, LayerRule) pairs")

    def rule_for(self, name: str) -> LayerRule | None:
        """The rule of layer ``name`` (None: keep it float)."""
        if any(pattern_matches(p, name) for p in self.ignore):
            return None
        for pattern, rule in self.overrides:
            if pattern_matches(pattern, name):
                return rule
        return self.default

    def with_overrides(self, *pairs: tuple[str, LayerRule], ignore: tuple[str, ...] = ()) -> Recipe:
        """A copy with more overrides (checked before the existing ones) and ignore patterns."""
        return dataclasses.replace(self, overrides=tuple(pairs) + self.overrides, ignore=self.ignore + tuple(ignore))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "default": self.default.to_dict(),
                "overrides": [[p, r.to_dict()] for p, r in self.overrides], "ignore": list(self.ignore),
                "targets": list(self.targets), "matmuls": [m.to_dict() for m in self.matmuls]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        if not isinstance(data, dict):
            raise ValueError(f"a recipe must be a mapping, got {type(data).__name__}")
        allowed = {"name", "description", "default", "overrides", "ignore", "targets", "matmuls"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown recipe keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        if "default" not in data or "name" not in data:
            raise ValueError("a recipe needs a 'name' and a 'default' layer rule")
        return cls(name=data["name"], description=data.get("description", ""),
                   default=LayerRule.from_dict(data["default"]),
                   overrides=tuple((p, LayerRule.from_dict(r)) for p, r in data.get("overrides", [])),
                   ignore=tuple(data.get("ignore", ())), targets=tuple(data.get("targets", TARGETS)),
                   matmuls=tuple(MatmulRule.from_dict(m) for m in data.get("matmuls", ())))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_yaml(self) -> str:
        try:
            import yaml
        except ImportError as exc:
            raise ImportError("YAML needs PyYAML: pip install pyyaml (or use to_json)") from exc
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def load(cls, path: str) -> Recipe:
        """Read a recipe from a .json or .yaml/.yml file (safe loaders only)."""
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if path.endswith((".yaml", ".yml")):
            import yaml

            return cls.from_dict(yaml.safe_load(text))
        return cls.from_dict(json.loads(text))

    def __str__(self) -> str:
        return self.to_json()


def _builtin() -> dict[str, Recipe]:
    w8 = dict(weight_format=int8(), weight_granularity="channel")
    w8m = dict(w8, weight_calibrator="mse")
    hybrid_tensor = LayerRule(**w8m, input_format=int8(symmetric=False), input_granularity="tensor",
                              input_mode="dynamic", smooth_alpha=0.7)
    return {r.name: r for r in (
        Recipe("w8a8", LayerRule(**w8, input_format=int8(symmetric=False), input_granularity="tensor",
                                 input_mode="static", input_calibrator="mse"),
               description="int8 per-channel weights, int8 per-tensor static activations with a zero point "
                           "(MSE-calibrated)"),
        Recipe("w8a8-dynamic", LayerRule(**w8, input_format=int8(), input_granularity="token", input_mode="dynamic"),
               description="int8 per-channel weights, int8 per-token activations computed at run time"),
        Recipe("w8a8-dynamic-attn", LayerRule(**w8, input_format=int8(), input_granularity="token",
                                              input_mode="dynamic"),
               matmuls=(MatmulRule("*attention.self", int8(), "token"),),
               description="w8a8-dynamic plus int8 attention matmuls (Q·Kᵀ and P·V, per-token scales)"),
        Recipe("w8a8-smooth-dynamic", LayerRule(**w8, input_format=int8(), input_granularity="token",
                                                input_mode="dynamic", smooth_alpha=0.7),
               description="SmoothQuant (alpha 0.7), int8 per-channel weights, int8 per-token dynamic activations"),
        Recipe("w8a8-hybrid", hybrid_tensor,
               overrides=((r"re:(.*\.)?layer\.\d+\.output\.dense",  # the FFN down-projection, not attention's
                           LayerRule(**w8m, input_format=int8(symmetric=False), input_granularity="token-norm",
                                     input_mode="dynamic")),
                          (r"re:(.*\.)?attention\.output\.dense",  # smoothing gains nothing here: save its Mul
                           LayerRule(**w8m, input_format=int8(symmetric=False), input_granularity="tensor",
                                     input_mode="dynamic"))),
               description="BERT-style encoders, for ONNX Runtime speed: int8 per-channel MSE-calibrated weights; "
                           "per-tensor dynamic int8 inputs (one fused kernel), with SmoothQuant (alpha 0.7) on the "
                           "LayerNorm-fed projections (Q/K/V, FFN up); the FFN down-projections (*.output.dense "
                           "after the GELU), whose outlier tokens need it, get token-normalized dynamic int8 (rows "
                           "divided by their max|x|, then one fused kernel)"),
        Recipe("w8", LayerRule(**w8), description="weight-only int8, per output channel"),
        Recipe("w4g128", LayerRule(weight_format=int4(), weight_granularity="group:128", weight_calibrator="mse"),
               description="weight-only int4, one scale per 128 inputs (MSE-calibrated)"),
        Recipe("w4g32", LayerRule(weight_format=int4(), weight_granularity="group:32", weight_calibrator="mse"),
               description="weight-only int4, one scale per 32 inputs (MSE-calibrated)"),
        Recipe("fp8", LayerRule(weight_format=fp8_e4m3(), weight_granularity="channel", input_format=fp8_e4m3(),
                                input_granularity="tensor", input_mode="static"),
               description="FP8 E4M3 per-channel weights, FP8 E4M3 per-tensor static activations"),
        Recipe("mxfp4", LayerRule(weight_format=mxfp4(), weight_granularity="group:32", input_format=mxfp4(),
                                  input_granularity="group:32", input_mode="dynamic"),
               description="OCP MXFP4 weights and activations (32-element blocks, E8M0 scales)"),
        Recipe("nf4", LayerRule(weight_format=nf4(), weight_granularity="group:64"),
               description="weight-only NF4 (QLoRA levels), one absmax scale per 64 inputs"),
    )}


RECIPES: dict[str, Recipe] = _builtin()


def get(name: str | Recipe) -> Recipe:
    """A built-in recipe by name (or the recipe itself)."""
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; built-in recipes: {', '.join(RECIPES)}")
    return RECIPES[name]


def names() -> list[str]:
    return list(RECIPES)


__all__ = ["LayerRule", "MatmulRule", "Recipe", "RECIPES", "get", "names", "pattern_matches"]
