import numpy as np
import pytest
import torch

from quantscope.vq import ProductQuantizer, VectorQuantizer, gaussian_mixture


@pytest.fixture(scope="module")
def X():
    return gaussian_mixture(3000, 16, seed=0)


def test_one_subspace_equals_vq(X):
    pq = ProductQuantizer(1, 5, seed=2).fit(X)
    vq = VectorQuantizer(5, seed=2).fit(X)
    assert torch.equal(pq.codebooks_[0], vq.codebook_)
    np.testing.assert_array_equal(pq.encode(X), vq.encode(X))
    assert pq.distortion(X) == pytest.approx(vq.distortion(X))


def test_round_trip_and_nearest_centroid(X):
    pq = ProductQuantizer(4, 5).fit(X)
    codes = pq.encode(X)
    assert codes.dtype == np.uint8 and codes.shape == (3000, 4)
    xh = pq.decode(codes)
    assert xh.shape == X.shape and xh.dtype == np.float32
    np.testing.assert_array_equal(pq.encode(xh), codes)  # decode -> encode is the identity on code words
    # every sub-vector's code is its nearest centroid
    sub = torch.from_numpy(X).reshape(-1, 4, 4)
    for m in range(4):
        d = torch.cdist(sub[:, m], pq.codebooks_[m])
        picked = d.gather(1, torch.from_numpy(codes[:, m]).long()[:, None]).squeeze(1)
        assert float((picked - d.min(1).values).max()) < 1e-4


def test_bytes_and_more_bits_less_distortion(X):
    a = ProductQuantizer(4, 4).fit(X)
    b = ProductQuantizer(4, 6).fit(X)
    assert a.bytes_per_vector == 2 and b.bytes_per_vector == 3
    assert b.distortion(X) < a.distortion(X)


def test_torch_in_torch_out(X):
    t = torch.from_numpy(X)
    pq = ProductQuantizer(2, 4).fit(t)
    codes = pq.encode(t)
    assert isinstance(codes, torch.Tensor) and codes.dtype == torch.uint8
    assert isinstance(pq.decode(codes), torch.Tensor)
