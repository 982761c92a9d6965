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


DEFAULT_ALPHAS = tuple(round(0.3 + 0.05 * i, 2) for i in range(13))  # 0.30, 0.35, ..., 0.90


def search_alpha(x: torch.Tensor, weights: list[torch.Tensor], input_spec: object, weight_spec: object,
                 act_absmax: torch.Tensor, alphas: tuple[float, ...] = DEFAULT_ALPHAS) -> tuple[float, torch.Tensor]:
    """The α (and its factors s) that minimise the output error of the Linear layers reading ``x``.

    ``x``: a sample of the input, shape (rows, C) (channels last); ``weights``: each layer's (out, C)
    weight; ``input_spec`` / ``weight_spec``: how they are quantized (a dynamic input spec is applied
    per call; a static one gets min-max parameters from the smoothed sample). The error is
    Σ_layers ‖x·Wᵀ − Q(x/s)·Q(W·s)ᵀ‖², the quantity SmoothQuant trades between the two operands.
    """
    from ..core.ops import fake_quantize

    if x.dim() != 2 or not weights or any(w.dim() != 2 or w.shape[1] != x.shape[1] for w in weights):
        raise ValueError("search_alpha takes x of shape (rows, C) and Linear weights of shape (out, C)")
    x = x.float()
    refs = [x @ w.float().t() for w in weights]
    w_absmax = torch.stack([w.abs().amax(dim=0) for w in weights]).amax(dim=0)
    best: tuple[float, float, torch.Tensor] | None = None
    for alpha in alphas:
        s = smoothing_scales(act_absmax, w_absmax, alpha)
        xq = fake_quantize(x / s, input_spec)
        err = 0.0
        for w, ref in zip(weights, refs, strict=True):
            wq = fake_quantize(w.float() * s, weight_spec)
            err += float(((xq @ wq.t()) - ref).double().pow(2).sum())
        if best is None or err < best[0]:
            best = (err, alpha, s)
    assert best is not None
    return best[1], best[2]


def _along(s: torch.Tensor, like: torch.Tensor, axis: int) -> torch.Tensor:
    shape = [1] * like.dim()
    shape[axis] = -1
    return s.to(device=like.device, dtype=like.dtype).reshape(shape)


def smooth_input(x: torch.Tensor, s: torch.Tensor, axis: int) -> torch.Tensor:
    """``x / s`` with ``s`` along the input-channel ``axis`` (-1 for Linear inputs, 1 for convolutions)."""
    return x / _along(s, x, axis)


def smooth_weight(w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``W · s`` along the weight's input axis (1 for Linear and Conv weights)."""
    return w * _along(s, w, 1)
