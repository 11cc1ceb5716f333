"""Sessionisation, filters, the leak-free split and the transition graph."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hoprec.graph.sessions import (
    attribute_graph,
    filter_sessions,
    prefixes,
    sessionize,
    time_split,
    transition_graph,
)


def ts(*clock: str) -> np.ndarray:
    return pd.to_datetime([f"2024-01-01 {c}" for c in clock]).to_numpy()


def as_lists(s) -> list[list[int]]:
    return [s.session(i).tolist() for i in range(len(s))]


def test_inactivity_gap_boundaries():
    # v: 30 min exactly stays in the session, 30 min + 1 s starts a new one
    items = np.array([0, 1, 2, 3])
    t = ts("10:00:00", "10:30:00", "11:00:01", "11:05:00")
    s = sessionize(items, t, visitor_keys=np.array(["v"] * 4))
    assert as_lists(s) == [[0, 1], [2, 3]]
    assert s.keys.tolist() == ["v#0", "v#1"]
    s10 = sessionize(items, t, visitor_keys=np.array(["v"] * 4), gap=pd.Timedelta(minutes=10))
    assert as_lists(s10) == [[0], [1], [2, 3]]


def test_visitors_are_split_apart_and_sessions_ordered_by_start():
    items = np.array([0, 1, 2, 3])
    t = ts("10:05", "10:00", "10:06", "10:01")
    s = sessionize(items, t, visitor_keys=np.array(["a", "b", "a", "b"]))
    assert as_lists(s) == [[1, 3], [0, 2]]  # b started first
    assert s.keys.tolist() == ["b#0", "a#0"]


def test_equal_timestamps_keep_source_row_order():
    items = np.array([5, 3, 9, 1])
    t = ts("10:00", "10:00", "10:00", "10:00")
    s = sessionize(items, t, session_keys=np.array([7, 7, 7, 7]))
    assert as_lists(s) == [[5, 3, 9, 1]]
    # the same rows shuffled by time elsewhere still sort by time first, then row
    t2 = ts("10:01", "10:00", "10:00", "10:01")
    assert as_lists(sessionize(items, t2, session_keys=np.array([7] * 4))) == [[3, 9, 5, 1]]


def test_session_column_used_as_given_even_across_long_pauses():
    items = np.array([0, 1, 2])
    t = ts("08:00", "12:00", "09:00")
    s = sessionize(items, t, session_keys=np.array(["x", "x", "y"]))
    assert as_lists(s) == [[0, 1], [2]]


def test_empty_keys_are_an_error_naming_the_row():
    with pytest.raises(ValueError, match=r"empty session key \(first: event row 2\)"):
        sessionize(np.array([0, 1]), ts("10:00", "10:01"), session_keys=np.array(["a", None], dtype=object))
    with pytest.raises(ValueError, match="session_keys .* or visitor_keys"):
        sessionize(np.array([0]), ts("10:00"))


def test_filters_are_reported():
    # item 9 occurs once: removed; then [9, 1] becomes [1] and is too short
    s = sessionize(np.array([0, 1, 9, 1, 0, 1]), ts(*[f"10:0{i}" for i in range(6)]),
                   session_keys=np.array(["a", "a", "b", "b", "c", "c"]))
    out, rep = filter_sessions(s, 10, min_length=2, min_item_count=2)
    assert as_lists(out) == [[0, 1], [0, 1]]
    assert (rep.sessions_in, rep.sessions_out, rep.short_sessions) == (3, 2, 1)
    assert (rep.rare_items, rep.rare_item_events) == (1, 1)
    assert "1 shorter than 2 events" in rep.describe() and "1 items with fewer than 2" in rep.describe()


def test_time_split_is_leak_free_with_a_gap():
    rng = np.random.default_rng(0)
    n = 400
    t = pd.Timestamp("2024-01-01").to_datetime64() + rng.integers(0, 3 * 86400, n).astype("timedelta64[s]")
    s = sessionize(rng.integers(0, 30, n), t, visitor_keys=rng.integers(0, 40, n), gap=pd.Timedelta(hours=2))
    cut, gap = pd.Timestamp("2024-01-03"), pd.Timedelta(hours=1)
    train, test, rep = time_split(s, cut, gap)
    assert train.times.max() < np.datetime64(cut - gap)  # every training event before cut - gap
    assert test.times.min() >= np.datetime64(cut)
    assert rep.train_sessions + rep.test_sessions + rep.straddling == len(s)
    assert rep.straddling > 0  # this data has sessions across the cut: they are in neither
    keys = set(train.keys) | set(test.keys)
    straddlers = [k for k, a, b in zip(s.keys, s.starts, s.ends) if a < np.datetime64(cut) and b >= np.datetime64(cut - gap)]
    assert not keys & set(straddlers)


def test_prefixes_and_seen_targets():
    s = sessionize(np.array([4, 5, 4, 6, 7, 7]), ts(*[f"10:0{i}" for i in range(6)]),
                   session_keys=np.array(["a", "a", "a", "a", "b", "b"]))
    p = prefixes(s)
    assert p.target.tolist() == [5, 4, 6, 7]
    assert [s.items[a:b].tolist() for a, b in zip(p.start, p.stop)] == [[4], [4, 5], [4, 5, 4], [7]]
    assert p.target_seen.tolist() == [False, True, False, True]


def test_transition_graph_is_directed_counted_and_recency_weighted():
    s = sessionize(np.array([0, 1, 0, 1, 1, 2]), ts("10:00", "10:01", "10:02", "10:03", "10:04", "10:05"),
                   session_keys=np.array(["a", "a", "b", "b", "c", "c"]))
    g = transition_graph(s, 3)
    assert g[0, 1] == 2 and g[1, 0] == 0 and g[1, 2] == 1  # directed: A then B only
    half = transition_graph(s, 3, half_life=pd.Timedelta(minutes=4), now=pd.Timestamp("2024-01-01 10:05"))
    assert half[1, 2] == pytest.approx(1.0) and half[0, 1] == pytest.approx(0.5 ** 1 + 0.5 ** 0.5)
    assert transition_graph(s, 3, self_loops=False).diagonal().sum() == 0


def test_attribute_graph_links_items_to_categories():
    m = attribute_graph(np.array([0, 1, 0, -1]))
    assert m.shape == (4, 2) and m[2, 0] == 1 and m[3].nnz == 0


def test_shuffled_ties_are_a_seeded_permutation_within_the_session():
    items = np.arange(8)
    t = ts(*["10:00"] * 6, "10:01", "10:02")
    a = sessionize(items, t, session_keys=np.zeros(8), shuffle_ties=0)
    b = sessionize(items, t, session_keys=np.zeros(8), shuffle_ties=0)
    assert a.items.tolist() == b.items.tolist()  # seeded
    assert sorted(a.items[:6].tolist()) == list(range(6)) and a.items[:6].tolist() != list(range(6))
    assert a.items[6:].tolist() == [6, 7]  # later timestamps stay later
