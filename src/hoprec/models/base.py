"""The one model contract: ``fit``, ``recommend``, ``similar_items``, ``save``, ``load``.

Every model — baseline or graph network — subclasses :class:`Recommender` and writes only what is
its own (template methods, as in RecTools):

- ``_fit(dataset)``: learn from a :class:`~hoprec.data.dataset.Dataset` (internal ids only);
- ``_score(users)``: dense scores ``(len(users), n_items)`` for users the model can personalise;
- ``_get_state()`` / ``_set_state(state)``: the learned arrays, for ``save`` / ``load``;
- optionally ``_similar(items)`` (item-to-item scores) and ``_can_score(users)``.

The public methods validate input, fall back to recent popularity for users the model cannot
score (and say so in :attr:`Recommendations.source`), apply exclusions and allow-lists, and pick
the top k with ties broken by the lower internal item id, so results are deterministic.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict

from hoprec.atomic import atomic_dir
from hoprec.data.dataset import Dataset

SOURCES = ("model", "popular")


class ModelConfig(BaseModel):
    """Base of every model's config: unknown fields are an error, values round-trip as JSON."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Recommendations:
    """Top-k lists in internal ids: ``items`` and ``scores`` are ``(n, k)``, -1 pads short lists;
    ``source[i]`` says what served row i (``"model"`` or the ``"popular"`` fallback)."""

    items: np.ndarray
    scores: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return len(self.items)


def label_horizon(dataset: Dataset, days: float | None) -> pd.Timedelta:
    """A model's training-window length: ``days`` if set, else the task's label window (30 days
    when the dataset has no task)."""
    return pd.Timedelta(days=days) if days else (dataset.horizon or pd.Timedelta(days=30))


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top k of a dense score matrix; ties go to the lower column; ``-inf`` never picked."""
    n, m = scores.shape
    k_eff = min(k, m)
    items = np.full((n, k), -1, dtype=np.int64)
    out = np.full((n, k), -np.inf, dtype=np.float32)
    if n == 0 or k_eff == 0:
        return items, out
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff] if k_eff < m else np.tile(np.arange(m), (n, 1))
    kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
    for i in range(n):
        row = scores[i]
        above = np.flatnonzero(row > kth[i])  # strictly better than the k-th: all taken
        if np.isfinite(kth[i]):
            tied = np.flatnonzero(row == kth[i])[: k_eff - len(above)]  # lowest ids among ties
            cols = np.concatenate([above, tied])
        else:
            cols = above
        order = np.lexsort((cols, -row[cols]))
        sel = cols[order]
        items[i, : len(sel)] = sel
        out[i, : len(sel)] = row[sel]
    return items, out


class Recommender(ABC):
    """Base class of all models; see the module docstring for what a subclass writes."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    #: small hyper-parameter grid tried on the validation cutoff by ``hoprec evaluate``
    param_grid: ClassVar[list[dict[str, Any]]] = [{}]
    #: needs ``dataset.db`` and ``dataset.task`` (the relational snapshot), not only interactions
    needs_relational: ClassVar[bool] = False

    def __init__(self, config: ModelConfig | dict[str, Any] | None = None, **params: Any) -> None:
        if isinstance(config, ModelConfig):
            config = config.model_dump()
        self.config = self.config_class(**{**(config or {}), **params})
        self.fitted = False

    # --------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        return {"model": self.name, **self.config.model_dump(mode="json")}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Recommender:
        cfg = dict(config)
        name = cfg.pop("model", cls.name)
        if name != cls.name:
            raise ValueError(f"config is for model {name!r}, not {cls.name!r}")
        return cls(cfg)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"{type(self).__name__}({args})"

    # --------------------------------------------------------------- fit
    def fit(self, dataset: Dataset, progress: Callable[[str], None] | None = None) -> Recommender:
        """Learn from ``dataset`` (events before its cutoff); ``progress`` receives a line now and
        then from models that train for long (training steps, windows)."""
        self._progress = progress
        if dataset.n_items == 0:
            raise ValueError("cannot fit on a dataset with no items")
        self.n_users, self.n_items = dataset.n_users, dataset.n_items
        inter = dataset.interactions
        pos = inter.positive()
        self.has_history = np.bincount(inter.user[pos], minlength=self.n_users) > 0
        recent = pos & (inter.time >= np.datetime64(dataset.cutoff - np.timedelta64(30, "D")))
        pop = np.bincount(inter.item[recent], minlength=self.n_items).astype(np.float64)
        pop += np.bincount(inter.item[pos], minlength=self.n_items) * 1e-6  # older as tie-break
        self.popularity = pop.astype(np.float32)
        try:
            self._fit(dataset)
        finally:
            self._progress = None
        self.fitted = True
        return self

    def _report(self, message: str) -> None:
        """Pass a progress line to whoever called :meth:`fit` (nothing when nobody listens)."""
        if getattr(self, "_progress", None) is not None:
            self._progress(message)

    @abstractmethod
    def _fit(self, dataset: Dataset) -> None: ...

    @abstractmethod
    def _score(self, users: np.ndarray) -> np.ndarray: ...

    def _can_score(self, users: np.ndarray) -> np.ndarray:
        """Which users this model personalises (default: known users with positive history)."""
        ok = users < self.n_users
        ok[ok] = self.has_history[users[ok]]
        return ok

    # --------------------------------------------------------------- recommend
    def recommend(
        self,
        users: np.ndarray,
        k: int,
        exclude: sp.csr_matrix | None = None,
        items: np.ndarray | None = None,
        batch_size: int = 256,
    ) -> Recommendations:
        """Top-``k`` items for each internal user id in ``users``.

        ``exclude``: a users x items matrix (rows indexed by internal user id) whose non-zero
        entries are never recommended (e.g. past purchases); ``items``: an allow-list of internal
        item ids. Users beyond the fitted range or without history get the popularity fallback.
        """
        self._check_fitted()
        users = np.asarray(users)
        if users.size and not np.issubdtype(users.dtype, np.integer):
            raise ValueError(f"users must be integer internal ids, got dtype {users.dtype}")
        users = users.astype(np.int64)
        if users.ndim != 1 or (users < 0).any():
            raise ValueError("users must be a 1-D array of non-negative internal ids")
        if not 1 <= k <= self.n_items:
            raise ValueError(f"k must be between 1 and the number of items ({self.n_items}), got {k}")
        allowed = None
        if items is not None:
            items = np.asarray(items)
            if items.size and (not np.issubdtype(items.dtype, np.integer)
                               or items.min() < 0 or items.max() >= self.n_items):
                raise ValueError(f"items must be internal item ids in [0, {self.n_items})")
            allowed = np.zeros(self.n_items, dtype=bool)
            allowed[items.astype(np.int64)] = True
        if exclude is not None:
            exclude = sp.csr_matrix(exclude)
            if exclude.shape[1] != self.n_items:
                raise ValueError(
                    f"exclude must have one column per item ({self.n_items}), has {exclude.shape[1]}"
                )
        can = self._can_score(users.copy())
        out_items = np.full((len(users), k), -1, dtype=np.int64)
        out_scores = np.full((len(users), k), -np.inf, dtype=np.float32)
        source = np.where(can, "model", "popular").astype(object)
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            bcan = can[start : start + batch_size]
            scores = np.empty((len(batch), self.n_items), dtype=np.float32)
            if bcan.any():
                scores[bcan] = self._score(batch[bcan])
            if (~bcan).any():
                scores[~bcan] = self.popularity
            if exclude is not None:
                known = batch < exclude.shape[0]
                sub = exclude[batch[known]]
                rows, cols = sub.nonzero()
                scores[np.flatnonzero(known)[rows], cols] = -np.inf
            if allowed is not None:
                scores[:, ~allowed] = -np.inf
            ids, sc = self._select(batch, scores, k, bcan)
            out_items[start : start + len(batch)] = ids
            out_scores[start : start + len(batch)] = sc
        return Recommendations(out_items, out_scores, source)

    def _select(self, users: np.ndarray, scores: np.ndarray, k: int,
                model_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The top ``k`` (ids, scores) of each row of ``scores`` (users x items, excluded items
        already -inf); ``model_rows`` marks the rows the model scored (the others hold the
        popularity fallback).  A model that arranges its lists otherwise overrides this."""
        return top_k(scores, k)

    def similar_items(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` other items for each internal item id, by the model's item-to-item scores."""
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if self.n_items < 2:
            raise ValueError("similar_items needs at least two items")
        items = np.asarray(items, dtype=np.int64)
        if items.ndim != 1 or (items < 0).any() or (items >= self.n_items).any():
            raise ValueError(f"items must be internal ids in [0, {self.n_items})")
        scores = np.asarray(self._similar(items), dtype=np.float32).copy()
        scores[np.arange(len(items)), items] = -np.inf
        return top_k(scores, min(k, self.n_items - 1))

    def _similar(self, items: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"model {self.name!r} has no item-to-item similarity")

    def embeddings(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(user_vectors (n_users, d), item_vectors (n_items, d))`` whose dot product is the
        model's score, for ANN retrieval; ``None`` for models that do not score by a dot product."""
        self._check_fitted()
        return self._embeddings()

    def _embeddings(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None

    def score_history(
        self, items: np.ndarray, times: np.ndarray, weights: np.ndarray, user: int | None = None,
    ) -> np.ndarray | None:
        """Fold-in: scores ``(n_items,)`` for a user whose whole history is these events (internal
        item ids, UTC ns times, kind weights; ``user`` is the internal id if the model knows it),
        without refitting; ``None`` when the model cannot (the service then blends its own
        history signals into the fitted scores)."""
        self._check_fitted()
        return self._score_history(
            np.asarray(items, np.int64), np.asarray(times, np.int64),
            np.asarray(weights, np.float32), user,
        )

    def _score_history(
        self, items: np.ndarray, times: np.ndarray, weights: np.ndarray, user: int | None,
    ) -> np.ndarray | None:
        return None

    def _fingerprint(self, dataset: Dataset) -> str:
        """What a fit is — model, settings, cutoff, sizes — so a checkpoint of another fit (e.g.
        the validation cutoff's, in ``hoprec evaluate``) is never resumed by mistake."""
        cfg = {k: v for k, v in self.get_config().items() if k != "checkpoint_dir"}
        return (f"{self.name} cutoff={dataset.cutoff} users={dataset.n_users} items={dataset.n_items} "
                f"events={len(dataset.interactions)} config={json.dumps(cfg, sort_keys=True)}")

    def training_log(self) -> list[dict[str, float]]:
        """The last ``fit``'s training curve, for reports: one dict per logged step with ``step``
        and any of ``loss`` (training loss) and ``val_map`` (held-out MAP). Models that train by
        steps set ``self.training_log_`` (the shared loop's log) or ``self.history`` during ``_fit``;
        others log nothing."""
        log = getattr(self, "training_log_", None) or getattr(self, "history", None) or []
        return [dict(row) for row in log]

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")

    # --------------------------------------------------------------- persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:  # noqa: B027 - optional hook
        """Restore what ``_get_state`` returned; models with no learned arrays keep this."""

    def save(self, path: str | Path) -> None:
        """Write ``config.json`` and the learned arrays to the folder ``path`` (atomically
        replaced): numeric arrays as ``state.safetensors``, text arrays in ``state.json``."""
        self._check_fitted()
        with atomic_dir(path) as tmp:
            (tmp / "config.json").write_text(json.dumps(self.get_config(), indent=2))
            state = {
                "_n_users": np.array(self.n_users), "_n_items": np.array(self.n_items),
                "_has_history": self.has_history, "_popularity": self.popularity,
                **self._get_state(),
            }
            write_state(tmp, state)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model saved by :meth:`save` (on the base class: whichever model it is)."""
        path = Path(path)
        config = json.loads((path / "config.json").read_text())
        if cls is Recommender:
            from hoprec.models.registry import get_model_class

            model_cls = get_model_class(config.get("model", ""))
        else:
            model_cls = cls
        model = model_cls.from_config(config)
        state = read_state(path)
        model.n_users, model.n_items = int(state.pop("_n_users")), int(state.pop("_n_items"))
        model.has_history, model.popularity = state.pop("_has_history"), state.pop("_popularity")
        model._set_state(state)
        model.fitted = True
        return model


def write_state(folder: Path, state: dict[str, np.ndarray]) -> None:
    """Numeric arrays to ``folder/state.safetensors``; text arrays to ``folder/state.json``."""
    from safetensors.numpy import save_file

    numeric, text = {}, {}
    for key, value in state.items():
        arr = np.asarray(value)
        if arr.dtype.kind in "biuf" and arr.ndim == 0:  # safetensors has no 0-d arrays
            text[key] = {"scalar": arr.item(), "dtype": arr.dtype.str}
        elif arr.dtype.kind in "biuf":
            numeric[key] = np.ascontiguousarray(arr)
        elif arr.dtype.kind in "US":
            text[key] = {"shape": list(arr.shape), "values": arr.astype(str).ravel().tolist()}
        else:
            raise TypeError(f"state array {key!r} has dtype {arr.dtype}: only numbers and text are saved")
    save_file(numeric, str(folder / "state.safetensors"))
    (folder / "state.json").write_text(json.dumps(text))


def read_state(folder: Path) -> dict[str, np.ndarray]:
    """What :func:`write_state` wrote (or a ``state.npz`` of models saved before safetensors)."""
    if not (folder / "state.safetensors").exists():
        if (folder / "state.npz").exists():
            with np.load(folder / "state.npz", allow_pickle=False) as z:
                return {key: z[key] for key in z.files}
        raise FileNotFoundError(f"{folder}: no state.safetensors — not a saved hoprec model")
    from safetensors.numpy import load_file

    state = dict(load_file(str(folder / "state.safetensors")))
    text = json.loads((folder / "state.json").read_text()) if (folder / "state.json").exists() else {}
    for key, value in text.items():
        if "scalar" in value:
            state[key] = np.array(value["scalar"], dtype=np.dtype(value["dtype"]))
        else:
            state[key] = np.array(value["values"], dtype=np.str_).reshape(value["shape"])
    return state
