"""Error-compensation algorithms that change what gets quantized (SmoothQuant, ...)."""

from .smoothquant import channel_absmax, search_alpha, smooth_input, smooth_weight, smoothing_scales

__all__ = ["channel_absmax", "search_alpha", "smooth_input", "smooth_weight", "smoothing_scales"]
