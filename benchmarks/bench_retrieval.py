"""In-process cost of one recommendation (no HTTP): exact scan vs HNSW, with and without a filter.

Run::

    python benchmarks/bench_retrieval.py --model-dir /tmp/cjbench/als --out benchmarks/results/service_retrieval_als.json

Loads the model directory (its ``serving/`` data must exist: start ``hoprec serve -s`` once) as the
service does, with one BLAS/OpenMP thread, then times ``RecommendationService.recommend`` (k=12,
cache off) for random users: unfiltered, and with a category filter (one of the 20 largest).  For
models with item embeddings it builds both the exact index and HNSW (``exact_max_items`` below the
catalogue) and reports the HNSW service's recall@12 against the exact one's lists.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from hoprec.serve.index import recall_at_k
from hoprec.serve.recommender import Options, RecommendationService, ServiceConfig
from hoprec.serve.rerank import Filters


def timed(svc, users, make, n, seed=0) -> dict:
    rng = random.Random(seed)
    svc._cache_entries = 0
    ts = []
    for _ in range(n):
        u, o = rng.choice(users), make(rng)
        t = time.perf_counter()
        svc.recommend(u, o)
        ts.append(time.perf_counter() - t)
    ms = np.array(ts) * 1000
    return {"p50_ms": round(float(np.median(ms)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--hnsw-below", type=int, default=50_000, help="exact_max_items of the HNSW run")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    threadpool_limits(1)
    out = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
           "load_average_start": os.getloadavg()}
    t = time.perf_counter()
    exact = RecommendationService.from_model_dir(args.model_dir)
    out["load_s"] = round(time.perf_counter() - t, 1)
    users = exact.users.external.tolist()
    codes = pd.Series(exact.catalogue.category)
    cats = [exact.catalogue.category_names[c] for c in codes[codes >= 0].value_counts().index[:20]]
    plain = lambda rng: Options(k=12)  # noqa: E731
    filtered = lambda rng: Options(k=12, filters=Filters(categories=(rng.choice(cats),)))  # noqa: E731
    runs = {exact.index.kind if exact.index is not None else "dense": exact}
    if exact.index is not None and exact.index.n_items > args.hnsw_below:
        t = time.perf_counter()
        runs["hnsw"] = RecommendationService.from_model_dir(
            args.model_dir, ServiceConfig(exact_max_items=args.hnsw_below))
        out["hnsw_load_and_build_s"] = round(time.perf_counter() - t, 1)
    for name, svc in runs.items():
        out[name] = {"unfiltered": timed(svc, users, plain, args.requests),
                     "category_filter": timed(svc, users, filtered, args.requests)}
    if "hnsw" in runs:
        sample = users[: args.requests]
        got = np.array([runs["hnsw"].recommend(u, Options(k=12)).internal for u in sample])
        want = np.array([exact.recommend(u, Options(k=12)).internal for u in sample])
        out["hnsw"]["recall_at_12_vs_exact"] = round(recall_at_k(got, want), 4)
    out["model"] = exact.model.name
    out["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
