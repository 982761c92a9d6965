"""Range calibration: choose the scale (and zero point) of a quantizer from data.

Names usable as ``quantize(x, spec, calibrator=NAME)``: ``minmax``, ``ema``, ``percentile``, ``mse``,
``kl``, ``aciq``. Every calibrator streams (``update`` per batch, bounded memory) and merges.
"""

from .analytic import ACIQCalibrator
from .base import CALIBRATORS, Calibrator, NotFittedError, register_calibrator, resolve_calibrator
from .histogram import HistogramCalibrator, KLCalibrator, MSECalibrator, PercentileCalibrator
from .lloyd import LloydMaxCalibrator, lloyd_max
from .minmax import EMAMinMaxCalibrator, MinMaxCalibrator

register_calibrator("minmax", MinMaxCalibrator)
register_calibrator("ema", EMAMinMaxCalibrator)
register_calibrator("percentile", PercentileCalibrator)
register_calibrator("mse", MSECalibrator)
register_calibrator("kl", KLCalibrator)
register_calibrator("aciq", ACIQCalibrator)

__all__ = ["Calibrator", "CALIBRATORS", "MinMaxCalibrator", "EMAMinMaxCalibrator", "HistogramCalibrator",
           "PercentileCalibrator", "MSECalibrator", "KLCalibrator", "ACIQCalibrator", "LloydMaxCalibrator",
           "lloyd_max", "NotFittedError", "register_calibrator", "resolve_calibrator"]
