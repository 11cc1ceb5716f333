"""Most popular items: the same list for everyone.

Score of item ``i`` (for every user ``u``), with ``t_c`` the dataset's cutoff::

    score(u, i) = #{positive events on i with t_c - window_days <= t < t_c}
                  + 0.5 * n_i / (max_j n_j + 1)

A positive event has weight > 0 (returns never count); ``window_days=None`` counts all history.
With ``distinct_users`` each user counts at most once per item, otherwise every event counts.  The
second term, always below one event's worth, breaks ties inside the window by the all-history
count ``n_i`` (counted the same way), so equally popular items keep their longer record's order.

The model is not personal: :meth:`Popular._can_score` is true for every user, known or not, so
:attr:`~hoprec.models.base.Recommendations.source` is always ``"model"``.

Defaults: ``window_days=30``, ``distinct_users=True``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from hoprec.data.dataset import Dataset, Interactions
from hoprec.models.base import ModelConfig, Recommender


class PopularConfig(ModelConfig):
    #: days before the cutoff that count; ``None`` counts all history
    window_days: float | None = Field(default=30, gt=0)
    #: count each user once per item (``True``) or every positive event (``False``)
    distinct_users: bool = True


def item_counts(inter: Interactions, n_items: int, distinct_users: bool) -> np.ndarray:
    """Per-item count of ``inter``'s events, or of distinct (user, item) pairs."""
    if distinct_users:
        pairs = np.unique(inter.user * n_items + inter.item)
        return np.bincount(pairs % n_items, minlength=n_items).astype(np.float64)
    return np.bincount(inter.item, minlength=n_items).astype(np.float64)


class Popular(Recommender):
    """Items ranked by how many users (or events) chose them in the last ``window_days``."""

    name: ClassVar[str] = "popular"
    config_class: ClassVar[type[ModelConfig]] = PopularConfig
    param_grid: ClassVar[list[dict[str, Any]]] = [{"window_days": w} for w in (7, 30, 90, None)]

    def _fit(self, dataset: Dataset) -> None:
        cfg: PopularConfig = self.config  # type: ignore[assignment]
        inter = dataset.interactions
        pos = inter.positive()
        everything = item_counts(inter.select(pos), self.n_items, cfg.distinct_users)
        if cfg.window_days is None:
            window = everything
        else:
            start = dataset.cutoff.to_datetime64() - np.timedelta64(
                int(round(cfg.window_days * 86400)), "s"
            )
            recent = inter.select(pos & (inter.time >= start))
            window = item_counts(recent, self.n_items, cfg.distinct_users)
        tie_break = 0.5 * everything / (everything.max(initial=0.0) + 1.0)
        self.scores = (window + tie_break).astype(np.float32)

    def _can_score(self, users: np.ndarray) -> np.ndarray:
        return np.ones(len(users), dtype=bool)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.scores, (len(users), self.n_items))

    def _score_history(self, items, times, weights, user) -> np.ndarray:
        return self.scores.copy()  # the same list for everyone, whatever the history

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.scores = state["scores"]
