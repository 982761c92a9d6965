"""Save / load: packed size on disk, bit-exact reload in a fresh process, clear errors."""

import json
import subprocess
import sys

import pytest
import torch

import quantscope as qs
from quantscope.nn.io import packed_bytes
from tests.nn.conftest import DigitsCNN


@pytest.mark.parametrize("recipe", ["w8a8", "w4g32", "nf4", "mxfp4", "fp8", "w8a8-dynamic"])
def test_round_trip_in_a_fresh_process(digits, tmp_path, recipe):
    model, x, _, calib = digits
    q = qs.quantize_model(model, recipe, calib=calib, show_progress=False)
    out = tmp_path / "m"
    written = qs.save(q, out)
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "quantscope.json", "recipe.json"]
    assert abs(written - packed_bytes(q)) < 0.05 * packed_bytes(q) + 8192  # headers and JSON only
    torch.save(x[:64], tmp_path / "x.pt")
    with torch.no_grad():
        expected = q(x[:64])
    code = (f"import torch, quantscope as qs; from tests.nn.conftest import DigitsCNN\n"
            f"m = qs.load({str(out)!r}, DigitsCNN())\n"
            f"x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)\n"
            f"with torch.no_grad(): torch.save(m(x), {str(tmp_path / 'y.pt')!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    got = torch.load(tmp_path / "y.pt", weights_only=True)
    assert torch.equal(got, expected)
    meta = json.loads((out / "quantscope.json").read_text())
    assert meta["recipe"]["name"] == recipe


def test_quantized_model_is_smaller(digits, tmp_path):
    model, _, _, calib = digits
    float_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    for recipe, ratio in (("w8", 3.0), ("w4g32", 4.5)):
        q = qs.quantize_model(model, recipe, calib=calib, show_progress=False)
        assert float_bytes / qs.save(q, tmp_path / recipe) > ratio


def test_load_errors(digits, tmp_path):
    model, _, _, calib = digits
    with pytest.raises(FileNotFoundError):
        qs.load(tmp_path / "nope", DigitsCNN())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a quantscope model directory"):
        qs.load(tmp_path / "empty", DigitsCNN())
    q = qs.quantize_model(model, "w8", show_progress=False)
    qs.save(q, tmp_path / "ok")
    with pytest.raises(ValueError, match="does not fit this model"):
        qs.load(tmp_path / "ok", torch.nn.Sequential(torch.nn.Linear(3, 3)))
    (tmp_path / "ok" / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        qs.load(tmp_path / "ok", DigitsCNN())
    with pytest.raises(ValueError, match="no quantized layer"):
        qs.save(model, tmp_path / "float")
    assert not (tmp_path / "float").exists()
