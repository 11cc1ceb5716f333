"""Session baselines: session popularity, item transitions, SKNN and V-SKNN.

All four are hard to beat on next-click data (Ludewig et al. 2021).  The kNN models are
vectorised with scipy sparse matrices: for a session, the candidate neighbours are the most
recent ``sample_size`` training sessions sharing an item with it (one gather over an item ->
sessions index), their similarities one sparse product, and the item scores one more.

- ``session_pop``: items of the current session by how often they occur in it; the most-clicked
  items of the last training day after them.
- ``transitions``: ``G[last item]``, the items that followed the session's last item in training
  sessions (:func:`hoprec.graph.sessions.transition_graph`), optionally recency-weighted.
- ``sknn`` (Jannach & Ludewig 2017): cosine similarity of item sets
  ``|s ∩ n| / sqrt(|s| |n|)``; ``score(i) = Σ_{n in top-k neighbours, i in n} sim(s, n)``.
- ``vsknn`` (Ludewig & Jannach 2018): the current session's items weigh by position
  (``linear``: ``max(0.1, 1 - 0.1 (L - p))``, ``div``: ``p / L``, ``quadratic``: ``(p / L)^2``,
  ``same``: 1) and optionally by idf ``log(N / n_i)``; ``sim(s, n) = Σ_{i in s ∩ n} w_i / L``;
  a neighbour's vote decays with ``1 / step``, where ``step`` counts back from the session's end
  to the most recent item the neighbour shares.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from hoprec.graph.sessions import transition_graph
from hoprec.models.base import ModelConfig
from hoprec.models.session.base import SessionData, SessionRecommender


class SessionPopConfig(ModelConfig):
    pass


class SessionPop(SessionRecommender):
    """Items already in the session (by count), then recent popularity."""

    name = "session_pop"
    config_class = SessionPopConfig

    def _fit(self, data: SessionData) -> None:
        pass

    def _score(self, items: np.ndarray) -> np.ndarray:
        sc = self.popularity * 0.5  # below 1: an item of the session always ranks first
        np.add.at(sc, items, 1.0)
        return sc


class TransitionsConfig(ModelConfig):
    #: recency half-life of a transition in days (None: plain counts)
    half_life_days: float | None = Field(None, gt=0)


class Transitions(SessionRecommender):
    """First-order item transitions: what followed the last item in training sessions."""

    name = "transitions"
    config_class = TransitionsConfig
    param_grid: ClassVar[list[dict[str, Any]]] = [{}, {"half_life_days": 1.0}, {"half_life_days": 3.0}]

    def _fit(self, data: SessionData) -> None:
        hl = self.config.half_life_days
        self.graph = transition_graph(
            data.sessions, data.n_items, half_life=pd.Timedelta(days=hl) if hl else None
        )

    def _score(self, items: np.ndarray) -> np.ndarray:
        g, last = self.graph, int(items[-1])
        lo, hi = g.indptr[last], g.indptr[last + 1]
        sc = np.zeros(self.n_items, dtype=np.float32)
        sc[g.indices[lo:hi]] = g.data[lo:hi]
        return sc

    def _get_state(self) -> dict[str, np.ndarray]:
        g = self.graph
        return {"indptr": g.indptr, "indices": g.indices, "data": g.data}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        n = self.n_items
        self.graph = sp.csr_matrix((state["data"], state["indices"], state["indptr"]), shape=(n, n))


class SKNNConfig(ModelConfig):
    k: int = Field(100, ge=1)  #: neighbours kept
    sample_size: int = Field(1000, ge=1)  #: most recent sessions sharing an item considered


class SKNN(SessionRecommender):
    """Session-based kNN with cosine similarity of item sets."""

    name = "sknn"
    config_class = SKNNConfig
    param_grid: ClassVar[list[dict[str, Any]]] = [
        {"k": 50, "sample_size": 500}, {"k": 100, "sample_size": 500},
        {"k": 100, "sample_size": 1000}, {"k": 200, "sample_size": 2000},
    ]

    def _fit(self, data: SessionData) -> None:
        s = data.sessions
        # training sessions ordered by their end: a higher row is a more recent session
        order = np.argsort(s.ends, kind="stable")
        rows = np.repeat(np.argsort(order), s.lengths)
        m = sp.csr_matrix((np.ones(s.n_events, np.float32), (rows, s.items)),
                          shape=(len(s), self.n_items))
        m.sum_duplicates()
        m.data[:] = 1.0  # sets, not counts
        self.sess_items = m
        self.item_sess = m.T.tocsr()  # item -> sessions, sorted ascending (older first)
        self.item_sess.sort_indices()
        self.sess_len = np.asarray(m.getnnz(axis=1), dtype=np.float32)
        n_i = np.asarray(self.item_sess.getnnz(axis=1), dtype=np.float64)
        self.idf = np.log(len(s) / np.maximum(n_i, 1)).astype(np.float32)

    def _candidates(self, uniq: np.ndarray) -> np.ndarray:
        ip, ind = self.item_sess.indptr, self.item_sess.indices
        n = self.config.sample_size  # the n most recent of the union are among each item's last n
        parts = [ind[max(ip[i], ip[i + 1] - n) : ip[i + 1]] for i in uniq]
        cand = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int32)
        return cand[-self.config.sample_size :]  # the most recent ones

    def _similarity(self, items: np.ndarray, uniq: np.ndarray, cand: np.ndarray) -> np.ndarray:
        q = np.zeros(self.n_items, dtype=np.float32)
        q[uniq] = 1.0
        overlap = self.sess_items[cand] @ q
        return overlap / np.sqrt(len(uniq) * self.sess_len[cand])

    def _neighbour_weights(self, items: np.ndarray, cand: np.ndarray, sim: np.ndarray) -> np.ndarray:
        return sim

    def _score(self, items: np.ndarray) -> np.ndarray:
        uniq = np.unique(items)
        cand = self._candidates(uniq)
        sc = np.zeros(self.n_items, dtype=np.float32)
        if not len(cand):
            return sc
        sim = self._similarity(items, uniq, cand)
        k = self.config.k
        if len(cand) > k:
            top = np.argpartition(-sim, k - 1)[:k]
            cand, sim = cand[top], sim[top]
        keep = sim > 0
        cand, sim = cand[keep], sim[keep]
        w = self._neighbour_weights(items, cand, sim)
        return np.asarray(self.sess_items[cand].T @ w, dtype=np.float32).ravel()

    def _get_state(self) -> dict[str, np.ndarray]:
        m = self.sess_items
        return {"indptr": m.indptr, "indices": m.indices}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        n_s = len(state["indptr"]) - 1
        self.sess_items = sp.csr_matrix(
            (np.ones(len(state["indices"]), np.float32), state["indices"], state["indptr"]),
            shape=(n_s, self.n_items),
        )
        self.item_sess = self.sess_items.T.tocsr()
        self.item_sess.sort_indices()
        self.sess_len = np.asarray(self.sess_items.getnnz(axis=1), dtype=np.float32)
        n_i = np.asarray(self.item_sess.getnnz(axis=1), dtype=np.float64)
        self.idf = np.log(max(n_s, 1) / np.maximum(n_i, 1)).astype(np.float32)


class VSKNNConfig(SKNNConfig):
    weighting: Literal["linear", "div", "quadratic", "same"] = "div"  #: position weights
    idf_weighting: bool = False  #: multiply position weights by the item's idf
    decay: bool = True  #: a neighbour's vote divided by how far back its shared item is


def _position_weights(length: int, kind: str) -> np.ndarray:
    p = np.arange(1, length + 1, dtype=np.float32)
    if kind == "linear":
        return np.maximum(0.1, 1.0 - 0.1 * (length - p))
    if kind == "div":
        return p / length
    if kind == "quadratic":
        return (p / length) ** 2
    return np.ones(length, dtype=np.float32)


class VSKNN(SKNN):
    """Vector-multiplication session kNN: recent clicks of the session count more."""

    name = "vsknn"
    config_class = VSKNNConfig
    param_grid: ClassVar[list[dict[str, Any]]] = [
        {"k": 100, "sample_size": 1000, "weighting": "div"},
        {"k": 100, "sample_size": 1000, "weighting": "quadratic"},
        {"k": 100, "sample_size": 1000, "weighting": "div", "idf_weighting": True},
        {"k": 200, "sample_size": 2000, "weighting": "linear", "idf_weighting": True},
        {"k": 50, "sample_size": 500, "weighting": "quadratic", "idf_weighting": True},
    ]

    def _similarity(self, items: np.ndarray, uniq: np.ndarray, cand: np.ndarray) -> np.ndarray:
        w = _position_weights(len(items), self.config.weighting)
        q = np.zeros(self.n_items, dtype=np.float32)
        q[items] = w  # a repeated item keeps the weight of its latest position
        if self.config.idf_weighting:
            q[uniq] *= self.idf[uniq]
        return np.asarray(self.sess_items[cand] @ q, dtype=np.float32) / len(uniq)

    def _neighbour_weights(self, items: np.ndarray, cand: np.ndarray, sim: np.ndarray) -> np.ndarray:
        if not self.config.decay or not len(cand):
            return sim
        back = items[::-1]
        member = self.sess_items[cand][:, back].toarray() > 0  # (neighbours, positions from end)
        step = np.argmax(member, axis=1) + 1
        return sim / step

