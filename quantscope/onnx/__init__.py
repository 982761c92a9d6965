"""ONNX: QDQ export of quantized PyTorch models, quantization of existing ``.onnx`` files through
ONNX Runtime, and speed / int8-kernel reports. Needs the ``onnx`` extra (onnx, onnxscript, onnxruntime)."""

from .export import ExportResult, export_onnx
from .quantize import OnnxLayer, OnnxQuantResult, quantize_onnx

__all__ = ["ExportResult", "OnnxLayer", "OnnxQuantResult", "export_onnx", "quantize_onnx"]
