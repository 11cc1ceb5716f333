"""Entity-aware hybrid: a learned ranker over each customer's own subgraph signals.

For a customer ``u`` and candidate item ``i`` at time ``t`` the model reads pair signals from the
events before ``t`` (:mod:`hoprec.models.pair_features`): recency-decayed purchase counts at four
half-lives, count, days since first/last purchase, the pair's mean inter-purchase interval and how
overdue it is, the item's recent popularity, trend, repeat rate and age, the customer's basket
count and repeat share, paths from the customer's items through co-purchase and bought-after item
edges, and the customer's share of purchases in the item's category.  A gradient-boosted ranker
(LightGBM lambdarank, one group per customer) learns how to weigh them.

Training examples come from ``n_windows`` windows before the fitted cutoff, each as long as the
task's horizon: features from the events before the window's start, labels inside it, so the
model learns exactly the task it is asked (no event at or after the fitted cutoff is used).

With ``embedding`` set (e.g. ``"lightgcn"``), a two-tower graph model is trained at each
window's start on the events before it (and once more at the fitted cutoff): its dot-product score
and the score's rank among the customer's candidates become two more columns, and its top
``embedding_candidates`` products join each customer's candidates — which is how products nobody
has bought yet (placed by their attributes) reach the ranker.  Each window's graph model sees only
events before that window, so no feature leaks its own label.

With ``relational_paths``, every customer -> X -> product meta-path through the schema's other
tables (stores, campaigns and their coupons, redemptions: :mod:`hoprec.models.relational_paths`)
adds a column and its top products as candidates; ``exclude_tables`` leaves tables out.  With
``discovery_positions`` (e.g. ``[10, 11]``) those places of every list go to the best-scored
products the customer has never bought, the rest keeping the pure ranking's order.

``event_columns`` (on by default) adds the event tables' numerical columns (price paid,
discounts, quantity) as each product's recent mean, its lift over 90 days and the pair's own
mean (:mod:`hoprec.models.event_columns`).  ``sequence_rhythm`` adds basket-sequence and
repurchase-rhythm columns (:mod:`hoprec.models.pair_rhythm`); like ``category_rhythm`` it is
opt-in, being within noise on validation.

Defaults: ``n_windows=4``, ``own=200`` ``graph=50`` ``popular=50`` ``new=20`` candidates per
customer, ``neighbours=50``, ``n_estimators=300``, ``learning_rate=0.05``, ``num_leaves=63``,
``embedding=None``, ``embedding_candidates=50``, ``event_columns=True``, ``seed=0``.  Items
outside a customer's candidates score below every candidate (by popularity).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from hoprec.compat import require
from hoprec.data.dataset import Dataset
from hoprec.models import pair_features as pf
from hoprec.models.base import ModelConfig, Recommender, label_horizon, top_k
from hoprec.models.discovery import interleave, places_within
from hoprec.models.event_columns import EventColumns
from hoprec.models.relational_paths import (
    PathSignals,
    from_state,
    path_candidates,
    path_features,
    to_state,
)


class HybridConfig(ModelConfig):
    n_windows: int = Field(default=4, ge=1)  # 4 beat 2 on CJ validation (0.2849 vs 0.2803)
    horizon_days: float | None = None  # default: the task's label window
    own: int = 200
    graph: int = 50
    popular: int = 50
    new: int = 20
    neighbours: int = 50
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 63
    min_child_samples: int = 50
    seed: int = 0
    num_threads: int = 0
    negative_fraction: float = Field(default=0.3, gt=0, le=1)  # of non-bought candidates kept
    category_column: str | None = None  # default: see _groups
    objective: str = "binary"  # or "lambdarank" (slower on 2 cores, no better on validation)
    embedding: str | None = None  # a graph model whose score is a feature, e.g. "lightgcn"
    embedding_params: dict[str, Any] = Field(default_factory=dict)
    embedding_candidates: int = Field(default=50, ge=0)
    drop_features: list[str] = Field(default_factory=list)  # feature or group names (ablations)
    # the customer's rhythm in the item's category: +0.003 validation MAP with two windows on CJ,
    # +0.0002 with four (the default), so off by default
    category_rhythm: bool = False
    # basket-sequence and repurchase-rhythm signals (:mod:`hoprec.models.pair_rhythm`): validation
    # MAP +0.0005 on CJ, -0.0010 on OR (both within noise), so off by default
    sequence_rhythm: bool = False
    # 0-based places of every list that go to the best-scored products the customer has never
    # bought, e.g. [10, 11]: trades a little MAP for new-to-customer recall ([] = pure ranking).
    # Fixed places, so a longer list starts with the shorter one.
    discovery_positions: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    # customer -> X -> product meta-paths through the schema's other tables (stores, campaigns,
    # coupons: :mod:`hoprec.models.relational_paths`), one column each
    relational_paths: bool = False
    path_half_life_days: float = Field(default=30.0, gt=0)
    path_candidates: int = Field(default=20, ge=0)  # per customer and path: the top products by path weight
    exclude_tables: list[str] = Field(default_factory=list)  # tables the paths leave out (ablations)
    # the event tables' numerical columns (price, discounts, quantity) as item and pair means
    # (:mod:`hoprec.models.event_columns`): validation MAP on OR +0.0066 / +0.0078 (seeds 0 / 1),
    # on CJ -0.0002 (noise); a table without numerical columns adds nothing
    event_columns: bool = True


class Hybrid(Recommender):
    """Pair signals from the customer's own subgraph, ranked by a learned model."""

    name: ClassVar[str] = "hybrid"
    config_class: ClassVar[type[ModelConfig]] = HybridConfig
    # `evaluate` chooses on validation, per dataset, whether the event columns earn their place:
    # they lift Online Retail (quantity) and are noise on The Complete Journey
    param_grid: ClassVar[list[dict[str, Any]]] = [{}, {"event_columns": False}]

    def _fit(self, dataset: Dataset) -> None:
        lgb = require("lightgbm", "hybrid")
        cfg: HybridConfig = self.config  # type: ignore[assignment]
        horizon = label_horizon(dataset, cfg.horizon_days)
        self.horizon_days = horizon / pd.Timedelta(days=1)
        self.groups = _groups(dataset, cfg.category_column)
        paths = None
        self.path_names: list[str] = []
        if cfg.relational_paths:
            paths = PathSignals.from_dataset(dataset, cfg.path_half_life_days, tuple(cfg.exclude_tables))
            self.path_names = paths.names
        self.events = EventColumns.from_dataset(dataset) if cfg.event_columns else None
        inter = dataset.interactions
        pos = inter.select(inter.positive())
        xs, ys, gs = [], [], []
        rng = np.random.default_rng(cfg.seed)
        for w in range(1, cfg.n_windows + 1):
            self._report(f"training window {w}/{cfg.n_windows}")
            start = np.datetime64(dataset.cutoff - w * horizon)
            end = start + np.timedelta64(horizon)
            hist = pf.build_history(inter, start, self.n_users, self.n_items, cfg.neighbours,
                                    horizon_days=self.horizon_days, rhythm=cfg.sequence_rhythm)
            inside = (pos.time >= start) & (pos.time < end)
            label_keys = np.unique(pos.user[inside].astype(np.int64) * self.n_items + pos.item[inside])
            users = np.intersect1d(np.flatnonzero(hist.user_baskets > 0), np.unique(pos.user[inside]))
            if len(users) == 0:
                continue
            emb = self._embed_at(dataset, pd.Timestamp(start))
            mats = paths.at(start) if paths is not None else []
            ev = self.events.at(start) if self.events is not None else None
            u, i = self._candidates(hist, users, emb, mats)
            y = np.isin(u.astype(np.int64) * self.n_items + i, label_keys)
            keep = np.isin(u, np.unique(u[y]))  # groups without a positive teach nothing
            keep &= y | (rng.random(len(y)) < cfg.negative_fraction)
            # features on every candidate, then the sample: rank features (rank_h90, emb_rank)
            # must see the same candidate set as at scoring time
            xs.append(self._features(hist, u, i, emb, mats, ev)[keep])
            ys.append(y[keep])
            gs.append(np.unique(u[keep], return_counts=True)[1])
        if not xs:
            raise ValueError("hybrid: no training window has both history and labels")
        params = {
            "objective": cfg.objective, "learning_rate": cfg.learning_rate,
            "num_leaves": cfg.num_leaves, "min_data_in_leaf": cfg.min_child_samples,
            "seed": cfg.seed, "num_threads": cfg.num_threads, "deterministic": True,
            "force_row_wise": True, "verbosity": -1,
            **({"lambdarank_truncation_level": 20} if cfg.objective == "lambdarank" else {}),
        }
        train = lgb.Dataset(np.vstack(xs), np.concatenate(ys).astype(np.int32),
                            group=np.concatenate(gs), feature_name=self.feature_names())
        self._report(f"boosting {cfg.n_estimators} trees on {sum(len(y) for y in ys):,} pairs")
        self.booster = lgb.train(params, train, num_boost_round=cfg.n_estimators)
        self._inter = inter
        self.emb = self._embed_at(dataset, None)
        self.path_mats = paths.at(np.datetime64(dataset.cutoff)) if paths is not None else []
        self._prepare(dataset.cutoff)

    def _select(self, users, scores, k, model_rows):
        """With ``discovery_positions``: those places of each personalised list hold the
        best-scored products the customer has not bought before (:mod:`hoprec.models.discovery`)."""
        ids, sc = top_k(scores, k)
        places = places_within(self.config.discovery_positions, k)  # type: ignore[attr-defined]
        rows = np.flatnonzero(model_rows)
        if not places or len(rows) == 0:
            return ids, sc
        fresh = scores[rows].copy()
        owned = self.hist.count[users[rows]].tocoo()
        fresh[owned.row, owned.col] = -np.inf
        new_ids, new_sc = top_k(fresh, k)
        for r, ni, ns in zip(rows, new_ids, new_sc):
            ids[r], sc[r] = interleave(ids[r], sc[r], ni, ns, places, k)
        return ids, sc

    def _all_features(self) -> list[str]:
        extra = ["emb_score", "emb_rank"] if self.config.embedding else []  # type: ignore[attr-defined]
        events = getattr(self, "events", None)
        ev = events.feature_names() if events is not None else []
        return [*pf.FEATURES, *getattr(self, "path_names", []), *ev, *extra]

    def _kept(self) -> np.ndarray:
        """Mask over :meth:`_all_features` without ``drop_features`` (names or group names)."""
        names = self._all_features()
        groups = {**pf.GROUPS, "embedding": ("emb_score", "emb_rank"),
                  "paths": tuple(getattr(self, "path_names", [])),
                  "event_columns": tuple(n for n in names if n.startswith("ev_"))}
        drop: set[str] = set()
        wanted = list(self.config.drop_features)  # type: ignore[attr-defined]
        if not self.config.category_rhythm:  # type: ignore[attr-defined]
            wanted.append("category_timing")
        if not self.config.sequence_rhythm:  # type: ignore[attr-defined]
            wanted += ["pair_sequence", "rhythm"]
        for d in wanted:
            if d not in groups and d not in names:
                raise ValueError(f"hybrid: drop_features {d!r} is neither a feature nor a group; "
                                 f"groups: {', '.join(groups)}")
            drop.update(groups.get(d, (d,)))
        return np.array([n not in drop for n in names])

    def feature_names(self) -> list[str]:
        return [n for n, k in zip(self._all_features(), self._kept()) if k]

    def _embed_at(self, dataset: Dataset, t: pd.Timestamp | None):
        """(user vectors, item vectors) of the embedding model fitted on events before ``t``
        (``None``: the whole dataset), or None without ``embedding``."""
        cfg: HybridConfig = self.config  # type: ignore[assignment]
        if not cfg.embedding:
            return None
        from hoprec.models.gnn_common import restrict
        from hoprec.models.registry import create_model

        ds = dataset if t is None else restrict(dataset, t)
        model = create_model(cfg.embedding, **{"seed": cfg.seed, **cfg.embedding_params}).fit(ds)
        emb = model.embeddings()
        if emb is None:
            raise ValueError(f"hybrid: embedding model {cfg.embedding!r} has no embeddings()")
        return emb

    def _candidates(self, hist, users: np.ndarray, emb, mats=()):
        cfg: HybridConfig = self.config  # type: ignore[assignment]
        u, i = pf.candidates(hist, users, cfg.own, cfg.graph, cfg.popular, cfg.new)
        eu, ei = [u], [i]
        if mats and cfg.path_candidates:
            pu, pi = path_candidates(list(mats), users, cfg.path_candidates)
            eu.append(pu)
            ei.append(pi)
        if emb is not None and cfg.embedding_candidates > 0:
            n = min(cfg.embedding_candidates, self.n_items)
            for s in range(0, len(users), 512):
                block = users[s : s + 512]
                scores = emb[0][block] @ emb[1].T
                top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
                eu.append(np.repeat(block, n))
                ei.append(top.ravel())
        keys = np.unique(np.concatenate(eu).astype(np.int64) * self.n_items + np.concatenate(ei))
        return keys // self.n_items, keys % self.n_items

    def _features(self, hist, u: np.ndarray, i: np.ndarray, emb, mats=(), ev=None) -> np.ndarray:
        x = pf.pair_features(hist, u, i, self.groups, self.config.category_rhythm)  # type: ignore[attr-defined]
        if mats:
            x = np.column_stack([x, path_features(list(mats), u, i)]).astype(np.float32)
        if ev is not None:
            x = np.column_stack([x, ev.features(u, i)]).astype(np.float32)
        if emb is not None:
            score = np.einsum("ij,ij->i", emb[0][u], emb[1][i]).astype(np.float64)
            rank = pf._rank_within_user(u, score)
            x = np.column_stack([x, score, rank]).astype(np.float32)
        return x[:, self._kept()]

    def _prepare(self, cutoff: pd.Timestamp) -> None:
        cfg: HybridConfig = self.config  # type: ignore[assignment]
        self.cutoff = np.datetime64(pd.Timestamp(cutoff))
        self.hist = pf.build_history(self._inter, self.cutoff, self.n_users, self.n_items, cfg.neighbours,
                                     horizon_days=self.horizon_days, rhythm=cfg.sequence_rhythm)
        self.ev_now = self.events.at(self.cutoff) if self.events is not None else None

    def _score(self, users: np.ndarray) -> np.ndarray:
        cfg: HybridConfig = self.config  # type: ignore[assignment]
        u, i = self._candidates(self.hist, users, self.emb, self.path_mats)
        x = self._features(self.hist, u, i, self.emb, self.path_mats, self.ev_now)
        s = self.booster.predict(x, num_threads=cfg.num_threads or 0)
        out = np.empty((len(users), self.n_items), dtype=np.float32)
        out[:] = (self.popularity / max(float(self.popularity.max()), 1e-9) - 2.0)[None, :]
        low = float(s.min()) if len(s) else 0.0
        row = _positions(users, u)
        out[row, i] = (s - low).astype(np.float32)  # candidates >= 0 > every other item
        return out

    def _similar(self, items: np.ndarray) -> np.ndarray:
        return (self.hist.cooc[items] + self.hist.after[items]).toarray()

    def feature_importance(self) -> dict[str, float]:
        gain = self.booster.feature_importance(importance_type="gain")
        return dict(zip(self.feature_names(), (gain / max(gain.sum(), 1e-9)).round(4).tolist()))

    # -------------------------------------------------------------- persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        inter = self._inter
        model = np.frombuffer(self.booster.model_to_string().encode(), dtype=np.uint8)
        return {
            "booster": model, "cutoff": np.array(self.cutoff.astype("datetime64[ns]").astype(np.int64)),
            "horizon_days": np.array(self.horizon_days),
            "groups": self.groups if self.groups is not None else np.zeros(0, dtype=np.int64),
            "i_user": inter.user, "i_item": inter.item, "i_time": inter.time.astype(np.int64),
            "i_weight": inter.weight, "i_quantity": inter.quantity, "i_kind": inter.kind,
            "i_basket": inter.basket, "i_kinds": np.array(inter.kinds, dtype=np.str_),
            **({"user_emb": self.emb[0], "item_emb": self.emb[1]} if self.emb is not None else {}),
            **to_state(self.path_mats, self.path_names),
            **(self.events.state() if self.events is not None else {}),
        }

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        from hoprec.data.dataset import Interactions

        lgb = require("lightgbm", "hybrid")
        self.booster = lgb.Booster(model_str=state["booster"].tobytes().decode())
        self.path_names, self.path_mats = from_state(state)
        self.events = EventColumns.from_state(state)
        if self.booster.feature_name() != self.feature_names():
            raise ValueError(
                f"this hybrid model was trained on features {self.booster.feature_name()}, but this "
                f"version of hoprec computes {self.feature_names()} for its settings: retrain it")
        self.groups = state["groups"] if len(state["groups"]) else None
        self._inter = Interactions(
            state["i_user"], state["i_item"], state["i_time"].astype("datetime64[ns]"),
            state["i_weight"], state["i_quantity"], state["i_kind"],
            tuple(str(k) for k in state["i_kinds"]), state["i_basket"],
        )
        self.emb = (state["user_emb"], state["item_emb"]) if "user_emb" in state else None
        self.horizon_days = float(state["horizon_days"])
        self._prepare(pd.Timestamp(int(state["cutoff"])))


def _positions(users: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row of each ``u`` in ``users`` (``users`` distinct, in any order)."""
    order = np.argsort(users, kind="stable")
    return order[np.searchsorted(users[order], u)]


def _groups(dataset: Dataset, column: str | None) -> np.ndarray | None:
    """Item group codes for the customer's category-share signal (-1 unknown).

    ``column`` names an item column; by default the schema's categorical item column with the
    most distinct values, as long as a group holds 20 items on average (a category, not an id).
    """
    feats = dataset.item_features
    if column is not None:
        if column not in feats:
            raise ValueError(f"hybrid: no item column {column!r} (columns: {', '.join(feats.columns)})")
        return pd.factorize(feats[column], use_na_sentinel=True)[0].astype(np.int64)
    best, best_n = None, 1
    for col in feats.columns:
        s = feats[col]
        if not (isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(s)):
            continue
        n = s.nunique()
        if best_n < n <= max(2, len(s) // 20):
            best, best_n = col, n
    return None if best is None else pd.factorize(feats[best], use_na_sentinel=True)[0].astype(np.int64)
