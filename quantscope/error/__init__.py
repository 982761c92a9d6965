"""Quantization error: metrics, guaranteed bounds (and, later, decomposition and theory)."""

from .metrics import ErrorReport, error

__all__ = ["ErrorReport", "error"]
