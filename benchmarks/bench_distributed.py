"""1 vs N training processes on one machine (issue 7): throughput and quality after equal epochs.

Run:  nice -n 19 python benchmarks/bench_distributed.py [--scale 1] [--procs 1,2] [--epochs 5]
      nice -n 19 python benchmarks/bench_distributed.py --model lightgcn --procs 1,2,2r

Generates a shop (:mod:`hoprec.data.generate`), builds its memory-mapped graph
(:mod:`hoprec.graph.ooc`), then trains :mod:`hoprec.train.distributed` once per process count
(``torchrun --standalone --nproc-per-node N``; one torch thread per process) with the same global
batch, and reads each run's ``run.json``: examples/s per epoch (median over epochs) and held-out
HitRate@10.  ``--procs`` lists process counts; ``Nr`` runs LightGCN on N processes with the
propagation replicated on every rank (``--no-shard-propagation``) instead of sharded.  Writes
``distributed.json`` (BPR-MF) or ``distributed_<model>.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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
    ap.add_argument("--model", choices=("bprmf", "lightgcn"), default="bprmf")
    ap.add_argument("--layers", type=int, default=2, help="lightgcn propagation rounds")
    ap.add_argument("--lr", type=float, default=0.01)
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
              "command": " ".join(sys.argv), "model": args.model, "load_before": os.getloadavg(),
              "runs": []}
    for spec in args.procs.split(","):
        n, replicated = int(spec.rstrip("r")), spec.endswith("r")
        out = work / f"run{spec}"
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n)]
        cmd = [*launch, "-m", "hoprec.train.distributed", "--graph", str(work / "graph"), "--out", str(out),
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--dim", str(args.dim),
               "--threads", "1", "--model", args.model, "--layers", str(args.layers), "--lr", str(args.lr)]
        if replicated:
            cmd.append("--no-shard-propagation")
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        run = json.loads((out / "run.json").read_text())
        eps = [e["examples_per_s"] for e in run["log"]]
        rec = {"processes": n, "propagation": run.get("propagation"), "examples": run["examples"],
               "median_examples_per_s": float(np.median(eps)), "epoch_seconds": [e["seconds"] for e in run["log"]],
               "hit_rate_at_10": run["hit_rate_at_10"], "final_loss": run["log"][-1]["loss"],
               "load_after": os.getloadavg()}
        report["runs"].append(rec)
        print(json.dumps(rec), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = "distributed.json" if args.model == "bprmf" else f"distributed_{args.model}.json"
    (Path(args.out) / name).write_text(json.dumps(report, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
