"""1 vs N training processes on one machine (issue 7): throughput and quality after equal epochs.

Run:  nice -n 19 python benchmarks/bench_distributed.py [--scale 1] [--procs 1,2] [--epochs 5]

Generates a shop (:mod:`hoprec.data.generate`), builds its memory-mapped graph
(:mod:`hoprec.graph.ooc`), then trains :mod:`hoprec.train.distributed` once per process count
(``torchrun --standalone --nproc-per-node N``; one torch thread per process) with the same global
batch, and reads each run's ``run.json``: examples/s per epoch (median over epochs) and held-out
HitRate@10.  Writes ``distributed.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8192)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale"))
    args = ap.parse_args()
    from hoprec.data.generate import generate_shop
    from hoprec.data.schema import load_schema
    from hoprec.graph.ooc import build_interaction_graph

    work = Path(tempfile.mkdtemp(prefix="hoprec-dist-"))
    schema = generate_shop(work / "shop", scale=args.scale)
    build_interaction_graph(load_schema(schema), "lines", work / "graph", "customer_id", "product_id")
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "command": " ".join(sys.argv), "load_before": os.getloadavg(), "runs": []}
    for n in [int(p) for p in args.procs.split(",")]:
        out = work / f"run{n}"
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n)]
        cmd = [*launch, "-m", "hoprec.train.distributed", "--graph", str(work / "graph"), "--out", str(out),
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--dim", str(args.dim),
               "--threads", "1"]
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        run = json.loads((out / "run.json").read_text())
        eps = [e["examples_per_s"] for e in run["log"]]
        rec = {"processes": n, "examples": run["examples"], "median_examples_per_s": float(np.median(eps)),
               "hit_rate_at_10": run["hit_rate_at_10"], "final_loss": run["log"][-1]["loss"],
               "load_after": os.getloadavg()}
        report["runs"].append(rec)
        print(json.dumps(rec), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "distributed.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
