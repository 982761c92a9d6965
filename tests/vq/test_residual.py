import numpy as np
import pytest
import torch

from quantscope.vq import ResidualQuantizer, VectorQuantizer, gaussian_mixture
from quantscope.vq.residual import beam_encode


@pytest.fixture(scope="module")
def X():
    return gaussian_mixture(2000, 16, seed=4)


def test_stage_distortion_decreases_and_round_trip(X):
    rq = ResidualQuantizer(3, 5).fit(X)
    d = rq.stage_distortion_
    assert d[0] > d[1] > d[2]
    assert rq.distortion(X) == pytest.approx(d[-1], rel=1e-4)
    codes = rq.encode(X)
    assert codes.shape == (2000, 3) and rq.bytes_per_vector == 2  # 15 bits
    xh = rq.decode(codes)
    assert np.isfinite(xh).all()


def test_beam_never_worse_than_greedy(X):
    rq = ResidualQuantizer(3, 4, beam_size=1).fit(X)
    t = torch.from_numpy(X)
    greedy = rq._decode(beam_encode(t, rq.codebooks_, 1))
    beam = rq._decode(beam_encode(t, rq.codebooks_, 8))
    eg, eb = ((t - greedy) ** 2).sum(1), ((t - beam) ** 2).sum(1)
    assert bool((eb <= eg + 1e-4).all())
    assert float(eb.sum()) < float(eg.sum())


def test_one_stage_is_plain_vq(X):
    rq = ResidualQuantizer(1, 5, seed=0).fit(X)
    vq = VectorQuantizer(5, seed=0).fit(X)
    assert torch.equal(rq.codebooks_[0], vq.codebook_)
