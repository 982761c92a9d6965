import numpy as np
import pytest
import torch

from quantscope.vq import NormExplicitQuantizer, ProductQuantizer, ResidualQuantizer, gaussian_mixture
from quantscope.vq.search import exact_search, recall_at_k


@pytest.fixture(scope="module")
def X():
    g = np.random.default_rng(0)
    base = gaussian_mixture(3000, 16, seed=8)
    return base * g.lognormal(0, 0.5, (3000, 1)).astype(np.float32)  # varied norms, as in MIPS


def test_norm_is_coded_explicitly(X):
    neq = NormExplicitQuantizer(ResidualQuantizer(2, 5), norm_bits=8).fit(X)
    codes = neq.encode(X)
    assert codes.shape == (3000, 3) and neq.bytes_per_vector == 1 + 2
    xh = neq.decode(codes)
    nx, nh = np.linalg.norm(X, axis=1), np.linalg.norm(xh, axis=1)
    np.testing.assert_allclose(nh, neq.norm_codebook_.numpy()[codes[:, 0]], rtol=1e-5)
    assert np.abs(nx - nh).mean() < 0.02 * nx.mean()


def test_neq_preserves_norms_better_than_plain(X):
    plain = ResidualQuantizer(2, 6).fit(X)
    neq = NormExplicitQuantizer(ResidualQuantizer(2, 6), norm_bits=8).fit(X)
    err_plain = np.abs(np.linalg.norm(plain.decode(plain.encode(X)), axis=1) - np.linalg.norm(X, axis=1)).mean()
    err_neq = np.abs(np.linalg.norm(neq.decode(neq.encode(X)), axis=1) - np.linalg.norm(X, axis=1)).mean()
    assert err_neq < err_plain


def test_direction_argument_not_changed(X):
    d = ProductQuantizer(4, 4)
    neq = NormExplicitQuantizer(d).fit(X)
    assert not d.is_fitted and neq.direction_.is_fitted


def test_ip_search_runs(X):
    neq = NormExplicitQuantizer(ResidualQuantizer(2, 5)).fit(X)
    Q = torch.from_numpy(X[:20] + 0.1)
    from quantscope.vq.search import adc_search
    _, found = adc_search(neq, neq.encode(X), Q, 10, "ip")
    _, truth = exact_search(X, Q, 10, "ip")
    assert recall_at_k(found, truth, 10) > 0.3
