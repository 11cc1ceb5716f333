"""Small known-answer datasets built directly from arrays (no files, no database)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from hoprec.data.dataset import Dataset, Interactions
from hoprec.data.idmap import IdMap

CUTOFF = pd.Timestamp("2024-06-01")


def make_dataset(
    events: list[tuple[int, int, float]] | np.ndarray,
    n_users: int,
    n_items: int,
    weights: np.ndarray | None = None,
) -> Dataset:
    """A dataset of ``(user, item, days before the cutoff)`` events (weight 1 unless given)."""
    ev = np.asarray(events, dtype=np.float64).reshape(-1, 3)
    weight = np.ones(len(ev), np.float32) if weights is None else np.asarray(weights, np.float32)
    time = (CUTOFF.to_datetime64() - (ev[:, 2] * 86400e9).astype("timedelta64[ns]")).astype(
        "datetime64[ns]"
    )
    order = np.argsort(time, kind="stable")
    inter = Interactions(
        user=ev[order, 0].astype(np.int64),
        item=ev[order, 1].astype(np.int64),
        time=time[order],
        weight=weight[order],
        quantity=np.ones(len(ev), np.float32),
        kind=np.where(weight[order] > 0, 0, 1).astype(np.int16),
        kinds=("purchase", "return"),
        basket=np.full(len(ev), -1, np.int64),
    )
    return Dataset(
        users=IdMap.from_values(range(n_users)),
        items=IdMap.from_values(range(n_items)),
        interactions=inter,
        cutoff=CUTOFF,
    )


@dataclass
class Checker:
    """A checkerboard: even users chose even items, odd users odd items, minus one held-out item.

    Users ``0 .. n_board-1`` are on the board; ``held_out[u]`` is the one same-group item user u
    did not choose, so with the training items excluded it is the only right top-1.  User
    ``n_board`` has no events and user ``n_board + 1`` only a return: neither has history.
    """

    dataset: Dataset
    held_out: np.ndarray
    n_board: int

    @property
    def train(self):
        return self.dataset.positive_matrix()


def get_checker(n_board: int = 40, n_items: int = 20) -> Checker:
    half = n_items // 2
    events, held_out = [], np.empty(n_board, np.int64)
    for u in range(n_board):
        group = np.arange(u % 2, n_items, 2)
        held_out[u] = group[(u // 2) % half]
        for i in group[group != held_out[u]]:
            events.append((u, i, 0.5 + (7 * u + 3 * i) % 60))
    weights = np.ones(len(events) + 1, np.float32)
    weights[-1] = -1.0
    events.append((n_board + 1, 0, 1.0))  # a return is not history
    return Checker(make_dataset(events, n_board + 2, n_items, weights), held_out, n_board)


@pytest.fixture
def checker() -> Checker:
    return get_checker()


@pytest.fixture
def timed() -> Dataset:
    """Nine items, six users; counts chosen so that every window and mode orders differently.

    - user 0: item 0 sixty days ago, item 1 two days ago;
    - user 1: item 2 three times sixty days ago, item 3 one day ago;
    - items 4 (users 2, 3, 4) and 5 (users 2, 3) recently; user 3 returns item 5 yesterday;
    - item 6: user 5 five times 15 days ago; item 7: users 2-5, 200 days ago; item 8: never.
    """
    events = [(0, 0, 60), (0, 1, 2), (1, 2, 60), (1, 2, 60), (1, 2, 60), (1, 3, 1)]
    events += [(u, 4, 5) for u in (2, 3, 4)] + [(u, 5, 10) for u in (2, 3)]
    events += [(5, 6, 15)] * 5 + [(u, 7, 200) for u in (2, 3, 4, 5)] + [(3, 5, 1)]
    weights = np.ones(len(events), np.float32)
    weights[-1] = -1.0
    return make_dataset(events, 6, 9, weights)
