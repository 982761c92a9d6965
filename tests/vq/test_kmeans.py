import numpy as np
import pytest
import torch

from quantscope.vq.kmeans import _argmin_rows, kmeans, kmeans_plusplus, sq_dists_min


def blobs(n=3000, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(12, d, generator=g) * 4
    return centers[torch.randint(0, 12, (n,), generator=g)] + torch.randn(n, d, generator=g)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_objective_never_increases(init):
    res = kmeans(blobs(), 32, n_iter=30, init=init, seed=3)
    h = res.inertia_history
    assert len(h) == 31
    assert all(b <= a * (1 + 1e-6) for a, b in zip(h, h[1:], strict=False))
    assert h[-1] < h[0]


def test_labels_are_nearest_and_inertia_matches():
    X = blobs()
    res = kmeans(X, 16, n_iter=10, seed=0)
    d = torch.cdist(X.double(), res.centroids.double()) ** 2
    assert torch.equal(res.labels, d.argmin(1)) or (d.gather(1, res.labels[:, None]).squeeze(1) - d.min(1).values
                                                     ).abs().max() < 1e-4
    assert res.inertia == pytest.approx(float(d.min(1).values.sum()), rel=1e-4)


def test_seeded_and_deterministic():
    X = blobs().numpy()
    a, b = kmeans(X, 20, seed=5), kmeans(X, 20, seed=5)
    assert torch.equal(a.centroids, b.centroids)
    assert not torch.equal(a.centroids, kmeans(X, 20, seed=6).centroids)


def test_empty_cluster_repair():
    # 40 points on 4 distinct locations, 8 centroids started on duplicated points: repairs are needed
    X = torch.tensor([[0.0, 0], [10, 0], [0, 10], [10, 10]]).repeat(10, 1) + torch.randn(40, 2) * 0.01
    init = X[:1].repeat(8, 1)
    res = kmeans(X, 8, n_iter=10, init=init)
    assert res.n_repaired > 0
    counts = torch.bincount(res.labels, minlength=8)
    assert int((counts > 0).sum()) >= 4
    assert res.inertia < 0.05


def test_minibatch_reaches_full_batch_quality():
    X = blobs(6000)
    full = kmeans(X, 12, n_iter=30, seed=0)
    mini = kmeans(X, 12, n_iter=200, batch_size=512, seed=0)
    assert mini.inertia <= full.inertia * 1.1


def test_batched_equals_separate():
    X = blobs(2000, 4)
    Y = blobs(2000, 4, seed=1)
    both = kmeans(torch.stack([X, Y]), 8, n_iter=5, init=torch.stack([X[:8], Y[:8]]))
    one = kmeans(X, 8, n_iter=5, init=X[:8])
    torch.testing.assert_close(both.centroids[0], one.centroids, rtol=1e-5, atol=1e-5)


def test_kmeanspp_picks_distinct_points():
    X = blobs(500)[None]
    C = kmeans_plusplus(X, 30, torch.Generator().manual_seed(0))
    assert torch.unique(C[0], dim=0).shape[0] == 30
    lab, dist = sq_dists_min(X, C)
    assert float(dist.min()) == 0.0


def test_bad_arguments():
    X = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="at least as many training vectors as centroids"):
        kmeans(X, 16)
    with pytest.raises(ValueError, match="n_centroids"):
        kmeans(X, 0)
    with pytest.raises(ValueError, match="init"):
        kmeans(X, 2, init="bogus")
    with pytest.raises(ValueError, match="batch_size"):
        kmeans(X, 2, batch_size=0)
    with pytest.raises(ValueError, match="init_trials"):
        kmeans(X, 2, init_trials=0)


def test_greedy_seeding_lowers_the_seeding_potential():
    """More candidates per greedy k-means++ step keep a seeding of lower potential (sum of squared distances
    to the nearest seed), averaged over seeds; every choice seeds distinct points."""
    X = blobs(2000)[None]

    def potential(trials: int, seed: int) -> float:
        C = kmeans_plusplus(X, 40, torch.Generator().manual_seed(seed), n_trials=trials)
        assert torch.unique(C[0], dim=0).shape[0] == 40
        return float(sq_dists_min(X, C)[1].sum())

    one, many = (np.mean([potential(t, s) for s in range(8)]) for t in (1, 7))
    assert many < one
    # kmeans seeds with exactly this procedure (no Lloyd step: its objective is the seeding's potential)
    for trials in (1, 7):
        res = kmeans(X[0], 40, n_iter=0, init_trials=trials, seed=3)
        assert res.inertia == pytest.approx(potential(trials, 3), rel=1e-5)


@pytest.mark.parametrize("k", [32, 128, 256, 200])
def test_argmin_rows_matches_torch_min(k):
    g = torch.Generator().manual_seed(k)
    D = torch.randn(700, k, generator=g)
    D[::7, 5] = D[::7].min(1).values  # exact ties: two entries share the row minimum
    m, i = _argmin_rows(D)
    assert torch.equal(m, D.min(1).values)
    assert torch.equal(D.gather(1, i[:, None]).squeeze(1), m)  # the index points at a minimal entry


def test_sq_dists_min_is_exact_nearest_for_256_centroids():
    X = blobs(3000, 16)[None].repeat(2, 1, 1)
    C = torch.randn(2, 256, 16, generator=torch.Generator().manual_seed(1)) * 3
    lab, dist = sq_dists_min(X, C)
    ref = ((X[:, :, None, :].double() - C[:, None].double()) ** 2).sum(-1)
    best = ref.min(-1).values
    assert float((ref.gather(2, lab[..., None]).squeeze(-1) - best).max()) < 1e-3
    torch.testing.assert_close(dist.double(), best, rtol=1e-4, atol=1e-3)


def test_objective_never_increases_with_many_centroids():
    res = kmeans(blobs(4000, 8), 256, n_iter=12, init="random", seed=1)
    h = res.inertia_history
    assert all(b <= a * (1 + 1e-6) for a, b in zip(h, h[1:], strict=False))
    assert h[-1] < 0.8 * h[0]


def test_batched_equals_separate_with_256_centroids():
    # the product-quantization path: B sub-spaces in one bmm == each sub-space alone, same start
    g = torch.Generator().manual_seed(4)
    X = torch.stack([blobs(1500, 4, seed=s) for s in range(2)])
    init = X[:, torch.randperm(1500, generator=g)[:256]]
    both = kmeans(X, 256, n_iter=4, init=init)
    for b in range(2):
        one = kmeans(X[b], 256, n_iter=4, init=init[b])
        torch.testing.assert_close(both.centroids[b], one.centroids, rtol=1e-5, atol=1e-5)
        assert float((both.labels[b] != one.labels).float().mean()) < 1e-3


@pytest.mark.parametrize("d,k", [(4, 256), (16, 256), (8, 100), (64, 16), (96, 256)])
def test_fused_nearest_centroid_kernel_equals_matrix_product_path(d, k):
    """The small-sub-space kernel (no distance matrix) and the bmm + staged arg-min path pick the same
    centroids and distances, for k not a multiple of 16 and d at both sides of the dispatch limit; on an
    exact tie the kernel takes the lowest index."""
    from quantscope.core import kernels

    g = torch.Generator().manual_seed(d + k)
    X = torch.randn(3, 1001, d, generator=g)  # 1001: a ragged last block of points
    C = torch.randn(3, k, d, generator=g)
    C[:, 7] = C[:, 3]  # duplicate centroids: an exact tie for the points nearest to them
    fused = kernels.nearest_centroid(X, C, (X * X).sum(-1))
    if fused is None:
        pytest.skip("kernels not built")
    with kernels.disabled():
        ref = sq_dists_min(X, C)
    assert float((fused[0] != ref[0]).float().mean()) < 1e-3  # float ordering may flip near-ties only
    torch.testing.assert_close(fused[1], ref[1], rtol=1e-4, atol=1e-4)
    assert not bool((fused[0] == 7).any())  # the tie went to the lower index, 3
    exact = ((X[:, :, None].double() - C[:, None].double()) ** 2).sum(-1)
    picked = exact.gather(2, fused[0][..., None]).squeeze(-1)
    assert float((picked - exact.min(-1).values).max()) < 1e-3
