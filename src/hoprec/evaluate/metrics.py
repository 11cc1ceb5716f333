"""Ranking and beyond-accuracy metrics for top-K recommendation lists.

Conventions
-----------
* ``recs`` is an ``(n, K)`` int64 array of internal item ids, best first; ``-1`` pads a
  short list. Pads never count as hits and are ignored by the beyond-accuracy metrics.
* Ground truth is in CSR form: entity ``i``'s relevant items are
  ``truth_indices[truth_indptr[i]:truth_indptr[i + 1]]`` (distinct, any order).
  :func:`truth_to_csr` builds it from a list of arrays.
* ``k <= K``: metrics read the first ``k`` columns only. An item repeated within one
  list counts as a hit at its first position only, so every metric stays in ``[0, 1]``.
* Entities with empty truth get NaN in every per-entity metric; average with
  :func:`mean_metrics` (a NaN-mean that also reports the count of rows used).

Worked example: one user, list ``[1, 2, 3, 4]``, relevant items ``{2, 4, 9}``, ``k = 4``.
Hits are at ranks 2 and 4, so

* precision@4 = 2/4, recall@4 = 2/3, hit rate = 1, MRR = 1/2;
* AP@4 = (1/2 + 2/4) / min(3, 4) = 1/3 (precision at each hit, over the best possible
  number of hits);
* DCG = 1/log2(3) + 1/log2(5); the ideal list has 3 hits at ranks 1..3, so
  IDCG = 1 + 1/log2(3) + 1/log2(4) and NDCG = DCG / IDCG ~= 0.4982.

>>> import numpy as np
>>> indptr, indices = truth_to_csr([np.array([2, 4, 9])])
>>> m = ranking_metrics(np.array([[1, 2, 3, 4]]), indptr, indices, k=4)
>>> {name: round(float(v[0]), 4) for name, v in m.items()}
{'map': 0.3333, 'recall': 0.6667, 'precision': 0.5, 'ndcg': 0.4982, 'mrr': 0.5, 'hit_rate': 1.0}
>>> mean_metrics(m)["n"]
1
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RANKING_METRICS = ("map", "recall", "precision", "ndcg", "mrr", "hit_rate")

# Bootstrap resamples are drawn in blocks of at most this many indices to bound memory.
_BOOT_BLOCK = 4_000_000


def _top_k(recs: np.ndarray, k: int) -> np.ndarray:
    """Validate ``recs`` and ``k``; return ``recs[:, :k]`` as int64."""
    recs = np.asarray(recs)
    if recs.ndim != 2:
        raise ValueError(f"recs must be a 2-D (n, K) array, got shape {recs.shape}")
    if recs.size and not np.issubdtype(recs.dtype, np.integer):
        raise ValueError(f"recs must hold integer item ids, got dtype {recs.dtype}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, got {k!r}")
    if not 1 <= k <= recs.shape[1]:
        raise ValueError(f"k must be in [1, K={recs.shape[1]}], got k={k}")
    return recs[:, :k].astype(np.int64, copy=False)


def _check_truth(n: int, indptr, indices) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    if indptr.ndim != 1 or indptr.shape[0] != n + 1:
        raise ValueError(f"truth_indptr must have length n+1={n + 1}, got shape {indptr.shape}")
    if indices.ndim != 1 or indptr[0] != 0 or indptr[-1] != indices.shape[0]:
        raise ValueError("truth_indptr must start at 0 and end at len(truth_indices)")
    if np.any(np.diff(indptr) < 0):
        raise ValueError("truth_indptr must be non-decreasing")
    if indices.size and indices.min() < 0:
        raise ValueError("truth_indices must be non-negative item ids")
    return indptr, indices


def truth_to_csr(truth: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pack a list of per-entity relevant-item arrays into ``(indptr, indices)`` int64."""
    lengths = np.fromiter((len(t) for t in truth), dtype=np.int64, count=len(truth))
    indptr = np.zeros(len(truth) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    parts = [np.asarray(t, dtype=np.int64).ravel() for t in truth]
    indices = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return indptr, indices


def _first_occurrence(top: np.ndarray) -> np.ndarray:
    """Boolean mask, True where the item is not a pad and not a repeat earlier in its row."""
    order = np.argsort(top, axis=1, kind="stable")
    srt = np.take_along_axis(top, order, axis=1)
    repeat_sorted = np.zeros(top.shape, dtype=bool)
    repeat_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    repeat = np.empty_like(repeat_sorted)
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    return (top >= 0) & ~repeat


def hits_matrix(recs, truth_indptr, truth_indices, k: int) -> np.ndarray:
    """``(n, k)`` bool: ``True`` where ``recs[i, j]`` is relevant to entity ``i``.

    Each (row, item) pair is encoded as one int64 key ``row * n_ids + item`` and looked up
    in the sorted truth keys. Pads and repeats of an earlier item in the row are never hits.
    """
    top = _top_k(recs, k)
    n = top.shape[0]
    indptr, indices = _check_truth(n, truth_indptr, truth_indices)
    n_ids = int(max(top.max(initial=-1), indices.max(initial=-1))) + 1
    truth_rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    truth_keys = np.sort(truth_rows * n_ids + indices)
    rec_keys = np.arange(n, dtype=np.int64)[:, None] * n_ids + top
    if truth_keys.size == 0:
        return np.zeros(top.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(truth_keys, rec_keys), truth_keys.size - 1)
    return (truth_keys[pos] == rec_keys) & _first_occurrence(top)


def ranking_metrics(recs, truth_indptr, truth_indices, k: int) -> dict[str, np.ndarray]:
    """Per-entity ranking metrics at ``k``: a dict of float64 ``(n,)`` arrays.

    Keys are :data:`RANKING_METRICS`. With ``h_j`` the hit indicator at rank ``j`` and
    ``T`` the relevant set:

    * ``map``: AP@k = sum_j h_j * precision@j / min(|T|, k)  (RelBench's definition)
    * ``recall``: hits / |T|;  ``precision``: hits / k;  ``hit_rate``: 1 if any hit
    * ``ndcg``: sum_j h_j / log2(j + 1), over the same sum for min(|T|, k) leading hits
    * ``mrr``: 1 / rank of the first hit, 0 if none

    Rows with empty truth are NaN in every metric.
    """
    hits = hits_matrix(recs, truth_indptr, truth_indices, k).astype(np.float64)
    n_truth = np.diff(np.asarray(truth_indptr, dtype=np.int64)).astype(np.float64)
    ranks = np.arange(1, k + 1, dtype=np.float64)
    discounts = 1.0 / np.log2(ranks + 1.0)
    ideal_dcg = np.concatenate([[np.nan], np.cumsum(discounts)])  # index = ideal hit count
    cum_hits = np.cumsum(hits, axis=1)
    n_hits = cum_hits[:, -1]
    any_hit = n_hits > 0
    best = np.minimum(n_truth, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "map": (hits * cum_hits / ranks).sum(axis=1) / best,
            "recall": n_hits / n_truth,
            "precision": n_hits / k,
            "ndcg": hits @ discounts / ideal_dcg[best.astype(np.int64)],
            "mrr": np.where(any_hit, 1.0 / (np.argmax(hits, axis=1) + 1.0), 0.0),
            "hit_rate": any_hit.astype(np.float64),
        }
    empty = n_truth == 0
    for values in out.values():
        values[empty] = np.nan
    return out


def mean_metrics(per_entity: dict[str, np.ndarray]) -> dict[str, float]:
    """NaN-mean of each per-entity metric, plus ``"n"``: the number of non-NaN rows.

    ``n`` counts rows where the first metric is defined (in :func:`ranking_metrics`
    output all metrics share the same NaN rows). A metric with no defined row is NaN.
    """
    out: dict[str, float] = {}
    n = 0
    for i, (name, values) in enumerate(per_entity.items()):
        values = np.asarray(values, dtype=np.float64)
        ok = ~np.isnan(values)
        count = int(ok.sum())
        out[name] = float(values[ok].mean()) if count else float("nan")
        if i == 0:
            n = count
    out["n"] = n
    return out


def _items(recs, k: int) -> np.ndarray:
    """Flat array of the non-pad items in ``recs[:, :k]``."""
    top = _top_k(recs, k)
    return top[top >= 0]


def catalogue_coverage(recs, k: int, n_items: int) -> float:
    """Share of the ``n_items`` catalogue that appears (non-pad) in ``recs[:, :k]``."""
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    items = _items(recs, k)
    if items.size and items.max() >= n_items:
        raise ValueError(f"recs hold item id {items.max()} >= n_items={n_items}")
    return np.unique(items).size / n_items


def intra_list_diversity(recs, k: int, item_attribute) -> float:
    """Mean, over lists, of the share of item pairs whose attributes differ.

    ``item_attribute`` is an ``(n_items,)`` array of int codes, -1 meaning unknown. Within
    each list only non-pad items with a known attribute count; lists with fewer than two
    such items are skipped. Pairs with equal attributes are counted by grouping
    (row, attribute) keys, so the cost is O(n k log(n k)). NaN if no list qualifies.
    """
    top = _top_k(recs, k)
    attribute = np.asarray(item_attribute, dtype=np.int64)
    attrs = np.where(top >= 0, attribute[np.maximum(top, 0)], -1)
    valid = attrs >= 0
    m = valid.sum(axis=1).astype(np.float64)
    pairs = m * (m - 1) / 2
    rows = np.broadcast_to(np.arange(top.shape[0], dtype=np.int64)[:, None], top.shape)[valid]
    base = int(attribute.max(initial=0)) + 1
    uniq, counts = np.unique(rows * base + attrs[valid], return_counts=True)
    group_rows = uniq // base
    same = np.bincount(group_rows, weights=counts * (counts - 1) / 2, minlength=top.shape[0])
    qualifies = m >= 2
    if not qualifies.any():
        return float("nan")
    return float(np.mean(1.0 - same[qualifies] / pairs[qualifies]))


def mean_popularity(recs, k: int, item_popularity) -> float:
    """Mean ``item_popularity[item]`` over all non-pad recommended items (NaN if none)."""
    items = _items(recs, k)
    if items.size == 0:
        return float("nan")
    return float(np.asarray(item_popularity, dtype=np.float64)[items].mean())


def popularity_deciles(recs, k: int, item_popularity) -> np.ndarray:
    """``(10,)`` share of non-pad recommendations falling in each item-popularity decile.

    Items are ranked by popularity over the whole catalogue (ties broken by item id);
    decile ``d`` holds ranks ``r`` with ``floor(10 r / n_items) == d``, so decile 0 is the
    least popular tenth. All NaN if there is no recommendation.
    """
    popularity = np.asarray(item_popularity, dtype=np.float64)
    n_items = popularity.shape[0]
    order = np.lexsort((np.arange(n_items), popularity))
    rank = np.empty(n_items, dtype=np.int64)
    rank[order] = np.arange(n_items)
    items = _items(recs, k)
    if items.size == 0:
        return np.full(10, np.nan)
    decile = rank[items] * 10 // n_items
    return np.bincount(decile, minlength=10) / items.size


def bootstrap_ci(
    values, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` CI of the NaN-mean of per-entity ``values``.

    NaN rows are dropped, then the remaining entities are resampled with replacement
    ``n_boot`` times. Deterministic for a given ``seed``; ``(nan, nan)`` if no value.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    block = max(1, _BOOT_BLOCK // x.size)
    means = np.concatenate(
        [
            x[rng.integers(0, x.size, size=(min(block, n_boot - start), x.size))].mean(axis=1)
            for start in range(0, n_boot, block)
        ]
    )
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


class StreamingRankingMetrics:
    """Accumulate :func:`ranking_metrics` over batches; ``compute()`` equals the batch mean.

    >>> acc = StreamingRankingMetrics(k=10)
    >>> # for each batch: acc.update(recs, truth_indptr, truth_indices)
    >>> acc.compute()["n"]
    0
    """

    def __init__(self, k: int):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = int(k)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._sums = dict.fromkeys(RANKING_METRICS, 0.0)
        self._n = 0

    def update(self, recs, truth_indptr, truth_indices) -> None:
        """Add one batch of entities (rows with empty truth are ignored)."""
        batch = ranking_metrics(recs, truth_indptr, truth_indices, self.k)
        for name, values in batch.items():
            self._sums[name] += float(np.nansum(values))
        self._n += int((~np.isnan(batch["map"])).sum())

    def compute(self) -> dict[str, float]:
        """Mean of each metric over all entities seen, plus ``"n"``; NaN means if ``n == 0``."""
        out = {name: (s / self._n if self._n else float("nan")) for name, s in self._sums.items()}
        out["n"] = self._n
        return out
