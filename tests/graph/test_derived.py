"""Item-to-item edges on a history small enough to count by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hoprec.data.dataset import Interactions
from hoprec.graph.derived import Baskets, bought_after, co_purchase

DAY = 86_400 * 10**9
T0 = pd.Timestamp("2024-01-01").value


def _history() -> Interactions:
    # user 0: basket 0 on day 0 {0, 1}, basket 1 on day 3 {1, 2}, basket 2 on day 20 {3},
    #         then returns item 3 on day 21 (ignored: not a positive row)
    # user 1: no basket ids: day 0 {0, 2} (one timestamp = one basket), day 1 {1}
    rows = [  # user, item, day, weight, basket
        (0, 0, 0, 1.0, 0), (0, 1, 0, 1.0, 0), (0, 1, 3, 1.0, 1), (0, 2, 3, 1.0, 1),
        (0, 3, 20, 1.0, 2), (0, 3, 21, -1.0, 3),
        (1, 0, 0, 1.0, -1), (1, 2, 0, 1.0, -1), (1, 1, 1, 1.0, -1),
    ]
    a = np.array(rows, dtype=np.float64)
    order = np.argsort(a[:, 2], kind="stable")
    a = a[order]
    return Interactions(
        user=a[:, 0].astype(np.int64), item=a[:, 1].astype(np.int64),
        time=(T0 + a[:, 2].astype(np.int64) * DAY).astype("datetime64[ns]"),
        weight=a[:, 3].astype(np.float32), quantity=np.ones(len(a), np.float32),
        kind=(a[:, 3] < 0).astype(np.int16), kinds=("purchase", "return"),
        basket=a[:, 4].astype(np.int64),
    )


def _as_dict(e, field="weight"):
    return {(int(s), int(d)): float(v) for s, d, v in zip(e.src, e.dst, getattr(e, field))}


def test_baskets_group_loose_rows_by_entity_and_time():
    b = Baskets.from_interactions(_history(), 5)
    assert b.matrix.shape == (5, 5)  # 3 baskets of user 0, 2 loose baskets of user 1
    sets = sorted((int(o), tuple(np.flatnonzero(b.matrix[k].toarray()[0])))
                  for k, o in enumerate(b.owner))
    assert sets == [(0, (0, 1)), (0, (1, 2)), (0, (3,)), (1, (0, 2)), (1, (1,))]
    assert b.item_last.tolist()[:4] == [T0, T0 + 3 * DAY, T0 + 3 * DAY, T0 + 20 * DAY]
    assert b.item_last[4] == np.iinfo(np.int64).min  # never bought


def test_co_purchase_by_hand():
    b = Baskets.from_interactions(_history(), 5)
    e = co_purchase(b)
    want = {(0, 1): 1, (1, 0): 1, (1, 2): 1, (2, 1): 1, (0, 2): 1, (2, 0): 1}
    assert _as_dict(e) == want
    times = _as_dict(e, "time")
    assert times[(0, 1)] == times[(1, 0)] == T0  # min(last 0, last 1) = day 0
    assert times[(1, 2)] == T0 + 3 * DAY


def test_bought_after_by_hand():
    b = Baskets.from_interactions(_history(), 5)
    e = bought_after(b, window_days=14)
    assert _as_dict(e) == {(0, 1): 2, (0, 2): 1, (1, 2): 1, (2, 1): 1}
    assert _as_dict(bought_after(b, window_days=20)) == {
        (0, 1): 2, (0, 2): 1, (1, 2): 1, (2, 1): 1, (0, 3): 1, (1, 3): 2, (2, 3): 1}
    assert _as_dict(e, "time")[(0, 1)] == T0 + 3 * DAY  # the last basket holding item 1


def test_chunks_do_not_change_the_result():
    b = Baskets.from_interactions(_history(), 5)
    for fn in (co_purchase, bought_after):
        whole, pieces = fn(b, max_pairs=10**9), fn(b, max_pairs=1)
        assert _as_dict(whole) == _as_dict(pieces)


def test_top_k_keeps_the_heaviest_and_breaks_ties_by_id():
    b = Baskets.from_interactions(_history(), 5)
    e = bought_after(b, window_days=20, top_k=1)
    assert _as_dict(e) == {(0, 1): 2, (1, 3): 2, (2, 1): 1}
