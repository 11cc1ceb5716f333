"""1 vs N training processes on one machine (issue 7): throughput and quality after equal epochs.

Run:  nice -n 19 python benchmarks/bench_distributed.py [--scale 1] [--procs 1,2] [--epochs 5]
      nice -n 19 python benchmarks/bench_distributed.py --model lightgcn --procs 1,2,2r

Generates a shop (:mod:`hoprec.data.generate`), builds its memory-mapped graph
(:mod:`hoprec.graph.ooc`), then trains :mod:`hoprec.train.distributed` once per process count
(``torchrun --standalone --nproc-per-node N``; one torch thread per process) with the same global
batch, and reads each run's ``run.json``: examples/s per epoch (median over epochs) and held-out
HitRate@10.  ``--breakdown`` (LightGCN) also times the parts of one step apart, each median of
20: ``Â @ X`` over the whole adjacency and over the larger of two row blocks (one thread), and,
between two gloo processes, the all-gather of a block of ``X`` and the all-reduce of an
``(n, dim)`` float32 tensor.  ``--procs`` lists process counts; ``Nr`` runs LightGCN on N processes with the
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
import time
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
    ap.add_argument("--breakdown", action="store_true", help="lightgcn: time one step's parts apart")
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
    if args.breakdown:
        report["breakdown"] = breakdown(work / "graph", args.dim)
        print(json.dumps(report["breakdown"]), flush=True)
    for spec in filter(None, args.procs.split(",")):
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


def _median_ms(fn, reps: int = 20) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def _comm(rank: int, world: int, init: str, n: int, pad: int, dim: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    x, y = torch.randn(pad, dim), torch.randn(n, dim)
    parts = [torch.empty_like(x) for _ in range(world)]
    gather = _median_ms(lambda: dist.all_gather(parts, x))
    reduce = _median_ms(lambda: dist.all_reduce(y))
    if rank == 0:
        Path(out).write_text(json.dumps({"all_gather_ms": gather, "all_reduce_ms": reduce}))
    dist.destroy_process_group()


def breakdown(graph_dir: Path, dim: int) -> dict:
    """One LightGCN step's parts, timed apart (see the module doc)."""
    import torch

    from hoprec.graph.mmap_store import open_graph
    from hoprec.train.dist_models import _Shard, _torch_csr, normalized_adjacency
    from hoprec.train.distributed import split_holdout

    torch.set_num_threads(1)
    g = open_graph(graph_dir)
    (et,) = [e for e in g.edges if e[0] == g.entity_type and e[2] == g.item_type]
    s = g.edges[et]
    users, items = s.col.numpy(), s.dst.numpy()
    train, _, _ = split_holdout(users, items, s.time.numpy(), 0.1, 0)
    n_u, n_i = g.num_nodes[g.entity_type], g.num_nodes[g.item_type]
    adj = normalized_adjacency(users[train], items[train], n_u, n_i)
    x = torch.randn(adj.shape[0], dim)
    whole = _torch_csr(adj, "cpu")
    blocks = [_Shard(adj, r, 2, "cpu", (n_u,)) for r in range(2)]
    out = {"nodes": adj.shape[0], "nnz": int(adj.nnz), "dim": dim,
           "spmm_whole_ms": _median_ms(lambda: whole @ x),
           "spmm_half_ms": max(_median_ms(lambda b=b: b.block @ x) for b in blocks),
           "block_rows": blocks[0].rows, "load": os.getloadavg()}
    import torch.multiprocessing as mp

    res = Path(tempfile.mkdtemp(prefix="hoprec-comm-")) / "comm.json"
    init = f"file://{res.parent / 'store'}"
    mp.spawn(_comm, args=(2, init, adj.shape[0], blocks[0].pad, dim, str(res)), nprocs=2)
    out.update(json.loads(res.read_text()))
    shutil.rmtree(res.parent, ignore_errors=True)
    return out


if __name__ == "__main__":
    main()
