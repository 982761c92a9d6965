"""VQLayer: straight-through (EMA and gradient codebooks) and NSVQ estimators, and a tiny VQ autoencoder."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quantscope.vq import VQLayer


def brute_nearest(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Squared distance of each row of x (N, D) to its nearest codeword, by broadcasting."""
    return ((x[:, None, :].double() - codebook[None].double()) ** 2).sum(-1).min(1).values


def chosen_distance(x: torch.Tensor, codebook: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    return ((x.double() - codebook[codes].double()) ** 2).sum(-1)


@pytest.fixture
def one_thread():
    """The tensors are tiny: extra intra-op threads only add synchronisation (20x slower on a busy 2-core box)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("estimator", ["ste", "nsvq"])
@pytest.mark.parametrize("shape", [(8,), (5, 8), (2, 3, 4, 8)])
def test_shapes_and_dtype_preserved(estimator, shape, gen):
    layer = VQLayer(16, 8, estimator=estimator)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    for train in (True, False):
        layer.train(train)
        out = layer(x)
        assert out.quantized.shape == x.shape and out.quantized.dtype == torch.float64
        assert out.codes.shape == x.shape[:-1] and out.codes.dtype == torch.int64
        assert out.loss.shape == out.perplexity.shape == out.usage.shape == out.distortion.shape == ()


@pytest.mark.parametrize("ema_decay", [0.99, None])
def test_ste_gradient_is_identity_and_output_is_nearest_codeword(ema_decay, gen):
    layer = VQLayer(32, 6, estimator="ste", ema_decay=ema_decay, dead_code_steps=None)
    x = torch.randn(4, 50, 6, generator=gen, requires_grad=True)
    out = layer(x)
    codebook = layer.codebook.detach()  # after the EMA step the codebook moved; check against the lookup's one
    weights = torch.randn(x.shape, generator=gen)
    (out.quantized * weights).sum().backward()
    assert torch.equal(x.grad, weights)  # exactly the identity
    layer.eval()
    xe = x.detach()
    oe = layer(xe)
    flat = xe.reshape(-1, 6)
    d_chosen = chosen_distance(flat, codebook, oe.codes.reshape(-1))
    assert torch.all(d_chosen <= brute_nearest(flat, codebook) + 1e-5)
    torch.testing.assert_close(oe.quantized, codebook[oe.codes], atol=1e-6, rtol=0)


def test_ste_losses_and_which_parameters_get_gradient(gen):
    x = torch.randn(200, 4, generator=gen)
    ema = VQLayer(8, 4, estimator="ste", commitment=0.25)
    assert not ema.codebook.requires_grad
    grad_cb = VQLayer(8, 4, estimator="ste", commitment=0.25, ema_decay=None, dead_code_steps=None, init="normal")
    out = grad_cb(x)
    q = grad_cb.codebook.detach()[out.codes]
    mse = float(((x - q) ** 2).mean())
    assert math.isclose(float(out.loss.detach()), 1.25 * mse, rel_tol=1e-5)  # commitment + codebook loss
    assert math.isclose(float(out.distortion), mse, rel_tol=1e-5)
    out.loss.backward()
    used = torch.bincount(out.codes, minlength=8) > 0
    row_has_grad = grad_cb.codebook.grad.abs().sum(1) > 0
    assert torch.equal(row_has_grad, used)  # only the codewords that were picked learn
    out_ema = ema(x)
    assert math.isclose(float(out_ema.loss), 0.25 * float(((x - out_ema.quantized.detach()) ** 2).mean()),
                        rel_tol=1e-4)


def test_nsvq_eval_output_is_exactly_the_nearest_codeword(gen):
    layer = VQLayer(64, 5, estimator="nsvq").eval()
    x = torch.randn(3, 300, 5, generator=gen)
    out = layer(x)
    assert torch.equal(out.quantized, layer.codebook.detach()[out.codes])
    flat = x.reshape(-1, 5)
    assert torch.all(chosen_distance(flat, layer.codebook.detach(), out.codes.reshape(-1))
                     <= brute_nearest(flat, layer.codebook.detach()) + 1e-5)
    assert float(out.loss) == 0.0


def test_nsvq_noise_has_the_norm_of_the_quantization_error_in_a_uniform_direction(gen):
    torch.manual_seed(0)
    layer = VQLayer(16, 8, estimator="nsvq", dead_code_steps=None, init="normal").train()
    x = torch.randn(4000, 8, generator=gen, requires_grad=True)
    out = layer(x)
    q = layer.codebook.detach()[out.codes]
    noise = out.quantized.detach() - x.detach()
    torch.testing.assert_close(noise.norm(dim=1), (x.detach() - q).norm(dim=1), rtol=2e-5, atol=1e-6)
    direction = noise / noise.norm(dim=1, keepdim=True)
    # a uniform direction on the sphere: mean ~ 0 (std 1/sqrt(n*D) per axis), second moment I/D
    assert float(direction.mean(0).abs().max()) < 5 / math.sqrt(4000 * 8)
    torch.testing.assert_close(direction.T @ direction / 4000, torch.eye(8) / 8, atol=0.02, rtol=0)
    # not the true error direction (which would be STE's forward), and new noise on each call
    cos = (direction * (q - x.detach())).sum(1) / (q - x.detach()).norm(dim=1)
    assert float(cos.abs().mean()) < 0.5
    assert not torch.equal(layer(x).quantized, out.quantized)
    # the codebook learns through the noise path; x's gradient is not the identity
    out.quantized.sum().backward()
    used = torch.bincount(out.codes, minlength=16) > 0
    assert torch.all(layer.codebook.grad[used].abs().sum(1) > 0)
    assert not torch.equal(x.grad, torch.ones_like(x))


@settings(max_examples=40)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(2, 12), st.integers(0, 2**31 - 1))
def test_nsvq_noise_norm_property(n, dim, num_codes, seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = VQLayer(num_codes, dim, estimator="nsvq", init="normal", dead_code_steps=None)
    x = torch.randn(n, dim, generator=g) * 3
    out = layer(x)
    q = layer.codebook.detach()[out.codes]
    err = (x - q).norm(dim=1)
    torch.testing.assert_close((out.quantized - x).norm(dim=1), err, rtol=1e-5, atol=1e-6)
    assert torch.all(chosen_distance(x, layer.codebook.detach(), out.codes) <= brute_nearest(x, layer.codebook) + 1e-5)


def test_ema_update_follows_the_formula_and_moves_codewords_toward_assigned_means(gen, one_thread):
    layer = VQLayer(4, 2, estimator="ste", ema_decay=0.9, init="normal", dead_code_steps=None, eps=1e-5)
    start = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
    layer.codebook.data.copy_(start)
    layer.ema_sum.copy_(start)
    x = torch.cat([start[k] + 0.8 * torch.rand(25 * (k + 1), 2, generator=gen) for k in range(4)])
    codes = layer(x).codes
    counts = torch.bincount(codes, minlength=4).float()
    assert counts.tolist() == [25, 50, 75, 100]
    means = torch.stack([x[codes == k].mean(0) for k in range(4)])
    size = 0.9 * 1 + 0.1 * counts
    total = size.sum()
    smoothed = (size + 1e-5) / (total + 4e-5) * total
    expected = (0.9 * start + 0.1 * counts[:, None] * means) / smoothed[:, None]
    torch.testing.assert_close(layer.codebook.detach(), expected, rtol=1e-6, atol=1e-6)
    assert torch.all((layer.codebook.detach() - means).norm(dim=1) < 0.8 * (start - means).norm(dim=1))
    for _ in range(120):  # repeated on the same data, every codeword converges to its cell's mean
        layer(x)
    torch.testing.assert_close(layer.codebook.detach(), means, atol=1e-3, rtol=0)


def test_eval_changes_no_state(gen):
    layer = VQLayer(8, 3, estimator="ste")
    layer(torch.randn(64, 3, generator=gen))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    layer.eval()
    layer(torch.randn(64, 3, generator=gen) * 10)
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_data_init_picks_distinct_batch_vectors(init, gen):
    torch.manual_seed(0)
    layer = VQLayer(16, 3, estimator="nsvq", init=init)
    assert not bool(layer.initialized)
    x = torch.randn(100, 3, generator=gen)
    layer(x)
    assert bool(layer.initialized)
    cb = layer.codebook.detach()
    assert torch.all(brute_nearest(cb, x) == 0)  # every codeword is a batch vector
    assert torch.unique(cb, dim=0).shape[0] == 16
    layer2 = VQLayer(16, 3, init=init)  # fewer vectors than codes still works
    layer2(torch.randn(5, 3, generator=gen))
    assert torch.isfinite(layer2.codebook).all()


def test_kmeanspp_spreads_codewords_over_clusters(gen):
    torch.manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    x = torch.cat([c + torch.randn(500, 2, generator=gen) for c in centers])
    layer = VQLayer(4, 2, init="kmeans++")
    layer.initialize(x)
    # one codeword per cluster: each center has a codeword within a few units
    assert float(brute_nearest(centers, layer.codebook.detach()).max()) < 25.0


def test_dead_codes_are_reseeded_from_batch_vectors(gen):
    layer = VQLayer(8, 2, estimator="nsvq", init="normal", dead_code_steps=3)
    layer.codebook.data[5] = torch.tensor([1e3, 1e3])  # never the nearest
    x = torch.randn(64, 2, generator=gen)
    for step in range(3):
        layer(x)
        assert layer.codebook.detach()[5, 0] == 1e3 and int(layer.steps_unused[5]) == step + 1
    layer(x)  # the 4th step sees 3 unused steps and re-seeds code 5 before its lookup
    assert float(brute_nearest(layer.codebook.detach()[5:6], x)) == 0.0
    assert int(layer.codes_replaced) >= 1


def test_perplexity_and_usage(gen):
    layer = VQLayer(4, 2, init="normal", dead_code_steps=None).eval()
    layer.codebook.data.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    one = layer(torch.zeros(10, 2))
    assert math.isclose(float(one.perplexity), 1.0) and math.isclose(float(one.usage), 0.25)
    even = layer(layer.codebook.detach().repeat(5, 1))
    assert math.isclose(float(even.perplexity), 4.0, rel_tol=1e-6) and float(even.usage) == 1.0


def test_encode_decode_round_trip(gen):
    layer = VQLayer(10, 4, init="normal")
    x = torch.randn(2, 7, 4, generator=gen)
    codes = layer.encode(x)
    assert codes.shape == (2, 7)
    torch.testing.assert_close(layer.decode(codes), layer.eval()(x).quantized, atol=1e-6, rtol=0)
    assert torch.equal(layer.encode(layer.decode(codes)), codes)


def _few_steps(estimator: str) -> list[torch.Tensor]:
    torch.manual_seed(0)
    layer = VQLayer(8, 3, estimator=estimator, dead_code_steps=2)
    g = torch.Generator().manual_seed(1)
    outs = []
    for _ in range(5):
        out = layer(torch.randn(32, 3, generator=g))
        outs.append(out.quantized.detach())
    return [*outs, layer.codebook.detach().clone()]


@pytest.mark.parametrize("estimator", ["ste", "nsvq"])
def test_deterministic_with_a_seed(estimator):
    a, b = _few_steps(estimator), _few_steps(estimator)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_bad_input_gives_clear_errors():
    layer = VQLayer(8, 4)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\).*got shape \(3, 5\)"):
        layer(torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\)"):
        layer(torch.tensor(1.0))
    bad = torch.zeros(3, 4)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"1 NaN/Inf.*\(1, 2\)"):
        layer(bad)
    with pytest.raises(ValueError, match="empty"):
        layer(torch.zeros(0, 4))
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.zeros(3, 4, dtype=torch.int32))
    with pytest.raises(TypeError, match="torch.Tensor"):
        layer(np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"codes must be in \[0, 8\)"):
        layer.decode(torch.tensor([0, 8]))
    with pytest.raises(TypeError, match="integer"):
        layer.decode(torch.tensor([0.0]))
    for kwargs, message in [(dict(num_codes=1), "num_codes"), (dict(dim=0), "dim"),
                            (dict(estimator="gumbel"), "estimator"),
                            (dict(commitment=-1.0), "commitment"), (dict(ema_decay=1.0), "ema_decay"),
                            (dict(init="zeros"), "init"), (dict(dead_code_steps=0), "dead_code_steps"),
                            (dict(eps=0.0), "eps")]:
        args = dict(num_codes=8, dim=4) | kwargs
        with pytest.raises(ValueError, match=message):
            VQLayer(**args)


# -- a tiny VQ autoencoder on scikit-learn's digits ---------------------------------------------------------

LATENTS, CODES, DIM, STEPS = 4, 32, 8, 600


class TinyVQAE(torch.nn.Module):
    """64 pixels -> MLP -> 4 vectors of dim 8 -> VQ (32 codes: 20 bits per image) -> MLP -> 64 pixels."""

    def __init__(self, estimator: str) -> None:
        super().__init__()
        self.enc = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, LATENTS * DIM))
        self.vq = VQLayer(CODES, DIM, estimator=estimator)
        self.dec = torch.nn.Sequential(torch.nn.Linear(LATENTS * DIM, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64),
                                       torch.nn.Sigmoid())

    def forward(self, x):
        out = self.vq(self.enc(x).reshape(-1, LATENTS, DIM))
        return self.dec(out.quantized.reshape(-1, LATENTS * DIM)), out


def held_out(model, x):
    model.eval()
    with torch.no_grad():
        y, out = model(x)
    model.train()
    return float(((y - x) ** 2).mean()), torch.unique(out.codes).numel() / CODES, float(out.perplexity)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))]
    return x[:1437], x[1437:]


@pytest.mark.parametrize("estimator", ["ste", "nsvq"])
def test_tiny_vq_autoencoder_learns_digits(estimator, digits, one_thread):
    train, test = digits
    torch.manual_seed(0)
    model = TinyVQAE(estimator)
    untrained_mse, _, _ = held_out(model, test)
    mean_image_mse = float(((test - train.mean(0)) ** 2).mean())
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        x = train[torch.randint(len(train), (128,), generator=g)]
        y, out = model(x)
        loss = ((y - x) ** 2).mean() + out.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    mse, usage, perplexity = held_out(model, test)
    # measured (seed 0): untrained 0.179, mean image 0.074; trained 0.0238 (ste) / 0.0252 (nsvq), all 32 codes
    # used, perplexity 26.3 / 28.8
    assert mse < 0.25 * untrained_mse
    assert mse < 0.5 * mean_image_mse  # far better than the best constant image: the codes carry the digit
    assert usage >= 0.75
    assert perplexity > CODES / 2
