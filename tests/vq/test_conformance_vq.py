"""Every vector quantizer through the same contract: fit/encode/decode shapes and dtypes, codes fit the
declared bits and bytes, determinism with a seed, NotFittedError before fit, NaN rows rejected."""

import numpy as np
import pytest
import torch

from quantscope.calibrate import NotFittedError
from quantscope.vq import (
    NormExplicitQuantizer,
    OptimizedProductQuantizer,
    ProductQuantizer,
    ResidualQuantizer,
    ScalarQuantizer,
    VectorQuantizer,
    gaussian_mixture,
)

MAKERS = {
    "VectorQuantizer": lambda seed: VectorQuantizer(5, seed=seed),
    "ProductQuantizer": lambda seed: ProductQuantizer(4, 4, seed=seed),
    "OptimizedProductQuantizer": lambda seed: OptimizedProductQuantizer(2, 4, n_iter_opq=2, seed=seed),
    "ResidualQuantizer": lambda seed: ResidualQuantizer(2, 4, seed=seed),
    "ScalarQuantizer": lambda seed: ScalarQuantizer(4),
    "ScalarQuantizer8": lambda seed: ScalarQuantizer(8),
    "ResidualQuantizer10bit": lambda seed: ResidualQuantizer(1, 10, n_iter=3, seed=seed),
    "NormExplicitQuantizer": lambda seed: NormExplicitQuantizer(ResidualQuantizer(2, 4, seed=seed), seed=seed),
}
X = gaussian_mixture(1500, 8, seed=13)


@pytest.mark.parametrize("name", list(MAKERS))
def test_contract(name):
    q = MAKERS[name](0)
    with pytest.raises(NotFittedError):
        q.encode(X)
    assert q.fit(X) is q and q.is_fitted
    codes = q.encode(X)
    assert isinstance(codes, np.ndarray) and codes.ndim == 2 and codes.shape == (1500, q.n_codes_)
    assert np.issubdtype(codes.dtype, np.integer) and codes.min() >= 0 and codes.max() < 2**q.code_bits
    assert codes.dtype.itemsize * 8 >= q.code_bits
    assert q.bytes_per_vector * 8 >= q.n_codes_ * q.code_bits - 7 or isinstance(q, NormExplicitQuantizer)
    assert q.bytes_per_vector < 4 * X.shape[1] or isinstance(q, ScalarQuantizer)
    xh = q.decode(codes)
    assert isinstance(xh, np.ndarray) and xh.shape == X.shape and xh.dtype == np.float32
    assert q.distortion(X) == pytest.approx(float(((X - xh) ** 2).sum(1).mean()), rel=1e-4)
    assert q.distortion(X) < float(((X - X.mean(0)) ** 2).sum(1).mean())  # better than coding the mean
    t_codes = q.encode(torch.from_numpy(X))
    assert isinstance(t_codes, torch.Tensor) and np.array_equal(t_codes.numpy(), codes)


@pytest.mark.parametrize("name", list(MAKERS))
def test_deterministic_with_seed(name):
    a = MAKERS[name](3).fit(X).encode(X)
    b = MAKERS[name](3).fit(X).encode(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(MAKERS))
def test_nan_rows_rejected(name):
    bad = X.copy()
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match="row"):
        MAKERS[name](0).fit(bad)
    q = MAKERS[name](0).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        q.encode(bad)
