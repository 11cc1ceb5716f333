"""Item-to-item edges derived from the purchase history before the cutoff.

Both relations read only the positive rows (weight > 0) of the dataset's interactions, which hold
nothing at or after the cutoff.  A *basket* is the row's basket id; rows without one form a basket
per ``(entity, timestamp)``.  A basket's time is its earliest row's, its owner its first row's
entity.

- ``co_purchase`` (symmetric): ``count(i, j)`` = number of baskets that contain both ``i != j``
  (with ``normalize``: ``count / sqrt(n_i * n_j)``, ``n_i`` = baskets containing ``i``; pairs
  with ``count < min_count`` dropped).  Each item keeps its ``top_k`` partners by weight and the
  result is made symmetric by union, so an item can have more than ``top_k`` partners.
- ``bought_after`` (directed ``a -> b``): ``count(a, b)`` = number of pairs of baskets
  ``(p, q)`` of the same entity with ``0 < time(q) - time(p) <= window`` and ``a`` in ``p``,
  ``b`` in ``q``, ``a != b``.  Each source item keeps its ``top_k`` targets.

Both are computed as sparse matrix products (``B^T B`` and ``B^T S B`` with ``B`` the basket x
item incidence and ``S`` the "is followed within the window by" basket x basket matrix), in chunks
of item rows sized so that no chunk holds more than ``max_pairs`` entries at once.

An edge's time is an upper bound on the time of the latest event that its count summarises:
``min(last_i, last_j)`` for ``co_purchase`` and ``last_b`` for ``bought_after`` (``last_x`` = the
latest basket holding ``x``): a seed later than it sees the full count, an earlier seed no edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from hoprec.data.dataset import Interactions


@dataclass
class ItemEdges:
    """Item -> item edges as parallel arrays (``src``, ``dst``, ``weight``, ``time`` in ns)."""

    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    time: np.ndarray


@dataclass
class Baskets:
    """The basket x item incidence of the positive history, with each basket's owner and time."""

    matrix: sp.csr_matrix  # baskets x items, 1.0 where the item is in the basket
    owner: np.ndarray  # int64 entity of each basket
    time: np.ndarray  # int64 ns, earliest row of each basket
    item_last: np.ndarray  # int64 ns, latest basket time per item (int64 min if never bought)

    @classmethod
    def from_interactions(cls, inter: Interactions, n_items: int) -> Baskets:
        pos = inter.positive()
        user, item = inter.user[pos], inter.item[pos]
        time = inter.time[pos].astype("datetime64[ns]").view(np.int64)
        basket = inter.basket[pos]
        nb = int(basket.max()) + 1 if len(basket) else 0
        loose = basket < 0  # rows without a basket id: one basket per (entity, timestamp)
        if loose.any():
            _, code = np.unique(np.stack([user[loose], time[loose]]), axis=1, return_inverse=True)
            basket = basket.copy()
            basket[loose] = nb + code.ravel()
        codes, basket = np.unique(basket, return_inverse=True)
        n = len(codes)
        first = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(first, basket, time)
        _, first_row = np.unique(basket, return_index=True)
        owner = user[first_row].astype(np.int64)  # rows are in time order: the first row's entity
        m = sp.csr_matrix((np.ones(len(item), np.float32), (basket, item)), shape=(n, n_items))
        m.sum_duplicates()
        m.data[:] = 1.0
        item_last = np.full(n_items, np.iinfo(np.int64).min)
        np.maximum.at(item_last, item, time)
        return cls(m, owner, first, item_last)

    def followers(self, window_ns: int) -> sp.csr_matrix:
        """``S[p, q] = 1`` when basket ``q`` of ``p``'s owner comes within the window after ``p``."""
        order = np.lexsort((self.time, self.owner))
        own, tim = self.owner[order], self.time[order]
        rows, cols = [], []
        d = 1
        while d < len(order):
            gap = tim[d:] - tim[:-d]
            same = own[d:] == own[:-d]
            within = same & (gap <= window_ns)
            if not within.any():
                break  # sorted by time per owner: a larger offset only widens the gap
            ok = within & (gap > 0)
            rows.append(order[:-d][ok])
            cols.append(order[d:][ok])
            d += 1
        n = len(order)
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n, n))


def _chunks(work: np.ndarray, max_pairs: int) -> list[tuple[int, int]]:
    """Split rows into consecutive ranges whose summed ``work`` stays under ``max_pairs``."""
    bounds = [0]
    acc = 0
    for i, w in enumerate(work.tolist()):
        if acc + w > max_pairs and i > bounds[-1]:
            bounds.append(i)
            acc = 0
        acc += w
    bounds.append(len(work))
    return list(zip(bounds[:-1], bounds[1:]))


def _top_k(block: sp.csr_matrix, offset: int, top_k: int) -> tuple[np.ndarray, ...]:
    """The ``top_k`` largest entries of each row (ties: smaller column first), diagonal dropped."""
    block = block.tocsr()
    block.sort_indices()
    rows = np.repeat(np.arange(block.shape[0], dtype=np.int64), np.diff(block.indptr))
    cols = block.indices.astype(np.int64)
    vals = block.data.astype(np.float32)
    keep = (rows + offset != cols) & (vals > 0)
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    # rows ascending, columns ascending within a row: one stable sort by (row, value descending)
    # does it; the bits of a positive float32 read as an integer keep the order of the values
    desc = np.int64(0x7FFFFFFF) - vals.view(np.int32).astype(np.int64)
    order = np.argsort((rows << 31) | desc, kind="stable")  # rows[order] == rows
    counts = np.bincount(rows, minlength=block.shape[0])
    starts = np.cumsum(counts) - counts
    sel = order[(np.arange(len(rows)) - starts[rows]) < top_k]
    return rows[sel] + offset, cols[sel], vals[sel]


def _product_top_k(
    left: sp.csr_matrix, right: sp.csr_matrix, top_k: int, max_pairs: int,
    transform: Callable[[sp.csr_matrix, int], sp.csr_matrix] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k per row of ``left @ right``, computed in row chunks."""
    work = left @ np.diff(right.indptr).astype(np.float64)  # an upper bound on each row's nnz
    parts = [(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))]
    for lo, hi in _chunks(work, max_pairs):
        block = (left[lo:hi] @ right).tocsr()
        if transform is not None:
            block = transform(block, lo)
        parts.append(_top_k(block, lo, top_k))
    r, c, v = (np.concatenate([p[k] for p in parts]) for k in range(3))
    return r, c, v


def co_purchase(
    baskets: Baskets, top_k: int = 50, normalize: bool = False, min_count: int = 1,
    max_pairs: int = 5_000_000,
) -> ItemEdges:
    """Symmetric same-basket edges (see the module docstring)."""
    b = baskets.matrix
    bt = b.T.tocsr()
    n_i = np.asarray(b.sum(axis=0)).ravel().astype(np.float64)

    def weigh(block: sp.csr_matrix, lo: int) -> sp.csr_matrix:
        block.data[block.data < min_count] = 0  # dropped by _top_k
        if normalize:
            rows = np.repeat(np.arange(lo, lo + block.shape[0]), np.diff(block.indptr))
            block.data = block.data / np.sqrt(n_i[rows] * n_i[block.indices])
        return block

    r, c, v = _product_top_k(bt, b, top_k, max_pairs, weigh)
    # union with the mirror image: the weight is symmetric, so either copy of a pair will do
    n_items = b.shape[1]
    key, first = np.unique(np.concatenate([r * n_items + c, c * n_items + r]), return_index=True)
    src, dst = key // n_items, key % n_items
    weight = np.concatenate([v, v])[first]
    time = np.minimum(baskets.item_last[src], baskets.item_last[dst])
    return ItemEdges(src, dst, weight.astype(np.float32), time)


def bought_after(
    baskets: Baskets, window_days: float = 14.0, top_k: int = 50, max_pairs: int = 5_000_000,
) -> ItemEdges:
    """Directed "bought in a later basket within the window" edges (see the module docstring)."""
    b = baskets.matrix
    follow = baskets.followers(int(window_days * 86_400 * 1e9))
    later = (follow @ b).tocsr()  # basket p x item b: how many following baskets hold b
    r, c, v = _product_top_k(b.T.tocsr(), later, top_k, max_pairs)
    return ItemEdges(r, c, v, baskets.item_last[c].copy())
