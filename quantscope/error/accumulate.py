"""Streaming SQNR: signal and noise power summed over many batches (float64 sums)."""

from __future__ import annotations

import math
from typing import Any

import torch


def sqnr_db(signal: float, noise: float) -> float:
    """10·log10(signal power / noise power) in dB; +inf when there is no noise."""
    if noise <= 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


class SqnrAccumulator:
    """Running sums for SQNR over batches: signal power, noise power (and the clipping part of it)."""

    def __init__(self) -> None:
        self.signal = self.noise = self.clip = 0.0
        self.n = 0

    def add(self, ref: Any, test: Any, clip_noise: float = 0.0) -> None:
        r = torch.as_tensor(ref).detach().double()
        t = torch.as_tensor(test).detach().double()
        if r.shape != t.shape:
            raise ValueError(f"reference shape {tuple(r.shape)} and test shape {tuple(t.shape)} differ")
        self.signal += float((r * r).sum())
        self.noise += float(((r - t) ** 2).sum())
        self.clip += clip_noise
        self.n += r.numel()

    @property
    def sqnr_db(self) -> float:
        return sqnr_db(self.signal, self.noise)

    @property
    def mse(self) -> float:
        return self.noise / max(self.n, 1)

    @property
    def clipping_share(self) -> float:
        return self.clip / self.noise if self.noise > 0 else 0.0
