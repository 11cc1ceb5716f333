"""Buy it again: the user's own items by recency-decayed frequency, then popular items.

With ``t_c`` the dataset's cutoff, ``h`` = ``half_life_days`` and ``w_e`` an event's kind weight
(``1`` when ``use_weight=False``), the repeat score of an item the user has chosen is::

    r(u, i) = sum over u's positive events e on i of  w_e * 2 ** (-(t_c - t_e) / h)

so an event one half-life old counts half, and two recent purchases beat one.  Returns (weight
<= 0) are not positive events.  Scores are returned in an order-preserving encoding that cannot
underflow for old purchases and that puts every own item above every other item::

    score(u, i) = 1 + log2(r(u, i)) - min_{v, j} log2(r(v, j))     if u chose i   (>= 1)
    score(u, i) = 0.5 * pop_i / max_j pop_j                         otherwise      (<= 0.5)

where ``pop`` is the base class's recent popularity (:attr:`Recommender.popularity`); with
``fill_popular=False`` the other items score ``-inf`` and lists may be shorter than ``k`` (padded
with -1).  Users without positive history get the base class's popularity fallback.

Defaults: ``half_life_days=30``, ``fill_popular=True``, ``use_weight=True``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from hoprec.data.dataset import Dataset, Interactions
from hoprec.models.base import ModelConfig, Recommender


def age_days(inter: Interactions, cutoff: pd.Timestamp) -> np.ndarray:
    """Age of each event at ``cutoff`` in days (float64, never negative)."""
    age = (cutoff.to_datetime64() - inter.time) / np.timedelta64(1, "D")
    return np.maximum(age.astype(np.float64), 0.0)


def recency_decay(inter: Interactions, cutoff: pd.Timestamp, half_life_days: float) -> np.ndarray:
    """``2 ** (-age_days / half_life_days)`` per event: 1 at the cutoff, 1/2 one half-life before."""
    return np.exp2(-age_days(inter, cutoff) / half_life_days)


class RepeatConfig(ModelConfig):
    #: days after which a purchase counts half as much
    half_life_days: float = Field(default=30, gt=0)
    #: rank recently popular items after the user's own items (else they are never recommended)
    fill_popular: bool = True
    #: multiply each event's decay by its kind weight
    use_weight: bool = True


class RepeatPurchase(Recommender):
    """Recommends what the user chose before, most recent and most frequent first."""

    name: ClassVar[str] = "repeat"
    config_class: ClassVar[type[ModelConfig]] = RepeatConfig
    param_grid: ClassVar[list[dict[str, Any]]] = [{"half_life_days": h} for h in (7, 30, 90, 365)]

    def _fit(self, dataset: Dataset) -> None:
        cfg: RepeatConfig = self.config  # type: ignore[assignment]
        inter = dataset.interactions.select(dataset.interactions.positive())
        # log2 of each event's contribution, summed per (user, item) without leaving log space
        x = -age_days(inter, dataset.cutoff) / cfg.half_life_days
        if cfg.use_weight:
            x = x + np.log2(inter.weight.astype(np.float64))
        keys = inter.user * self.n_items + inter.item
        order = np.argsort(keys, kind="stable")
        keys, x = keys[order], x[order]
        pairs, start, count = np.unique(keys, return_index=True, return_counts=True)
        if len(pairs):
            peak = np.maximum.reduceat(x, start)
            log_r = peak + np.log2(np.add.reduceat(np.exp2(x - np.repeat(peak, count)), start))
            encoded = 1.0 + log_r - log_r.min()
        else:
            encoded = np.zeros(0)
        rows = pairs // self.n_items
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=self.n_users), out=indptr[1:])
        self.own = sp.csr_matrix(
            (encoded.astype(np.float32), pairs % self.n_items, indptr),
            shape=(self.n_users, self.n_items),
        )
        if cfg.fill_popular:
            pop = self.popularity.astype(np.float64)
            self.fill = (0.5 * pop / max(pop.max(initial=0.0), 1e-30)).astype(np.float32)
        else:
            self.fill = np.full(self.n_items, -np.inf, dtype=np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        scores = np.tile(self.fill, (len(users), 1))
        own = self.own
        for row, u in enumerate(users.tolist()):  # plain CSR row slices: no scipy indexing cost
            lo, hi = own.indptr[u], own.indptr[u + 1]
            scores[row, own.indices[lo:hi]] = own.data[lo:hi]
        return scores

    def _score_history(self, items, times, weights, user) -> np.ndarray:
        """Fold-in: the repeat score of each item in the history (positive events only), encoded
        as ``1 + log2 r - min log2 r`` within this user, then the popular fill: the same order as
        a refit would give this user, without a refit."""
        cfg: RepeatConfig = self.config  # type: ignore[assignment]
        scores = self.fill.copy()
        pos = weights > 0
        if not pos.any():
            return scores
        items, times, w = items[pos], times[pos], weights[pos].astype(np.float64)
        x = -(times.max() - times) / (86_400e9 * cfg.half_life_days)  # log2 of the decay
        if cfg.use_weight:
            x = x + np.log2(w)
        uniq, inv = np.unique(items, return_inverse=True)
        peak = np.full(len(uniq), -np.inf)
        np.maximum.at(peak, inv, x)
        total = np.zeros(len(uniq))
        np.add.at(total, inv, np.exp2(x - peak[inv]))
        log_r = peak + np.log2(total)
        scores[uniq] = (1.0 + log_r - log_r.min()).astype(np.float32)
        return scores

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "own_indptr": self.own.indptr,
            "own_indices": self.own.indices,
            "own_data": self.own.data,
            "fill": self.fill,
        }

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.own = sp.csr_matrix(
            (state["own_data"], state["own_indices"], state["own_indptr"]),
            shape=(self.n_users, self.n_items),
        )
        self.fill = state["fill"]
