"""Why an item is recommended, computed from the customer's own history and the item graph.

For a recommended item ``j`` and the customer's history ``H`` (item ``h`` bought ``n_h`` times),
each path gets a contribution:

- ``own``: ``j`` in ``H``: ``log(1 + n_j)`` ("you bought it 5 times, last on 2017-12-01");
- ``co_purchase``: for ``h`` in ``H``: ``co(h, j) / max_x co(h, x) * log(1 + n_h)``
  ("bought with Peanut Butter 16oz, which you bought 5 times");
- ``bought_after``: the same with the directed bought-within-14-days-after counts
  ("often bought after Bread, which you bought 3 times");
- ``category`` / ``brand``: ``0.5 * share`` of the customer's purchases in ``j``'s category or
  brand ("you often buy DAIRY (23% of your purchases)");
- ``similar_customers`` (models with user embeddings): ``0.5 * share`` of the 20 customers whose
  vectors are nearest (cosine) who bought ``j`` ("bought by 7 of the 20 customers most like you").

Attributions are the contributions divided by their sum (so they add to 1 over all paths of the
item); the three largest are returned.  An item no path reaches says what served it instead
(the model from the whole history, the segment's or everyone's popularity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hoprec.serve.rerank import Catalogue


@dataclass
class HistorySummary:
    """A customer's positive history: distinct items, counts and last times (ns)."""

    items: np.ndarray
    counts: np.ndarray
    last: np.ndarray

    @classmethod
    def of(cls, items: np.ndarray, times: np.ndarray, weights: np.ndarray) -> HistorySummary:
        pos = weights > 0
        uniq, inv, counts = np.unique(items[pos], return_inverse=True, return_counts=True)
        last = np.full(len(uniq), np.iinfo(np.int64).min)
        np.maximum.at(last, inv, times[pos])
        return cls(uniq, counts, last)


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def _block(m: sp.csc_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Dense ``m[rows][:, cols]`` for a few columns of a column-major matrix."""
    return m[:, cols].tocsr()[rows].toarray()


def explain(
    recs: np.ndarray, hist: HistorySummary, co: sp.csc_matrix, after: sp.csc_matrix,
    catalogue: Catalogue, source: str, segment: str | None = None, top: int = 3,
    verb: str = "bought", neighbours: np.ndarray | None = None,
    user_items: sp.csc_matrix | None = None,
) -> list[list[dict]]:
    """For each internal item in ``recs``: up to ``top`` reasons (kind, via, attribution, text).

    ``co`` and ``after`` are the item-item matrices with each row divided by its maximum, in
    column-major form (only the recommended items' columns are read)."""
    titles = catalogue.titles
    out: list[list[dict]] = []
    h, n = hist.items, hist.counts
    w = np.log1p(n.astype(np.float64))
    co_v = _block(co, h, recs) * w[:, None] if len(h) else np.zeros((0, len(recs)))
    af_v = _block(after, h, recs) * w[:, None] if len(h) else np.zeros((0, len(recs)))
    total = max(int(n.sum()), 1)
    cat_share = np.bincount(catalogue.category[h][catalogue.category[h] >= 0],
                            weights=n[catalogue.category[h] >= 0],
                            minlength=len(catalogue.category_names)) / total if len(h) else None
    brand_count = np.bincount(catalogue.brand[h][catalogue.brand[h] >= 0],
                              weights=n[catalogue.brand[h] >= 0],
                              minlength=len(catalogue.brand_names)) if len(h) else None
    pos_of = {int(x): i for i, x in enumerate(h.tolist())}
    peers = None
    if neighbours is not None and user_items is not None and len(neighbours):
        peers = np.asarray((user_items[:, recs].tocsr()[neighbours] > 0).sum(axis=0)).ravel()
    for col, j in enumerate(recs.tolist()):
        paths: list[tuple[float, dict]] = []
        if j in pos_of:
            i = pos_of[j]
            day = pd.Timestamp(int(hist.last[i]), tz="UTC").date().isoformat()
            paths.append((float(w[i]), {"kind": "own", "via_item": j,
                                        "text": f"you {verb} it {_times(int(n[i]))}, last on {day}"}))
        for m, kind, how in ((co_v, "co_purchase", "bought with"),
                              (af_v, "bought_after", "often bought after")):
            if len(h):
                col_v = m[:, col]
                for i in np.flatnonzero(col_v > 0):
                    if int(h[i]) == j:
                        continue
                    paths.append((float(col_v[i]), {
                        "kind": kind, "via_item": int(h[i]),
                        "text": f"{how} {titles[h[i]]}, which you {verb} {_times(int(n[i]))}",
                    }))
        c = int(catalogue.category[j])
        if cat_share is not None and c >= 0 and cat_share[c] > 0:
            paths.append((0.5 * float(cat_share[c]), {
                "kind": "category", "via_item": None,
                "text": f"you often buy {catalogue.category_names[c]} "
                        f"({100 * cat_share[c]:.0f}% of your purchases)",
            }))
        b = int(catalogue.brand[j])
        if brand_count is not None and b >= 0 and brand_count[b] > 0:
            paths.append((0.5 * float(brand_count[b]) / total, {
                "kind": "brand", "via_item": None,
                "text": f"you have bought {catalogue.brand_names[b]} {_times(int(brand_count[b]))}",
            }))
        if peers is not None and peers[col] > 0:
            paths.append((0.5 * float(peers[col]) / len(neighbours), {
                "kind": "similar_customers", "via_item": None,
                "text": f"bought by {int(peers[col])} of the {len(neighbours)} customers most like you",
            }))
        if not paths:
            out.append([_fallback(source, segment)])
            continue
        s = sum(p[0] for p in paths)
        paths.sort(key=lambda p: -p[0])
        out.append([{**d, "attribution": round(v / s, 4)} for v, d in paths[:top]])
    return out


def _fallback(source: str, segment: str | None) -> dict:
    text = {
        "popular": "popular with customers in the last 30 days",
        "segment": f"popular with customers like you ({segment})",
        "session": "related to the items you just looked at",
    }.get(source, "the model's pick from your whole history (no single item leads to it)")
    return {"kind": source, "via_item": None, "attribution": 1.0, "text": text}
