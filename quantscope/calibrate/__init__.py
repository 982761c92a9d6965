"""Range calibration: choose the scale (and zero point) of a quantizer from data."""

from .base import CALIBRATORS, Calibrator, NotFittedError, register_calibrator, resolve_calibrator
from .minmax import MinMaxCalibrator

register_calibrator("minmax", MinMaxCalibrator)

__all__ = ["Calibrator", "CALIBRATORS", "MinMaxCalibrator", "NotFittedError", "register_calibrator",
           "resolve_calibrator"]
