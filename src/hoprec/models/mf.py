"""Matrix factorisation baselines: implicit's ALS and BPR, always on the CPU.

Both learn user factors ``U`` (n_users x f) and item factors ``V`` (n_items x f) from the users x
items matrix of positive events (weight > 0; returns never count) and score::

    score(u, i)   = U[u] . V[i]                          (score = U[users] @ V.T)
    similar(i, j) = V[i] . V[j] / (|V[i]| |V[j]|)

:class:`ALS` (Hu, Koren & Volinsky, 2008) minimises, with the conjugate-gradient solver::

    sum_{u, i} c_ui (p_ui - U[u] . V[i]) ** 2 + regularization * (|U| ** 2 + |V| ** 2)

where ``p_ui = 1`` if u chose i (else 0) and the confidence ``c_ui = 1 + alpha * w_ui``, ``w_ui``
being the summed kind weights of u's positive events on i (``c_ui = 1`` for unobserved pairs).
Defaults: ``factors=64``, ``regularization=0.01``, ``alpha=1.0``, ``iterations=15``,
``random_state=0``, ``num_threads=0`` (all cores).  Refits are identical for any thread count:
each user's (item's) solve is independent, and BLAS is held to one thread during the fit.

:class:`BPR` (Rendle et al., 2009) runs SGD on ``-ln sigmoid(U[u] . V[i] - U[u] . V[j])`` for
chosen ``i`` and sampled unchosen ``j``, with L2 ``regularization``; implicit keeps an item bias
as one extra factor column (whose user side is fixed to 1), so ``f = factors + 1``.  Defaults:
``factors=64``, ``learning_rate=0.01``, ``regularization=0.01``, ``iterations=50``,
``random_state=0``, ``num_threads=1``.  The default is one thread because implicit's BPR is
Hogwild! SGD: with several threads the updates race and the sampling streams depend on the thread
count, so refits with the same ``random_state`` differ.  More threads are faster but not
reproducible.

Users without positive history get the base class's popularity fallback.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from pydantic import Field
from threadpoolctl import threadpool_limits

from hoprec.data.dataset import Dataset
from hoprec.models.base import ModelConfig, Recommender


class ALSConfig(ModelConfig):
    factors: int = Field(default=64, ge=1)
    regularization: float = Field(default=0.01, ge=0)
    #: confidence per unit of event weight: c = 1 + alpha * w
    alpha: float = Field(default=1.0, ge=0)
    iterations: int = Field(default=15, ge=1)
    random_state: int = 0
    #: fitting threads (0: all cores); results do not depend on it
    num_threads: int = Field(default=0, ge=0)


class BPRConfig(ModelConfig):
    factors: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=0.01, gt=0)
    regularization: float = Field(default=0.01, ge=0)
    iterations: int = Field(default=50, ge=1)
    random_state: int = 0
    #: SGD threads (0: all cores); only 1 gives reproducible refits
    num_threads: int = Field(default=1, ge=0)


class _Factorization(Recommender):
    """Scoring, similarity and state shared by the factor models."""

    user_factors: np.ndarray
    item_factors: np.ndarray

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors[users] @ self.item_factors.T

    def _similar(self, items: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(self.item_factors, axis=1)
        unit = self.item_factors / np.maximum(norms, 1e-12)[:, None]
        return unit[items] @ unit.T

    def _embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        return self.user_factors, self.item_factors

    def _keep(self, model: Any) -> None:
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors = state["user_factors"].astype(np.float32)
        self.item_factors = state["item_factors"].astype(np.float32)


def _positive(dataset: Dataset, values: str) -> sp.csr_matrix:
    """users x items summed kind ``"weights"`` or ``"counts"`` of positive events, sorted CSR."""
    if values == "counts":
        m = dataset.positive_matrix()
    else:
        inter = dataset.interactions.select(dataset.interactions.positive())
        m = inter.matrix(dataset.n_users, dataset.n_items)
    m.sort_indices()
    return m


class ALS(_Factorization):
    """Implicit-feedback alternating least squares (weighted matrix factorisation)."""

    name: ClassVar[str] = "als"
    config_class: ClassVar[type[ModelConfig]] = ALSConfig
    #: small on purpose: every baseline, tuning included, fits The Complete Journey in minutes
    param_grid: ClassVar[list[dict[str, Any]]] = [{"alpha": a} for a in (0.1, 1.0, 10.0)]

    def _fit(self, dataset: Dataset) -> None:
        cfg: ALSConfig = self.config  # type: ignore[assignment]
        confidence = _positive(dataset, "weights")
        confidence.data = 1.0 + cfg.alpha * confidence.data
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=cfg.factors,
                regularization=cfg.regularization,
                alpha=1.0,
                iterations=cfg.iterations,
                random_state=cfg.random_state,
                num_threads=cfg.num_threads,
            )
            model.fit(confidence, show_progress=False)
        self._keep(model)

    def _score_history(self, items, times, weights, user) -> np.ndarray:
        """Fold-in: the user's factors re-solved by least squares against the fixed item factors
        (the ALS user step, as implicit's ``recalculate_user``)::

            U_u = (V^T V + V^T (C_u - I) V + regularization I)^-1 V^T C_u p_u
        """
        cfg: ALSConfig = self.config  # type: ignore[assignment]
        v = self.item_factors.astype(np.float64)
        pos = weights > 0
        w = np.bincount(items[pos], weights=weights[pos].astype(np.float64), minlength=self.n_items)
        seen = np.flatnonzero(w > 0)
        c = 1.0 + cfg.alpha * w[seen]
        vs = v[seen]
        if not hasattr(self, "_gram"):
            self._gram = v.T @ v
        a = self._gram + (vs.T * (c - 1.0)) @ vs + cfg.regularization * np.eye(v.shape[1])
        u = np.linalg.solve(a, vs.T @ c)
        return (self.item_factors @ u.astype(np.float32)).astype(np.float32)


class BPR(_Factorization):
    """Bayesian personalised ranking by stochastic gradient descent."""

    name: ClassVar[str] = "bpr"
    config_class: ClassVar[type[ModelConfig]] = BPRConfig
    #: two settings: one-threaded fits are the slowest of the baselines
    param_grid: ClassVar[list[dict[str, Any]]] = [{"learning_rate": lr} for lr in (0.005, 0.01)]

    def _fit(self, dataset: Dataset) -> None:
        cfg: BPRConfig = self.config  # type: ignore[assignment]
        model = BayesianPersonalizedRanking(
            factors=cfg.factors,
            learning_rate=cfg.learning_rate,
            regularization=cfg.regularization,
            iterations=cfg.iterations,
            random_state=cfg.random_state,
            num_threads=cfg.num_threads,
        )
        model.fit(_positive(dataset, "counts"), show_progress=False)
        self._keep(model)
