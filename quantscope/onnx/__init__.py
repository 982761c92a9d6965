"""ONNX: QDQ export of quantized PyTorch models, quantization of existing ``.onnx`` files through
ONNX Runtime, and speed / int8-kernel reports. Needs the ``onnx`` extra (onnx, onnxscript, onnxruntime);
they are imported when a function runs, so ``import quantscope`` stays light."""

from .export import ExportResult, export_onnx
from .quantize import OnnxLayer, OnnxQuantResult, analyze_onnx, quantize_onnx
from .speed import SpeedReport, bench_speed

__all__ = ["ExportResult", "OnnxLayer", "OnnxQuantResult", "SpeedReport", "analyze_onnx", "bench_speed",
           "export_onnx", "quantize_onnx"]
