"""SmoothQuant: the identity (x/s)·(W·s)ᵀ = x·Wᵀ, the factors' balancing property, the α search, and
smoothing in quantize_model (it lowers the output error of a layer with outlier input channels; saved and
loaded with the model)."""

import pytest
import torch

import quantscope as qs
from quantscope.algorithms.smoothquant import (
    channel_absmax,
    search_alpha,
    smooth_input,
    smooth_weight,
    smoothing_scales,
)


def outlier_data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 64, generator=g)
    x[:, :3] *= 40.0  # three outlier channels, as in transformer LayerNorm outputs
    w = torch.randn(32, 64, generator=g) * 0.1
    return x, w


def test_identity_and_balance():
    x, w = outlier_data()
    s = smoothing_scales(channel_absmax(x, -1), channel_absmax(w, 1), 0.5)
    assert torch.allclose(smooth_input(x, s, -1) @ smooth_weight(w, s).t(), x @ w.t(), rtol=1e-4, atol=1e-4)
    # alpha 0.5 equalizes the per-channel maxima of the two operands
    assert torch.allclose(channel_absmax(smooth_input(x, s, -1), -1), channel_absmax(smooth_weight(w, s), 1),
                          rtol=1e-4)
    with pytest.raises(ValueError, match="alpha"):
        smoothing_scales(channel_absmax(x, -1), channel_absmax(w, 1), 1.5)


def test_search_alpha_beats_no_smoothing():
    x, w = outlier_data()
    ispec = qs.QuantSpec(qs.int8(), granularity=qs.per_token())
    wspec = qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0))
    ref = x @ w.t()
    plain = ((qs.fake_quantize(x, ispec) @ qs.fake_quantize(w, wspec).t() - ref) ** 2).sum()
    alpha, s = search_alpha(x, [w], ispec, wspec, channel_absmax(x, -1))
    smoothed = ((qs.fake_quantize(x / s, ispec) @ qs.fake_quantize(w * s, wspec).t() - ref) ** 2).sum()
    assert 0.3 <= alpha <= 0.9 and smoothed < 0.5 * plain


def test_quantize_model_smoothing_lowers_error_and_round_trips(tmp_path):
    x, w = outlier_data()
    model = torch.nn.Sequential(torch.nn.Linear(64, 32)).eval()
    with torch.no_grad():
        model[0].weight.copy_(w)
    base = qs.recipes.get("w8a8-dynamic").default
    import dataclasses

    plain = qs.quantize_model(model, qs.Recipe("p", base), show_progress=False)
    smooth = qs.quantize_model(model, qs.Recipe("s", dataclasses.replace(base, smooth_alpha="auto")),
                               calib=[x[:256], x[256:]], show_progress=False)
    with torch.no_grad():
        ref = model(x)
        err_plain, err_smooth = ((plain(x) - ref) ** 2).sum(), ((smooth(x) - ref) ** 2).sum()
    assert err_smooth < 0.5 * err_plain
    qs.save(smooth, tmp_path / "m")
    loaded = qs.load(tmp_path / "m", torch.nn.Sequential(torch.nn.Linear(64, 32)).eval())
    with torch.no_grad():
        assert torch.equal(loaded(x), smooth(x))
    with pytest.raises(ValueError, match="calib"):
        qs.quantize_model(model, qs.Recipe("s", dataclasses.replace(base, smooth_alpha=0.5)), show_progress=False)
