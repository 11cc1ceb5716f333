"""Scale benchmark (issue 7): how wall time and peak memory grow with the number of events.

Run (niced, one scale after another; 0.1 to 10 takes about ten minutes on 2 cores):

    nice -n 19 python benchmarks/bench_scale.py --scales 0.1,0.3,1,3,10 \
        [--pg-url postgresql://postgres:postgres@127.0.0.1:5432/postgres] [--data /tmp/hoprec-scale]

For each scale of :mod:`hoprec.data.generate` (1 = about 1.5M lines) every stage runs as its own
child process, so its peak memory (``ru_maxrss`` from ``wait4``) is its own; ``seconds`` is the
stage's work timed inside the child (imports excluded), ``process_seconds`` the child's wall.

Stages: ``generate`` (the shop, streamed to Parquet); ``ingest`` (``load_database``: the
in-memory pandas path every command uses today; skipped above ``--ingest-max-scale``); ``graph``
(DuckDB out-of-core aggregation into a memory-mapped customer/product CSR); ``train_epoch``
(one ALS sweep over the mapped CSR); ``embed`` (ALS, ``--als-iterations`` sweeps: vectors for
every customer and product); ``index_faiss`` / ``index_faiss_hnsw`` / ``index_pgvector``
(builds); ``retrieval`` (single-query latency p50/p99 of each index over ``--queries`` random
customers, top 10, and recall@10 of the approximate ones against the exact scan; pgvector's HNSW
at ``ef_search`` 100, its default here, and 400); ``recommend`` (the real service: ``hoprec
train --model als`` (``--service-iterations`` sweeps, one thread) on the scale's shop, then
``hoprec serve`` in its own process, whose first start builds the serving data; then ``POST
/recommend`` (a random known customer, k 12, no filter, no per-user cache) from ``--clients`` keep-alive clients on
an open-loop schedule of ``--rate`` requests/s for ``--duration`` seconds after a warm-up:
client-side p50/p99, and the service's RSS (``VmRSS``, ``VmHWM`` from ``/proc``); it reads every
table into pandas, so it stops at ``--ingest-max-scale`` like ``ingest``).

``--update STAGES`` re-runs stages without losing the others: the stages named are written into
the existing ``scale.json`` (same scales, the same generated lines), everything else is kept, and
the run is listed under ``updates``; e.g. ``--stages generate,recommend --update recommend``
(the shop must be generated again; its new timing is not kept).

Writes ``scale.json`` and ``scale.png`` (log-log, with the fitted exponent of each stage:
slope of log(seconds) on log(lines)) under ``--out``.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("generate", "ingest", "graph", "train_epoch", "embed", "index_faiss", "index_faiss_hnsw",
          "index_pgvector", "retrieval", "recommend")
PANDAS_STAGES = ("ingest", "recommend")  # read every table into memory: skipped above --ingest-max-scale
QUERY = "PREDICT LIST_DISTINCT(lines.product_id, 0, 30, days) RANK TOP 12 FOR EACH customers.customer_id"


# ------------------------------------------------------------------------------------ stages
def _paths(data: Path, scale: float) -> dict[str, Path]:
    d = data / f"scale_{scale:g}"
    return {"dir": d, "shop": d / "shop", "graph": d / "graph", "als": d / "als"}


def _user_items(graph_dir: Path):
    """The customers x products matrix straight from the mapped CSR (no copy of the arrays)."""
    import scipy.sparse as sp

    from hoprec.graph.mmap_store import open_graph

    g = open_graph(graph_dir)
    (et,) = [e for e in g.edges if e[0] == g.entity_type and e[2] == g.item_type]
    s = g.edges[et]  # by destination product: rows = products, columns = customers
    items_users = sp.csr_matrix((s.weight.numpy(), s.col.numpy(), s.rowptr.numpy()),
                                shape=(g.num_nodes[g.item_type], g.num_nodes[g.entity_type]))
    return items_users.T.tocsr(), g


def _als(paths: dict, iterations: int, factors: int):
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    ui, _ = _user_items(paths["graph"])
    t0 = time.perf_counter()
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=factors, iterations=iterations, regularization=0.01,
                                        random_state=0, calculate_training_loss=False)
        model.fit(ui, show_progress=False)
    return model, time.perf_counter() - t0, ui


def stage(name: str, scale: float, data: Path, args) -> dict:
    paths = _paths(data, scale)
    if name == "generate":
        import pyarrow.parquet as pq

        from hoprec.data.generate import generate_shop

        t0 = time.perf_counter()
        generate_shop(paths["shop"], scale=scale, seed=0)
        sec = time.perf_counter() - t0
        lines = pq.ParquetFile(paths["shop"] / "lines.parquet").metadata.num_rows
        size = sum(f.stat().st_size for f in paths["shop"].iterdir())
        return {"seconds": sec, "lines": lines, "disk_mib": size / 2**20}
    if name == "ingest":
        from hoprec.data.database import load_database
        from hoprec.data.schema import load_schema

        t0 = time.perf_counter()
        db = load_database(load_schema(paths["shop"] / "schema.yaml"))
        return {"seconds": time.perf_counter() - t0, "rows": int(len(db["lines"]))}
    if name == "graph":
        from hoprec.data.schema import load_schema
        from hoprec.graph.ooc import build_interaction_graph

        t0 = time.perf_counter()
        g = build_interaction_graph(load_schema(paths["shop"] / "schema.yaml"), "lines", paths["graph"],
                                    "customer_id", "product_id", memory_limit=args.duckdb_memory)
        size = sum(f.stat().st_size for f in paths["graph"].rglob("*") if f.is_file())
        return {"seconds": time.perf_counter() - t0, "edges": g.num_edges(), "nodes": sum(g.num_nodes.values()),
                "disk_mib": size / 2**20}
    if name == "train_epoch":
        _, sec, ui = _als(paths, 1, args.factors)
        return {"seconds": sec, "examples": int(ui.nnz), "examples_per_s": ui.nnz / sec}
    if name == "embed":
        model, sec, ui = _als(paths, args.als_iterations, args.factors)
        paths["als"].mkdir(parents=True, exist_ok=True)
        np.save(paths["als"] / "users.npy", np.asarray(model.user_factors, np.float32))
        np.save(paths["als"] / "items.npy", np.asarray(model.item_factors, np.float32))
        return {"seconds": sec, "iterations": args.als_iterations, "nodes": int(sum(ui.shape))}
    if name == "recommend":
        from bench_scale_service import measure_recommend

        return measure_recommend(paths, QUERY, args)
    items = np.load(paths["als"] / "items.npy")
    if name in ("index_faiss", "index_faiss_hnsw"):
        from hoprec.serve.index import build_index

        t0 = time.perf_counter()
        idx = build_index(items, exact_max_items=len(items) if name == "index_faiss" else 0)
        return {"seconds": time.perf_counter() - t0, "kind": idx.kind, "items": len(items)}
    if name == "index_pgvector":
        from hoprec.serve.pgvector_index import build_pgvector_index

        t0 = time.perf_counter()
        idx = build_pgvector_index(items, args.pg_url, f"bench_scale_{str(scale).replace('.', '_')}")
        return {"seconds": time.perf_counter() - t0, "kind": idx.kind, "items": idx.n_items}
    if name == "retrieval":
        return _retrieval(paths, scale, items, args)
    raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")


def _latencies(search, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ids, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        got, _ = search(q[None, :], k)
        times.append(time.perf_counter() - t0)
        ids.append(got[0])
    return np.array(ids), np.array(times) * 1000


def _retrieval(paths: dict, scale: float, items: np.ndarray, args) -> dict:
    from hoprec.serve.index import build_index, recall_at_k

    users = np.load(paths["als"] / "users.npy")
    rng = np.random.default_rng(0)
    queries = users[rng.choice(len(users), min(args.queries, len(users)), replace=False)]
    k = 10
    backends = {"faiss_exact": build_index(items, exact_max_items=len(items)).search,
                "faiss_hnsw": build_index(items, exact_max_items=0).search}
    pg = None
    if args.pg_url:
        from hoprec.serve.pgvector_index import PgVectorIndex

        pg = PgVectorIndex.open(args.pg_url, f"bench_scale_{str(scale).replace('.', '_')}")
        backends["pgvector_hnsw"] = lambda q, kk: pg.search(q, kk, exact=False)

        def pg_ef400(q, kk):
            pg.ef_search = 400
            try:
                return pg.search(q, kk, exact=False)
            finally:
                pg.ef_search = 100

        backends["pgvector_hnsw_ef400"] = pg_ef400
        backends["pgvector_exact"] = lambda q, kk: pg.search(q, kk, exact=True)
    out, exact = {}, None
    for name, search in backends.items():
        search(queries[:5], k)  # warm up (prepared statements, caches)
        ids, ms = _latencies(search, queries, k)
        if exact is None:
            exact = ids
        out[name] = {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                     "recall_at_10": recall_at_k(ids, exact)}
    if pg is not None:
        pg.close()
    return {"seconds": float(out["faiss_exact"]["p50_ms"]) / 1000, "queries": len(queries), "backends": out}


# ------------------------------------------------------------------------------------ driver
def run_stage(name: str, scale: float, args) -> dict:
    result = Path(args.data) / f"scale_{scale:g}" / f".{name}.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--stage", name, "--scales", str(scale), "--data", str(args.data),
           "--result", str(result), "--factors", str(args.factors), "--als-iterations",
           str(args.als_iterations), "--queries", str(args.queries), "--duckdb-memory", args.duckdb_memory,
           "--rate", str(args.rate), "--clients", str(args.clients), "--duration", str(args.duration),
           "--service-iterations", str(args.service_iterations)]
    if args.pg_url:
        cmd += ["--pg-url", args.pg_url]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        print(output)
        raise SystemExit(f"stage {name} at scale {scale} failed")
    rec = json.loads(result.read_text())
    rec.update(process_seconds=wall, peak_rss_mib=usage.ru_maxrss / 1024)
    return rec


def fit_exponent(x: list[float], y: list[float]) -> float | None:
    """Slope of log(y) on log(x) (the growth exponent); ``None`` with fewer than two points."""
    pts = [(a, b) for a, b in zip(x, y) if a > 0 and b > 0]
    if len(pts) < 2:
        return None
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(lx, ly, 1)[0])


SERIES = {"recommend": ("p50_ms", "p99_ms", "service_rss_mib", "train_seconds", "service_start_seconds")}


def exponents(report: dict) -> dict:
    """Fitted exponents of ``seconds`` and ``peak_rss_mib`` per stage (and the extra series of
    :data:`SERIES`) over the scales that ran it."""
    out = {}
    for st in dict.fromkeys(st for r in report["runs"] for st in r["stages"]):
        runs = [r for r in report["runs"] if st in r["stages"]]
        out[st] = {m: fit_exponent([r["lines"] for r in runs], [r["stages"][st][m] for r in runs])
                   for m in ("seconds", "peak_rss_mib", *SERIES.get(st, ()))}
    return out


def merge(old: dict, new: dict, stages: list[str]) -> dict:
    """``old`` with the ``stages`` of ``new``'s runs written in (matched by scale; the generated
    line counts must agree), the rest kept; ``new``'s run is listed under ``updates``."""
    by_scale = {r["scale"]: r for r in old["runs"]}
    for run in new["runs"]:
        if run["scale"] not in by_scale:
            raise SystemExit(f"--update: scale {run['scale']:g} is not in the existing scale.json")
        prev = by_scale[run["scale"]]
        if "lines" in run and run["lines"] != prev["lines"]:
            raise SystemExit(f"--update: scale {run['scale']:g} generated {run['lines']} lines, "
                             f"the existing run had {prev['lines']}")
        for st in stages:
            if st in run["stages"]:
                prev["stages"][st] = run["stages"][st]
    old.setdefault("updates", []).append(
        {k: new[k] for k in ("date", "machine", "command", "load_before")}
        | {"stages": stages, "load_after": {f"{r['scale']:g}": r.get("load_after") for r in new["runs"]}})
    return old


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    for st in STAGES:
        if st in ("retrieval", "recommend"):
            continue
        pts = [(r["lines"], r["stages"][st]["seconds"], r["stages"][st]["peak_rss_mib"])
               for r in report["runs"] if st in r["stages"]]
        if len(pts) < 2:
            continue
        x = [p[0] for p in pts]
        e_t, e_m = report["exponents"][st]["seconds"], report["exponents"][st]["peak_rss_mib"]
        axes[0].loglog(x, [p[1] for p in pts], "o-", label=f"{st} (exp {e_t:.2f})")
        axes[1].loglog(x, [p[2] for p in pts], "o-", label=f"{st} (exp {e_m:.2f})")
    for name in ("faiss_exact", "faiss_hnsw", "pgvector_hnsw"):
        pts = [(r["lines"], r["stages"]["retrieval"]["backends"][name]["p99_ms"] / 1000)
               for r in report["runs"] if "retrieval" in r["stages"]
               and name in r["stages"]["retrieval"]["backends"]]
        if len(pts) >= 2:
            e = fit_exponent([p[0] for p in pts], [p[1] for p in pts])
            axes[0].loglog([p[0] for p in pts], [p[1] for p in pts], "x--", label=f"{name} p99 (exp {e:.2f})")
    rec = [r for r in report["runs"] if "recommend" in r["stages"]]
    if len(rec) >= 2:
        x = [r["lines"] for r in rec]
        for m, style in (("p50_ms", "s-."), ("p99_ms", "s--")):
            e = report["exponents"]["recommend"][m]
            axes[0].loglog(x, [r["stages"]["recommend"][m] / 1000 for r in rec], style,
                           label=f"/recommend {m[:3]} (exp {e:.2f})")
        e = report["exponents"]["recommend"]["service_rss_mib"]
        axes[1].loglog(x, [r["stages"]["recommend"]["service_rss_mib"] for r in rec], "s--",
                       label=f"service RSS (exp {e:.2f})")
    axes[0].set(xlabel="lines (events)", ylabel="seconds", title="wall time per stage")
    axes[1].set(xlabel="lines (events)", ylabel="peak RSS (MiB)", title="peak memory per stage")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"hoprec scale benchmark ({report['machine']}, {report['date'][:10]})", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="0.1,0.3,1,3,10", help="comma-separated scales (1 = about 1.5M lines)")
    ap.add_argument("--data", default="/tmp/hoprec-scale", help="where the generated data and graphs go")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale"))
    ap.add_argument("--pg-url", default=os.environ.get("HOPREC_TEST_PG_URL"),
                    help="PostgreSQL with pgvector (default: $HOPREC_TEST_PG_URL; none: skip pgvector)")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--ingest-max-scale", type=float, default=10.0,
                    help="skip the in-memory pandas ingest above this scale (it holds every row)")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--als-iterations", type=int, default=5)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--duckdb-memory", default="2GB")
    ap.add_argument("--rate", type=float, default=50.0, help="recommend: offered requests/s")
    ap.add_argument("--clients", type=int, default=4, help="recommend: keep-alive client connections")
    ap.add_argument("--duration", type=float, default=20.0, help="recommend: seconds of load")
    ap.add_argument("--service-iterations", type=int, default=5, help="recommend: ALS sweeps of the served model")
    ap.add_argument("--update", default="",
                    help="comma-separated stages to write into the existing scale.json, keeping the rest")
    ap.add_argument("--keep-data", action="store_true", help="keep each scale's data after its run")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    if args.stage:  # child
        rec = stage(args.stage, scales[0], Path(args.data), args)
        Path(args.result).write_text(json.dumps(rec))
        return
    stages = [s for s in args.stages.split(",") if s]
    if not args.pg_url:
        stages = [s for s in stages if s != "index_pgvector"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "command": " ".join(sys.argv), "load_before": os.getloadavg(), "runs": []}
    import shutil

    for scale in scales:
        run = {"scale": scale, "stages": {}}
        for st in stages:
            if st in PANDAS_STAGES and scale > args.ingest_max_scale:
                continue
            t = time.strftime("%H:%M:%S")
            rec = run_stage(st, scale, args)
            run["stages"][st] = rec
            if st == "generate":
                run["lines"] = rec["lines"]
            what = (f"p50 {rec['p50_ms']:.1f} ms, p99 {rec['p99_ms']:.1f} ms" if st == "recommend"
                    else f"{rec['seconds']:.2f} s")
            print(f"{t} scale {scale:g} {st}: {what}, peak {rec['peak_rss_mib']:.0f} MiB "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
        run["load_after"] = os.getloadavg()
        report["runs"].append(run)
        if not args.keep_data:
            shutil.rmtree(_paths(Path(args.data), scale)["dir"], ignore_errors=True)
    if args.update:
        report = merge(json.loads((out / "scale.json").read_text()), report, args.update.split(","))
    report["exponents"] = exponents(report)
    (out / "scale.json").write_text(json.dumps(report, indent=1))
    plot(report, out / "scale.png")
    print(json.dumps(report["exponents"], indent=1))


if __name__ == "__main__":
    main()
