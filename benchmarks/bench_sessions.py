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
from dataclasses import asdict
from pathlib import Path

import yaml

from hoprec.data.database import load_database
from hoprec.data.datasets import example_schema
from hoprec.data.schema import load_schema, schema_from_dict
from hoprec.evaluate.report import atomic_write_text
from hoprec.evaluate.session_protocol import evaluate_sessions, fit_and_test, task_splits
from hoprec.evaluate.session_report import to_markdown
from hoprec.models.session import SESSION_DEFAULT, get_session_model_class
from hoprec.task.session import SessionTask

OUT = Path(__file__).resolve().parent / "results"

DATASETS = {
    "yoochoose": ("yoochoose", "PREDICT NEXT(clicks.ItemId) RANK TOP 20 FOR EACH SESSION", {}),
    "retailrocket": ("retailrocket", "PREDICT NEXT(events.ItemId) RANK TOP 20 FOR EACH SESSION", {}),
    # 68k products and 1.3M basket prefixes: sampled softmax over the 10,000 latest baskets
    "completejourney": (
        "completejourney", "PREDICT NEXT(transactions.product_id) RANK TOP 20 FOR EACH SESSION",
        {"sgnn": [{"negatives": 2048, "max_sessions": 10000}]},
    ),
}
#: for `--fixed` runs on a busy machine: the epochs early stopping on YOOCHOOSE validation chose
#: for the default sgnn (a full protocol run on a GPU machine); the blend still picks its weight
CHOSEN = {"yoochoose": {"sgnn": {"epochs": 6}}}

#: session settings set here, not in the shipped schema: The Complete Journey's basket rows are
#: sorted by product id under one timestamp, so source order would be a fake "next item" pattern
SESSION_OVERRIDES = {"completejourney": {"transactions": {"tie_order": "shuffle"}}}


def load_example(name: str, dataset: str):
    path = example_schema(name)
    overrides = SESSION_OVERRIDES.get(dataset)
    if not overrides:
        return load_schema(path)
    raw = yaml.safe_load(path.read_text())
    for table, settings in overrides.items():
        ev = raw["tables"][table]["event"]
        ev["sessions"] = {**(ev.get("sessions") or {}), **settings}
    return schema_from_dict(raw, base_dir=path.parent, file=str(path))


def _threads() -> int | None:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return None


def machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}


def run(dataset: str, models: list[str], device: str | None, fixed: dict | None = None,
        sgnn_grid: list[dict] | None = None) -> dict:
    schema_name, query, grids = DATASETS[dataset]
    grids = {m: list(g) for m, g in grids.items()}
    if sgnn_grid is not None:
        grids["sgnn"] = sgnn_grid
    for m, p in (fixed or {}).items():
        grids[m] = [{**g, **p} for g in grids.get(m, [{}])]
    if device:  # the graph model on another device (its CPU timings then do not apply)
        for m in ("sgnn",):
            grids[m] = [{**p, "device": device} for p in grids.get(m, get_session_model_class(m).param_grid)]
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    s = load_example(schema_name, dataset)
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
        "session_settings_overridden": SESSION_OVERRIDES.get(dataset, {}),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
        "torch_threads": _threads(), "fixed": fixed or {},
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


def refit_only(dataset: str, settings: dict[str, dict]) -> None:
    """The protocol's last step alone: fit on all training sessions, score every test prefix."""
    schema_name, query, _ = DATASETS[dataset]
    t0, load_before = time.perf_counter(), os.getloadavg()
    s = load_example(schema_name, dataset)
    task = SessionTask.from_query(s, query)
    splits = task_splits(task, load_database(s))
    results = [fit_and_test(m, p, splits, task.k, {}) for m, p in settings.items()]
    record = {"dataset": dataset, "query": query, "refit_only": settings,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
              "torch_threads": _threads(), "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "seconds_total": time.perf_counter() - t0,
              "split_stats": splits.stats, "results": [asdict(r) for r in results]}
    atomic_write_text(OUT / f"sessions_{dataset}_refit.json", json.dumps(record, indent=2, default=str))
    for r in results:
        m = r.metrics
        print(f"{dataset:16s} {r.model:12s} HR@20 {m['hr@20']:.4f} MRR@20 {m['mrr@20']:.4f} "
              f"fit {r.fit_seconds:.1f}s (CPU {r.fit_cpu_seconds:.1f}s)  {r.latency_ms['median']:.2f} ms/session")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-d", "--datasets", default=",".join(DATASETS), help="comma-separated: " + ", ".join(DATASETS))
    ap.add_argument("-m", "--models", default=",".join(SESSION_DEFAULT), help="comma-separated session models")
    ap.add_argument("--device", default=None, help="torch device for the graph model (default: cpu)")
    ap.add_argument("--sgnn-grid", default=None,
                    help='JSON list of sgnn settings to try on validation, e.g. \'[{"dim": 64}]\'')
    ap.add_argument("--refit-only", default=None, metavar="JSON",
                    help='skip validation: fit each model with these settings (chosen on validation '
                         'earlier) and score test, e.g. \'{"sgnn": {"epochs": 6}}\'; writes '
                         'sessions_<dataset>_refit.json/md')
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own)")
    ap.add_argument("--fixed", action="store_true",
                    help="sgnn with the epochs chosen on YOOCHOOSE validation before (CHOSEN), "
                         "instead of early stopping again")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for d in [x.strip() for x in args.datasets.split(",") if x.strip()]:
        if d not in DATASETS:
            ap.error(f"unknown dataset {d!r}; choose from {', '.join(DATASETS)}")
        if args.refit_only:
            refit_only(d, json.loads(args.refit_only))
            continue
        rec = run(d, models, args.device, CHOSEN.get(d, {}) if args.fixed else {},
                  json.loads(args.sgnn_grid) if args.sgnn_grid else None)
        for r in rec["result"]["results"]:
            m = r["metrics"]
            print(f"{d:16s} {r['model']:12s} HR@20 {m['hr@20']:.4f} MRR@20 {m['mrr@20']:.4f} "
                  f"fit {r['fit_seconds']:.1f}s  {r['latency_ms'].get('median', float('nan')):.2f} ms/session")


if __name__ == "__main__":
    main()
