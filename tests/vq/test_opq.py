import numpy as np
import pytest
import torch

from quantscope.vq import OptimizedProductQuantizer, ProductQuantizer, gaussian_mixture
from quantscope.vq.opq import eigen_allocation


def test_opq_beats_pq_on_anisotropic_data():
    X = gaussian_mixture(3000, 16, n_components=4, anisotropy=100.0, seed=1)
    pq = ProductQuantizer(4, 4, seed=0).fit(X)
    opq = OptimizedProductQuantizer(4, 4, n_iter_opq=8, seed=0).fit(X)
    assert opq.distortion(X) <= pq.distortion(X)
    assert opq.bytes_per_vector == pq.bytes_per_vector == 2
    R = opq.rotation_.double()
    torch.testing.assert_close(R.T @ R, torch.eye(16, dtype=torch.float64), atol=1e-4, rtol=0)


def test_round_trip_and_history():
    X = gaussian_mixture(2000, 8, seed=2)
    opq = OptimizedProductQuantizer(2, 4, n_iter_opq=5).fit(X)
    codes = opq.encode(X)
    np.testing.assert_array_equal(opq.encode(opq.decode(codes)), codes)
    h = opq.history_
    assert len(h) == 5 and h[-1] <= h[0] * 1.001


def test_eigen_allocation_is_orthogonal_and_balanced():
    X = torch.from_numpy(gaussian_mixture(4000, 8, anisotropy=50.0, seed=3))
    R = eigen_allocation(X, 2)
    torch.testing.assert_close(R.T @ R, torch.eye(8), atol=1e-4, rtol=0)
    var = (X @ R).var(0)
    logs = var.log().reshape(2, 4).sum(1)
    assert float((logs[0] - logs[1]).abs()) < 0.5 * float(var.log().abs().sum())


def test_rotation_learned_on_subset_and_deterministic():
    X = gaussian_mixture(3000, 16, n_components=6, anisotropy=30.0, seed=4)
    kw = dict(n_iter_opq=6, n_iter_pq_0=5, max_train_points=1000, seed=3)
    a = OptimizedProductQuantizer(4, 4, **kw).fit(X)
    b = OptimizedProductQuantizer(4, 4, **kw).fit(X)
    assert torch.equal(a.rotation_, b.rotation_)
    R = a.rotation_.double()
    torch.testing.assert_close(R.T @ R, torch.eye(16, dtype=torch.float64), atol=1e-4, rtol=0)
    assert a.pq_.kmeans_.labels.shape == (4, 3000)  # the final PQ sees every training vector


def test_alternations_lower_the_distortion():
    # more alternations of (k-means step, Procrustes) reach a lower training distortion
    X = gaussian_mixture(1500, 16, n_components=6, anisotropy=30.0, seed=5)
    few = OptimizedProductQuantizer(4, 4, n_iter_opq=1, n_iter=5, seed=0).fit(X)
    many = OptimizedProductQuantizer(4, 4, n_iter_opq=12, n_iter=5, seed=0).fit(X)
    assert many.history_[-1] < few.history_[-1]
    assert many.distortion(X) < few.distortion(X)
    h = many.history_
    assert all(b <= a * 1.01 for a, b in zip(h, h[1:], strict=False))


def test_bad_schedule_arguments():
    X = gaussian_mixture(600, 8, seed=0)
    with pytest.raises(ValueError, match="n_iter_pq_0"):
        OptimizedProductQuantizer(2, 4, n_iter_pq_0=0).fit(X)
    with pytest.raises(ValueError, match="max_train_points"):
        OptimizedProductQuantizer(2, 4, max_train_points=3).fit(X)
    with pytest.raises(ValueError, match="init"):
        OptimizedProductQuantizer(2, 4, init="pca").fit(X)
