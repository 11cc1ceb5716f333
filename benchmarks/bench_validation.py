"""Validation-window check of one model with given settings: the loop used to develop models.

Run:  python benchmarks/bench_validation.py cj sage '{"steps": 300}'
      python benchmarks/bench_validation.py or hybrid '{}'
Prints validation MAP@12 / Recall@12, fit and recommend seconds and peak memory. These are
validation figures, for choosing settings; headline figures come from `hoprec evaluate` (test).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from hoprec.data.database import load_database
from hoprec.data.schema import load_schema
from hoprec.evaluate import metrics as M
from hoprec.evaluate.protocol import make_split
from hoprec.models.registry import create_model
from hoprec.task.task import Task

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {
    "cj": ("examples/completejourney/schema.yaml",
           "PREDICT LIST_DISTINCT(transactions.product_id, 0, 30, days) RANK TOP 12 FOR EACH households.household_id"),
    "or": ("examples/online_retail/schema.yaml",
           "PREDICT LIST_DISTINCT(invoice_lines.StockCode, 0, 30, days) RANK TOP 12 FOR EACH customers.CustomerID"),
}


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in DATASETS:
        raise SystemExit(__doc__)
    schema_path, query = DATASETS[sys.argv[1]]
    name, params = sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    schema = load_schema(ROOT / schema_path)
    db = load_database(schema)
    task = Task.from_query(schema, query)
    val = make_split(task, db, task.cutoffs(db)["val"], "validation")
    t0 = time.perf_counter()
    model = create_model(name, **params).fit(val.dataset)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = model.recommend(val.users, 12).items
    rec_s = time.perf_counter() - t0
    m = M.mean_metrics(M.ranking_metrics(recs, val.truth_indptr, val.truth_indices, 12))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{sys.argv[1]} {name} {params}: validation MAP@12 {m['map']:.4f} Recall@12 "
          f"{m['recall']:.4f} (n={m['n']}); fit {fit_s:.1f} s, recommend {rec_s:.1f} s, peak {peak:.0f} MiB")
    if getattr(model, "history", None):
        print("training history:", model.history)


if __name__ == "__main__":
    main()
