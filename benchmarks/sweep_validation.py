"""Validation-window sweep: load a dataset once, fit several model settings in parallel.

Run:  python benchmarks/sweep_validation.py cj benchmarks/sweeps/lightgcn.json [--workers 8]
Prints one JSON line per setting (validation MAP@12 and Recall@12, fit seconds, the last
training-log rows) and appends them to benchmarks/results/sweep_<name>.jsonl.  These are
validation figures, for choosing defaults; headline figures come from `hoprec evaluate` (test).
Each worker forks after loading, so give each setting ``num_threads`` = cores / workers.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from hoprec.data.database import load_database
from hoprec.data.schema import load_schema
from hoprec.evaluate import metrics as M
from hoprec.evaluate.protocol import _subset_truth, make_split
from hoprec.models.registry import create_model
from hoprec.task.task import Task

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_validation import DATASETS  # noqa: E402 - one list of datasets for both scripts

_SPLIT = None


def _run(spec: tuple) -> list[dict]:
    """Fit ``[model, params]`` once; score it, and once more per recommend-time variant
    (an optional third element: a list of config overrides that do not change the fit, e.g.
    ``{"discovery_positions": [10, 11]}``).  One result row per scoring."""
    name, params, variants = spec[0], spec[1], (spec[2] if len(spec) > 2 else [])
    t0 = time.perf_counter()
    try:
        model = create_model(name, **params).fit(_SPLIT.dataset)
    except Exception as e:  # one failing setting must not hide the others
        return [{"model": name, "params": params, "error": repr(e)}]
    fit = time.perf_counter() - t0
    log = model.training_log() if hasattr(model, "training_log") else []
    rows = []
    for over in [{}, *variants]:
        try:
            model.config = model.config.model_copy(update=over)
            rec = model.recommend(_SPLIT.users, 12)
        except Exception as e:
            rows.append({"model": name, "params": {**params, **over}, "error": repr(e)})
            continue
        met = M.ranking_metrics(rec.items, _SPLIT.truth_indptr, _SPLIT.truth_indices, 12)
        rows.append({"model": name, "params": {**params, **over},
                     "val_map": round(float(np.nanmean(met["map"])), 4),
                     "val_recall": round(float(np.nanmean(met["recall"])), 4),
                     "val_new_recall": round(_new_to_customer_recall(rec.items), 5),
                     "fit_s": round(fit, 1), "log_tail": log[-3:]})
    return rows


def _new_to_customer_recall(recs: np.ndarray) -> float:
    """Recall@12 on the truth pairs the customer had not bought before the cutoff."""
    ds, sp_ = _SPLIT.dataset, _SPLIT
    rows = np.repeat(sp_.users, np.diff(sp_.truth_indptr))
    cols = sp_.truth_indices
    known = cols < ds.n_items
    bought = np.zeros(len(cols), dtype=bool)
    bought[known] = np.asarray(ds.positive_matrix()[rows[known], cols[known]]).ravel() > 0
    indptr, indices = _subset_truth(sp_.truth_indptr, cols, ~bought)
    sub = M.ranking_metrics(recs, indptr, indices, 12)
    return float(np.nanmean(sub["recall"]))


def main() -> None:
    global _SPLIT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", choices=sorted(DATASETS))
    ap.add_argument("runs", type=Path, help="JSON list of [model, params] or [model, params, [overrides]]")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    schema_path, query = DATASETS[args.dataset]
    schema = load_schema(ROOT / schema_path)
    db = load_database(schema)
    task = Task.from_query(schema, query)
    _SPLIT = make_split(task, db, task.cutoffs(db)["val"], "validation")
    runs = [tuple(r) for r in json.loads(args.runs.read_text())]  # [model, params(, variants)]
    out = ROOT / "benchmarks" / "results" / f"sweep_{args.runs.stem}.jsonl"
    stamp = {"dataset": args.dataset, "date": time.strftime("%Y-%m-%d"),
             "machine": f"{platform.node()} ({__import__('os').cpu_count()} cores)"}
    with ProcessPoolExecutor(args.workers) as ex, out.open("a") as f:
        for rows in ex.map(_run, runs):
            for r in rows:
                line = json.dumps({**stamp, **r})
                print(line, flush=True)
                f.write(line + "\n")


if __name__ == "__main__":
    main()
