"""Candidates and pair signals for the entity-aware hybrid model.

Everything here is computed from the events strictly before a reference time ``t`` (the cutoff of
a training example or of the prediction) and looks only at that entity's own subgraph: the items it
chose, how often and how recently, and the items one hop away from them through co-purchase and
bought-after edges.  This is the "entity-aware" half of ID-GNN / ContextGNN-style models; the
learned embedding score is another column.

Candidates per entity: its own past items, the top items reached from them through the
co-purchase and bought-after item graphs, recently popular items and recently introduced items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hoprec.data.dataset import Interactions
from hoprec.models import pair_rhythm

HALF_LIVES = (7.0, 30.0, 90.0, 365.0)
FEATURES: tuple[str, ...] = (
    *(f"rep_h{int(h)}" for h in HALF_LIVES),
    "count", "count_share", "days_since_last", "days_since_first", "interval_mean",
    "overdue", "item_pop7", "item_pop30", "item_pop_all", "item_trend", "item_repeat_rate",
    "item_age", "user_baskets", "user_days_since_last", "user_repeat_share", "cooc", "after",
    "cat_share", "is_own", "share_h30", "share_h90", "rank_h90", "user_baskets30",
    "user_baskets90", "expected30", "cat_rep_h30", "cat_days_since_last", "cat_item_share",
    "cat_overdue", *pair_rhythm.FEATURES,
)


#: feature groups, for ablations (``Hybrid(drop_features=[...])`` takes group or column names)
GROUPS: dict[str, tuple[str, ...]] = {
    "pair_recency": (*(f"rep_h{int(h)}" for h in HALF_LIVES), "share_h30", "share_h90", "rank_h90"),
    "pair_counts": ("count", "count_share", "is_own", "expected30"),
    "pair_timing": ("days_since_last", "days_since_first", "interval_mean", "overdue"),
    "item": ("item_pop7", "item_pop30", "item_pop_all", "item_trend", "item_repeat_rate", "item_age"),
    "user": ("user_baskets", "user_days_since_last", "user_repeat_share", "user_baskets30", "user_baskets90"),
    "item_graph": ("cooc", "after"),
    "category": ("cat_share",),
    "category_timing": ("cat_rep_h30", "cat_days_since_last", "cat_item_share", "cat_overdue"),
    "pair_sequence": ("baskets_since_last", "in_last3", "in_last10"),
    "rhythm": ("pair_rebuy", "item_rebuy", "item_gap", "overdue_item", "user_rebuy"),
}
assert sorted(c for g in GROUPS.values() for c in g) == sorted(FEATURES)


def _lookup(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``m[rows[k], cols[k]]`` for every k, vectorised (0 where absent)."""
    m = m.tocsr()
    ncols = m.shape[1]
    keys = getattr(m, "_hoprec_keys", None)  # cached: History's matrices are looked up per request
    if keys is None or len(keys) != m.nnz:
        m.sort_indices()
        keys = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * ncols + m.indices
        m._hoprec_keys = keys
    q = rows.astype(np.int64) * ncols + cols
    pos = np.searchsorted(keys, q)
    pos = np.minimum(pos, max(len(keys) - 1, 0))
    hit = (keys[pos] == q) if len(keys) else np.zeros(len(q), dtype=bool)
    out = np.zeros(len(q), dtype=np.float64)
    out[hit] = m.data[pos[hit]]
    return out


def _top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of every row (one float sort: row, then value descending)."""
    m = m.tocsr()
    counts = np.diff(m.indptr)
    if counts.max(initial=0) <= k:
        return m
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), counts)
    data = m.data.astype(np.float64)
    lo, hi = data.min(), data.max()
    frac = (hi - data) / (hi - lo + 1e-12) * 0.999  # in [0, 1): larger values first
    order = np.argsort(rows + frac, kind="quicksort")
    rank = np.arange(len(order)) - np.repeat(m.indptr[:-1], counts)
    keep = order[rank < k]
    return sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)


@dataclass
class History:
    """Per-pair, per-item and per-user aggregates of positive events before ``t``."""

    t: np.datetime64
    n_users: int
    n_items: int
    rep: list[sp.csr_matrix]  # decayed counts per half-life
    count: sp.csr_matrix
    last: sp.csr_matrix  # days since last event on the pair (+1 so 0 means absent)
    first: sp.csr_matrix
    item_pop7: np.ndarray
    item_pop30: np.ndarray
    item_pop_all: np.ndarray
    item_repeat_rate: np.ndarray
    item_age: np.ndarray
    user_baskets: np.ndarray
    user_last: np.ndarray
    user_repeat_share: np.ndarray
    user_baskets30: np.ndarray
    user_baskets90: np.ndarray
    rep_rowsum: list[np.ndarray]
    cooc: sp.csr_matrix  # item x item, top neighbours
    after: sp.csr_matrix  # item x item, directed
    recent_user_items: sp.csr_matrix  # decayed (h=30) user x item, to walk the item graphs
    rhythm: pair_rhythm.Rhythm | None  # basket-sequence and repurchase-rhythm signals (opt-in)


def build_history(
    inter: Interactions, t: np.datetime64, n_users: int, n_items: int, neighbours: int = 50,
    after_days: float = 14.0, horizon_days: float = 30.0, rhythm: bool = False,
) -> History:
    ev = inter.select(inter.positive() & (inter.time < t))
    age = np.maximum((t - ev.time) / np.timedelta64(1, "D"), 0.0).astype(np.float64)
    shape = (n_users, n_items)

    def pair(vals: np.ndarray, reduce: str = "sum") -> sp.csr_matrix:
        if reduce == "sum":
            m = sp.csr_matrix((vals, (ev.user, ev.item)), shape=shape)
            m.sum_duplicates()
            return m
        df = pd.DataFrame({"u": ev.user, "i": ev.item, "v": vals}).groupby(["u", "i"])["v"].agg(reduce)
        idx = df.index.to_frame().to_numpy()
        return sp.csr_matrix((df.to_numpy(), (idx[:, 0], idx[:, 1])), shape=shape)

    rep = [pair(np.exp2(-age / h)) for h in HALF_LIVES]
    count = pair(np.ones(len(ev)))
    last = pair(age + 1.0, "min")
    first = pair(age + 1.0, "max")

    def item_distinct(mask: np.ndarray) -> np.ndarray:
        m = sp.csr_matrix((np.ones(mask.sum()), (ev.user[mask], ev.item[mask])), shape=shape)
        m.sum_duplicates()
        return np.asarray((m > 0).sum(axis=0)).ravel().astype(np.float64)

    pop_all = item_distinct(np.ones(len(ev), dtype=bool))
    repeaters = np.asarray((count >= 2).sum(axis=0)).ravel()
    item_first = np.full(n_items, np.inf)
    np.minimum.at(item_first, ev.item, -age)
    # baskets: distinct basket codes (or distinct days where the data has no baskets)
    bkey = np.where(ev.basket >= 0, ev.basket, (ev.time.astype("datetime64[D]").astype(np.int64) << 20) + ev.user)
    ub = pd.DataFrame({"u": ev.user, "b": bkey, "a": age}).groupby(["u", "b"], sort=False)["a"].min().reset_index()
    user_baskets = np.bincount(ub.u, minlength=n_users).astype(np.float64)
    ub30 = np.bincount(ub.u[ub.a < 30], minlength=n_users).astype(np.float64)
    ub90 = np.bincount(ub.u[ub.a < 90], minlength=n_users).astype(np.float64)
    user_last = np.full(n_users, np.nan)
    if len(ev):
        ul = pd.Series(age).groupby(ev.user).min()
        user_last[ul.index.to_numpy()] = ul.to_numpy()
    n_events = np.bincount(ev.user, minlength=n_users)
    n_pairs = np.diff(count.indptr)
    user_repeat = np.where(n_events > 0, 1.0 - n_pairs / np.maximum(n_events, 1), np.nan)
    cooc, after = _item_graphs(ev, n_items, neighbours, after_days)
    return History(
        t=t, n_users=n_users, n_items=n_items, rep=rep, count=count, last=last, first=first,
        item_pop7=item_distinct(age < 7), item_pop30=item_distinct(age < 30), item_pop_all=pop_all,
        item_repeat_rate=np.where(pop_all > 0, repeaters / np.maximum(pop_all, 1), 0.0),
        item_age=np.where(np.isfinite(item_first), -item_first, -1.0),
        user_baskets=user_baskets, user_last=user_last, user_repeat_share=user_repeat,
        cooc=cooc, after=after, recent_user_items=rep[1], user_baskets30=ub30,
        user_baskets90=ub90, rep_rowsum=[np.asarray(m.sum(axis=1)).ravel() for m in rep],
        rhythm=pair_rhythm.rhythm(ev.user, ev.item, bkey, age, n_users, n_items, horizon_days) if rhythm else None,
    )


def _item_graphs(ev: Interactions, n_items: int, neighbours: int, after_days: float):
    """Co-purchase (cosine-normalised) and bought-after (row-normalised) item x item matrices,
    from :mod:`hoprec.graph.derived` — the same edges the graph models see."""
    from hoprec.graph.derived import Baskets, bought_after, co_purchase

    baskets = Baskets.from_interactions(ev, n_items)

    def matrix(edges) -> sp.csr_matrix:
        return sp.csr_matrix((edges.weight.astype(np.float64), (edges.src, edges.dst)), shape=(n_items, n_items))

    cooc = matrix(co_purchase(baskets, top_k=neighbours, normalize=True))
    after = matrix(bought_after(baskets, window_days=after_days, top_k=neighbours))
    row_sum = np.asarray(after.sum(axis=1)).ravel()
    return cooc, (sp.diags(1.0 / np.maximum(row_sum, 1.0)) @ after).tocsr()


def candidates(h: History, users: np.ndarray, n_own: int, n_graph: int, n_pop: int, n_new: int):
    """(user, item) candidate pairs for ``users``: own items, graph neighbours, popular, new."""
    sub_rep = h.rep[2][users]
    own = _top_per_row(sub_rep, n_own).tocoo()
    walk = h.recent_user_items[users]
    graph = (walk @ h.cooc + walk @ h.after).tocsr()
    graph = _top_per_row(graph, n_graph).tocoo()
    extra = getattr(h, "_extra_cache", None)
    if extra is None or extra[0] != (n_pop, n_new):
        pop = np.argsort(-(h.item_pop30 + 1e-3 * h.item_pop_all), kind="stable")[:n_pop]
        recent = np.flatnonzero((h.item_age >= 0) & (h.item_age < 30))
        new = recent[np.argsort(-h.item_pop_all[recent], kind="stable")][:n_new]
        extra = ((n_pop, n_new), np.concatenate([pop, new]))
        h._extra_cache = extra  # type: ignore[attr-defined]
    extra = extra[1]
    r = np.concatenate([own.row, graph.row, np.repeat(np.arange(len(users)), len(extra))])
    c = np.concatenate([own.col, graph.col, np.tile(extra, len(users))])
    keys = np.unique(r.astype(np.int64) * h.n_items + c)
    return users[keys // h.n_items], keys % h.n_items


def pair_features(h: History, u: np.ndarray, i: np.ndarray, item_groups: np.ndarray | None,
                  category_rhythm: bool = True) -> np.ndarray:
    """Feature matrix (len(u), len(FEATURES)) for candidate pairs; NaN where undefined."""
    cols = [_lookup(m, u, i) for m in h.rep]
    count = _lookup(h.count, u, i)
    last = _lookup(h.last, u, i) - 1.0
    first = _lookup(h.first, u, i) - 1.0
    last[count == 0] = np.nan
    first[count == 0] = np.nan
    interval = np.where(count >= 2, (first - last) / np.maximum(count - 1, 1), np.nan)
    walk = h.recent_user_items
    cooc = _walk_score(walk, h.cooc, u, i)
    after = _walk_score(walk, h.after, u, i)
    cat = _category_share(h, u, i, item_groups)
    cat_cols = _category_timing(h, u, i, item_groups if category_rhythm else None, count)
    feats = [
        *cols, count, count / np.maximum(h.user_baskets[u], 1), last, first, interval,
        np.divide(last, interval, out=np.full(len(u), np.nan), where=interval > 0), h.item_pop7[i], h.item_pop30[i], h.item_pop_all[i],
        (h.item_pop7[i] * 30 / 7 + 1) / (h.item_pop30[i] + 1), h.item_repeat_rate[i], h.item_age[i],
        h.user_baskets[u], h.user_last[u], h.user_repeat_share[u], cooc, after, cat,
        (count > 0).astype(np.float64),
        cols[1] / np.maximum(h.rep_rowsum[1][u], 1e-9), cols[2] / np.maximum(h.rep_rowsum[2][u], 1e-9),
        _rank_within_user(u, cols[2]), h.user_baskets30[u], h.user_baskets90[u],
        count / np.maximum(h.user_baskets[u], 1) * h.user_baskets30[u], *cat_cols,
        *(pair_rhythm.rhythm_features(h.rhythm, u, i, last, h.user_baskets, _lookup) if h.rhythm is not None
          else [np.full(len(u), np.nan)] * len(pair_rhythm.FEATURES)),
    ]
    return np.column_stack(feats).astype(np.float32)


def _rank_within_user(u: np.ndarray, score: np.ndarray) -> np.ndarray:
    """1-based rank of each pair's score among the same user's candidates (1 = highest)."""
    order = np.lexsort((-score, u))
    uu = u[order]
    starts = np.r_[0, np.flatnonzero(uu[1:] != uu[:-1]) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(uu)]))
    rank = np.empty(len(u))
    rank[order] = np.arange(len(u)) - first + 1
    return rank


def _walk_score(walk: sp.csr_matrix, graph: sp.csr_matrix, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """sum_j walk[u, j] * graph[j, i] for each pair, computed per distinct user block."""
    out = np.zeros(len(u))
    order = np.argsort(u, kind="stable")
    uu = u[order]
    starts = np.flatnonzero(np.r_[True, uu[1:] != uu[:-1]])
    uniq = uu[starts]
    for s in range(0, len(uniq), 512):
        block_users = uniq[s : s + 512]
        scores = (walk[block_users] @ graph).tocsr()
        lo = starts[s]
        hi = starts[s + 512] if s + 512 < len(starts) else len(uu)
        local = np.searchsorted(block_users, uu[lo:hi])
        out[order[lo:hi]] = _lookup(scores, local, i[order[lo:hi]])
    return out


def _category_share(h: History, u: np.ndarray, i: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Share of the user's purchases in the candidate item's group (e.g. department)."""
    if groups is None:
        return np.full(len(u), np.nan)
    g = np.where(groups < 0, groups.max() + 1, groups)
    cache = getattr(h, "_category_cache", None)
    if cache is None or cache[0] is not groups:
        n_g = int(g.max()) + 1
        ug = (h.count @ sp.csr_matrix((np.ones(h.n_items), (np.arange(h.n_items), g)), shape=(h.n_items, n_g))).tocsr()
        cache = (groups, ug, np.asarray(h.count.sum(axis=1)).ravel())
        h._category_cache = cache  # type: ignore[attr-defined]
    _, ug, tot = cache
    return _lookup(ug, u, g[i]) / np.maximum(tot[u], 1)


def _category_timing(h: History, u: np.ndarray, i: np.ndarray, groups: np.ndarray | None,
                     count: np.ndarray) -> list[np.ndarray]:
    """The customer's rhythm in the item's group (e.g. "milk", whichever brand): decayed count
    (half-life 30 days), days since they last bought anything in it, this item's share of their
    purchases there, and how overdue the group is (days since last / mean days between baskets
    in it).  A grocery shopper rotates between variants; the group says the need is due."""
    nan = np.full(len(u), np.nan)
    if groups is None:
        return [nan, nan, nan, nan]
    g = np.where(groups < 0, groups.max() + 1, groups)
    n_g = int(g.max()) + 1
    users, local = np.unique(u, return_inverse=True)
    G = getattr(h, "_group_matrix", None)
    if G is None or G.shape != (h.n_items, n_g):
        G = sp.csr_matrix((np.ones(h.n_items), (np.arange(h.n_items), g)), shape=(h.n_items, n_g))
        h._group_matrix = G  # type: ignore[attr-defined]
    rep = (h.rep[1][users] @ G).tocsr()
    cnt = (h.count[users] @ G).tocsr()
    last = h.last[users].tocoo()  # days since last + 1, per (user, item)
    first = h.first[users].tocoo()
    ug_last = pd.DataFrame({"r": last.row, "g": g[last.col], "v": last.data}).groupby(["r", "g"])["v"].min()
    ug_first = pd.DataFrame({"r": first.row, "g": g[first.col], "v": first.data}).groupby(["r", "g"])["v"].max()
    idx = ug_last.index.to_frame().to_numpy()
    m_last = sp.csr_matrix((ug_last.to_numpy(), (idx[:, 0], idx[:, 1])), shape=(len(users), n_g))
    idx = ug_first.index.to_frame().to_numpy()
    m_first = sp.csr_matrix((ug_first.to_numpy(), (idx[:, 0], idx[:, 1])), shape=(len(users), n_g))
    gi = g[i]
    c = _lookup(cnt, local, gi)
    since = _lookup(m_last, local, gi) - 1.0
    span = _lookup(m_first, local, gi) - 1.0 - since
    since[c == 0] = np.nan
    interval = np.where(c >= 2, span / np.maximum(c - 1, 1), np.nan)
    overdue = np.divide(since, interval, out=np.full(len(u), np.nan), where=interval > 0)
    return [_lookup(rep, local, gi), since, np.where(c > 0, count / np.maximum(c, 1), np.nan), overdue]
