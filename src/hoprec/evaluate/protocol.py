"""The evaluation protocol: the same leak-free temporal split for every model.

For a task and a database:

1. cutoffs: test = the last full window (ending at the data's end), validation = the window
   before it (:meth:`hoprec.task.task.Task.cutoffs`);
2. at each cutoff the model sees only a snapshot of rows strictly before it;
3. scored entities: pass the WHERE clause, have at least one positive event before the cutoff and
   at least one label in the window; entities with labels but no history are scored apart
   ("cold"), as are truth items unknown at the cutoff (they count as misses, never dropped);
4. each model's small grid is tried on validation (MAP@K), the best setting is refitted on the
   test snapshot, and only test figures are reported (a model with a single setting is fitted
   once, on the test snapshot: there is nothing to choose).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hoprec.data.database import Database
from hoprec.data.dataset import Dataset
from hoprec.evaluate import metrics as M
from hoprec.models.base import Recommender
from hoprec.models.registry import get_model_class
from hoprec.task.task import Task, TaskError

#: metric@K curves (kept per model for reports) run over K = 1..max(CURVE_K, task K)
CURVE_K = 50


@dataclass
class Split:
    """Everything needed to score models at one cutoff, in internal ids."""

    name: str
    cutoff: pd.Timestamp
    dataset: Dataset
    users: np.ndarray  # scored entities (with history)
    truth_indptr: np.ndarray
    truth_indices: np.ndarray  # ids >= n_items: truth items unknown at the cutoff
    cold_users: np.ndarray  # entities with labels but no history (ids >= n_users: unknown)
    cold_indptr: np.ndarray
    cold_indices: np.ndarray
    history_counts: np.ndarray  # past positive events per scored entity
    n_unknown_truth_items: int
    n_eligible: int

    @property
    def n_items(self) -> int:
        return self.dataset.n_items


def _csr_truth(users: np.ndarray, pairs_user: np.ndarray, pairs_item: np.ndarray):
    order = np.lexsort((pairs_item, pairs_user))
    pu, pi = pairs_user[order], pairs_item[order]
    pos = np.searchsorted(users, pu)
    counts = np.bincount(pos, minlength=len(users))
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, pi.astype(np.int64)


def make_split(task: Task, db: Database, cutoff: pd.Timestamp, name: str) -> Split:
    """Build the dataset (snapshot before ``cutoff``) and the labels of the window after it."""
    snap = db.snapshot(cutoff)
    dataset = task.build_dataset(snap)
    labels = task.labels(db, cutoff)
    if labels.empty:
        lo, hi = cutoff + task.window[0], cutoff + task.window[1]
        raise TaskError(
            f"the {name} window [{lo}, {hi}) has no labels: no {task.target_table} rows fall in it"
        )
    eligible = task.eligible_entities(snap, cutoff)
    if task.query.where is not None:  # unknown entities cannot be judged by the WHERE clause
        labels = labels[labels["entity"].isin(eligible)]
    n_items = dataset.n_items
    item_ids = dataset.items.to_internal(labels["item"].to_numpy(), missing=-1)
    unknown = item_ids < 0
    if unknown.any():  # items never seen before the cutoff: give them ids past the catalogue
        codes, _ = pd.factorize(labels.loc[unknown, "item"])
        item_ids[unknown] = n_items + codes
    user_ids = dataset.users.to_internal(labels["entity"].to_numpy(), missing=-1)
    if (user_ids < 0).any():
        codes, _ = pd.factorize(labels["entity"].to_numpy()[user_ids < 0])
        user_ids[user_ids < 0] = dataset.n_users + codes
    inter = dataset.interactions
    counts = np.bincount(inter.user[inter.positive()], minlength=dataset.n_users)
    has_hist = np.zeros(user_ids.max() + 1, dtype=bool)
    known = user_ids < dataset.n_users
    has_hist[user_ids[known]] = counts[user_ids[known]] > 0
    warm_rows = has_hist[user_ids]
    users = np.unique(user_ids[warm_rows])
    indptr, indices = _csr_truth(users, user_ids[warm_rows], item_ids[warm_rows])
    cold = np.unique(user_ids[~warm_rows])
    cptr, cind = _csr_truth(cold, user_ids[~warm_rows], item_ids[~warm_rows])
    return Split(
        name=name, cutoff=pd.Timestamp(cutoff), dataset=dataset, users=users,
        truth_indptr=indptr, truth_indices=indices, cold_users=cold, cold_indptr=cptr,
        cold_indices=cind, history_counts=counts[users],
        n_unknown_truth_items=int(pd.Series(item_ids[item_ids >= n_items]).nunique()),
        n_eligible=len(eligible),
    )


def _subset_truth(indptr, indices, keep: np.ndarray):
    """CSR truth restricted to entries where ``keep`` (aligned with ``indices``) holds."""
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    counts = np.bincount(rows[keep], minlength=len(indptr) - 1)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), indices[keep]


@dataclass
class ModelResult:
    model: str
    params: dict[str, Any]
    metrics: dict[str, float]
    slices: dict[str, dict[str, float]]
    validation: list[dict[str, Any]] = field(default_factory=list)
    fit_seconds: float = 0.0
    recommend_seconds: float = 0.0
    training_log: list[dict[str, float]] = field(default_factory=list)
    #: per-entity test values, metric@K curves and popularity deciles (see :func:`score_split`);
    #: not in results.json: ``report.write_results`` keeps them in per_entity.npz beside it
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def exclusion(task: Task, dataset: Dataset) -> sp.csr_matrix | None:
    """What serving masks, evaluation masks: past purchases when the schema says so."""
    return dataset.positive_matrix() if task.schema.recommend.exclude_purchased else None


def item_popularity(dataset: Dataset) -> np.ndarray:
    """Share of customers with history who bought each item before the cutoff."""
    buyers = dataset.positive_matrix()
    buyers.data[:] = 1.0
    return np.asarray(buyers.sum(axis=0)).ravel() / max(1, int((buyers.getnnz(axis=1) > 0).sum()))


def truth_popularity_deciles(split: Split) -> tuple[np.ndarray, float]:
    """The data's own popularity profile: the share of the window's (entity, item) truth pairs in
    each item-popularity decile (items known at the cutoff), and the share of unknown items."""
    truth = split.truth_indices
    known = truth[truth < split.n_items]
    deciles = M.popularity_deciles(known[:, None], 1, item_popularity(split.dataset))
    return deciles, float(1.0 - len(known) / max(1, len(truth)))


def _curves(recs: np.ndarray, split: Split) -> dict[str, np.ndarray]:
    """Mean ranking metrics and catalogue coverage at every K = 1..recs.shape[1]."""
    kmax = recs.shape[1]
    out = {name: np.empty(kmax) for name in (*M.RANKING_METRICS, "coverage")}
    for kk in range(1, kmax + 1):
        means = M.mean_metrics(M.ranking_metrics(recs, split.truth_indptr, split.truth_indices, kk))
        for name in M.RANKING_METRICS:
            out[name][kk - 1] = means[name]
        out["coverage"][kk - 1] = M.catalogue_coverage(recs, kk, split.n_items)
    return {f"curve/{name}": v for name, v in out.items()}


def score_split(task: Task, model: Recommender, split: Split, k: int) -> tuple[dict, dict, dict]:
    """Test metrics, beyond-accuracy figures, slices and per-entity arrays for a fitted model.

    Lists are scored to ``max(k, CURVE_K)`` for the metric@K curves; every headline figure reads
    the first ``k`` (the same top-k, since lists are sorted with deterministic ties).
    """
    ds = split.dataset
    excl = exclusion(task, ds)
    long = model.recommend(split.users, min(max(k, CURVE_K), ds.n_items), exclude=excl).items
    recs = long[:, :k]
    per = M.ranking_metrics(recs, split.truth_indptr, split.truth_indices, k)
    overall = M.mean_metrics(per)
    buyers = ds.positive_matrix()
    buyers.data[:] = 1.0  # who bought what, once
    item_pop = item_popularity(ds)
    arrays = {f"test/{name}": v for name, v in per.items()}
    arrays.update(_curves(long, split))
    arrays["popularity_deciles"] = M.popularity_deciles(recs, k, item_pop)
    overall["coverage"] = M.catalogue_coverage(recs, k, ds.n_items)
    codes = task.diversity_codes(ds)
    overall["diversity"] = M.intra_list_diversity(recs, k, codes) if codes is not None else float("nan")
    overall["mean_popularity"] = M.mean_popularity(recs, k, item_pop)
    slices: dict[str, dict[str, float]] = {}
    sparse_max = task.schema.recommend.sparse_history_max
    mask = split.history_counts <= sparse_max
    name = f"sparse (<= {sparse_max} past events)"
    slices[name] = _masked_means(per, mask)
    arrays.update({f"slice/{name}/{m}": np.where(mask, per[m], np.nan) for m in ("map", "recall")})
    # repeat vs new-to-entity truth items
    rows = np.repeat(split.users, np.diff(split.truth_indptr))
    known_item = split.truth_indices < ds.n_items
    bought = np.zeros(len(rows), dtype=bool)
    bought[known_item] = np.asarray(
        buyers[rows[known_item], split.truth_indices[known_item]]
    ).ravel() > 0
    ever = np.asarray(buyers.sum(axis=0)).ravel() > 0
    seen_item = np.zeros(len(rows), dtype=bool)
    seen_item[known_item] = ever[split.truth_indices[known_item]]
    for label, keep in (
        ("repeat items", bought), ("new-to-entity items", ~bought), ("new items (first seen in window)", ~seen_item)
    ):
        ip, ii = _subset_truth(split.truth_indptr, split.truth_indices, keep)
        sub = M.ranking_metrics(recs, ip, ii, k)
        slices[label] = {"recall": float(np.nanmean(sub["recall"])) if (np.diff(ip) > 0).any() else float("nan"),
                         "hit_rate": float(np.nanmean(sub["hit_rate"])) if (np.diff(ip) > 0).any() else float("nan"),
                         "n": int((np.diff(ip) > 0).sum()), "truth_items": int(keep.sum())}
        arrays.update({f"slice/{label}/{m}": sub[m] for m in ("recall", "hit_rate")})
    if len(split.cold_users):
        crecs = model.recommend(split.cold_users, k).items
        cper = M.ranking_metrics(crecs, split.cold_indptr, split.cold_indices, k)
        slices["cold entities (labels, no history)"] = M.mean_metrics(cper)
        arrays.update({f"slice/cold entities (labels, no history)/{m}": cper[m] for m in ("map", "recall")})
    else:
        slices["cold entities (labels, no history)"] = {"n": 0}
    return overall, slices, arrays


def _masked_means(per: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, float]:
    return M.mean_metrics({key: np.where(mask, v, np.nan) for key, v in per.items()})


def tune_and_test(
    task: Task, name: str, val: Split, test: Split, k: int,
    grid: list[dict[str, Any]] | None = None, progress: Callable[[str], None] | None = None,
) -> ModelResult:
    """Pick ``name``'s setting by validation MAP@k, refit on the test snapshot, report test."""
    cls = get_model_class(name)
    grid = grid if grid is not None else cls.param_grid
    tried: list[dict[str, Any]] = []
    if len(grid) == 1:  # nothing to choose: no validation fit (it would double the cost)
        tried.append({"params": grid[0], "map": None, "seconds": 0.0, "note": "only setting, not fitted"})
        grid = []
    for params in grid:
        if progress:
            progress(f"{name} {params or ''} (validation)")
        t0 = time.perf_counter()
        model = cls(**params).fit(val.dataset, progress=_prefixed(progress, f"{name} (validation)"))
        recs = model.recommend(val.users, k, exclude=exclusion(task, val.dataset)).items
        score = M.mean_metrics(M.ranking_metrics(recs, val.truth_indptr, val.truth_indices, k))["map"]
        tried.append({"params": params, "map": score, "seconds": time.perf_counter() - t0})
    best = tried[0]["params"] if len(tried) == 1 else max(tried, key=lambda r: r["map"])["params"]
    if progress:
        progress(f"{name} {best or ''} (test)")
    t0 = time.perf_counter()
    model = cls(**best).fit(test.dataset, progress=_prefixed(progress, f"{name} (test)"))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    overall, slices, arrays = score_split(task, model, test, k)
    return ModelResult(name, best, overall, slices, tried, fit_s, time.perf_counter() - t0,
                       training_log=model.training_log(), arrays=arrays)


def _prefixed(progress: Callable[[str], None] | None, prefix: str) -> Callable[[str], None] | None:
    return None if progress is None else (lambda msg: progress(f"{prefix}: {msg}"))


@dataclass
class EvaluationResult:
    query: str
    schema: str
    schema_digest: str
    k: int
    cutoffs: dict[str, str]
    split_stats: dict[str, dict[str, Any]]
    results: list[ModelResult]
    #: split-level arrays for reports (the test window's own popularity profile); not in JSON
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the arrays, as plain JSON-ready values."""
        from dataclasses import asdict, replace

        return asdict(replace(self, arrays={}, results=[replace(r, arrays={}) for r in self.results]),
                      dict_factory=lambda kv: {k: v for k, v in kv if k != "arrays"})


def split_stats(split: Split) -> dict[str, Any]:
    return {
        "cutoff": str(split.cutoff), "scored_entities": int(len(split.users)),
        "cold_entities": int(len(split.cold_users)), "eligible_entities": split.n_eligible,
        "truth_pairs": int(len(split.truth_indices)),
        "unknown_truth_items": split.n_unknown_truth_items,
        "items_at_cutoff": split.dataset.n_items, "history_events": len(split.dataset.interactions),
    }


def evaluate(
    task: Task, db: Database, models: list[str], k: int | None = None,
    progress: Callable[[str], None] | None = None,
    grids: dict[str, list[dict[str, Any]]] | None = None,
) -> EvaluationResult:
    """Run the protocol for every model in ``models`` on one shared split."""
    k = k or task.k
    for name in models:
        get_model_class(name)  # fail early on unknown names
    cut = task.cutoffs(db)
    if progress:
        progress("building validation and test splits")
    val = make_split(task, db, cut["val"], "validation")
    test = make_split(task, db, cut["test"], "test")
    results = [
        tune_and_test(task, name, val, test, k, (grids or {}).get(name), progress) for name in models
    ]
    deciles, unseen = truth_popularity_deciles(test)
    return EvaluationResult(
        query=str(task.query), schema=task.schema.name, schema_digest=task.schema.digest(), k=k,
        cutoffs={"validation": str(cut["val"]), "test": str(cut["test"]),
                 "window": str(task.window[1] - task.window[0])},
        split_stats={"validation": split_stats(val), "test": split_stats(test)},
        results=results,
        arrays={"data/truth_popularity_deciles": deciles, "data/truth_unknown_share": np.array(unseen)},
    )
