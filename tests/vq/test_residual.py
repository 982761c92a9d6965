import numpy as np
import pytest
import torch

from quantscope.vq import ResidualQuantizer, VectorQuantizer, gaussian_mixture
from quantscope.vq.kmeans import kmeans
from quantscope.vq.residual import _sq_err, beam_encode, progressive_kmeans, refine_codebooks


@pytest.fixture(scope="module")
def X():
    return gaussian_mixture(2000, 16, seed=4)


@pytest.fixture(scope="module")
def fitted(X):
    return ResidualQuantizer(3, 5, refine_iter=3).fit(X)


def test_stage_distortion_decreases_and_round_trip(X, fitted):
    d = fitted.stage_distortion_
    assert d[0] > d[1] > d[2]
    final = (fitted.refine_distortion_ or d)[-1]  # refinement only lowers it
    assert final <= d[-1] and fitted.distortion(X) == pytest.approx(final, rel=1e-4)
    codes = fitted.encode(X)
    assert codes.shape == (2000, 3) and fitted.bytes_per_vector == 2  # 15 bits
    xh = fitted.decode(codes)
    assert np.isfinite(xh).all()


def _greedy(X, books):
    res, codes = X.clone(), []
    for book in books:
        j = torch.cdist(res.double(), book.double()).argmin(1)
        codes.append(j)
        res = res - book[j]
    return torch.stack(codes, 1)


def test_beam_one_is_greedy(X, fitted):
    t = torch.from_numpy(X)
    assert torch.equal(beam_encode(t, fitted.codebooks_, 1), _greedy(t, fitted.codebooks_))


def test_beam_never_worse_than_greedy(X):
    rq = ResidualQuantizer(3, 4, beam_size=1).fit(X)
    t = torch.from_numpy(X)
    greedy = rq._decode(beam_encode(t, rq.codebooks_, 1))
    beam = rq._decode(beam_encode(t, rq.codebooks_, 8))
    eg, eb = ((t - greedy) ** 2).sum(1), ((t - beam) ** 2).sum(1)
    assert bool((eb <= eg + 1e-4).all())
    assert float(eb.sum()) < float(eg.sum())


def test_one_stage_plain_kmeans_is_plain_vq(X):
    rq = ResidualQuantizer(1, 5, seed=0, n_iter=25, progressive_steps=1, refine_iter=0).fit(X)
    vq = VectorQuantizer(5, seed=0).fit(X)
    assert torch.equal(rq.codebooks_[0], vq.codebook_)


def test_progressive_kmeans_beats_plain_on_anisotropic_data():
    # one Gaussian, standard deviations 1 .. 1/8: data-point seeds put noise in every dimension
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(4000, 32, generator=g) * torch.logspace(0, -0.9, 32)
    Q = torch.linalg.qr(torch.randn(32, 32, generator=g))[0]
    Y = Z @ Q.T
    prog = progressive_kmeans(Y, 64, steps=8, n_iter=10, seed=0)
    plain = kmeans(Y, 64, n_iter=80, init="random", seed=0).centroids
    obj = [float(torch.cdist(Y, C).min(1).values.pow(2).mean()) for C in (prog, plain)]
    assert obj[0] < obj[1]


def test_progressive_kmeans_shapes_and_determinism(X):
    t = torch.from_numpy(X)
    a = progressive_kmeans(t, 16, steps=4, n_iter=3, seed=1)
    b = progressive_kmeans(t, 16, steps=4, n_iter=3, seed=1)
    assert a.shape == (16, 16) and torch.equal(a, b)


def test_refine_is_least_squares(X, fitted):
    t = torch.from_numpy(X)
    codes = fitted.encode(t)
    books = refine_codebooks(t, codes.long(), fitted.codebooks_)
    before, after = _sq_err(t, fitted.codebooks_, codes.long()), _sq_err(t, books, codes.long())
    assert float(after.sum()) <= float(before.sum()) * (1 + 1e-6)
    # the gradient of the objective vanishes at the least-squares solution (used centroids)
    C = books.clone().requires_grad_(True)
    ((t - ResidualQuantizer._sum(C, codes.long())) ** 2).sum().backward()
    assert float(C.grad.abs().max()) < 1e-2 * float(t.abs().max())


def test_refinement_never_increases_training_distortion(X):
    plain = ResidualQuantizer(3, 5, refine_iter=0).fit(X)
    refined = ResidualQuantizer(3, 5, refine_iter=3).fit(X)
    r = refined.refine_distortion_
    assert all(b < a for a, b in zip([plain.stage_distortion_[-1]] + r, r, strict=False))
    assert refined.distortion(X) <= plain.distortion(X) * (1 + 1e-5)
    assert len(r) >= 1 and r[-1] < plain.stage_distortion_[-1]


@pytest.mark.parametrize("arg,value", [("progressive_steps", 0), ("max_points_per_centroid", 0),
                                       ("refine_iter", -1), ("n_iter", 1.5), ("init", "kmeans++")])
def test_bad_parameters(X, arg, value):
    with pytest.raises(ValueError, match=arg):
        ResidualQuantizer(2, 4, **{arg: value}).fit(X)


def test_block_refinement_lowers_error(X, fitted, monkeypatch):
    import quantscope.vq.residual as residual

    monkeypatch.setattr(residual, "MAX_JOINT_CENTROIDS", 8)  # force the block-coordinate path
    t = torch.from_numpy(X)
    codes = fitted.encode(t).long()
    books = refine_codebooks(t, codes, fitted.codebooks_)
    many = residual._block_refine(t, codes, fitted.codebooks_, passes=50)
    before, after = _sq_err(t, fitted.codebooks_, codes), _sq_err(t, books, codes)
    assert float(after.sum()) <= float(before.sum()) * (1 + 1e-6)
    assert float(_sq_err(t, many, codes).sum()) <= float(after.sum()) * (1 + 1e-6)


def test_too_few_training_vectors(X):
    with pytest.raises(ValueError, match="n_bits"):
        ResidualQuantizer(2, 12).fit(X)
