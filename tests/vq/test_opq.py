import numpy as np
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
