"""Basket-sequence and repurchase-rhythm signals for the hybrid's pair features.

Decayed counts and days-since say how much and how lately a customer bought an item; they do not
say where the item sits in the customer's *sequence of baskets* or how soon people come back for
it.  Grocery repurchase is paced by baskets and by the product's own cycle (milk weekly, washing
powder monthly), so this module adds, from the events before ``t`` only:

- per pair: baskets since the customer last bought the item (0 = in their latest basket), the
  share of their last 3 and last 10 baskets that hold it, and the share of their purchases of it
  that were followed by another within the horizon;
- per item: the share of purchases followed by the same customer's next one within the horizon
  (smoothed toward the global rate), and the mean gap between a customer's purchases of it;
- per customer: the share of their purchases followed by a repurchase within the horizon.

Only purchases at least one horizon before ``t`` count toward the "followed within the horizon"
rates, so each rate is measured on complete follow-up windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

FEATURES = (
    "baskets_since_last", "in_last3", "in_last10", "pair_rebuy", "item_rebuy", "item_gap",
    "overdue_item", "user_rebuy",
)
_PRIOR = 20.0  # pseudo-purchases pulling an item's rebuy rate toward the global one


@dataclass
class Rhythm:
    since: sp.csr_matrix  # baskets since last purchase of the pair + 1 (0 = absent)
    last3: sp.csr_matrix
    last10: sp.csr_matrix
    pair_rebuy: sp.csr_matrix  # rebought / eligible purchases, + 1 where eligible (0 = none)
    item_rebuy: np.ndarray
    item_gap: np.ndarray  # NaN where nobody bought the item twice
    user_rebuy: np.ndarray


def rhythm(user: np.ndarray, item: np.ndarray, basket: np.ndarray, age: np.ndarray,
           n_users: int, n_items: int, horizon_days: float) -> Rhythm:
    """Signals from purchase rows (``basket`` a code per row; ``age`` days before ``t``)."""
    shape = (n_users, n_items)
    # one row per (customer, basket, item): several lines of one item in a basket are one purchase
    df = pd.DataFrame({"u": user, "i": item, "b": basket, "a": age})
    df = df.groupby(["u", "b", "i"], sort=False)["a"].min().reset_index()
    baskets = df.groupby(["u", "b"], sort=False)["a"].min().reset_index()
    baskets = baskets.sort_values(["u", "a", "b"], kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(baskets.u.to_numpy())) + 1]
    sizes = np.diff(np.r_[starts, len(baskets)])
    baskets["rank"] = np.arange(len(baskets)) - np.repeat(starts, sizes)  # 0 = latest basket
    df = df.merge(baskets[["u", "b", "rank"]], on=["u", "b"], how="left")
    u, i, r = df.u.to_numpy(), df.i.to_numpy(), df["rank"].to_numpy()

    def pair(vals: np.ndarray, mask: np.ndarray | None = None) -> sp.csr_matrix:
        m = mask if mask is not None else np.ones(len(u), dtype=bool)
        out = sp.csr_matrix((vals[m], (u[m], i[m])), shape=shape)
        out.sum_duplicates()
        return out

    since = pd.DataFrame({"u": u, "i": i, "r": r}).groupby(["u", "i"], sort=False)["r"].min()
    idx = since.index.to_frame().to_numpy()
    since_m = sp.csr_matrix((since.to_numpy() + 1.0, (idx[:, 0], idx[:, 1])), shape=shape)
    last3 = pair(np.ones(len(u)), r < 3)
    last10 = pair(np.ones(len(u)), r < 10)

    # the next purchase of the same pair: rows sorted by (customer, item, age descending)
    order = np.lexsort((-df.a.to_numpy(), i, u))
    uo, io, ao = u[order], i[order], df.a.to_numpy()[order]
    same = np.r_[(uo[1:] == uo[:-1]) & (io[1:] == io[:-1]), False]
    gap = np.where(same, ao - np.r_[ao[1:], 0.0], np.nan)
    eligible = ao >= horizon_days
    rebuy = eligible & same & (gap <= horizon_days)
    glob = rebuy.sum() / max(eligible.sum(), 1)
    n_el = np.bincount(io[eligible], minlength=n_items)
    n_re = np.bincount(io[rebuy], minlength=n_items)
    item_rebuy = (n_re + _PRIOR * glob) / (n_el + _PRIOR)
    has_gap = ~np.isnan(gap)
    gsum = np.bincount(io[has_gap], weights=gap[has_gap], minlength=n_items)
    gcnt = np.bincount(io[has_gap], minlength=n_items)
    item_gap = np.where(gcnt > 0, gsum / np.maximum(gcnt, 1), np.nan)
    u_el = np.bincount(uo[eligible], minlength=n_users)
    u_re = np.bincount(uo[rebuy], minlength=n_users)
    user_rebuy = np.where(u_el > 0, u_re / np.maximum(u_el, 1), np.nan)
    pe = sp.csr_matrix((eligible.astype(np.float64), (uo, io)), shape=shape)
    pr = sp.csr_matrix((rebuy.astype(np.float64), (uo, io)), shape=shape)
    pe.sum_duplicates()
    pr.sum_duplicates()
    pe.eliminate_zeros()
    ratio = pe.copy()
    ratio.data = np.asarray(pr[pe.nonzero()]).ravel() / pe.data + 1.0
    return Rhythm(since_m, last3, last10, ratio.tocsr(), item_rebuy, item_gap, user_rebuy)


def rhythm_features(rh: Rhythm, u: np.ndarray, i: np.ndarray, days_since_last: np.ndarray,
                    user_baskets: np.ndarray, lookup) -> list[np.ndarray]:
    """Columns in :data:`FEATURES` order for pairs ``(u, i)``; ``lookup(m, u, i)`` reads a sparse
    matrix per pair, ``days_since_last`` is the pair's (NaN where never bought), ``user_baskets``
    each customer's number of baskets."""
    since = lookup(rh.since, u, i) - 1.0
    since[since < 0] = np.nan
    nb = np.maximum(user_baskets[u], 1.0)
    rebuy = lookup(rh.pair_rebuy, u, i) - 1.0
    rebuy[rebuy < 0] = np.nan
    gap = rh.item_gap[i]
    overdue = np.divide(days_since_last, gap, out=np.full(len(u), np.nan), where=gap > 0)
    return [since, lookup(rh.last3, u, i) / np.minimum(nb, 3.0), lookup(rh.last10, u, i) / np.minimum(nb, 10.0),
            rebuy, rh.item_rebuy[i], gap, overdue, rh.user_rebuy[u]]
