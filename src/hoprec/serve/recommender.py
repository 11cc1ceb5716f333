"""The recommendation logic behind the HTTP service and ``hoprec predict``; no HTTP in here.

:class:`RecommendationService` loads a model directory once and answers with external ids:

1. **Scores.** A known user with nothing new gets the model's own scores: from the retrieval index
   when the model has embeddings (over-fetch ``k * overfetch`` candidates, union the user's own
   items, score them exactly), else the model's dense scores.  A user with events since the model's
   cutoff is *folded in*: models with a ``score_history`` hook (popular, repeat, itemknn, ALS)
   recompute that user's scores from the whole history; the others keep their fitted scores and add
   the new events' own signal (the items themselves, then their co-purchase and bought-after
   partners).  Cold users fall back in order: session items (their events, or ``item_ids`` sent
   with the request) -> their segment's popular items -> everyone's popular items.  ``source``
   says which served the answer.
2. **Rules.** Attribute filters, allow/exclude lists and (per schema, overridable per request)
   past purchases are masked out before the top of the list is taken.
3. **Re-ranking.** With ``diversity``, MMR over a pool of ``5 k`` (see :mod:`.rerank`); a
   per-category cap applies with or without it.
4. **Reasons** (``explain``) from the history and the item graph (see :mod:`.reasons`).

Not thread-safe for writes: the HTTP app applies events and reads on its event loop only.
"""

from __future__ import annotations

import json
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hoprec.data.idmap import IdMap
from hoprec.data.schema import DEFAULT_KIND_WEIGHTS
from hoprec.models.base import Recommender, top_k
from hoprec.models.discovery import interleave, places_within
from hoprec.serve.data import ServingData
from hoprec.serve.events import Event
from hoprec.serve.index import VectorIndex, build_index
from hoprec.serve.reasons import HistorySummary, explain
from hoprec.serve.rerank import Catalogue, Filters, cap_per_category, mmr

SOURCES = ("model", "model+events", "session", "segment", "popular")


@dataclass
class Options:
    """Per-request options in internal terms (the HTTP layer validates and converts)."""

    k: int = 12
    filters: Filters = field(default_factory=Filters)
    exclude_purchased: bool | None = None  # None: the schema's setting
    diversity: bool = False
    mmr_lambda: float | None = None
    max_per_category: int | None = None
    explain: bool = False
    #: 0-based places for the best-scored products the customer never bought (personalised
    #: answers only); None: the model's own ``discovery_positions`` setting, if it has one
    discovery_positions: tuple[int, ...] | None = None


@dataclass
class ServiceConfig:
    overfetch: int = 20
    exact_max_items: int = 200_000
    mmr_lambda: float = 0.7
    cache_size: int = 4096
    cache_mb: int = 256
    columns: dict[str, str | None] = field(default_factory=dict)
    #: precompute each known user's top ``precompute_items`` when one dense score call takes more
    #: than ``precompute_above_ms`` ("auto"), always, or never
    precompute: str = "auto"
    precompute_items: int = 5000
    precompute_above_ms: float = 20.0
    precompute_mb: int = 512


@dataclass
class Answer:
    items: list[Any]
    scores: list[float]
    source: str
    user_known: bool = True
    reasons: list[list[dict]] | None = None
    message: str | None = None
    folded_events: int = 0
    cached: bool = False
    internal: np.ndarray | None = None


def _key(value: Any) -> str:
    return str(value).strip()


class RecommendationService:
    """One loaded model directory, ready to answer (see the module docstring)."""

    def __init__(self, model: Recommender, users: IdMap, items: IdMap, data: ServingData | None,
                 manifest: dict | None = None, config: ServiceConfig | None = None,
                 session_model: Any = None, cache_dir: str | Path | None = None) -> None:
        self.model, self.users, self.items = model, users, items
        self.manifest = manifest or {}
        self.config = config or ServiceConfig()
        n_users, n_items = len(users), len(items)
        if model.n_items != n_items:
            raise ValueError(f"model has {model.n_items} items, the item map {n_items}")
        as_of = pd.Timestamp(self.manifest.get("as_of", "1970-01-01"))
        self.data = data if data is not None else ServingData.empty(n_users, n_items, as_of)
        if (self.data.n_users, self.data.n_items) != (n_users, n_items):
            raise ValueError("serving data does not match the model directory's id maps: rebuild it")
        self.as_of_ns = pd.Timestamp(self.data.as_of).tz_localize(None).value
        self.item_ext = items.external.to_numpy()
        self.item_lookup = {_key(x): i for i, x in enumerate(self.item_ext.tolist())}
        self.user_lookup = {_key(x): i for i, x in enumerate(users.external.tolist())}
        self.new_users: dict[str, int] = {}
        cols = {role: self.data.role_column(role, self.config.columns.get(role))
                for role in ("category", "brand", "price", "available", "title")}
        self.catalogue = Catalogue.from_frame(self.data.item_attrs, n_items, cols, self.item_ext)
        self.popularity = np.asarray(model.popularity, dtype=np.float32)
        emb = model.embeddings()
        self.user_vectors, self.index = None, None
        if emb is not None:
            self.user_vectors = np.ascontiguousarray(emb[0], dtype=np.float32)
            self.index: VectorIndex | None = build_index(emb[1], self.config.exact_max_items,
                                                         cache_dir=cache_dir)
        self.session_model = session_model
        self.co_norm = _row_norm(self.data.co)
        self.after_norm = _row_norm(self.data.after)
        self.co_norm_csc, self.after_norm_csc = self.co_norm.tocsc(), self.after_norm.tocsc()
        self.extra: dict[int, list[tuple[int, int, float]]] = {}
        self.version: dict[int, int] = {}
        self.last_seq = 0
        self._seen: set[int] = set()
        self.top: tuple[np.ndarray, np.ndarray] | None = None  # see precompute()
        self.cache: OrderedDict = OrderedDict()
        # a cached entry holds up to one float32 per item: keep the cache within cache_mb
        per_entry = 4 * n_items + 64
        self._cache_entries = min(self.config.cache_size, self.config.cache_mb * 2**20 // per_entry)
        self.counters: Counter = Counter()
        self.model_version = f"{model.name}@{self.manifest.get('created', 'unsaved')}"

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_model_dir(cls, path: str | Path, config: ServiceConfig | None = None,
                       schema_path: str | Path | None = None, progress=None) -> RecommendationService:
        from hoprec.serve.data import load_or_build
        from hoprec.train.artifacts import load_model_dir

        art = load_model_dir(path)
        data = load_or_build(path, schema_path, progress)
        session_model = _load_session_model(Path(path))
        return cls(art.model, art.users, art.items, data, art.manifest, config, session_model,
                   Path(path) / "serving")

    def precompute(self, batch_size: int = 128, force: bool = False) -> bool:
        """For slow dense models (hybrid): score every known user once, in batches, and keep each
        one's top ``precompute_items`` (fewer if they would take over ``precompute_mb``); requests
        then rank inside them (a filter that leaves fewer
        than needed scores that user live).  Returns whether it did."""
        cfg = self.config
        if self.index is not None or cfg.precompute == "never":
            return False
        users = np.flatnonzero(self.model.has_history[: len(self.users)])
        if not len(users):
            return False
        if cfg.precompute == "auto" and not force:
            t0 = time.perf_counter()
            self.model._score(users[:1])
            if (time.perf_counter() - t0) * 1000 < cfg.precompute_above_ms:
                return False
        per_item = 8 * len(self.users)  # an int32 id and a float32 score per user
        m = max(1, min(cfg.precompute_items, len(self.popularity), cfg.precompute_mb * 2**20 // per_item))
        ids = np.full((len(self.users), m), -1, np.int32)
        scores = np.full((len(self.users), m), -np.inf, np.float32)
        for start in range(0, len(users), batch_size):
            chunk = users[start : start + batch_size]
            top, sc = top_k(np.asarray(self.model._score(chunk), np.float32), m)
            ids[chunk], scores[chunk] = top, sc
        self.top = (ids, scores)
        return True

    # ------------------------------------------------------------------ ids
    def user_internal(self, user_id: Any) -> tuple[int | None, bool]:
        """``(internal id or None, known to the model)``; new users from events have ids too."""
        key = _key(user_id)
        if key in self.user_lookup:
            return self.user_lookup[key], True
        return self.new_users.get(key), False

    def item_internal(self, ids: list[Any]) -> tuple[np.ndarray, list[Any]]:
        """Internal ids of the known ``ids`` (order kept) and the unknown ones."""
        known, unknown = [], []
        for x in ids:
            i = self.item_lookup.get(_key(x))
            (known.append(i) if i is not None else unknown.append(x))
        return np.asarray(known, dtype=np.int64), unknown

    # ------------------------------------------------------------------ events
    def apply_events(self, events: list[Event]) -> list[bool]:
        """Fold events into the users' histories; False for those that cannot be (unknown item,
        or older than the model's cutoff: already in its training data)."""
        applied = []
        for e in events:
            item = self.item_lookup.get(_key(e.item_id))
            if item is None or e.time_ns < self.as_of_ns:
                applied.append(False)
                continue
            u, _ = self.user_internal(e.user_id)
            if u is None:
                u = len(self.users) + len(self.new_users)
                self.new_users[_key(e.user_id)] = u
            weight = DEFAULT_KIND_WEIGHTS.get(e.kind, 0.0)
            self.extra.setdefault(u, []).append((item, int(e.time_ns), float(weight)))
            self.version[u] = self.version.get(u, 0) + 1
            applied.append(True)
        if events:
            self.last_seq = max(self.last_seq, max(e.seq for e in events))
        return applied

    def sync(self, store: Any, force: bool = False, overlap: int = 0) -> int:
        """Apply what ``store`` holds beyond the last sequence number seen; returns how many.

        ``overlap`` re-reads that many numbers below the last one and skips those already applied:
        for stores whose numbers may commit out of order (PostgreSQL with several writers)."""
        if not (force or store.changed()):
            return 0
        n = 0
        start = max(0, self.last_seq - overlap)
        while True:
            batch = [e for e in store.read_since(start) if e.seq not in self._seen]
            if not batch:
                return n
            self.apply_events(batch)
            if overlap:
                self._seen.update(e.seq for e in batch)
                if len(self._seen) > 4 * overlap:
                    self._seen = {s for s in self._seen if s > self.last_seq - overlap}
            start = max(start, max(e.seq for e in batch))
            n += len(batch)

    def history(self, u: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(items, times_ns, weights, n_new)``: the training history plus folded events."""
        if u is None:
            e = np.zeros(0, np.int64)
            return e, e.copy(), np.zeros(0, np.float32), 0
        items, times, weights = self.data.user_events(u)
        extra = self.extra.get(u)
        if not extra:
            return items, times, weights, 0
        ei, et, ew = (np.asarray(x) for x in zip(*extra))
        return (np.concatenate([items, ei.astype(np.int64)]), np.concatenate([times, et.astype(np.int64)]),
                np.concatenate([weights, ew.astype(np.float32)]), len(extra))

    # ------------------------------------------------------------------ scoring
    def _scores(self, u: int | None, known: bool, session: np.ndarray | None, k: int = 12):
        """``(candidate ids or None for all items, scores, source, n_new, cached)``."""
        fetch = max(k, 12) * self.config.overfetch
        key = (u, self.version.get(u, 0), fetch) if u is not None and session is None else None
        if key is not None and key in self.cache:
            self.cache.move_to_end(key)
            self.counters["cache_hit"] += 1
            return (*self.cache[key], True)
        self.counters["cache_miss"] += 1
        items, times, weights, n_new = self.history(u)
        ids, source = None, "model"
        can = known and bool(self.model._can_score(np.array([u], dtype=np.int64))[0])
        if can and n_new == 0:
            if self.index is not None:
                ids, scores = self._retrieve(u, items, fetch)
            elif self.top is not None:
                ids, scores = self.top[0][u], self.top[1][u]
                ok = ids >= 0
                ids, scores = ids[ok], scores[ok]
            else:
                scores = np.array(self.model._score(np.array([u], dtype=np.int64))[0], dtype=np.float32)
        elif (weights > 0).any():
            scores = self.model.score_history(items, times, weights, u if known else None)
            if scores is None:
                new = slice(len(items) - n_new, None)
                boost = self._history_signal(items[new], times[new], weights[new])
                if can:
                    scores = _unit(np.asarray(self.model._score(np.array([u]))[0], np.float64)) + boost
                    source = "model+events"
                else:
                    scores, source = self._session_scores(_ordered(items, times, weights)), "session"
            else:
                scores = np.asarray(scores, dtype=np.float32)
        elif session is not None and len(session):
            scores, source = self._session_scores(session), "session"
        elif u is not None and u < len(self.data.user_segment) and self.data.user_segment[u] >= 0:
            seg = self.data.segment_popularity[self.data.user_segment[u]]
            scores, source = seg + 1e-6 * _unit(self.popularity), "segment"
        else:
            scores, source = self.popularity, "popular"
        out = (ids, np.asarray(scores, dtype=np.float32), source, n_new)
        if key is not None and self._cache_entries:
            self.cache[key] = out
            if len(self.cache) > self._cache_entries:
                self.cache.popitem(last=False)
        return (*out, False)

    def _retrieve(self, u: int, own: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        """Index candidates for a known user, with the user's own items, scored by the model."""
        q = self.user_vectors[u]
        ids, _ = self.index.search(q[None, :], fetch, ef=max(self.index.ef_search, fetch))
        ids = ids[0][ids[0] >= 0]
        cand = np.union1d(ids, own)
        return cand, self.index.vectors[cand] @ q

    def _exact(self, u: int, allowed: np.ndarray) -> np.ndarray:
        return self.index.vectors[allowed] @ self.user_vectors[u]

    def _history_signal(self, items, times, weights) -> np.ndarray:
        """The new events' own signal: each item (decayed by age) plus half its partners'."""
        s = np.zeros(len(self.popularity), dtype=np.float64)
        pos = weights > 0
        if not pos.any():
            return s
        age_days = (times[pos].max() - times[pos]) / 86_400e9
        x = np.bincount(items[pos], weights=weights[pos] * np.exp2(-age_days / 30.0), minlength=len(s))
        s += x / max(x.max(), 1e-12)
        s += 0.5 * _unit(self.co_norm.T @ x + self.after_norm.T @ x)
        return s

    def _session_scores(self, items: np.ndarray) -> np.ndarray:
        """Item-to-item scores for an ordered list of items (latest last)."""
        if self.session_model is not None:
            return np.asarray(self.session_model._score(items), dtype=np.float32)
        n = len(self.popularity)
        w = 0.8 ** np.arange(len(items))[::-1]
        x = np.bincount(items, weights=w, minlength=n)
        s = self.co_norm.T @ x + self.after_norm.T @ x
        if not s.any():
            try:
                sim = np.asarray(self.model._similar(np.asarray(items)), dtype=np.float64)
                s = np.clip(sim, 0, None).T @ w
            except NotImplementedError:
                pass
        return (_unit(s) + 1e-3 * _unit(self.popularity)).astype(np.float32)

    # ------------------------------------------------------------------ ranking
    def _mask(self, opts: Options, purchased: np.ndarray | None) -> np.ndarray | None:
        mask = self.catalogue.mask(opts.filters)
        if purchased is not None and len(purchased):
            mask = np.ones(len(self.popularity), bool) if mask is None else mask.copy()
            mask[purchased] = False
        return mask

    def _rank(self, ids, scores, mask, opts: Options, u: int | None = None):
        pool = opts.k * 5 if opts.diversity else opts.k
        if ids is not None:
            keep = np.isfinite(scores) if mask is None else (mask[ids] & np.isfinite(scores))
            if keep.sum() < pool and u is not None and (self.index is not None or self.top is not None):
                # a selective filter (or a large k): score every allowed item exactly
                ids = np.arange(len(self.popularity)) if mask is None else np.flatnonzero(mask)
                if self.index is not None:
                    scores = self._exact(u, ids)
                else:
                    scores = np.asarray(self.model._score(np.array([u], dtype=np.int64))[0], np.float32)[ids]
                    self.counters["precomputed_miss"] += 1
                keep = np.isfinite(scores)
            ids, scores = ids[keep], scores[keep]
            order = np.lexsort((ids, -scores))[:pool]
            top_ids, top_sc = ids[order], scores[order]
        elif mask is not None and (allowed := self.catalogue.allowed(mask)) is not None:
            sub = scores[allowed]  # a filter: rank only the allowed items (ids ascending)
            pos, top_sc = top_k(sub[None, :], min(pool, len(sub)))
            ok = (pos[0] >= 0) & np.isfinite(top_sc[0])
            top_ids, top_sc = allowed[pos[0][ok]], top_sc[0][ok]
        else:
            s = scores if mask is None else np.where(mask, scores, -np.inf).astype(np.float32)
            top_ids, top_sc = top_k(s[None, :], min(pool, len(s)))
            ok = (top_ids[0] >= 0) & np.isfinite(top_sc[0])
            top_ids, top_sc = top_ids[0][ok], top_sc[0][ok]
        if opts.diversity:
            lam = self.config.mmr_lambda if opts.mmr_lambda is None else opts.mmr_lambda
            vec = self.index.vectors if self.index is not None else None
            pos = mmr(top_ids, top_sc, opts.k, lam, self.catalogue, vec, opts.max_per_category)
        elif opts.max_per_category is not None:
            pos = cap_per_category(top_ids, opts.k, self.catalogue, opts.max_per_category)
        else:
            pos = np.arange(min(opts.k, len(top_ids)))
        return top_ids[pos], top_sc[pos]

    def _rank_with_discovery(self, ids, scores, mask, opts: Options, u: int | None, source: str,
                             history: tuple[np.ndarray, np.ndarray] | None = None):
        """:meth:`_rank`, then the discovery places (:mod:`hoprec.models.discovery`) of a
        personalised answer filled with the best-ranked products ``u`` never bought (live
        events included); ``history``: ``u``'s ``(items, weights)`` where the caller has read
        them already."""
        rank_u = u if source == "model" else None  # exact re-scoring needs the model's own scores
        top, sc = self._rank(ids, scores, mask, opts, rank_u)
        wanted = opts.discovery_positions
        if wanted is None:
            wanted = getattr(self.model.config, "discovery_positions", ())
        places = places_within(wanted, opts.k)
        if not places or u is None or source not in ("model", "model+events"):
            return top, sc
        if history is None:
            items, _, weights, _ = self.history(u)
        else:
            items, weights = history
        owned = np.unique(items[weights > 0])
        if len(owned) == 0:
            return top, sc
        fresh = np.ones(len(self.popularity), bool) if mask is None else mask.copy()
        fresh[owned] = False
        new_top, new_sc = self._rank(ids, scores, fresh, opts, rank_u)
        out, out_sc = interleave(top, sc, new_top, new_sc, places, opts.k)
        ok = out >= 0
        return out[ok], out_sc[ok]

    def _peers(self, u: int | None, n: int = 20):
        """The ``n`` known customers nearest to ``u`` by the model's user vectors (cosine), and the
        customers x items matrix of who bought what, for the similar-customers reason."""
        if self.user_vectors is None or u is None or not 0 <= u < len(self.user_vectors):
            return None, None
        if not hasattr(self, "_unit_users"):
            v = self.user_vectors.astype(np.float32)
            self._unit_users = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            d = self.data
            rows = np.repeat(np.arange(d.n_users), np.diff(d.hist_indptr))
            pos = d.hist_weight > 0
            self._bought = sp.csr_matrix((np.ones(int(pos.sum()), np.float32), (rows[pos], d.hist_item[pos])),
                                         shape=(d.n_users, d.n_items)).tocsc()
        sim = self._unit_users @ self._unit_users[u]
        sim[u] = -np.inf
        sim[~self.model.has_history[: len(sim)]] = -np.inf
        k = min(n, int(np.isfinite(sim).sum()))
        if k == 0:
            return None, None
        return np.argpartition(-sim, k - 1)[:k], self._bought

    def _answer(self, ids, scores, source, opts, hist, known, n_new=0, cached=False, message=None,
                verb="bought", user=None) -> Answer:
        reasons = None
        if opts.explain:
            seg = None
            if source == "segment" and hist is not None:
                seg = hist[1]
            summary = hist[0] if hist is not None else HistorySummary.of(*(np.zeros(0, t) for t in (np.int64, np.int64, np.float32)))
            peers, bought = self._peers(user) if known else (None, None)
            reasons = explain(ids, summary, self.co_norm_csc, self.after_norm_csc, self.catalogue,
                              source, seg, verb=verb, neighbours=peers, user_items=bought)
            for per_item in reasons:  # external ids only at the edge
                for r in per_item:
                    if r.get("via_item") is not None:
                        r["via_item"] = self.item_ext[r["via_item"]].item()
        self.counters[f"source_{source}"] += 1
        return Answer(self.item_ext[ids].tolist(), [round(float(s), 6) for s in scores], source,
                      known, reasons, message, n_new, cached, ids)

    # ------------------------------------------------------------------ public
    def recommend(self, user_id: Any, opts: Options, item_ids: list[Any] | None = None,
                  exclude: np.ndarray | None = None) -> Answer:
        """Top ``opts.k`` for one external user id (unknown users get the cold-start chain)."""
        u, known = self.user_internal(user_id)
        session = None
        if item_ids:
            session, _ = self.item_internal(item_ids)
        items, times, weights, n_new = self.history(u)
        excl = self.data.exclude_purchased if opts.exclude_purchased is None else opts.exclude_purchased
        purchased = np.unique(items[weights > 0]) if excl else None
        if exclude is not None:
            purchased = exclude if purchased is None else np.union1d(purchased, exclude)
        mask = self._mask(opts, purchased)
        allowed = self.catalogue.allowed(mask) if mask is not None else None
        if (self.index is not None and allowed is not None and known and n_new == 0 and session is None
                and self.model._can_score(np.array([u], dtype=np.int64))[0]):
            # a selective filter: score the allowed items exactly instead of searching the index
            ids, scores, source, cached = allowed, self._exact(u, allowed), "model", False
            self.counters["exact_filtered"] += 1
        else:
            ids, scores, source, n_new, cached = self._scores(u, known, session, opts.k)
        top, sc = self._rank_with_discovery(ids, scores, mask, opts, u if known else None, source,
                                            (items, weights))
        message = None
        if not known:
            message = (f"user {user_id!r} is not in the model (trained as of "
                       f"{self.data.as_of.date()}): cold start, served by {source}")
        hist = None
        if opts.explain:
            seg = None
            if u is not None and u < len(self.data.user_segment) and self.data.user_segment[u] >= 0:
                seg = f"{self.data.segment_column} = {self.data.segment_values[self.data.user_segment[u]]}"
            hist = (HistorySummary.of(items, times, weights), seg)
        return self._answer(top, sc, source, opts, hist, known, n_new, cached, message, user=u)

    def recommend_batch(self, user_ids: list[Any], opts: Options) -> list[Answer]:
        return [self.recommend(x, opts) for x in user_ids]

    def recommend_session(self, item_ids: list[Any], opts: Options) -> Answer:
        """Top ``opts.k`` for an anonymous shopper who has just touched ``item_ids``."""
        items, unknown = self.item_internal(item_ids)
        if len(items):
            scores, source = self._session_scores(items), "session"
        else:
            scores, source = self.popularity, "popular"
        mask = self._mask(opts, np.unique(items) if len(items) else None)
        top, sc = self._rank(None, scores, mask, opts)
        msg = f"unknown items ignored: {unknown[:10]}" if unknown else None
        hist = None
        if opts.explain:
            t = np.arange(len(items), dtype=np.int64)
            hist = (HistorySummary.of(items, t, np.ones(len(items), np.float32)), None)
        return self._answer(top, sc, source, opts, hist, True, message=msg, verb="looked at")

    def similar(self, item_id: Any, kind: str, opts: Options) -> Answer:
        """Items like ``item_id`` (``similar``: the model's item-item scores or embeddings) or
        bought after it (``complementary``: the directed bought-after edges)."""
        found, _ = self.item_internal([item_id])
        if not len(found):
            raise KeyError(f"unknown item {item_id!r}")
        i = int(found[0])
        scores, source = None, kind
        if kind == "complementary":
            for m, src in ((self.data.after, "bought_after"), (self.data.co, "co_purchase")):
                row = m[i].toarray().ravel()
                if row.any():
                    scores, source = row, src
                    break
        else:
            try:
                scores, source = np.asarray(self.model._similar(np.array([i]))[0], np.float64), "model"
            except NotImplementedError:
                row = self.data.co[i].toarray().ravel()
                if row.any():
                    scores, source = row, "co_purchase"
        if scores is None:
            scores, source = self.popularity.astype(np.float64), "popular"
        scores = np.where(np.isfinite(scores), scores, -np.inf).astype(np.float32)
        mask = self._mask(opts, np.array([i]))
        top, sc = self._rank(None, scores, mask, opts)
        return self._answer(top, sc, source, opts, None, True)

    def recommend_internal(self, users: np.ndarray, k: int, exclude=None,
                           batch_size: int = 256) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Batch export on internal ids (``hoprec predict``): ``(items (n, k) -1 padded, scores,
        sources)``; ``exclude`` is a users x items matrix (rows past it exclude nothing)."""
        users = np.asarray(users, dtype=np.int64)
        n = len(users)
        out_i = np.full((n, k), -1, np.int64)
        out_s = np.full((n, k), -np.inf, np.float32)
        sources = []
        opts = Options(k=k, exclude_purchased=False)
        n_known = len(self.users)
        for start in range(0, n, batch_size):
            chunk = users[start : start + batch_size]
            # users the model scores densely, as they are: one batched call (hybrid, repeat, ...)
            dense = (chunk < n_known) & self.model._can_score(chunk.copy())
            dense &= np.array([u not in self.extra for u in chunk.tolist()], dtype=bool)
            if self.index is not None:
                dense[:] = False
            block = self.model._score(chunk[dense]) if dense.any() else None
            j = 0
            for off, u in enumerate(chunk.tolist()):
                known = 0 <= u < n_known
                ex = None
                if exclude is not None and known and u < exclude.shape[0]:
                    ex = exclude[u].indices.astype(np.int64)
                if dense[off]:
                    ids, scores, source = None, np.asarray(block[j], np.float32), "model"
                    j += 1
                else:
                    ids, scores, source, _, _ = self._scores(u if known else None, known, None, k)
                top, sc = self._rank_with_discovery(ids, scores, self._mask(opts, ex), opts,
                                                    u if known else None, source)
                out_i[start + off, : len(top)], out_s[start + off, : len(top)] = top, sc
                sources.append(source)
        return out_i, out_s, sources

    def describe(self) -> dict:
        return {
            "model": self.model.name, "model_version": self.model_version,
            "as_of": str(self.data.as_of), "n_users": len(self.users), "n_items": len(self.items),
            "index": None if self.index is None else self.index.kind,
            "serving_data": not self.data.info.get("empty", False),
            "exclude_purchased_default": self.data.exclude_purchased,
            "columns": self.catalogue.columns,
        }


def _row_norm(m):
    import scipy.sparse as sp

    m = sp.csr_matrix(m, dtype=np.float64)
    if m.nnz == 0:
        return m
    peak = m.max(axis=1).toarray().ravel()
    return sp.diags(1.0 / np.maximum(peak, 1e-12)) @ m


def _unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros_like(x)
    lo, hi = x[finite].min(), x[finite].max()
    out = (x - lo) / (hi - lo) if hi > lo else np.where(finite, 1.0, 0.0) * (hi > 0)
    return np.where(finite, out, 0.0)


def _ordered(items, times, weights) -> np.ndarray:
    pos = weights > 0
    order = np.argsort(times[pos], kind="stable")
    return items[pos][order][-50:]


def _load_session_model(path: Path):
    """A session model saved under ``MODEL_DIR/session`` (issue 4), if any."""
    folder = path / "session"
    if not (folder / "config.json").is_file():
        return None
    from hoprec.models.session.base import SessionRecommender

    return SessionRecommender.load(folder)


def model_version(path: str | Path) -> str:
    m = json.loads((Path(path) / "manifest.json").read_text())
    return f"{m['model']['model']}@{m.get('created')}"
