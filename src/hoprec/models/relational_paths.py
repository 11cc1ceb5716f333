"""Customer -> X -> product path signals through the shop's other tables, for the hybrid ranker.

The pair signals of :mod:`hoprec.models.pair_features` read the customer x product history only.
The rest of the relational graph (:func:`hoprec.graph.hetero.build_graph`) holds more: the stores
a customer shops at and what sells there, the campaigns a customer was sent and the products
their coupons cover, the coupons they redeemed.  Every such two-hop meta-path
``customer -r1-> X -r2-> product`` (X any node type other than customers, products and the
event tables' basket ids, which only repeat the history) becomes one pair column::

    path(u, i) = sum_x  a(u, x) * b(x, i)

with ``a`` the customer's edges to X as shares (each row sums to 1) and ``b`` the summed
weights of X's edges to products; every edge weighs ``0.5 ** (age / half_life)`` at the
reference time ``t`` and only edges before ``t`` count, so a window's features never see its
labels.  For The Complete Journey: ``path_transactions_store_id`` (what sells at the customer's
stores), ``path_campaigns__coupons`` (coupons of the campaigns the customer was sent, by
recency) and ``path_coupon_redemptions__coupons``.

Found from the schema, not per dataset: a dataset whose other tables do not link customers to
products gets no path columns.  ``exclude_tables`` leaves tables out (table ablations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from hoprec.data.dataset import Dataset
from hoprec.models.pair_features import _top_per_row, _walk_score

_NS_PER_DAY = 86_400 * 10**9


@dataclass
class _Edges:
    src: np.ndarray
    dst: np.ndarray
    time: np.ndarray  # ns
    weight: np.ndarray
    shape: tuple[int, int]

    def matrix(self, t_ns: int, half_life_days: float, row_share: bool) -> sp.csr_matrix:
        keep = self.time < t_ns
        age = (t_ns - self.time[keep]) / _NS_PER_DAY
        w = self.weight[keep].astype(np.float64) * np.exp2(-np.maximum(age, 0.0) / half_life_days)
        m = sp.csr_matrix((w, (self.src[keep], self.dst[keep])), shape=self.shape)
        m.sum_duplicates()
        if row_share:
            m = (sp.diags(1.0 / np.maximum(np.asarray(m.sum(axis=1)).ravel(), 1e-12)) @ m).tocsr()
        return m


@dataclass
class PathSignals:
    """The meta-paths of one dataset, as time-stamped edge lists (see the module doc)."""

    names: list[str]
    left: list[_Edges]  # customer -> X
    right: list[_Edges]  # X -> product
    half_life_days: float

    @classmethod
    def from_dataset(cls, dataset: Dataset, half_life_days: float = 30.0,
                     exclude_tables: tuple[str, ...] = ()) -> PathSignals:
        from hoprec.graph.hetero import GraphConfig, build_graph

        task = dataset.task
        if task is None or dataset.db is None:
            return cls([], [], [], half_life_days)
        cfg = GraphConfig(attribute_nodes=False, co_purchase=False, bought_after=False,
                          aggregate_pairs=False, exclude_tables=tuple(exclude_tables))
        g = build_graph(dataset, task, cfg)
        E, item = g.entity_type, g.item_type
        baskets = {task.schema.tables[h.table].foreign_keys.get(h.basket_column)
                   for h in task.history if h.basket_column}
        skip = {E, item, *baskets}

        def coo(et) -> tuple[np.ndarray, ...]:
            s = g.edges[et]
            dst = np.repeat(np.arange(len(s.rowptr) - 1), np.diff(s.rowptr.numpy()))
            return s.col.numpy(), dst, s.time.numpy(), s.weight.numpy()

        names, left, right = [], [], []
        for e1 in g.edges:
            if e1[0] != E or e1[2] in skip:
                continue
            x = e1[2]
            for e2 in g.edges:
                if e2[0] != x or e2[2] != item:
                    continue
                r1, r2 = e1[1].removeprefix("rev_"), e2[1].removeprefix("rev_")
                names.append(f"path_{r1}" if r1 == r2 else f"path_{r1}__{r2}")  # LightGBM-safe
                src, dst, tm, w = coo(e1)
                left.append(_Edges(src, dst, tm, w, (g.num_nodes[E], g.num_nodes[x])))
                src, dst, tm, w = coo(e2)
                right.append(_Edges(src, dst, tm, w, (g.num_nodes[x], g.num_nodes[item])))
        return cls(names, left, right, half_life_days)

    def at(self, t: np.datetime64) -> list[tuple[sp.csr_matrix, sp.csr_matrix]]:
        """Each path's ``(a, b)`` matrices at time ``t``."""
        t_ns = int(np.datetime64(t, "ns").astype(np.int64))
        return [(lo.matrix(t_ns, self.half_life_days, True), hi.matrix(t_ns, self.half_life_days, False))
                for lo, hi in zip(self.left, self.right)]


def path_features(mats: list[tuple[sp.csr_matrix, sp.csr_matrix]], u: np.ndarray,
                  i: np.ndarray) -> np.ndarray:
    """``(len(u), len(mats))``: each path's weight for each pair."""
    cols = [_walk_score(a, b, u, i) for a, b in mats]
    return np.column_stack(cols) if cols else np.zeros((len(u), 0))


def path_candidates(mats: list[tuple[sp.csr_matrix, sp.csr_matrix]], users: np.ndarray,
                    n: int) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) pairs: each user's top ``n`` products by each path's weight."""
    rows, cols = [], []
    for a, b in mats:
        for s in range(0, len(users), 512):
            block = users[s : s + 512]
            top = _top_per_row((a[block] @ b).tocsr(), n).tocoo()
            rows.append(block[top.row])
            cols.append(top.col)
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def to_state(mats: list[tuple[sp.csr_matrix, sp.csr_matrix]], names: list[str]) -> dict[str, np.ndarray]:
    """The matrices at the fitted cutoff as flat arrays (for the model's saved state)."""
    out: dict[str, np.ndarray] = {"path_names": np.array(names, dtype=np.str_)}
    for k, pair in enumerate(mats):
        for side, m in zip(("a", "b"), pair):
            out[f"path{k}_{side}_indptr"] = m.indptr.astype(np.int64)
            out[f"path{k}_{side}_indices"] = m.indices.astype(np.int64)
            out[f"path{k}_{side}_data"] = m.data.astype(np.float64)
            out[f"path{k}_{side}_shape"] = np.array(m.shape, dtype=np.int64)
    return out


def from_state(state: dict[str, np.ndarray]) -> tuple[list[str], list[tuple[sp.csr_matrix, sp.csr_matrix]]]:
    names = [str(n) for n in state.get("path_names", np.zeros(0, dtype=np.str_))]
    mats = []
    for k in range(len(names)):
        pair = tuple(
            sp.csr_matrix((state[f"path{k}_{s}_data"], state[f"path{k}_{s}_indices"],
                           state[f"path{k}_{s}_indptr"]), shape=tuple(state[f"path{k}_{s}_shape"]))
            for s in ("a", "b"))
        mats.append(pair)
    return names, mats
