"""quantscope: make quantization error visible, bounded and small.

    import quantscope as qs
    spec = qs.QuantSpec(qs.int4(), granularity=qs.per_group(128, axis=1))
    q = qs.quantize(w, spec)            # QTensor: codes + scales, .nbytes, .dequantize()
    print(qs.error(w, q))               # SQNR, MSE, max |e|, guaranteed bound, clipping share
    qmodel = qs.quantize_model(model, "w8a8", calib=batches)
    print(qs.analyze_model(model, qmodel, batches).table())
"""

from . import signal, vq  # qs.signal.adc(...), qs.vq.ProductQuantizer(...): numpy/torch only at import
from .calibrate import (
    ACIQCalibrator,
    Calibrator,
    EMAMinMaxCalibrator,
    KLCalibrator,
    LloydMaxCalibrator,
    MinMaxCalibrator,
    MSECalibrator,
    NotFittedError,
    PercentileCalibrator,
    register_calibrator,
)
from .core.formats import (
    NF4_LEVELS,
    CodebookFormat,
    FixedFormat,
    FloatFormat,
    IntFormat,
    MXFormat,
    bf16,
    codebook,
    fixed,
    fp4_e2m1,
    fp6_e2m3,
    fp6_e3m2,
    fp8_e4m3,
    fp8_e5m2,
    fp16,
    int2,
    int4,
    int8,
    int16,
    integer,
    log2_codebook,
    minifloat,
    mxfp4,
    mxfp6_e2m3,
    mxfp6_e3m2,
    mxfp8,
    mxfp8_e4m3,
    mxfp8_e5m2,
    mxint8,
    nf4,
    uint8,
)
from .core.granularity import (
    PerChannel,
    PerGroup,
    PerTensor,
    PerToken,
    PerTokenNormalized,
    per_channel,
    per_group,
    per_tensor,
    per_token,
    per_token_normalized,
)
from .core.ops import dequantize, fake_quantize, quantize
from .core.qtensor import QTensor
from .core.rounding import ROUNDING_MODES
from .core.spec import QParams, QuantSpec
from .error import ErrorReport, error
from .error.sweep import calibration_uncertainty, sweep_bits, sweep_clipping
from .nn import recipes
from .nn.analyze import ModelAnalysis, analyze_model
from .nn.io import load_model as load
from .nn.io import save_model as save
from .nn.quantize_model import quantize_model
from .nn.recipes import LayerRule, Recipe
from .onnx import analyze_onnx, bench_speed, export_onnx, quantize_onnx  # onnx/onnxruntime load on first call

__version__ = "0.1.0"

__all__ = [
    "signal", "vq",
    "QuantSpec", "QParams", "QTensor", "quantize", "dequantize", "fake_quantize", "error", "ErrorReport",
    "IntFormat", "FixedFormat", "FloatFormat", "CodebookFormat", "MXFormat", "NF4_LEVELS",
    "integer", "int2", "int4", "int8", "int16", "uint8", "fixed", "minifloat", "fp16", "bf16", "fp8_e4m3",
    "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "mxfp8", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2",
    "mxfp6_e2m3", "mxfp4", "mxint8", "codebook", "nf4", "log2_codebook",
    "PerTensor", "PerChannel", "PerGroup", "PerToken", "PerTokenNormalized", "per_tensor", "per_channel", "per_group",
    "per_token", "per_token_normalized",
    "ROUNDING_MODES", "Calibrator", "MinMaxCalibrator", "EMAMinMaxCalibrator", "PercentileCalibrator",
    "MSECalibrator", "KLCalibrator", "ACIQCalibrator", "LloydMaxCalibrator", "NotFittedError", "register_calibrator",
    "sweep_bits", "sweep_clipping", "calibration_uncertainty", "recipes", "Recipe", "LayerRule", "quantize_model",
    "analyze_model", "ModelAnalysis", "save", "load", "export_onnx", "quantize_onnx", "analyze_onnx", "bench_speed",
]
