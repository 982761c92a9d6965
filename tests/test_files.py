"""Atomic JSON: strict JSON (no bare Infinity/NaN), and nothing left behind when serialization fails."""

import json
import math
import os

import pytest

from quantscope._files import atomic_write_json, json_safe


def test_json_safe_makes_strict_json(tmp_path):
    data = {"sqnr_db": math.inf, "rows": [(1.0, -math.inf), {"x": math.nan}], "n": 3}
    assert json_safe(data) == {"sqnr_db": "inf", "rows": [[1.0, "-inf"], {"x": "nan"}], "n": 3}
    path = tmp_path / "out" / "r.json"
    atomic_write_json(path, data)
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["sqnr_db"] == "inf"


def test_atomic_write_json_leaves_nothing_on_error(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "r.json", {"bad": object()})
    assert os.listdir(tmp_path) == []
