"""What a model sees at one cutoff: interactions and features in internal ids.

:class:`Dataset` is the single input of every model's ``fit``.  It is built by the task stage from
a :class:`~hoprec.data.database.Database` snapshot, so it holds nothing at or after its cutoff.
Graph models reach the whole relational snapshot through :attr:`Dataset.db`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hoprec.data.database import Database
from hoprec.data.idmap import IdMap


@dataclass
class Interactions:
    """Timed (entity, item) events in internal ids, sorted by time.

    ``weight`` is the event kind's weight (negative for returns); ``quantity`` is >= 0 (1 when the
    schema names no quantity column); ``basket`` is a per-dataset basket code or -1.
    """

    user: np.ndarray  # int64 (n,)
    item: np.ndarray  # int64 (n,)
    time: np.ndarray  # datetime64[ns] (n,)
    weight: np.ndarray  # float32 (n,)
    quantity: np.ndarray  # float32 (n,)
    kind: np.ndarray  # int16 codes into `kinds`
    kinds: tuple[str, ...]
    basket: np.ndarray  # int64 (n,), -1 = none

    def __len__(self) -> int:
        return len(self.user)

    def positive(self) -> np.ndarray:
        """Mask of rows that express interest (weight > 0): returns are never positives."""
        return self.weight > 0

    def select(self, mask: np.ndarray) -> Interactions:
        return Interactions(
            self.user[mask], self.item[mask], self.time[mask], self.weight[mask],
            self.quantity[mask], self.kind[mask], self.kinds, self.basket[mask],
        )

    def matrix(self, n_users: int, n_items: int, values: np.ndarray | None = None) -> sp.csr_matrix:
        """users x items CSR matrix summing ``values`` (default: kind weights) per pair."""
        vals = self.weight if values is None else values
        m = sp.csr_matrix(
            (vals.astype(np.float32), (self.user, self.item)), shape=(n_users, n_items)
        )
        m.sum_duplicates()
        return m


@dataclass
class Dataset:
    """Everything known at ``cutoff`` about entities (users) and items, in internal ids."""

    users: IdMap
    items: IdMap
    interactions: Interactions
    cutoff: pd.Timestamp
    user_features: pd.DataFrame = field(default_factory=pd.DataFrame)  # index: internal user id
    item_features: pd.DataFrame = field(default_factory=pd.DataFrame)  # index: internal item id
    db: Database | None = None
    #: length of the task's label window (how far ahead the task predicts), if known
    horizon: pd.Timedelta | None = None
    #: the bound task (a :class:`hoprec.task.task.Task`), for models that build the graph
    task: Any = None

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def positive_matrix(self) -> sp.csr_matrix:
        """users x items count of positive events (purchases, views, … but not returns)."""
        pos = self.interactions.select(self.interactions.positive())
        return pos.matrix(self.n_users, self.n_items, np.ones(len(pos), dtype=np.float32))

    def __repr__(self) -> str:
        return (
            f"Dataset(cutoff={self.cutoff}, users={self.n_users}, items={self.n_items}, "
            f"interactions={len(self.interactions)})"
        )
