"""Vector sets for vector quantization: seeded synthetic Gaussian mixtures, and sentence embeddings of
real text quantscope did not write (sentences from Python standard-library docstrings, embedded with
MiniLM and cached as ``.npy`` by ``scripts/make_embeddings.py``)."""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path

import numpy as np

DEFAULT_CACHE = Path(__file__).resolve().parents[2] / "data" / "cache" / "minilm_docstrings.npy"
"""Where ``scripts/make_embeddings.py`` writes the embeddings (git-ignored)."""


def gaussian_mixture(n: int = 100_000, dim: int = 128, n_components: int = 32, *, seed: int = 0,
                     anisotropy: float = 30.0, spread: float = 1.0) -> np.ndarray:
    """(n, dim) float32 draws from a seeded mixture of Gaussians with a shared anisotropic covariance.

    The covariance has eigenvalues decaying geometrically from 1 to 1/anisotropy (standard deviations
    from 1 to anisotropy^-1/2) in a random orthogonal basis, so that the dimensions are correlated and
    unequal (what OPQ is for); the component means are N(0, spread²·I) in that basis, equally weighted.
    The same arguments give the same array.
    """
    for name, v in (("n", n), ("dim", dim), ("n_components", n_components)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not anisotropy >= 1:
        raise ValueError(f"anisotropy must be >= 1 (ratio of the largest to the smallest variance), got {anisotropy}")
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    std = anisotropy ** (-np.arange(dim) / max(dim - 1, 1) / 2)
    means = rng.standard_normal((n_components, dim)) * std * spread
    labels = rng.integers(0, n_components, n)
    z = rng.standard_normal((n, dim)) * std + means[labels]
    return (z @ basis.T).astype(np.float32)


def docstring_sentences(max_sentences: int | None = None, min_chars: int = 30, max_chars: int = 300) -> list[str]:
    """Sentences from the docstrings of the standard library (modules, classes, functions, methods), in a
    fixed order, de-duplicated. Deterministic for a given Python version."""
    names = sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n not in
                   ("antigravity", "this", "idlelib", "turtledemo", "tkinter", "turtle", "lib2to3", "ensurepip"))
    seen: set[str] = set()
    out: list[str] = []
    splitter = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
    for name in names:
        try:
            mod = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - platform-specific modules may fail to import; skip them
            continue
        docs = [mod.__doc__]
        for attr in sorted(vars(mod)):
            obj = vars(mod)[attr]
            if getattr(obj, "__module__", None) != name:
                continue
            docs.append(getattr(obj, "__doc__", None))
            if isinstance(obj, type):
                docs += [getattr(v, "__doc__", None) for k, v in sorted(vars(obj).items()) if not k.startswith("_")]
        for doc in docs:
            if not isinstance(doc, str):
                continue
            for para in re.split(r"\n\s*\n", doc):
                text = " ".join(para.split())
                for sent in splitter.split(text):
                    if (min_chars <= len(sent) <= max_chars and sent not in seen and sent[0].isalpha()
                            and sum(c.isalpha() for c in sent) > 0.6 * len(sent) and ">>>" not in sent):
                        seen.add(sent)
                        out.append(sent)
                        if max_sentences is not None and len(out) >= max_sentences:
                            return out
    return out


def make_docstring_embeddings(path: str | os.PathLike = DEFAULT_CACHE, max_sentences: int = 20_000,
                              batch_size: int = 64, on_progress=None) -> np.ndarray:
    """Embed :func:`docstring_sentences` with MiniLM (offline, local package) and save (n, 384) float32 to
    ``path`` (atomically) with the sentences next to it (``.txt``, one per line); returns the array."""
    import torch

    from .._files import atomic_write_bytes, atomic_write_text
    from ..models.minilm import embed, load_minilm

    sentences = docstring_sentences(max_sentences)
    model, tok = load_minilm()
    parts = []
    with torch.inference_mode():
        for i in range(0, len(sentences), batch_size):
            parts.append(embed(model, tok, sentences[i:i + batch_size]).numpy())
            if on_progress is not None:
                on_progress(f"{i + batch_size}/{len(sentences)}")
    emb = np.concatenate(parts).astype(np.float32)
    import io

    buf = io.BytesIO()
    np.save(buf, emb)
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_text(Path(path).with_suffix(".txt"), "\n".join(sentences) + "\n")
    return emb


def load_docstring_embeddings(path: str | os.PathLike = DEFAULT_CACHE) -> np.ndarray:
    """The cached (n, 384) float32 MiniLM embeddings of standard-library docstring sentences.

    Raises FileNotFoundError naming the script that makes them when the cache is missing.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no cached embeddings at {p}; create them offline with "
                                f"`python scripts/make_embeddings.py` (MiniLM from the 'models' extra)")
    return np.load(p).astype(np.float32, copy=False)
