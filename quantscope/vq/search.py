"""Exhaustive search over codes with asymmetric distance computation (ADC), exact search, recall@k.

ADC (Jégou et al. 2011): the query stays in float; for every code table m and centroid j a lookup table
holds ``||q_m − c_mj||²`` (L2, when the distance splits over disjoint sub-spaces: VQ, PQ, OPQ, SQ) or
``q·c_mj`` (inner product, every additive quantizer); the distance to a database item is the sum of
its M table entries, gathered for all items at once as a sparse one-hot (CSR) x dense product. For
additive codes whose L2 distance does not split (residual VQ, NEQ) ``||q − x̂||² = ||q||² − 2·q·x̂ + ||x̂||²``
with ``||x̂||²`` computed once from the codes (no extra stored bytes). The result equals exhaustive search
over the decoded vectors up to float32 rounding.

Distances are returned as FAISS does: squared L2 distances (ascending) or inner products (descending).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from .base import BaseVectorQuantizer, as_matrix, chunk_rows

METRICS = ("l2", "ip")
DB_CHUNK = 65536


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be 'l2' (squared Euclidean) or 'ip' (inner product), got {metric!r}")
    return metric


def _check_k(k: int, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return min(k, n)


def _merge_topk(best: tuple[torch.Tensor, torch.Tensor] | None, scores: torch.Tensor, offset: int, k: int,
                largest: bool) -> tuple[torch.Tensor, torch.Tensor]:
    vals, idx = scores.topk(min(k, scores.shape[1]), dim=1, largest=largest)
    idx = idx + offset
    if best is not None:
        vals, idx = torch.cat([best[0], vals], 1), torch.cat([best[1], idx], 1)
        order = vals.topk(min(k, vals.shape[1]), dim=1, largest=largest).indices
        vals, idx = vals.gather(1, order), idx.gather(1, order)
    return vals, idx


def exact_search(base: Any, queries: Any, k: int, metric: str = "l2") -> tuple[torch.Tensor, torch.Tensor]:
    """Brute-force top-k of float vectors: (distances (nq, k) float32, ids (nq, k) int64)."""
    _check_metric(metric)
    B, _ = as_matrix(base, "base")
    Q, _ = as_matrix(queries, "queries", B.shape[1])
    k = _check_k(k, B.shape[0])
    qn = (Q * Q).sum(1, keepdim=True)
    best = None
    for s in range(0, B.shape[0], DB_CHUNK):
        b = B[s:s + DB_CHUNK]
        ip = Q @ b.T
        scores = ip if metric == "ip" else (qn - 2 * ip + (b * b).sum(1)).clamp_min(0)
        best = _merge_topk(best, scores, s, k, largest=metric == "ip")
    return best


def _one_hot_csr(codes: torch.Tensor, K: int) -> torch.Tensor:
    n, m = codes.shape
    cols = (codes + torch.arange(m) * K).reshape(-1)
    crow = torch.arange(0, n * m + 1, m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow, cols, torch.ones(n * m), size=(n, m * K))


def table_sums(tables: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``out[q, i] = Σ_m tables[q, m, codes[i, m]]`` for (nq, M, K) tables and (n, M) codes: (nq, n)."""
    nq, m, K = tables.shape
    flat = tables.reshape(nq, m * K).T.contiguous()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (_one_hot_csr(codes.long().cpu(), K) @ flat.cpu()).T.to(tables.device)


@dataclass
class ADCIndex:
    """A code database for one fitted quantizer: ``add`` encodes (or takes codes), ``search`` runs ADC.

    Attributes: quantizer, metric (``"l2"`` or ``"ip"``), codes (n, n_codes) int64, method
    (``"tables"``: lookup tables; ``"decode"``: decode chunks and multiply, same numbers, faster for many
    small tables such as SQ; ``"auto"`` picks by the quantizer).
    """

    quantizer: BaseVectorQuantizer
    metric: str = "l2"
    method: str = "auto"

    def __post_init__(self) -> None:
        _check_metric(self.metric)
        if not isinstance(self.quantizer, BaseVectorQuantizer):
            raise TypeError(f"quantizer must be a fitted quantscope vector quantizer, got "
                            f"{type(self.quantizer).__name__}")
        self.quantizer._check_fitted()
        if self.method not in ("auto", "tables", "decode"):
            raise ValueError(f"method must be 'auto', 'tables' or 'decode', got {self.method!r}")
        self.codes = torch.empty(0, self.quantizer.n_codes_, dtype=torch.long)
        self._sq_norms: torch.Tensor | None = None
        self._scale: torch.Tensor | None = None

    def add(self, X: Any) -> ADCIndex:
        """Encode and append vectors (n, d); raw vectors are not kept (only their codes)."""
        return self.add_codes(self.quantizer.encode(as_matrix(X, "X", self.quantizer.dim_)[0]))

    def add_codes(self, codes: Any) -> ADCIndex:
        t, _ = self.quantizer._check_codes(codes)
        self.codes = torch.cat([self.codes, t.cpu()])
        self._sq_norms = self._scale = None
        return self

    def __len__(self) -> int:
        return self.codes.shape[0]

    def _use_tables(self) -> bool:
        if self.method != "auto":
            return self.method == "tables"
        return not self.quantizer.prefers_decode_search

    def _norms_and_scale(self) -> None:
        q = self.quantizer
        if self._sq_norms is None:
            norms, scales = [], []
            for s in range(0, len(self), DB_CHUNK):
                c = self.codes[s:s + DB_CHUNK]
                norms.append((q._decode(c) ** 2).sum(1))
                sc = q.item_scale(c)
                scales.append(sc if sc is not None else torch.ones(c.shape[0]))
            self._sq_norms, self._scale = torch.cat(norms), torch.cat(scales)

    def _scores(self, Q: torch.Tensor, s: int, e: int) -> torch.Tensor:
        q = self.quantizer
        c = self.codes[s:e]
        if not self._use_tables():
            xh = q._decode(c)
            ip = Q @ xh.T
            if self.metric == "ip":
                return ip
            return ((Q * Q).sum(1, keepdim=True) - 2 * ip + self._sq_norms[s:e]).clamp_min(0)
        if self.metric == "l2" and q.item_scale(c[:1]) is None:
            l2 = q.l2_tables(Q)
            if l2 is not None:
                return table_sums(l2, q.table_codes(c))
        ip = table_sums(q.ip_tables(Q), q.table_codes(c)) * self._scale[s:e]
        if self.metric == "ip":
            return ip
        return ((Q * Q).sum(1, keepdim=True) - 2 * ip + self._sq_norms[s:e]).clamp_min(0)

    def search(self, queries: Any, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k by ADC: (distances (nq, k) float32: squared L2 ascending or inner product descending,
        ids (nq, k) int64 in insertion order)."""
        if len(self) == 0:
            raise ValueError("the index is empty; add vectors (add(X)) before searching")
        Q, _ = as_matrix(queries, "queries", self.quantizer.dim_)
        k = _check_k(k, len(self))
        self._norms_and_scale()
        qstep = max(1, chunk_rows(self.quantizer.n_codes_ * 2 ** self.quantizer.code_bits) // 4)
        out_v, out_i = [], []
        for q0 in range(0, Q.shape[0], qstep):
            Qc, best = Q[q0:q0 + qstep], None
            for s in range(0, len(self), DB_CHUNK):
                best = _merge_topk(best, self._scores(Qc, s, s + DB_CHUNK), s, k, largest=self.metric == "ip")
            out_v.append(best[0])
            out_i.append(best[1])
        return torch.cat(out_v), torch.cat(out_i)


def adc_search(quantizer: BaseVectorQuantizer, codes: Any, queries: Any, k: int, metric: str = "l2",
               method: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """One-shot ADC search of ``queries`` over ``codes`` (from ``quantizer.encode``); see :class:`ADCIndex`."""
    return ADCIndex(quantizer, metric, method).add_codes(codes).search(queries, k)


def recall_at_k(found_ids: Any, true_ids: Any, k: int) -> float:
    """k-recall@k: mean over queries of |found[:, :k] ∩ true[:, :k]| / k (1.0 = the exact top-k).

    For k = 1 this is the fraction of queries whose nearest neighbour is ranked first.
    """
    f = torch.as_tensor(found_ids)
    t = torch.as_tensor(true_ids)
    if f.dim() != 2 or t.dim() != 2 or f.shape[0] != t.shape[0]:
        raise ValueError(f"found_ids and true_ids must be (n_queries, >=k) arrays with the same number of queries, "
                         f"got shapes {tuple(f.shape)} and {tuple(t.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or f.shape[1] < k or t.shape[1] < k:
        raise ValueError(f"k must be a positive integer no larger than both id lists ({f.shape[1]}, "
                         f"{t.shape[1]}), got {k!r}")
    f, t = f[:, :k], t[:, :k]
    hits = (f[:, :, None] == t[:, None, :]).any(2).sum(1).double()
    return float(hits.mean() / k)
