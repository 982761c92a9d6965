import numpy as np
import pytest

from quantscope.calibrate import NotFittedError
from quantscope.vq import ADCIndex, ProductQuantizer, ResidualQuantizer, VectorQuantizer, exact_search

X = np.random.default_rng(0).standard_normal((300, 12)).astype(np.float32)


def test_fewer_vectors_than_centroids():
    with pytest.raises(ValueError, match="got 300 vectors for n_centroids=512"):
        VectorQuantizer(9).fit(X)


def test_dimension_not_divisible():
    with pytest.raises(ValueError, match=r"dimension 12 is not divisible by n_subspaces=5.*\[1, 2, 3, 4, 6, 12\]"):
        ProductQuantizer(5, 4).fit(X)


def test_nan_rows_are_named():
    bad = X.copy()
    bad[[3, 17]] = np.nan
    with pytest.raises(ValueError, match=r"2 row\(s\) with NaN or Inf \(first rows: 3, 17\)"):
        ProductQuantizer(4, 4).fit(bad)
    pq = ProductQuantizer(4, 4).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        pq.encode(bad)


def test_mismatched_query_dimension():
    pq = ProductQuantizer(4, 4).fit(X)
    index = ADCIndex(pq).add(X)
    with pytest.raises(ValueError, match="queries has dimension 8 but the quantizer was fitted on dimension 12"):
        index.search(X[:, :8], 5)
    with pytest.raises(ValueError, match="queries has dimension 8"):
        exact_search(X, X[:, :8], 5)


def test_not_fitted_and_bad_arguments():
    with pytest.raises(NotFittedError, match="not fitted"):
        ProductQuantizer().encode(X)
    with pytest.raises(ValueError, match="n_bits"):
        ResidualQuantizer(2, 0).fit(X)
    with pytest.raises(ValueError, match="metric"):
        ADCIndex(ProductQuantizer(4, 4).fit(X), metric="cosine")
    with pytest.raises(TypeError, match="floating-point"):
        ProductQuantizer(4, 4).fit(X.astype(np.int32))
    with pytest.raises(ValueError, match="2-D"):
        ProductQuantizer(4, 4).fit(X[0])
    pq = ProductQuantizer(4, 4).fit(X)
    with pytest.raises(ValueError, match="codes must lie in"):
        pq.decode(np.full((2, 4), 16, dtype=np.uint8))
    with pytest.raises(ValueError, match="shape"):
        pq.decode(np.zeros((2, 3), dtype=np.uint8))
