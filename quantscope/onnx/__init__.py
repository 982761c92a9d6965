"""ONNX: QDQ export of quantized PyTorch models, quantization of existing ``.onnx`` files through
ONNX Runtime, and speed / int8-kernel reports. Needs the ``onnx`` extra (onnx, onnxruntime)."""

from .quantize import OnnxLayer, OnnxQuantResult, quantize_onnx

__all__ = ["OnnxLayer", "OnnxQuantResult", "quantize_onnx"]
