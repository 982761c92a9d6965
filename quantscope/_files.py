"""Writing files so that nothing is ever left half-written: a temporary file in the same folder,
then an atomic rename."""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``; creates the folder; on any error no file is left behind."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename;
    creates the folder; on any error no file is left behind."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".quantscope-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that strict JSON can hold: non-finite floats (inf, nan) become strings, tuples
    become lists, dicts and lists are copied recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """``data`` as indented strict JSON (see :func:`json_safe`), written atomically to ``path``."""
    atomic_write_text(path, json.dumps(json_safe(data), indent=2))
