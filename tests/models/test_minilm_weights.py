"""Accuracy floors on the real MiniLM model (weights only; model quantization comes with issue 4)."""

import pytest
import torch

import quantscope as qs
from quantscope.models.minilm_demo import demo_specs, run_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study():
    specs = demo_specs()
    names = ["int8 per-tensor", "int8 per-channel", "fp8 E4M3 per-channel", "int4 per-group(128)", "NF4 per-group(64)",
             "MXFP4 (E2M1, block 32)"]
    rows, facts = run_study({n: specs[n] for n in names})
    return {r.name: r for r in rows}, facts


def test_storage_is_exact(study):
    rows, facts = study
    assert facts["weights"] == 22_682_112
    n, layers = facts["weights"], facts["layers"]
    assert rows["int8 per-tensor"].bits_per_weight == pytest.approx(8 * (n + 4 * layers) / n, rel=1e-12)
    assert rows["int4 per-group(128)"].bits_per_weight == pytest.approx(4.25, abs=1e-6)
    assert rows["MXFP4 (E2M1, block 32)"].bits_per_weight == pytest.approx(4.25, abs=1e-6)
    assert rows["NF4 per-group(64)"].bits_per_weight == pytest.approx(4.5, abs=1e-6)


def test_guaranteed_bounds_hold_on_every_layer(study):
    rows, _ = study
    assert all(r.bound_holds for r in rows.values())


def test_accuracy_floors(study):
    rows, _ = study
    assert rows["int8 per-channel"].sqnr_db > 40 and rows["int8 per-channel"].embedding_cosine > 0.999
    assert rows["fp8 E4M3 per-channel"].embedding_cosine > 0.997
    # per-channel scales beat one per-tensor scale by a wide margin on this model (outlier rows)
    assert rows["int8 per-channel"].sqnr_db > rows["int8 per-tensor"].sqnr_db + 15
    # at 4 bits, NF4's normal-shaped levels beat uniform int4 on these near-Gaussian weights
    assert rows["NF4 per-group(64)"].sqnr_db > rows["int4 per-group(128)"].sqnr_db
    assert rows["NF4 per-group(64)"].embedding_cosine > 0.96


def test_weight_error_matches_a_direct_computation():
    from quantscope.models.minilm import load_minilm

    model, _ = load_minilm()
    w = model.encoder.layer[0].attention.self.query.weight.detach()
    spec = qs.QuantSpec(qs.int8(), granularity=qs.per_channel(0))
    scale = w.abs().amax(dim=1) / 127
    ref = torch.fake_quantize_per_channel_affine(w, scale, torch.zeros(w.shape[0], dtype=torch.int32), 0, -128, 127)
    assert torch.equal(qs.fake_quantize(w, spec), ref)
