"""SmoothQuant (Xiao et al., 2023): move activation outliers into the weights.

For a layer ``y = x · Wᵀ`` and one factor ``s_c > 0`` per input channel c,
``y = (x / s) · (W · s)ᵀ`` exactly. Choosing ``s_c = max|x_c|^α / max|W_c|^(1−α)`` evens out the
per-channel ranges of the activation (α = 1 moves all of the range into the weight, α = 0 none),
so a per-tensor or per-token activation scale wastes fewer levels on a few outlier channels, while
the per-output-channel weight scales absorb the growth. The identity is exact in real arithmetic;
quantization then sees ``x / s`` and ``W · s``.
"""

from __future__ import annotations

import torch


def channel_absmax(x: torch.Tensor, axis: int) -> torch.Tensor:
    """max |x| over every axis except ``axis``: one value per channel (float32, shape ``(C,)``)."""
    axis %= x.dim()
    moved = x.detach().float().movedim(axis, -1).reshape(-1, x.shape[axis])
    return moved.abs().amax(dim=0)


def smoothing_scales(act_absmax: torch.Tensor, weight_absmax: torch.Tensor, alpha: float) -> torch.Tensor:
    """The per-input-channel factors ``s`` (shape ``(C,)``, float32, all > 0).

    ``act_absmax``: max |x_c| over the calibration data; ``weight_absmax``: max |W_c| over the
    output channels (of every layer that reads this input). Channels where either is 0 (dead
    inputs or weights) get s = 1; the result is clamped to [1e-5, 1e5] so that neither side of the
    identity over- or underflows.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"SmoothQuant alpha must be in [0, 1], got {alpha}")
    a, w = act_absmax.float(), weight_absmax.float()
    if a.shape != w.shape:
        raise ValueError(f"activation ({tuple(a.shape)}) and weight ({tuple(w.shape)}) channel counts differ")
    s = a.clamp_min(1e-12) ** alpha / w.clamp_min(1e-12) ** (1.0 - alpha)
    s = torch.where((a > 0) & (w > 0) & torch.isfinite(s), s, torch.ones_like(s))
    return s.clamp(1e-5, 1e5)
