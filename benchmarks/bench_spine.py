"""Spine benchmark: load + cutoffs, evaluate with every baseline, predict — time and peak memory.

Run:  python benchmarks/bench_spine.py [--out benchmarks/results]
Each step runs as a child process (the real CLI where there is one) so its peak memory is its own.
Writes ``spine.json`` and the leaderboards of both datasets under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CJ_SCHEMA = ROOT / "examples/completejourney/schema.yaml"
OR_SCHEMA = ROOT / "examples/online_retail/schema.yaml"
CJ_QUERY = ("PREDICT LIST_DISTINCT(transactions.product_id, 0, 30, days) RANK TOP 12 "
            "FOR EACH households.household_id")
OR_QUERY = ("PREDICT LIST_DISTINCT(invoice_lines.StockCode, 0, 30, days) RANK TOP 12 "
            "FOR EACH customers.CustomerID")

LOAD_SNIPPET = f"""
import time
t0 = time.perf_counter()
from hoprec.data.schema import load_schema
from hoprec.data.database import load_database
from hoprec.task.task import Task
from hoprec.evaluate.protocol import make_split
s = load_schema({str(CJ_SCHEMA)!r})
db = load_database(s)
t1 = time.perf_counter()
task = Task.from_query(s, {CJ_QUERY!r})
cut = task.cutoffs(db)
val = make_split(task, db, cut["val"], "validation")
test = make_split(task, db, cut["test"], "test")
t2 = time.perf_counter()
print(f"load={{t1-t0:.2f}} splits={{t2-t1:.2f}}")
"""


def run_child(cmd: list[str]) -> dict:
    """Run ``cmd``; wall seconds and the child's peak RSS (MiB, from wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # reap it ourselves to get its own rusage
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(output)
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return {"command": " ".join(cmd), "seconds": round(wall, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024), "output_tail": output[-600:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    hoprec = [sys.executable, "-m", "hoprec.cli"]
    subprocess.run([*hoprec, "datasets", "fetch", "completejourney"], check=True)
    steps = {}
    steps["load_and_splits"] = run_child([sys.executable, "-c", LOAD_SNIPPET])
    steps["predict_repeat_all_households"] = run_child(
        [*hoprec, "predict", "-s", str(CJ_SCHEMA), "-q", CJ_QUERY, "--model", "repeat",
         "-o", str(args.out / "cj_repeat_predictions.parquet")])
    steps["evaluate_online_retail"] = run_child(
        [*hoprec, "evaluate", "-s", str(OR_SCHEMA), "-q", OR_QUERY, "-o", str(args.out / "online_retail")])
    steps["evaluate_completejourney"] = run_child(
        [*hoprec, "evaluate", "-s", str(CJ_SCHEMA), "-q", CJ_QUERY, "-o", str(args.out / "completejourney")])
    info = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, "
                   f"Python {platform.python_version()}",
        "steps": steps,
    }
    (args.out / "spine.json").write_text(json.dumps(info, indent=2))
    for name, st in steps.items():
        print(f"{name:34s} {st['seconds']:8.1f} s   peak RSS {st['peak_rss_mib']:6d} MiB")


if __name__ == "__main__":
    main()
