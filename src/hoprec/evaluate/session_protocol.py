"""The session protocol: every prefix of every test session against its next item.

1. Split by time (:func:`hoprec.graph.sessions.time_split`): training sessions end before the test
   cutoff (minus the gap), test sessions start at or after it; straddling sessions are dropped and
   counted.  Training sessions pass the length and item-frequency filters (reported); test
   sessions keep every event, so items unseen in training stay in the test as misses.
2. Validation is carved from the end of training the same way (the last ``test_days``), and is
   the only data used to choose a model's setting (MRR@K) or its epochs.
3. The chosen setting is refitted on all training sessions and scored on test: HR@K (one target,
   so HR = Recall), MRR@K and NDCG@K at K = 10 and 20 (and the query's K); slices for targets
   that already occurred earlier in the session and those that did not; counts of test targets
   and prefix items unseen in training, of prefixes served by the popular fallback.
4. Recommending on test is one ``recommend_session`` call per prefix, timed: the latency figures
   are medians over all test prefixes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hoprec.data.database import Database
from hoprec.graph.sessions import Sessions, filter_sessions, prefixes, time_split
from hoprec.models.session import SessionData, SessionRecommender, get_session_model_class
from hoprec.task.session import SessionTask
from hoprec.task.task import TaskError

CUTS = (10, 20)


@dataclass
class SessionSplits:
    """Training, validation and test sessions in internal item ids, with what was dropped."""

    val_train: Sessions
    val: Sessions
    train: Sessions
    test: Sessions
    n_items: int
    item_attributes: np.ndarray | None
    attribute_names: tuple[str, ...]
    cutoffs: dict[str, str]
    stats: dict[str, Any]


def make_splits(
    sessions: Sessions, n_items: int, test_cutoff: pd.Timestamp, *, val_days: float = 1.0,
    gap: pd.Timedelta | None = None, min_length: int = 2, min_item_count: int = 1,
    item_attributes: np.ndarray | None = None, attribute_names: tuple[str, ...] = (),
) -> SessionSplits:
    """Test split at ``test_cutoff``, validation the last ``val_days`` of training."""
    gap = pd.Timedelta(0) if gap is None else pd.Timedelta(gap)
    train, test, rep = time_split(sessions, test_cutoff, gap)
    train, frep = filter_sessions(train, n_items, min_length, min_item_count)
    if len(train) == 0 or len(test) == 0:
        raise TaskError(f"the session split at {test_cutoff} leaves {len(train)} training and "
                        f"{len(test)} test sessions; both need some")
    val_cut = pd.Timestamp(train.ends.max()) - pd.Timedelta(days=val_days)
    val_train, val, vrep = time_split(train, val_cut, gap)
    val_train, vfrep = filter_sessions(val_train, n_items, min_length, min_item_count)
    short_test = test.lengths < 2
    test = test.select(~short_test)
    val = val.select(val.lengths >= 2)
    if len(val_train) == 0 or len(val) == 0:
        raise TaskError(f"the validation split at {val_cut} leaves {len(val_train)} training and "
                        f"{len(val)} validation sessions; use a longer history or a shorter test_days")
    known = train.item_counts(n_items) > 0
    known_val = val_train.item_counts(n_items) > 0
    tp, vp = prefixes(test), prefixes(val)
    stats = {
        "test_split": rep.describe(), "validation_split": vrep.describe(),
        "train_filter": frep.describe(), "validation_train_filter": vfrep.describe(),
        "train_sessions": len(train), "train_events": train.n_events,
        "train_items": int(known.sum()),
        "test_sessions": len(test), "test_prefixes": len(tp),
        "test_sessions_too_short": int(short_test.sum()),
        "test_targets_unseen_in_training": int((~known[tp.target]).sum()),
        "test_events_unseen_in_training": int((~known[test.items]).sum()),
        "validation_sessions": len(val), "validation_prefixes": len(vp),
        "validation_targets_unseen": int((~known_val[vp.target]).sum()),
    }
    cutoffs = {"test": str(pd.Timestamp(test_cutoff)), "validation": str(val_cut), "gap": str(gap)}
    return SessionSplits(val_train, val, train, test, n_items, item_attributes, attribute_names,
                         cutoffs, stats)


def task_splits(task: SessionTask, db: Database) -> SessionSplits:
    """The protocol's splits for a bound session query."""
    sessions, items = task.sessions(db)
    attrs, names = task.item_attributes(db, items)
    st = task.settings
    return make_splits(
        sessions, len(items), task.test_cutoff(db), val_days=st.test_days,
        gap=pd.Timedelta(minutes=st.split_gap_minutes), min_length=st.min_length,
        min_item_count=st.min_item_count, item_attributes=attrs, attribute_names=names,
    )


@dataclass
class SessionModelResult:
    model: str
    params: dict[str, Any]
    metrics: dict[str, float]
    slices: dict[str, dict[str, float]]
    validation: list[dict[str, Any]] = field(default_factory=list)
    fit_seconds: float = 0.0
    fit_cpu_seconds: float = 0.0  # process CPU time of the final fit (all threads)
    latency_ms: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    training_log: list[dict[str, float]] = field(default_factory=list)


def _ranks(recs: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1-based rank of each target in its list, 0 when absent."""
    hit = recs == target[:, None]
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0)


def rank_metrics(ranks: np.ndarray, cuts=CUTS) -> dict[str, float]:
    """HR@K, MRR@K, NDCG@K from 1-based ranks (0 = not in the list); ``n`` = prefixes."""
    out: dict[str, float] = {"n": int(len(ranks))}
    r = ranks.astype(np.float64)
    for k in cuts:
        inside = (ranks > 0) & (ranks <= k)
        out[f"hr@{k}"] = float(inside.mean()) if len(r) else float("nan")
        out[f"mrr@{k}"] = float(np.where(inside, 1.0 / np.maximum(r, 1), 0).mean()) if len(r) else float("nan")
        out[f"ndcg@{k}"] = float(np.where(inside, 1.0 / np.log2(np.maximum(r, 1) + 1), 0).mean()) if len(r) else float("nan")
    return out


def _prefix_lists(s: Sessions):
    p = prefixes(s)
    return p, [s.items[a:b] for a, b in zip(p.start, p.stop)]


def score_sessions(model: SessionRecommender, s: Sessions, k: int, timed: bool = False):
    """Ranks of every prefix's next item, the recommendations' sources and (if ``timed``)
    the seconds of each single-session call."""
    p, seqs = _prefix_lists(s)
    if timed:
        recs, secs = [], np.empty(len(seqs))
        for i, x in enumerate(seqs):
            t0 = time.perf_counter()
            recs.append(model.recommend_session(x, k))
            secs[i] = time.perf_counter() - t0
    else:
        recs, secs = model.recommend_sessions(seqs, k), np.zeros(0)
    items = np.stack([r.items for r in recs]) if recs else np.zeros((0, k), np.int64)
    ranks = _ranks(items, p.target)
    popular = np.array([r.source == "popular" for r in recs], dtype=bool)
    unknown_in_prefix = np.array([len(r.unknown) for r in recs], dtype=np.int64)
    return p, ranks, popular, unknown_in_prefix, secs


def _data(splits: SessionSplits, train: Sessions, validation: Sessions | None, cache: dict) -> SessionData:
    return SessionData(train, splits.n_items, splits.item_attributes, splits.attribute_names,
                       validation, cache)


def tune_and_test(
    name: str, splits: SessionSplits, k: int, caches: tuple[dict, dict],
    grid: list[dict[str, Any]] | None = None, progress: Callable[[str], None] | None = None,
) -> SessionModelResult:
    """Choose ``name``'s setting on validation (MRR@k), refit on training, score test."""
    cls = get_session_model_class(name)
    grid = grid if grid is not None else cls.param_grid
    val_cache, test_cache = caches
    tried, best_model, best_score = [], None, -1.0
    for params in grid:
        if progress:
            progress(f"{name} {params or ''} (validation)")
        t0 = time.perf_counter()
        model = cls(**params).fit(_data(splits, splits.val_train, splits.val, val_cache))
        _, ranks, *_ = score_sessions(model, splits.val, k)
        score = rank_metrics(ranks, (k,))[f"mrr@{k}"]
        chosen = {**params, **model.chosen_params()}
        tried.append({"params": chosen, f"mrr@{k}": score, "seconds": time.perf_counter() - t0})
        if score > best_score:
            best_model, best_score, best = model, score, chosen
    val_cache[name] = best_model
    return fit_and_test(name, best, splits, k, test_cache, tried, progress)


def fit_and_test(
    name: str, params: dict[str, Any], splits: SessionSplits, k: int, test_cache: dict,
    tried: list[dict[str, Any]] | None = None, progress: Callable[[str], None] | None = None,
) -> SessionModelResult:
    """Fit ``name`` with ``params`` (chosen on validation) on all training sessions, score test."""
    cls = get_session_model_class(name)
    best = params
    if progress:
        progress(f"{name} {best or ''} (test)")
    t0, c0 = time.perf_counter(), time.process_time()
    model = cls(**best).fit(_data(splits, splits.train, None, test_cache))
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    test_cache[name] = model
    p, ranks, popular, unknown_prefix, secs = score_sessions(model, splits.test, k, timed=True)
    cuts = tuple(sorted({*CUTS, k}))
    known = splits.train.item_counts(splits.n_items) > 0
    slices = {
        "target seen earlier in session": rank_metrics(ranks[p.target_seen], cuts),
        "target new to session": rank_metrics(ranks[~p.target_seen], cuts),
    }
    counts = {"prefixes": len(p), "targets_unseen_in_training": int((~known[p.target]).sum()),
              "prefixes_with_unknown_items": int((unknown_prefix > 0).sum()),
              "popular_fallback": int(popular.sum())}
    ms = secs * 1000
    latency = {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)),
               "calls": len(ms)} if len(ms) else {}
    log = model.training_log() if hasattr(model, "training_log") else []
    return SessionModelResult(name, best, rank_metrics(ranks, cuts), slices, tried or [], fit_s,
                              fit_cpu, latency, counts, log)


@dataclass
class SessionEvaluationResult:
    query: str
    schema: str
    schema_digest: str
    k: int
    cutoffs: dict[str, str]
    split_stats: dict[str, Any]
    results: list[SessionModelResult]
    kind: str = "session"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _order(models: list[str]) -> list[str]:
    """Blends after their parts (they reuse the parts' fits)."""
    return sorted(models, key=lambda m: m == "sgnn_vsknn")


def evaluate_sessions(
    task: SessionTask, db: Database | None, models: list[str], k: int | None = None,
    progress: Callable[[str], None] | None = None, splits: SessionSplits | None = None,
    grids: dict[str, list[dict[str, Any]]] | None = None,
) -> SessionEvaluationResult:
    """Run the session protocol for every model in ``models`` on one shared split."""
    k = k or task.k
    for name in models:
        get_session_model_class(name)  # fail early on unknown names
    if splits is None:
        if progress:
            progress("building sessions and splits")
        splits = task_splits(task, db)
    caches: tuple[dict, dict] = ({}, {})
    results = [tune_and_test(n, splits, k, caches, (grids or {}).get(n), progress) for n in _order(models)]
    return SessionEvaluationResult(
        query=str(task.query), schema=task.schema.name, schema_digest=task.schema.digest(), k=k,
        cutoffs=splits.cutoffs, split_stats=splits.stats, results=results,
    )
