"""The session-model contract: fit on training sessions, recommend the next item of a session.

Session models live apart from :class:`hoprec.models.base.Recommender` on purpose: a customer
model is fitted on a :class:`~hoprec.data.dataset.Dataset` and scores known entities, while a
session model is fitted on :class:`~hoprec.graph.sessions.Sessions` and scores an anonymous
list of item ids.  The public methods validate, split off unknown items, fall back and filter;
each model writes only what is its own (template methods):

- ``_fit(data)``: learn from :class:`SessionData` (internal ids only);
- ``_score(items)``: dense scores ``(n_items,)`` for one session (known items, in order);
- optionally ``_score_many(sessions)`` for a batch (default: one ``_score`` per session);
- ``_get_state()`` / ``_set_state(state)``: the learned arrays, saved as ``state.safetensors`` (text and scalars in ``state.json``).

``recommend_session(item_ids, k, items=None)``: unknown ids (never seen in training) are ignored
and reported in :attr:`SessionRecommendation.unknown`; a session with no known item gets the
most-clicked items with ``source == "popular"``.  Items never seen in training are never
recommended; ``items`` is an allow-list.  Ties go to the more popular, then the lower id.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hoprec.atomic import atomic_dir
from hoprec.graph.sessions import Sessions
from hoprec.models.base import ModelConfig, read_state, write_state


@dataclass
class SessionData:
    """What a session model learns from: training sessions and item attributes, at one cutoff.

    ``item_attributes``: ``(n_items, n_attributes)`` int codes (-1 = unknown), e.g. category;
    ``validation``: later sessions for early stopping (never the test sessions);
    ``cache``: fitted models shared by blends within one evaluation step.
    """

    sessions: Sessions
    n_items: int
    item_attributes: np.ndarray | None = None
    attribute_names: tuple[str, ...] = ()
    validation: Sessions | None = None
    cache: dict[Any, Any] = field(default_factory=dict)


@dataclass
class SessionRecommendation:
    """One session's top-k: ``items``/``scores`` ``(k,)`` (-1 pads), what served it, and the ids
    of the session that the model did not know (ignored)."""

    items: np.ndarray
    scores: np.ndarray
    source: str  # "model" or "popular"
    unknown: np.ndarray


def top_k_vector(scores: np.ndarray, k: int, tiebreak: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of one score vector: ties go to the higher ``tiebreak``, then the lower id;
    ``-inf`` is never picked (short lists are padded with -1)."""
    n = len(scores)
    k_eff = min(k, n)
    cand = np.argpartition(-scores, k_eff - 1)[:k_eff] if k_eff < n else np.arange(n)
    kth = scores[cand].min()
    if np.isfinite(kth):  # items tied with the k-th compete on the tie-break, then on the id
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)
        need = k_eff - len(above)
        if len(tied) > need:
            tb = tiebreak[tied]
            part = np.argpartition(-tb, need - 1)[:need]
            cut = tb[part].min()
            tied = np.concatenate([tied[tb > cut], tied[tb == cut][: need - int((tb > cut).sum())]])
        cand = np.concatenate([above, tied])
    else:
        cand = cand[np.isfinite(scores[cand])]
    order = np.lexsort((cand, -tiebreak[cand], -scores[cand]))[:k]
    sel = cand[order]
    items = np.full(k, -1, dtype=np.int64)
    out = np.full(k, -np.inf, dtype=np.float32)
    items[: len(sel)] = sel
    out[: len(sel)] = scores[sel]
    return items, out


class SessionRecommender(ABC):
    """Base class of session models; see the module docstring."""

    name: ClassVar[str] = "session-base"
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    #: small grid tried on the validation split by the session protocol
    param_grid: ClassVar[list[dict[str, Any]]] = [{}]

    def __init__(self, config: ModelConfig | dict[str, Any] | None = None, **params: Any) -> None:
        if isinstance(config, ModelConfig):
            config = config.model_dump()
        self.config = self.config_class(**{**(config or {}), **params})
        self.fitted = False

    def get_config(self) -> dict[str, Any]:
        return {"model": self.name, **self.config.model_dump(mode="json")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"{type(self).__name__}({args})"

    def chosen_params(self) -> dict[str, Any]:
        """Settings the model chose itself on validation (e.g. epochs), reused when refitting."""
        return {}

    # --------------------------------------------------------------- fit
    def fit(self, data: SessionData) -> SessionRecommender:
        if data.n_items < 1 or len(data.sessions) == 0:
            raise ValueError("cannot fit a session model without training sessions")
        if data.sessions.n_events and data.sessions.items.max() >= data.n_items:
            raise ValueError(f"session item ids must be below n_items={data.n_items}")
        self.n_items = data.n_items
        counts = data.sessions.item_counts(data.n_items).astype(np.float64)
        self.known = counts > 0
        # popularity: clicks in the last day of training count most, older clicks break ties
        recent = data.sessions.times >= data.sessions.times.max() - np.timedelta64(1, "D")
        pop = np.bincount(data.sessions.items[recent], minlength=data.n_items) + counts * 1e-3
        self.popularity = (pop / max(pop.max(), 1e-12)).astype(np.float32)
        self._fit(data)
        self.fitted = True
        return self

    @abstractmethod
    def _fit(self, data: SessionData) -> None: ...

    @abstractmethod
    def _score(self, items: np.ndarray) -> np.ndarray: ...

    def _score_many(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(sessions), self.n_items), dtype=np.float32)
        for i, s in enumerate(sessions):
            out[i] = self._score(s)
        return out

    # --------------------------------------------------------------- recommend
    def _split_known(self, item_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(item_ids)
        if ids.ndim != 1:
            raise ValueError(f"item_ids must be a 1-D sequence of internal item ids, got shape {ids.shape}")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"item_ids must be integer internal ids, got dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        ok = (ids >= 0) & (ids < self.n_items)
        ok[ok] = self.known[ids[ok]]
        return ids[ok], ids[~ok]

    def _allowed(self, items: Any) -> np.ndarray | None:
        if items is None:
            return None
        items = np.asarray(items)
        if items.size and (not np.issubdtype(items.dtype, np.integer)
                           or items.min() < 0 or items.max() >= self.n_items):
            raise ValueError(f"items (the allow-list) must be internal item ids in [0, {self.n_items})")
        allowed = np.zeros(self.n_items, dtype=bool)
        allowed[items.astype(np.int64)] = True
        return allowed

    def recommend_session(self, item_ids: Any, k: int, items: Any = None) -> SessionRecommendation:
        """Top ``k`` next items after the session ``item_ids`` (internal ids, oldest first)."""
        return self.recommend_sessions([item_ids], k, items)[0]

    def recommend_sessions(
        self, sessions: Sequence[Any], k: int, items: Any = None, batch_size: int = 512
    ) -> list[SessionRecommendation]:
        """:meth:`recommend_session` for many sessions, scored in batches."""
        self._check_fitted()
        if not 1 <= k <= self.n_items:
            raise ValueError(f"k must be between 1 and the number of items ({self.n_items}), got {k}")
        allowed = self._allowed(items)
        split = [self._split_known(s) for s in sessions]
        out: list[SessionRecommendation] = []
        for start in range(0, len(split), batch_size):
            part = split[start : start + batch_size]
            todo = [i for i, (known, _) in enumerate(part) if len(known)]
            scores = self._score_many([part[i][0] for i in todo]) if todo else None
            row = dict(zip(todo, range(len(todo))))
            for i, (_, unknown) in enumerate(part):
                if i in row:
                    sc = np.asarray(scores[row[i]], dtype=np.float32).copy()
                    source = "model"
                else:
                    sc, source = self.popularity.copy(), "popular"
                sc[~self.known] = -np.inf
                if allowed is not None:
                    sc[~allowed] = -np.inf
                top, val = top_k_vector(sc, k, self.popularity)
                out.append(SessionRecommendation(top, val, source, unknown))
        return out

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(data) first")

    # --------------------------------------------------------------- persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:  # noqa: B027 - optional hook
        """Restore what ``_get_state`` returned."""

    def save(self, path: str | Path) -> None:
        """Write ``config.json`` and the arrays (``state.safetensors`` + ``state.json``, no pickle)
        to the folder ``path``, atomically — the same format as the customer models."""
        self._check_fitted()
        with atomic_dir(path) as tmp:
            (tmp / "config.json").write_text(json.dumps(self.get_config(), indent=2))
            state = {"_n_items": np.array(self.n_items), "_known": self.known,
                     "_popularity": self.popularity, **self._get_state()}
            write_state(tmp, state)

    @classmethod
    def load(cls, path: str | Path) -> SessionRecommender:
        """Load a model written by :meth:`save` (on the base class: whichever model it is)."""
        path = Path(path)
        config = json.loads((path / "config.json").read_text())
        name = config.pop("model", cls.name)
        if cls is SessionRecommender:
            from hoprec.models.session import get_session_model_class

            model_cls = get_session_model_class(name)
        elif name != cls.name:
            raise ValueError(f"{path} holds model {name!r}, not {cls.name!r}")
        else:
            model_cls = cls
        model = model_cls(config)
        state = read_state(path)
        model.n_items = int(state.pop("_n_items"))
        model.known, model.popularity = state.pop("_known"), state.pop("_popularity")
        model._set_state(state)
        model.fitted = True
        return model
