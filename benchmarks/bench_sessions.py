"""Session benchmarks: every session model on YOOCHOOSE 1/64, the RetailRocket sample and The
Complete Journey (each basket a session), through the same protocol as ``hoprec evaluate``.

    python benchmarks/bench_sessions.py                       # all three datasets
    python benchmarks/bench_sessions.py -d yoochoose -m vsknn,sgnn

Writes ``benchmarks/results/sessions_<dataset>.json`` and ``.md``: test figures, each model's
chosen setting, training seconds, recommend latency (median over all test prefixes, one
``recommend_session`` call each), the machine, the date and the load averages around the run
(the machine may be shared: the figures say how busy it was).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

from hoprec.data.database import load_database
from hoprec.data.datasets import example_schema
from hoprec.data.schema import load_schema
from hoprec.evaluate.report import atomic_write_text
from hoprec.evaluate.session_protocol import evaluate_sessions, task_splits
from hoprec.evaluate.session_report import to_markdown
from hoprec.models.session import SESSION_DEFAULT, get_session_model_class
from hoprec.task.session import SessionTask

OUT = Path(__file__).resolve().parent / "results"

DATASETS = {
    "yoochoose": ("yoochoose", "PREDICT NEXT(clicks.ItemId) RANK TOP 20 FOR EACH SESSION", {}),
    "retailrocket": ("retailrocket", "PREDICT NEXT(events.ItemId) RANK TOP 20 FOR EACH SESSION", {}),
    # 68k products and 1.3M basket prefixes: sampled softmax over the 40,000 latest baskets
    "completejourney": (
        "completejourney", "PREDICT NEXT(transactions.product_id) RANK TOP 20 FOR EACH SESSION",
        {"sgnn": [{"negatives": 2048, "max_sessions": 40000}]},
    ),
}


def machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}


def run(dataset: str, models: list[str], device: str | None) -> dict:
    schema_name, query, grids = DATASETS[dataset]
    grids = {m: list(g) for m, g in grids.items()}
    if device:  # the graph model on another device (its CPU timings then do not apply)
        for m in ("sgnn",):
            grids[m] = [{**p, "device": device} for p in grids.get(m, get_session_model_class(m).param_grid)]
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    s = load_schema(example_schema(schema_name))
    task = SessionTask.from_query(s, query)
    db = load_database(s)
    splits = task_splits(task, db)
    prep = time.perf_counter() - t0

    def progress(msg: str) -> None:
        print(f"  {time.strftime('%H:%M:%S')} {dataset}: {msg}", file=sys.stderr, flush=True)

    result = evaluate_sessions(task, db, models, progress=progress, splits=splits, grids=grids)
    total = time.perf_counter() - t0
    record = {
        "dataset": dataset, "query": query, "models": models, "grids_overridden": grids,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "seconds_load_and_split": prep, "seconds_total": total,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "result": result.to_dict(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT / f"sessions_{dataset}.json", json.dumps(record, indent=2, default=str))
    header = (
        f"<!-- written by benchmarks/bench_sessions.py -d {dataset} on {record['date']}; "
        f"{machine()['cpus']} CPUs; load average {load_before[0]:.1f} before, "
        f"{record['load_average_after'][0]:.1f} after; total {total:.0f} s -->\n\n"
    )
    atomic_write_text(OUT / f"sessions_{dataset}.md", header + to_markdown(result))
    return record


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-d", "--datasets", default=",".join(DATASETS), help="comma-separated: " + ", ".join(DATASETS))
    ap.add_argument("-m", "--models", default=",".join(SESSION_DEFAULT), help="comma-separated session models")
    ap.add_argument("--device", default=None, help="torch device for the graph model (default: cpu)")
    args = ap.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for d in [x.strip() for x in args.datasets.split(",") if x.strip()]:
        if d not in DATASETS:
            ap.error(f"unknown dataset {d!r}; choose from {', '.join(DATASETS)}")
        rec = run(d, models, args.device)
        for r in rec["result"]["results"]:
            m = r["metrics"]
            print(f"{d:16s} {r['model']:12s} HR@20 {m['hr@20']:.4f} MRR@20 {m['mrr@20']:.4f} "
                  f"fit {r['fit_seconds']:.1f}s  {r['latency_ms'].get('median', float('nan')):.2f} ms/session")


if __name__ == "__main__":
    main()
