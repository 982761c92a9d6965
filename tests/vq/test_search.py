import numpy as np
import pytest
import torch

from quantscope.vq import (
    ADCIndex,
    NormExplicitQuantizer,
    OptimizedProductQuantizer,
    ProductQuantizer,
    ResidualQuantizer,
    ScalarQuantizer,
    VectorQuantizer,
    adc_search,
    exact_search,
    gaussian_mixture,
    recall_at_k,
)
from quantscope.vq.search import table_sums

X = gaussian_mixture(2500, 16, seed=9)
Q = gaussian_mixture(40, 16, seed=10)
QUANTIZERS = {
    "vq": lambda: VectorQuantizer(6), "pq": lambda: ProductQuantizer(4, 5),
    "opq": lambda: OptimizedProductQuantizer(4, 5, n_iter_opq=3), "rq": lambda: ResidualQuantizer(2, 5),
    "sq": lambda: ScalarQuantizer(4), "neq": lambda: NormExplicitQuantizer(ResidualQuantizer(2, 5)),
}


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("name", list(QUANTIZERS))
def test_adc_equals_exhaustive_search_on_decoded(name, metric):
    q = QUANTIZERS[name]().fit(X)
    codes = q.encode(X)
    decoded = q.decode(codes)
    d_ref, i_ref = exact_search(decoded, Q, 10, metric)
    for method in ("tables", "decode"):
        d, i = adc_search(q, codes, Q, 10, metric, method=method)
        torch.testing.assert_close(d, d_ref, rtol=1e-4, atol=1e-3)
        assert recall_at_k(i, i_ref, 10) > 0.99  # ids agree except exact float ties


def test_table_sums():
    tables = torch.randn(3, 4, 8)
    codes = torch.randint(0, 8, (20, 4))
    ref = torch.stack([tables[:, m, codes[:, m]] for m in range(4)]).sum(0)
    torch.testing.assert_close(table_sums(tables, codes), ref)


def test_exact_search_matches_numpy():
    d, i = exact_search(X, Q, 5, "l2")
    ref = ((Q[:, None, :].astype(np.float64) - X[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(i.numpy(), np.argsort(ref, 1)[:, :5])
    di, ii = exact_search(X, Q, 5, "ip")
    np.testing.assert_array_equal(ii.numpy(), np.argsort(-(Q.astype(np.float64) @ X.T), 1)[:, :5])


def test_recall_at_k():
    truth = torch.tensor([[0, 1, 2], [3, 4, 5]])
    assert recall_at_k(truth, truth, 3) == 1.0
    assert recall_at_k(torch.tensor([[2, 9, 9], [9, 9, 9]]), truth, 3) == pytest.approx(1 / 6)
    assert recall_at_k(torch.tensor([[0, 9, 9], [4, 9, 9]]), truth, 1) == 0.5


def test_index_add_in_batches_and_chunks(monkeypatch):
    import quantscope.vq.search as s

    monkeypatch.setattr(s, "DB_CHUNK", 700)
    q = ProductQuantizer(4, 5).fit(X)
    index = ADCIndex(q, "l2").add(X[:1000]).add(X[1000:])
    d, i = index.search(Q, 7)
    d2, i2 = adc_search(q, q.encode(X), Q, 7, "l2")
    torch.testing.assert_close(d, d2)
    assert len(index) == 2500
