"""Error-compensation algorithms that change what gets quantized (SmoothQuant, ...)."""

from .smoothquant import channel_absmax, smoothing_scales

__all__ = ["channel_absmax", "smoothing_scales"]
