"""`quantscope tensor FILE`: every file type, reports written, bad input answered with exit code 2."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from quantscope.cli import main


@pytest.fixture
def files(tmp_path):
    g = torch.Generator().manual_seed(0)
    paths = {}
    paths["st"] = tmp_path / "m.safetensors"
    save_file({"w1": torch.randn(64, 128, generator=g), "w2": torch.randn(32, 64, generator=g) * 3,
               "ids": torch.arange(5)}, str(paths["st"]))
    paths["npy"] = tmp_path / "a.npy"
    np.save(paths["npy"], np.random.default_rng(0).standard_normal((100, 20)).astype(np.float32))
    paths["npz"] = tmp_path / "b.npz"
    np.savez(paths["npz"], a=np.ones((4, 4), np.float32) * np.arange(4), b=np.arange(3))
    paths["pt"] = tmp_path / "s.pt"
    torch.save({"layer": {"weight": torch.randn(16, 8, generator=g)}, "step": 3}, paths["pt"])
    return paths


@pytest.mark.parametrize("kind", ["st", "npy", "npz", "pt"])
def test_every_file_type(files, kind, capsys):
    assert main(["tensor", str(files[kind]), "--format", "int4", "--calibrator", "mse", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "SQNR dB" in out and "bound holds" in out


def test_reports_written(files, tmp_path, capsys):
    html, js = tmp_path / "out" / "r.html", tmp_path / "out" / "r.json"
    assert main(["tensor", str(files["st"]), "--format", "fp8_e4m3", "--granularity", "channel:0", "--html",
                 str(html), "--json", str(js), "--quiet"]) == 0
    data = json.loads(js.read_text())
    assert sorted(data["tensors"]) == ["w1", "w2"]  # the int tensor is skipped
    assert data["tensors"]["w1"]["decomposition"]["clipping_share"] >= 0
    text = html.read_text()
    assert text.count('class="plot"') >= 8 and "http" not in text.split("<body>")[1]
    assert sorted(p.name for p in html.parent.iterdir()) == ["r.html", "r.json"]


def test_single_tensor_prints_the_full_report(files, capsys):
    assert main(["tensor", str(files["st"]), "--tensor", "w2", "--format", "nf4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "granular share of MSE" in out and "gap to Lloyd-Max" in out


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "missing.npy", "no such file"),
    (lambda p: _pickled_npy(p), "pickled Python objects"),
    (lambda p: _code_pt(p), "pickled code"),
    (lambda p: _write(p / "c.safetensors", b"\x10" + b"\x00" * 7 + b"{garbage"), "not a readable safetensors"),
    (lambda p: _write(p / "c.npz", b"PK\x03\x04 not a zip"), "not a readable .npz"),
    (lambda p: _write(p / "c.pt", b"junk"), "not a readable torch file"),
    (lambda p: _ints_only(p), "no non-empty floating-point tensor"),
    (lambda p: _write(p / "x.csv", b"1,2"), "unsupported file type"),
])
def test_bad_files_get_one_line_and_exit_2(tmp_path, make, words, capsys):
    path = make(tmp_path)
    out_html, out_json = tmp_path / "o.html", tmp_path / "o.json"
    assert main(["tensor", str(path), "--html", str(out_html), "--json", str(out_json), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and err.count("\n") == 0
    assert not out_html.exists() and not out_json.exists()


def test_bad_options_exit_2(files, capsys):
    assert main(["tensor", str(files["st"]), "--format", "int99", "--quiet"]) == 2
    assert "bits must be in [1, 16]" in capsys.readouterr().err
    assert main(["tensor", str(files["st"]), "--format", "fp9", "--quiet"]) == 2
    assert "unknown format" in capsys.readouterr().err
    assert main(["tensor", str(files["st"]), "--granularity", "group:1000", "--quiet"]) == 2
    assert "larger than axis" in capsys.readouterr().err
    assert main(["tensor", str(files["st"]), "--granularity", "rows", "--quiet"]) == 2
    assert "bad granularity" in capsys.readouterr().err
    assert main(["tensor", str(files["st"]), "--tensor", "nope", "--quiet"]) == 2
    assert "no tensor named nope" in capsys.readouterr().err


def _write(path, data):
    path.write_bytes(data)
    return path


def _pickled_npy(p):
    path = p / "o.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return path


class Payload:
    pass


def _code_pt(p):
    path = p / "e.pt"
    torch.save({"x": Payload()}, path)
    return path


def _ints_only(p):
    path = p / "i.safetensors"
    save_file({"ids": torch.arange(4)}, str(path))
    return path
