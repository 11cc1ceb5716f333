"""Item-item nearest neighbours on co-occurrence (implicit's ``ItemItemRecommender`` family).

``X`` is the users x items matrix of positive events, each event counting its kind weight times
``2 ** (-age_days / half_life_days)`` (no decay when ``half_life_days`` is ``None``).  Columns are
weighted by ``similarity``:

- ``"cosine"``: ``S[i, j] = x_i . x_j / (|x_i| |x_j|)`` over the item columns ``x_i`` of ``X``;
- ``"bm25"``: the dot product of BM25-weighted columns (``bm25_k1``, ``bm25_b``; users play the
  role of terms, so users who chose many items count less),

and each row of ``S`` keeps its ``neighbours`` largest entries (the item itself included).  Then::

    score(u, j) = sum_i X[u, i] * S[i, j]          (score = X[users] @ S)
    similar(i, j) = S[i, j]

Items outside every neighbourhood of the user's items score 0.  Users without positive history
get the base class's popularity fallback.

Defaults: ``neighbours=100``, ``similarity="bm25"``, ``half_life_days=None``, ``bm25_k1=1.2``,
``bm25_b=0.75``, ``num_threads=0`` (all cores; the result does not depend on it).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
from implicit.utils import ParameterWarning
from pydantic import Field

from hoprec.data.dataset import Dataset
from hoprec.models.base import ModelConfig, Recommender
from hoprec.models.repeat import recency_decay


class ItemKNNConfig(ModelConfig):
    #: neighbours kept per item
    neighbours: int = Field(default=100, ge=1)
    similarity: Literal["cosine", "bm25"] = "bm25"
    #: decay each event by its age (``None``: no decay)
    half_life_days: float | None = Field(default=None, gt=0)
    bm25_k1: float = Field(default=1.2, ge=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)
    #: threads for the neighbour search (0: all cores)
    num_threads: int = Field(default=0, ge=0)


def _csr(state: dict[str, np.ndarray], prefix: str, shape: tuple[int, int]) -> sp.csr_matrix:
    parts = (state[f"{prefix}_data"], state[f"{prefix}_indices"], state[f"{prefix}_indptr"])
    return sp.csr_matrix(parts, shape=shape)


class ItemKNN(Recommender):
    """Scores items by their similarity to what the user already chose."""

    name: ClassVar[str] = "itemknn"
    config_class: ClassVar[type[ModelConfig]] = ItemKNNConfig
    #: neighbours barely moves results on The Complete Journey; the weighting does
    param_grid: ClassVar[list[dict[str, Any]]] = [{"similarity": s} for s in ("cosine", "bm25")]

    def _fit(self, dataset: Dataset) -> None:
        cfg: ItemKNNConfig = self.config  # type: ignore[assignment]
        inter = dataset.interactions.select(dataset.interactions.positive())
        values = inter.weight.astype(np.float64)
        if cfg.half_life_days is not None:
            values = values * recency_decay(inter, dataset.cutoff, cfg.half_life_days)
        self.user_items = inter.matrix(self.n_users, self.n_items, values)
        self.user_items.eliminate_zeros()  # fully decayed events carry nothing
        self.user_items.sort_indices()
        if self.user_items.nnz == 0:  # nothing co-occurs; everyone gets the popularity fallback
            self.similarity = sp.csr_matrix((self.n_items, self.n_items), dtype=np.float32)
            return
        if cfg.similarity == "cosine":
            knn = CosineRecommender(K=cfg.neighbours, num_threads=cfg.num_threads)
        else:
            knn = BM25Recommender(
                K=cfg.neighbours, K1=cfg.bm25_k1, B=cfg.bm25_b, num_threads=cfg.num_threads
            )
        with warnings.catch_warnings():  # implicit re-weights as COO and warns about converting
            warnings.simplefilter("ignore", ParameterWarning)
            knn.fit(self.user_items, show_progress=False)
        sim = sp.csr_matrix(knn.similarity, dtype=np.float32)
        sim.sort_indices()
        self.similarity = sim

    def _score(self, users: np.ndarray) -> np.ndarray:
        return (self.user_items[users] @ self.similarity).toarray()

    def _similar(self, items: np.ndarray) -> np.ndarray:
        return self.similarity[items].toarray()

    def _score_history(self, items, times, weights, user) -> np.ndarray:
        """Fold-in: ``x @ S`` with ``x`` built from the given events as in ``_fit`` (the decay
        measured from the latest event: a common factor, so the ranking is the same)."""
        cfg: ItemKNNConfig = self.config  # type: ignore[assignment]
        pos = weights > 0
        values = weights[pos].astype(np.float64)
        if cfg.half_life_days is not None and pos.any():
            t = times[pos]
            values = values * np.exp2(-(t.max() - t) / (86_400e9 * cfg.half_life_days))
        x = np.bincount(items[pos], weights=values, minlength=self.n_items).astype(np.float32)
        return np.asarray(self.similarity.T @ x, dtype=np.float32).ravel()

    def _get_state(self) -> dict[str, np.ndarray]:
        state = {}
        for prefix, m in (("sim", self.similarity), ("x", self.user_items)):
            state.update(
                {
                    f"{prefix}_data": m.data,
                    f"{prefix}_indices": m.indices,
                    f"{prefix}_indptr": m.indptr,
                }
            )
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.similarity = _csr(state, "sim", (self.n_items, self.n_items))
        self.user_items = _csr(state, "x", (self.n_users, self.n_items))
