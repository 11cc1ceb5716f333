"""Does the hybrid's ranker want more capacity? Refit only the booster, on the same features.

Run:  python benchmarks/sweep_booster.py cj      (or: or)
Fits the default hybrid once on the validation snapshot, keeps its training matrix and the
validation candidates' features, then trains the LightGBM ranker again under other settings
(trees, learning rate, leaves, bagging, lambdarank, per-customer weights) and prints validation
MAP@12 for each at several tree counts. Only the booster changes, so each row costs seconds
instead of a full fit. Appends to benchmarks/results/sweep_booster.jsonl. Validation figures:
for choosing defaults, never headline ones.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np

from hoprec.data.database import load_database
from hoprec.data.schema import load_schema
from hoprec.evaluate import metrics as M
from hoprec.evaluate.protocol import make_split
from hoprec.models.hybrid import _positions
from hoprec.models.pair_features import _rank_within_user
from hoprec.models.registry import create_model
from hoprec.task.task import Task

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_validation import DATASETS  # noqa: E402

SETTINGS: list[tuple[str, dict, int]] = [  # (label, LightGBM params over the default, trees)
    ("default (300 trees, lr 0.05, 63 leaves)", {}, 300),
    ("lr 0.02, up to 1200 trees", {"learning_rate": 0.02}, 1200),
    ("127 leaves, 200 per leaf, up to 800 trees", {"num_leaves": 127, "min_data_in_leaf": 200}, 800),
    ("15 leaves, up to 500 trees", {"num_leaves": 15}, 500),
    ("bagging 0.7 rows / 0.7 features", {"feature_fraction": 0.7, "bagging_fraction": 0.7, "bagging_freq": 1}, 500),
    ("lambdarank (truncation 20)", {"objective": "lambdarank", "lambdarank_truncation_level": 20}, 300),
    ("rows weighted 1/sqrt(customer's positives)", {"_weight": "sqrt"}, 300),
]


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in DATASETS:
        raise SystemExit(__doc__)
    schema_path, query = DATASETS[sys.argv[1]]
    schema = load_schema(ROOT / schema_path)
    task = Task.from_query(schema, query)
    db = load_database(schema)
    split = make_split(task, db, task.cutoffs(db)["val"], "validation")
    kept: dict = {}
    real_train = lgb.train

    def keep_train(params, data, num_boost_round):  # the hybrid's own training matrix
        kept.update(params=params, X=data.data, y=data.label, group=data.group)
        return real_train(params, data, num_boost_round=num_boost_round)

    lgb.train = keep_train
    try:
        # the setting `hoprec evaluate` chooses on validation (BENCHMARKS: event columns)
        chosen = {"event_columns": False} if sys.argv[1] == "cj" else {}
        model = create_model("hybrid", num_threads=2, **chosen).fit(split.dataset)
    finally:
        lgb.train = real_train
    u, i = model._candidates(model.hist, split.users, model.emb, model.path_mats)
    vx = model._features(model.hist, u, i, model.emb, model.path_mats, model.ev_now)
    row = _positions(split.users, u)

    def val_map(scores: np.ndarray) -> float:
        rank = _rank_within_user(u, scores)  # 1 = the customer's best-scored candidate
        top = rank <= 12
        recs = np.full((len(split.users), 12), -1, dtype=np.int64)
        recs[row[top], rank[top].astype(np.int64) - 1] = i[top]
        return float(np.nanmean(M.ranking_metrics(recs, split.truth_indptr, split.truth_indices, 12)["map"]))

    group = np.asarray(kept["group"], dtype=np.int64)
    gid = np.repeat(np.arange(len(group)), group)
    positives = np.bincount(gid, weights=kept["y"])
    out = ROOT / "benchmarks" / "results" / "sweep_booster.jsonl"
    stamp = {"dataset": sys.argv[1], "date": time.strftime("%Y-%m-%d"),
             "machine": f"{platform.node()} ({__import__('os').cpu_count()} cores)"}
    with out.open("a") as f:
        for label, over, trees in SETTINGS:
            over = dict(over)
            weight = over.pop("_weight", None)
            params = {**kept["params"], **over}
            w = 1 / np.sqrt(np.maximum(positives[gid], 1)) if weight == "sqrt" else None
            t0 = time.perf_counter()
            booster = real_train(params, lgb.Dataset(kept["X"], kept["y"], weight=w, group=group), num_boost_round=trees)
            res = {n: round(val_map(booster.predict(vx, num_iteration=n)), 4)
                   for n in (100, 200, 300, 500, 800, 1200) if n <= trees}
            line = json.dumps({**stamp, "setting": label, "val_map_by_trees": res,
                               "seconds": round(time.perf_counter() - t0, 1)})
            print(line, flush=True)
            f.write(line + "\n")


if __name__ == "__main__":
    main()
