import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile("quantscope", max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("quantscope")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equality of float32 tensors (distinguishes -0.0 from 0.0; NaN equals NaN)."""
    return torch.equal(a.float().contiguous().view(torch.int32), b.float().contiguous().view(torch.int32))


def laplace(n: int, seed: int, b: float = 1.0) -> torch.Tensor:
    """Laplace(0, b) samples from a seeded generator (inverse CDF)."""
    u = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 0.5
    return (-b * torch.sign(u) * torch.log1p(-2 * u.abs())).float()
