"""PyTorch frontend: quantization error of model weights (model quantization lands with issue 4)."""

from .analyze import LayerError, weight_errors

__all__ = ["LayerError", "weight_errors"]
