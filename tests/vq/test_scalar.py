import numpy as np
import pytest
import torch

import quantscope as qs
from quantscope.vq import ScalarQuantizer, gaussian_mixture


@pytest.mark.parametrize("bits", [8, 4])
def test_error_within_half_step_and_core_agreement(bits):
    X = gaussian_mixture(2000, 16, seed=5)
    sq = ScalarQuantizer(bits).fit(X)
    codes = sq.encode(X)
    assert codes.dtype == np.uint8 and codes.max() < 2**bits
    assert sq.bytes_per_vector == 16 * bits // 8
    xh = sq.decode(codes)
    step = sq.qparams_.scale.numpy()
    assert (np.abs(X - xh) <= step / 2 * (1 + 1e-5) + 1e-7).all()
    ref = qs.quantize(X, sq.spec_, qparams=sq.qparams_)
    np.testing.assert_allclose(xh, ref.dequantize(), rtol=1e-6, atol=1e-6)


def test_mse_calibrator_lowers_error():
    X = gaussian_mixture(4000, 8, seed=6)
    assert ScalarQuantizer(4, calibrator="mse").fit(X).distortion(X) < ScalarQuantizer(4).fit(X).distortion(X)


def test_levels_match_decode():
    X = torch.from_numpy(gaussian_mixture(500, 4, seed=7))
    sq = ScalarQuantizer(4).fit(X)
    codes = torch.arange(16)[:, None].repeat(1, 4)
    torch.testing.assert_close(sq.decode(codes), sq.levels().T)
