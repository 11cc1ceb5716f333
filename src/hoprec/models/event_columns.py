"""Signals from the event tables' own numerical columns (price paid, discounts, quantity).

``Interactions`` keep who, what, when and a weight; the event rows often say more.  In The
Complete Journey every purchase line carries ``quantity``, ``sales_value``, ``retail_disc`` and
``coupon_disc``: a product whose recent lines carry larger discounts than usual is probably on
promotion, and a household that buys a product mostly on discount is a deal-seeker for it.

Every ``numerical`` column the schema declares on a history table becomes, per (customer,
product) pair at reference time ``t`` (events strictly before ``t`` only)::

    ev_<col>_item14    the product's mean over its lines in the 14 days before t
    ev_<col>_lift      that mean minus the product's mean over the 90 days before t
    ev_<col>_pair      the pair's own mean over all its lines before t

Values enter as ``sign(v) * log1p(|v|)``, so a few extreme rows (fuel bought by the litre) do not
dominate a mean; a mean over no lines is NaN (LightGBM's "missing").  Found from the schema, not
per dataset: an event table without numerical columns adds no columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hoprec.data.dataset import Dataset
from hoprec.models.pair_features import _lookup

RECENT_DAYS, LONG_DAYS = 14.0, 90.0
_NS_PER_DAY = 86_400 * 10**9


@dataclass
class EventColumns:
    """The history tables' numerical columns, one row per event line (internal ids)."""

    names: list[str]  # column names, one per ``values`` column
    user: np.ndarray
    item: np.ndarray
    time: np.ndarray  # ns since the epoch
    values: np.ndarray  # (n, len(names)) float32, log-compressed
    n_users: int
    n_items: int

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> EventColumns:
        task, db = dataset.task, dataset.db
        empty = cls([], *(np.zeros(0, np.int64) for _ in range(3)), np.zeros((0, 0), np.float32),
                    dataset.n_users, dataset.n_items)
        if task is None or db is None:
            return empty
        cols = sorted({c for h in task.history for c, kind in task.schema.tables[h.table].columns.items()
                       if kind == "numerical"})
        if not cols:
            return empty
        parts = []
        for h in task.history:
            df = db[h.table]
            tc = task.schema.tables[h.table].time_column
            part = pd.DataFrame({
                "u": dataset.users.to_internal(df[h.entity_column].to_numpy(), missing=-1),
                "i": dataset.items.to_internal(df[h.item_column].to_numpy(), missing=-1),
                "t": pd.to_datetime(df[tc]).to_numpy(dtype="datetime64[ns]").astype(np.int64),
            })
            for c in cols:
                v = pd.to_numeric(df[c], errors="coerce").to_numpy(np.float64) if c in df else np.nan
                part[c] = np.sign(v) * np.log1p(np.abs(v))
            parts.append(part[(part.u >= 0) & (part.i >= 0)])
        ev = pd.concat(parts, ignore_index=True)
        return cls(cols, ev.u.to_numpy(np.int64), ev.i.to_numpy(np.int64), ev.t.to_numpy(np.int64),
                   ev[cols].to_numpy(np.float32), dataset.n_users, dataset.n_items)

    def feature_names(self) -> list[str]:
        return [f"ev_{c}_{s}" for c in self.names for s in ("item14", "lift", "pair")]

    def at(self, t: np.datetime64) -> EventSignals:
        """Per-item recent/long means and per-pair sums of the lines before ``t``."""
        t_ns = int(np.datetime64(t, "ns").astype(np.int64))
        before = self.time < t_ns
        age = (t_ns - self.time[before]) / _NS_PER_DAY
        u, i, vals = self.user[before], self.item[before], self.values[before]

        def item_mean(mask: np.ndarray) -> np.ndarray:
            out = np.full((self.n_items, len(self.names)), np.nan)
            for k in range(len(self.names)):
                ok = mask & ~np.isnan(vals[:, k])
                n = np.bincount(i[ok], minlength=self.n_items)
                s = np.bincount(i[ok], weights=vals[ok, k], minlength=self.n_items)
                out[:, k] = np.where(n > 0, s / np.maximum(n, 1), np.nan)
            return out

        pair_sum, pair_n = [], []
        for k in range(len(self.names)):
            ok = ~np.isnan(vals[:, k])
            shape = (self.n_users, self.n_items)
            s = sp.csr_matrix((vals[ok, k].astype(np.float64), (u[ok], i[ok])), shape=shape)
            n = sp.csr_matrix((np.ones(int(ok.sum())), (u[ok], i[ok])), shape=shape)
            s.sum_duplicates()
            n.sum_duplicates()
            pair_sum.append(s)
            pair_n.append(n)
        return EventSignals(item_mean(age < RECENT_DAYS), item_mean(age < LONG_DAYS), pair_sum, pair_n)

    def state(self) -> dict[str, np.ndarray]:
        return {"ev_names": np.array(self.names, dtype=np.str_), "ev_user": self.user, "ev_item": self.item,
                "ev_time": self.time, "ev_values": self.values,
                "ev_shape": np.array([self.n_users, self.n_items], np.int64)}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> EventColumns | None:
        if "ev_names" not in state:
            return None
        n_users, n_items = (int(x) for x in state["ev_shape"])
        return cls([str(n) for n in state["ev_names"]], state["ev_user"], state["ev_item"],
                   state["ev_time"], state["ev_values"], n_users, n_items)


@dataclass
class EventSignals:
    recent: np.ndarray  # (n_items, C) mean over the last RECENT_DAYS
    long: np.ndarray  # (n_items, C) mean over the last LONG_DAYS
    pair_sum: list[sp.csr_matrix]
    pair_n: list[sp.csr_matrix]

    def features(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """``(len(u), 3 C)``: item14, lift and pair mean per column (see the module doc)."""
        cols = []
        for k in range(self.recent.shape[1]):
            n = _lookup(self.pair_n[k], u, i)
            pair = np.where(n > 0, _lookup(self.pair_sum[k], u, i) / np.maximum(n, 1), np.nan)
            cols += [self.recent[i, k], self.recent[i, k] - self.long[i, k], pair]
        return np.column_stack(cols) if cols else np.zeros((len(u), 0))
