import json
import subprocess
import sys

import pytest

from quantscope.cli import main


def test_formats_lists_every_builtin(capsys):
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    for name in ("int4", "fp8_e4m3", "mxfp4", "nf4", "sfix16_En12", "bf16"):
        assert name in out


def test_help_and_version():
    out = subprocess.run([sys.executable, "-m", "quantscope", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout and "formats" in out.stdout
    out = subprocess.run([sys.executable, "-m", "quantscope", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("quantscope ")


def test_demo_rejects_unknown_format(capsys):
    assert main(["demo", "--formats", "int3 magic", "--quiet"]) == 2
    assert "unknown demo format" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_on_minilm_writes_json(tmp_path, capsys):
    path = tmp_path / "out" / "demo.json"
    assert main(["demo", "--formats", "int8 per-channel", "int4 per-group(128)", "--quiet", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "int8 per-channel" in out and "embedding cosine" in out
    data = json.loads(path.read_text())
    assert [r["name"] for r in data["rows"]] == ["int8 per-channel", "int4 per-group(128)"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["demo.json"]
