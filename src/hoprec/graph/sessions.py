"""Sessions from an event table, their leak-free time split, and the item transition graph.

A session is an ordered run of one visitor's events (clicks, views, baskets).  It comes from a
session column when the data has one; otherwise each visitor's events are cut wherever the pause
between two consecutive events is longer than ``gap`` (default 30 minutes)::

    visitor v: 10:00 A, 10:10 B, 10:41 C  (gap 30 min)  ->  [A, B] and [C]

Events with equal timestamps keep the order of their rows in the source (a stable sort), so the
same data always gives the same sessions.  Inside, sessions are CSR arrays of internal item ids
(:class:`Sessions`); external session keys stay in :attr:`Sessions.keys`.

:func:`time_split` cuts at a time ``T`` with a gap: training sessions end before ``T - gap``,
test sessions start at or after ``T``; a session straddling the cut is in neither and is counted.
:func:`filter_sessions` drops short sessions and rare items and says how many, never silently.
:func:`transition_graph` is the directed item graph (A then B) of training sessions, weighted by
count and, optionally, by recency; :func:`attribute_graph` links items to attribute values
(e.g. category) so rare items can borrow from their category.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

DEFAULT_GAP = pd.Timedelta(minutes=30)
_NO_GAP = pd.Timedelta(0)


@dataclass
class Sessions:
    """Sessions as CSR: session ``s`` holds ``items[indptr[s]:indptr[s + 1]]`` in event order.

    ``times`` (datetime64[ns]) is aligned with ``items``; ``keys`` holds each session's external
    key.  Sessions are ordered by start time (ties: first source row first).
    """

    indptr: np.ndarray  # int64 (n + 1,)
    items: np.ndarray  # int64 (nnz,), internal item ids
    times: np.ndarray  # datetime64[ns] (nnz,)
    keys: np.ndarray  # object (n,)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def starts(self) -> np.ndarray:
        return self.times[self.indptr[:-1]]

    @property
    def ends(self) -> np.ndarray:
        return self.times[self.indptr[1:] - 1]

    @property
    def n_events(self) -> int:
        return int(self.indptr[-1])

    def session(self, s: int) -> np.ndarray:
        return self.items[self.indptr[s] : self.indptr[s + 1]]

    def session_of_event(self) -> np.ndarray:
        """The session index of every event (aligned with ``items``)."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def select(self, keep: np.ndarray) -> Sessions:
        """The sessions where the boolean mask ``keep`` holds, in the same order."""
        keep = np.asarray(keep, dtype=bool)
        ev = np.repeat(keep, self.lengths)
        lengths = self.lengths[keep]
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return Sessions(indptr, self.items[ev], self.times[ev], self.keys[keep])

    def drop_events(self, keep_event: np.ndarray) -> Sessions:
        """The same sessions without the events where ``keep_event`` is False (may empty some)."""
        counts = np.bincount(self.session_of_event()[keep_event], minlength=len(self))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return Sessions(indptr, self.items[keep_event], self.times[keep_event], self.keys)

    def item_counts(self, n_items: int) -> np.ndarray:
        return np.bincount(self.items, minlength=n_items)

    def __repr__(self) -> str:
        return f"Sessions(n={len(self)}, events={self.n_events})"


def sessionize(
    item_ids: np.ndarray,
    times: np.ndarray,
    session_keys: np.ndarray | None = None,
    visitor_keys: np.ndarray | None = None,
    gap: pd.Timedelta = DEFAULT_GAP,
    shuffle_ties: int | None = None,
) -> Sessions:
    """Group events into sessions.

    ``item_ids``: internal ids per event; ``times``: event times; ``session_keys``: a session
    column (used as given); else ``visitor_keys`` (one id per visitor) split on pauses longer
    than ``gap``.  With neither, an error.  Events keep their row order among equal timestamps.
    Rows with an empty session or visitor key cannot be placed: they raise a ValueError.
    ``shuffle_ties`` (a seed): equal timestamps in a seeded random order instead.
    """
    item_ids = np.asarray(item_ids, dtype=np.int64)
    times = np.asarray(times).astype("datetime64[ns]")
    n = len(item_ids)
    if len(times) != n:
        raise ValueError(f"item_ids ({n}) and times ({len(times)}) must have the same length")
    rows = np.arange(n) if shuffle_ties is None else np.random.default_rng(shuffle_ties).permutation(n)
    if session_keys is not None:
        keys = pd.Series(session_keys)
        _check_keys(keys, "session")
        codes, uniques = pd.factorize(keys, sort=False)
        order = np.lexsort((rows, times, codes))
        codes_sorted = codes[order]
        new = np.ones(n, dtype=bool)
        new[1:] = codes_sorted[1:] != codes_sorted[:-1]
        session_key = np.asarray(uniques, dtype=object)[codes_sorted[new]]
    elif visitor_keys is not None:
        keys = pd.Series(visitor_keys)
        _check_keys(keys, "visitor")
        codes, uniques = pd.factorize(keys, sort=False)
        order = np.lexsort((rows, times, codes))
        codes_sorted, t = codes[order], times[order]
        new = np.ones(n, dtype=bool)
        new[1:] = (codes_sorted[1:] != codes_sorted[:-1]) | (
            (t[1:] - t[:-1]) > np.timedelta64(int(pd.Timedelta(gap).value), "ns")
        )
        run_no = pd.Series(codes_sorted[new]).groupby(codes_sorted[new]).cumcount().to_numpy()
        vis = np.asarray(uniques, dtype=object)[codes_sorted[new]]
        session_key = np.array([f"{v}#{r}" for v, r in zip(vis, run_no)], dtype=object)
    else:
        raise ValueError("sessionize needs session_keys (a session column) or visitor_keys")
    if n == 0:
        return Sessions(np.zeros(1, np.int64), item_ids, times, np.zeros(0, dtype=object))
    starts = np.flatnonzero(new)
    lengths = np.diff(np.append(starts, n))
    # sessions by start time, ties by their first source row
    s_order = np.lexsort((order[starts], times[order][starts]))
    ev_order = _gather(order, starts, lengths, s_order)
    indptr = np.concatenate([[0], np.cumsum(lengths[s_order])]).astype(np.int64)
    return Sessions(indptr, item_ids[ev_order], times[ev_order], session_key[s_order])


def _gather(order: np.ndarray, starts: np.ndarray, lengths: np.ndarray, s_order: np.ndarray):
    """``order`` re-assembled session by session in ``s_order`` (vectorised)."""
    ln = lengths[s_order]
    offs = np.repeat(starts[s_order] - np.concatenate([[0], np.cumsum(ln)[:-1]]), ln)
    return order[np.arange(int(ln.sum())) + offs]


def _check_keys(keys: pd.Series, what: str) -> None:
    bad = keys.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{int(bad.sum())} event(s) have an empty {what} key (first: event row {i + 1}); "
            f"fill the {what} column or filter those rows in the schema"
        )


@dataclass
class FilterReport:
    """What :func:`filter_sessions` removed."""

    sessions_in: int
    sessions_out: int
    events_in: int
    events_out: int
    short_sessions: int
    rare_items: int
    rare_item_events: int
    min_length: int
    min_item_count: int

    def describe(self) -> str:
        return (
            f"{self.sessions_in - self.sessions_out:,} of {self.sessions_in:,} sessions dropped "
            f"({self.short_sessions:,} shorter than {self.min_length} events), "
            f"{self.rare_items:,} items with fewer than {self.min_item_count} events removed "
            f"({self.rare_item_events:,} events); {self.events_out:,} events kept"
        )


def filter_sessions(
    s: Sessions, n_items: int, min_length: int = 2, min_item_count: int = 1
) -> tuple[Sessions, FilterReport]:
    """Drop events of items seen fewer than ``min_item_count`` times in ``s``, then sessions
    shorter than ``min_length``; the report counts both."""
    counts = s.item_counts(n_items)
    rare = counts < min_item_count
    keep_ev = ~rare[s.items]
    out = s.drop_events(keep_ev) if not keep_ev.all() else s
    short = out.lengths < min_length
    out = out.select(~short)
    report = FilterReport(
        sessions_in=len(s), sessions_out=len(out), events_in=s.n_events, events_out=out.n_events,
        short_sessions=int(short.sum()), rare_items=int((rare & (counts > 0)).sum()),
        rare_item_events=int((~keep_ev).sum()), min_length=min_length,
        min_item_count=min_item_count,
    )
    return out, report


@dataclass
class SplitReport:
    cutoff: pd.Timestamp
    gap: pd.Timedelta
    train_sessions: int
    test_sessions: int
    straddling: int

    def describe(self) -> str:
        return (
            f"cut at {self.cutoff} (gap {self.gap}): {self.train_sessions:,} sessions before, "
            f"{self.test_sessions:,} after, {self.straddling:,} straddling the cut dropped"
        )


def time_split(
    s: Sessions, cutoff: pd.Timestamp, gap: pd.Timedelta = _NO_GAP
) -> tuple[Sessions, Sessions, SplitReport]:
    """Training sessions end before ``cutoff - gap``; test sessions start at or after ``cutoff``.

    A session with events on both sides (or inside the gap) is in neither: no session straddles.
    """
    cutoff, gap = pd.Timestamp(cutoff), pd.Timedelta(gap)
    c = np.datetime64(cutoff.to_datetime64(), "ns")
    train = s.ends < c - np.timedelta64(int(gap.value), "ns")
    test = s.starts >= c
    report = SplitReport(cutoff, gap, int(train.sum()), int(test.sum()), int((~train & ~test).sum()))
    return s.select(train), s.select(test), report


@dataclass
class Prefixes:
    """Every prefix of every session with its next item: prefix ``p`` is
    ``items[start[p]:stop[p]]`` of the session's CSR arrays and its target ``target[p]``."""

    session: np.ndarray  # int64 (n,), session index
    start: np.ndarray  # int64 (n,)
    stop: np.ndarray  # int64 (n,), exclusive; the target sits at items[stop]
    target: np.ndarray  # int64 (n,)
    target_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # in its prefix

    def __len__(self) -> int:
        return len(self.target)


def prefixes(s: Sessions) -> Prefixes:
    """All (prefix, next item) pairs: a session of length n gives n - 1 of them."""
    lengths = s.lengths
    n_pref = np.maximum(lengths - 1, 0)
    sess = np.repeat(np.arange(len(s)), n_pref)
    first = np.repeat(s.indptr[:-1], n_pref)
    pos = np.arange(int(n_pref.sum())) - np.repeat(np.concatenate([[0], np.cumsum(n_pref)[:-1]]), n_pref)
    stop = first + pos + 1
    target = s.items[stop]
    seen = np.zeros(len(target), dtype=bool)
    # target occurred earlier in its session: compare with the previous occurrence of the same item
    ev_sess = s.session_of_event()
    order = np.lexsort((np.arange(s.n_events), s.items, ev_sess))
    same = np.zeros(s.n_events, dtype=bool)
    same_sorted = (s.items[order][1:] == s.items[order][:-1]) & (ev_sess[order][1:] == ev_sess[order][:-1])
    same[order[1:]] = same_sorted  # an event whose item occurred before in the same session
    seen = same[stop]
    return Prefixes(sess.astype(np.int64), first.astype(np.int64), stop.astype(np.int64),
                    target.astype(np.int64), seen)


def transition_graph(
    s: Sessions, n_items: int, half_life: pd.Timedelta | None = None,
    now: pd.Timestamp | None = None, self_loops: bool = True,
) -> sp.csr_matrix:
    """Directed item graph of consecutive events: ``G[a, b]`` sums one per "a then b" in a
    session, times ``0.5 ** (age / half_life)`` when ``half_life`` is set (age from ``now``,
    default the last event).  Build it from training sessions only."""
    ev_sess = s.session_of_event()
    nxt = np.flatnonzero(ev_sess[1:] == ev_sess[:-1])
    a, b = s.items[nxt], s.items[nxt + 1]
    w = np.ones(len(a), dtype=np.float64)
    if half_life is not None and len(a):
        t_now = np.datetime64(pd.Timestamp(now).to_datetime64(), "ns") if now is not None else s.times.max()
        age = (t_now - s.times[nxt + 1]).astype("timedelta64[ns]").astype(np.float64)
        w = 0.5 ** (np.maximum(age, 0) / float(pd.Timedelta(half_life).value))
    if not self_loops:
        keep = a != b
        a, b, w = a[keep], b[keep], w[keep]
    g = sp.csr_matrix((w.astype(np.float32), (a, b)), shape=(n_items, n_items))
    g.sum_duplicates()
    return g


def attribute_graph(codes: np.ndarray) -> sp.csr_matrix:
    """Items x attribute values incidence (``codes``: per item a value code, -1 = unknown), the
    item-category edges of the relational graph that rare items borrow from."""
    codes = np.asarray(codes, dtype=np.int64)
    known = codes >= 0
    n_vals = int(codes.max()) + 1 if known.any() else 0
    rows = np.flatnonzero(known)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, codes[known])),
                         shape=(len(codes), n_vals))
