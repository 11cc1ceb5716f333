"""Inner-product retrieval over item embeddings: one interface, exact or approximate.

:func:`build_index` returns an exact FAISS ``IndexFlatIP`` scan for catalogues up to
``exact_max_items`` items and an HNSW graph (inner-product metric) above it.  ``search`` returns
the true inner products, best first, either way; callers over-fetch (ask for more than they need),
filter, then rank the survivors with the model's full score.

HNSW's recall grows with ``ef_search`` (the candidate list kept while walking the graph); the
search uses ``max(ef_search, 10 k)``.  ``tests/serve/test_index.py`` checks recall@K >= 0.98 against
the exact scan at the defaults.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hoprec.compat import require


@dataclass
class VectorIndex:
    """Top-k item ids by ``query . item`` for a batch of queries."""

    vectors: np.ndarray  # (n_items, d) float32, the item vectors
    kind: str  # "exact" or "hnsw"
    index: object
    ef_search: int = 512

    @property
    def n_items(self) -> int:
        return len(self.vectors)

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes)

    def search(self, queries: np.ndarray, k: int, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, scores)``, each ``(n, min(k, n_items))``, best first; -1 pads missing hits.

        ``ef`` (HNSW only) defaults to ``max(ef_search, 10 k)``; a caller that over-fetches and
        re-ranks can pass less (the service passes ``max(ef_search, k)``)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.vectors.shape[1]:
            raise ValueError(f"queries have {q.shape[1]} dimensions, the index {self.vectors.shape[1]}")
        k = min(int(k), self.n_items)
        if self.kind == "hnsw":
            ef = max(self.ef_search, 10 * k) if ef is None else max(ef, k)
            self.index.hnsw.efSearch = min(ef, max(self.n_items, 1))
        scores, ids = self.index.search(q, k)
        scores[ids < 0] = -np.inf
        return ids.astype(np.int64), scores


def build_index(
    vectors: np.ndarray, exact_max_items: int = 200_000, hnsw_m: int = 32,
    ef_construction: int = 200, ef_search: int = 512, cache_dir: str | Path | None = None,
) -> VectorIndex:
    """An exact index up to ``exact_max_items`` items, HNSW (``hnsw_m`` links per node) above.

    With ``cache_dir``, an HNSW graph is saved there (named by a hash of the vectors and the
    settings, written atomically) and read back by the next build of the same vectors."""
    faiss = require("faiss", "serve")
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim != 2 or len(v) == 0:
        raise ValueError(f"item vectors must be a non-empty (n_items, d) array, got {v.shape}")
    if len(v) <= exact_max_items:
        index = faiss.IndexFlatIP(v.shape[1])
        index.add(v)
        return VectorIndex(v, "exact", index, ef_search)
    cached = None
    if cache_dir is not None:
        digest = hashlib.sha1(v.tobytes() + f"{hnsw_m},{ef_construction}".encode()).hexdigest()[:16]
        cached = Path(cache_dir) / f"hnsw-{digest}.faiss"
        if cached.is_file():
            return VectorIndex(v, "hnsw", faiss.read_index(str(cached)), ef_search)
    index = faiss.IndexHNSWFlat(v.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.add(v)
    if cached is not None and cached.parent.is_dir():
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
        faiss.write_index(index, str(tmp))
        os.replace(tmp, cached)
    return VectorIndex(v, "hnsw", index, ef_search)


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each exact top-k row that the approximate row also holds."""
    hits = [len(set(a[a >= 0].tolist()) & set(e[e >= 0].tolist())) / max(1, int((e >= 0).sum()))
            for a, e in zip(approx, exact)]
    return float(np.mean(hits)) if hits else 1.0
