"""``quantscope vectors EMB.npy --pq 16x8 [--opq] [--queries Q.npy] [--html report.html]``: vector quantization
of an embedding file with the error view and, with queries, ADC search recall."""

from __future__ import annotations

import argparse
import re
import sys
import time


def _parse_pq(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not m or int(m.group(1)) < 1 or not 1 <= int(m.group(2)) <= 16:
        raise argparse.ArgumentTypeError(f"--pq must be MxBITS (sub-spaces x bits per code, bits 1..16), e.g. "
                                         f"16x8, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _load(path: str, name: str):
    import numpy as np

    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{name}: cannot read {path!r} as a .npy array ({exc})") from exc
    if arr.dtype.kind != "f":
        raise ValueError(f"{name}: {path!r} holds {arr.dtype} values; vectors must be floating point")
    return arr.astype(np.float32, copy=False)


def cmd_vectors(args: argparse.Namespace) -> int:
    import numpy as np

    from .report.progress import progress
    from .report.tables import render_table
    from .vq.analysis import error_report, gaussian_vq_vs_scalar, rate_sweep
    from .vq.opq import OptimizedProductQuantizer
    from .vq.pq import ProductQuantizer
    from .vq.search import ADCIndex, exact_search, recall_at_k

    try:
        X = _load(args.file, "EMB")
        Q = _load(args.queries, "--queries") if args.queries else None
        if Q is not None and (Q.ndim != 2 or X.ndim != 2 or Q.shape[1] != X.shape[1]):
            raise ValueError(f"--queries has shape {Q.shape} but the vectors have shape {X.shape}; queries need "
                             f"the same dimension")
        m, bits = args.pq
        rng = np.random.default_rng(args.seed)
        train = X if len(X) <= args.train else X[rng.choice(len(X), args.train, replace=False)]

        def make(b: int, prog: bool = False):
            cls = OptimizedProductQuantizer if args.opq else ProductQuantizer
            return cls(m, b, seed=args.seed, progress=prog)

        t0 = time.perf_counter()
        q = make(bits, not args.quiet).fit(train)
        train_s = time.perf_counter() - t0
        name = f"{'OPQ' if args.opq else 'PQ'} {m}x{bits}"
        rep = error_report(q, X, name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = [("quantizer", name), ("vectors", rep.n_vectors), ("dimension", rep.dim),
               ("training vectors", len(train)), ("bytes per vector", rep.bytes_per_vector),
               ("bits per dimension", rep.bits_per_dim), ("compression vs float32", rep.compression_ratio),
               ("MSE per vector", rep.mse), ("MSE per dimension", rep.mse_per_dim), ("SQNR dB", rep.sqnr_db),
               ("mean codebook utilization", sum(u.utilization for u in rep.usage) / len(rep.usage)),
               ("mean perplexity", sum(u.perplexity for u in rep.usage) / len(rep.usage)),
               ("train seconds", train_s)]
    print(render_table(f"vector quantization of {args.file}", ["metric", "value"], summary))
    recall_rows = []
    if Q is not None:
        codes = q.encode(X)
        for metric in ("l2", "ip"):
            _, truth = exact_search(X, Q, 10, metric)
            t0 = time.perf_counter()
            _, found = ADCIndex(q, metric).add_codes(codes).search(Q, 10)
            ms = (time.perf_counter() - t0) * 1000 / len(Q)
            recall_rows.append((metric, recall_at_k(found, truth, 1), recall_at_k(found[:, :10], truth, 10)
                                if found.shape[1] >= 10 else float("nan"), ms))
        print(render_table("ADC search vs exact search", ["metric", "recall@1", "recall@10", "ms/query"],
                           recall_rows))
    if args.html:
        from .report.html import write_html
        from .report.vq_report import vectors_report

        settings = [b for b in (2, 4, 6, 8) if 2**b <= len(train)]
        with progress(len(settings), "rate sweep", enabled=not args.quiet) as advance:
            sweep = rate_sweep(train, lambda b: make(b), settings, X, label=lambda b: f"{name.split()[0]} {m}x{b}",
                               on_progress=advance)
        gauss = gaussian_vq_vs_scalar(2, (1, 2, 3), n_train=20_000, n_test=20_000, seed=args.seed)
        write_html(args.html, vectors_report(rep, f"quantscope vectors: {args.file}", summary, recall_rows, sweep,
                                             gauss))
        print(f"wrote {args.html}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("vectors", help="product-quantize an embedding file (.npy): distortion per dimension and "
                                       "sub-space, codebook usage, ADC search recall, rate-distortion view")
    v.add_argument("file", help="a .npy file of shape (n_vectors, dim), float")
    v.add_argument("--pq", type=_parse_pq, default=(16, 8), metavar="MxBITS",
                   help="sub-spaces x bits per code, e.g. 16x8 (16 bytes per vector); default 16x8")
    v.add_argument("--opq", action="store_true", help="learn a rotation first (optimized PQ)")
    v.add_argument("--queries", metavar="Q.npy", help="query vectors: report recall@1/@10 of ADC search (L2, IP)")
    v.add_argument("--html", metavar="PATH", help="write a self-contained HTML report with plots")
    v.add_argument("--train", type=int, default=65_536, help="at most this many training vectors (random subset)")
    v.add_argument("--seed", type=int, default=0, help="seed of k-means and the training subset")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.set_defaults(func=cmd_vectors)
