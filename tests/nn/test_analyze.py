"""analyze_model: the per-layer numbers mean what they say."""

import math

import pytest
import torch

import quantscope as qs
from quantscope.nn import LayerRule, quantize_model
from quantscope.nn.analyze import analyze_model, first_tensor


@pytest.fixture(scope="module")
def analyzed(digits):
    model, x, _, calib = digits
    q = quantize_model(model, "w8a8", calib=calib, show_progress=False)
    batches = [x[:128], x[128:256]]
    return model, q, batches, analyze_model(model, q, batches, show_progress=False)


def test_every_layer_is_reported(analyzed):
    _, _, _, a = analyzed
    assert [r.name for r in a.layers] == ["conv1", "conv2", "fc1", "fc2"]
    for r in a.layers:
        assert math.isfinite(r.weight_sqnr_db) and r.weight_sqnr_db > 30
        assert math.isfinite(r.input_sqnr_db) and r.input_sqnr_db > 20
        assert math.isfinite(r.local_output_sqnr_db) and math.isfinite(r.sensitivity_db)
        # error made here can only be carried forward: cumulative never beats local by much
        assert r.cumulative_output_sqnr_db <= r.local_output_sqnr_db + 1.0


def test_predicted_noise_matches_measured(analyzed):
    _, _, _, a = analyzed
    ratios = [r.noise_ratio for r in a.layers]
    assert all(0.4 < v < 2.5 for v in ratios), ratios


def test_sensitivity_is_the_output_sqnr_with_that_layer_alone(analyzed, digits):
    model, q, batches, a = analyzed
    worst = a.ranked()[0]
    others = tuple(r.name for r in a.layers if r.name != worst.name)
    alone = quantize_model(model, qs.recipes.get("w8a8").with_overrides(ignore=others), calib=digits[3],
                           show_progress=False)
    with torch.no_grad():
        ref = torch.cat([first_tensor(model(b)) for b in batches]).double()
        got = torch.cat([first_tensor(alone(b)) for b in batches]).double()
    sqnr = 10 * math.log10(float((ref**2).sum() / ((ref - got) ** 2).sum()))
    assert sqnr == pytest.approx(worst.sensitivity_db, abs=0.01)
    assert all(worst.sensitivity_db <= r.sensitivity_db for r in a.layers)


def test_clipping_shows_up_in_the_input_share(digits):
    model, x, _, calib = digits
    narrow = qs.recipes.get("w8a8").with_overrides(("fc1", LayerRule(
        weight_format=qs.int8(), input_format=qs.int8(), input_calibrator="percentile")))
    q = quantize_model(model, narrow, calib=calib, show_progress=False)
    q.fc1.input_qparams = qs.QParams(q.fc1.input_qparams.scale / 8)  # force heavy clipping
    a = analyze_model(model, q, [x[:128]], sensitivity=False, show_progress=False)
    fc1 = next(r for r in a.layers if r.name == "fc1")
    assert fc1.input_clipping_share > 0.5 and fc1.flag == "clipping"


def test_report_and_table(analyzed, tmp_path):
    _, _, _, a = analyzed
    text = a.table()
    assert "sensitivity dB" in text and "conv1" in text
    from quantscope.report.html import model_report, write_html

    path = tmp_path / "r.html"
    write_html(path, model_report(a, "digits w8a8", [("model", "digits")]))
    html = path.read_text()
    for fig in ("model-sqnr", "model-sensitivity", "model-input-0"):
        assert f'id="{fig}"' in html


def test_bad_analysis_input(digits):
    model, x, _, calib = digits
    with pytest.raises(ValueError, match="no quantized layer"):
        analyze_model(model, model, [x[:4]])
    q = quantize_model(model, "w8", show_progress=False)
    with pytest.raises(ValueError, match="at least one batch"):
        analyze_model(model, q, [])
