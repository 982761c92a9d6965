"""A `module:function` target for `quantscope quantize`: the digits CNN with its batches."""

import torch

from tests.nn.conftest import DigitsCNN


def digits_cnn():
    torch.manual_seed(0)
    model = DigitsCNN().eval()
    g = torch.Generator().manual_seed(1)
    batches = [torch.rand(32, 1, 8, 8, generator=g) for _ in range(4)]
    return model, batches


def bare_model():
    return DigitsCNN().eval()
