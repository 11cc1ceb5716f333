"""The ``recommend`` stage of ``bench_scale.py``: the real service on one scale's shop.

Trains ``hoprec train --model als`` on the scale's generated shop (a child process; its wall and
peak RSS from ``wait4``), starts ``hoprec serve`` on it (a child process; its first start reads the
tables and builds ``MODEL_DIR/serving/``), then fires ``POST /recommend`` for random known
customers (k 12, no filter; the service's per-user cache off, one OpenMP thread) from ``clients`` keep-alive connections on an open-loop schedule of
``rate`` requests/s (latency counted from the scheduled send time, so queueing is included), after
a short warm-up.  Reads the service's ``VmRSS`` and ``VmHWM`` from ``/proc`` before stopping it.
The load generator is ``bench_service.Conn`` (plain asyncio sockets), on the same machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_service import Conn, free_port, wait_ready


def _proc_kib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    raise KeyError(field)


async def paced(port: int, users: list, k: int, clients: int, rate: float, duration: float) -> dict:
    """``clients`` connections sharing a schedule of ``rate`` requests/s for ``duration`` s."""
    lat, errors = [], 0
    start = time.perf_counter()
    ticket = iter(range(10**9))

    async def client(i: int) -> None:
        nonlocal errors
        rng, conn = random.Random(i), Conn(port)
        try:
            while True:
                t0 = start + next(ticket) / rate
                if t0 >= start + duration:
                    return
                await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
                body = json.dumps({"user_id": rng.choice(users), "k": k}).encode()
                try:
                    status, _ = await conn.request("POST", "/recommend", body)
                except (ConnectionError, OSError, asyncio.IncompleteReadError):
                    errors += 1
                    conn.close()
                    conn = Conn(port)
                    continue
                lat.append(time.perf_counter() - t0)
                errors += status != 200
        finally:
            conn.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - start
    ms = np.array(lat) * 1000
    return {"requests": len(lat), "errors": errors, "req_per_s": len(lat) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


def measure_recommend(paths: dict, query: str, args) -> dict:
    schema, model_dir = paths["shop"] / "schema.yaml", paths["dir"] / "model"
    # one thread (the 2 cores are shared); no per-user score cache, so every request does the work
    env = {**os.environ, "HOPREC_API_KEY": "bench-key", "OMP_NUM_THREADS": "1", "HOPREC_CACHE_SIZE": "0"}
    cmd = [sys.executable, "-m", "hoprec.cli", "train", "-s", str(schema), "-q", query, "--model", "als",
           "-p", f"iterations={args.service_iterations}", "-p", "num_threads=1", "-o", str(model_dir)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"hoprec train failed:\n{output[-3000:]}")
    train = {"seconds": time.perf_counter() - t0, "peak_rss_mib": usage.ru_maxrss / 1024}

    port = free_port()
    events = Path(tempfile.mkdtemp(prefix="hoprec-scale-")) / "events.sqlite"
    cmd = [sys.executable, "-m", "hoprec.cli", "serve", str(model_dir), "-s", str(schema),
           "--port", str(port), "--events", str(events)]
    t0 = time.perf_counter()
    svc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, svc, timeout=1800)
        start_s = time.perf_counter() - t0
        users = pd.read_parquet(model_dir / "users.parquet")["external_id"].tolist()

        async def run() -> dict:
            await paced(port, users, 12, args.clients, args.rate, 3.0)  # warm-up
            return await paced(port, users, 12, args.clients, args.rate, args.duration)

        res = asyncio.run(run())
        rss, hwm = _proc_kib(svc.pid, "VmRSS") / 1024, _proc_kib(svc.pid, "VmHWM") / 1024
    finally:
        svc.send_signal(signal.SIGINT)
        try:
            svc.wait(30)
        except subprocess.TimeoutExpired:
            svc.kill()
        shutil.rmtree(events.parent, ignore_errors=True)
    return {"seconds": res["p50_ms"] / 1000, **res, "clients": args.clients, "rate": args.rate,
            "duration": args.duration, "service_rss_mib": rss, "service_peak_rss_mib": hwm,
            "service_start_seconds": start_s, "train_seconds": train["seconds"],
            "train_peak_rss_mib": train["peak_rss_mib"], "model": "als", "cache": "off",
            "n_users": len(users), "load": os.getloadavg()}
