"""`quantscope quantize` / `analyze`: the main job from the command line."""

import json

import pytest
import torch

from quantscope.cli import main


def test_quantize_module_function_model(tmp_path, capsys):
    out, report = tmp_path / "m", tmp_path / "r.html"
    assert main(["quantize", "tests.nn.cnn_factory:digits_cnn", "--recipe", "w8a8", "--out", str(out), "--report",
                 str(report), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "compression" in text and "sensitive layer #1" in text and "wall time" in text
    assert (out / "model.safetensors").exists() and 'id="model-sensitivity"' in report.read_text()


def test_analyze_writes_no_model(tmp_path, capsys):
    x = torch.rand(64, 1, 8, 8)
    torch.save(x, tmp_path / "calib.pt")
    assert main(["analyze", "tests.nn.cnn_factory:bare_model", "--recipe", "w4g32", "--calib",
                 str(tmp_path / "calib.pt"), "--batch-size", "16", "--quiet"]) == 0
    assert "layers by sensitivity" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [tmp_path / "calib.pt"]


def test_recipe_from_file(tmp_path, capsys):
    from quantscope.nn import recipes

    path = tmp_path / "r.json"
    r = recipes.get("w8").to_dict()
    r["name"] = "custom-w8"
    path.write_text(json.dumps(r))
    assert main(["analyze", "tests.nn.cnn_factory:digits_cnn", "--recipe", str(path), "--quiet"]) == 0
    assert "custom-w8" in capsys.readouterr().out


@pytest.mark.parametrize("args, words", [
    (["quantize", "minilm", "--recipe", "w9a9"], "built-in recipes: w8a8"),
    (["quantize", "no_such_module:f"], "cannot import"),
    (["quantize", "nothing-like-this"], "unknown model"),
    (["quantize", "tests.nn.cnn_factory:bare_model", "--recipe", "w8a8"], "without input batches"),
    (["analyze", "tests.nn.cnn_factory:digits_cnn", "--recipe", "missing.yaml"], "does not exist"),
])
def test_bad_input_exit_2(args, words, capsys):
    assert main(args + ["--quiet"]) == 2
    assert words in capsys.readouterr().err


@pytest.mark.slow
def test_quantize_minilm(tmp_path, capsys):
    assert main(["quantize", "minilm", "--recipe", "w8", "--out", str(tmp_path / "m"), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "embedding cosine, mean" in text and "3.9" in text  # ~3.9x smaller
