"""PyTorch frontend: quantize models with recipes, measure per-layer error and sensitivity."""

from . import recipes
from .analyze import LayerError, weight_errors
from .quantize_model import call_model, quantize_model, quantized_layers
from .recipes import LayerRule, Recipe
from .wrap import QuantizedModule

__all__ = ["LayerError", "weight_errors", "quantize_model", "quantized_layers", "call_model", "recipes", "LayerRule",
           "Recipe", "QuantizedModule"]
