"""Service benchmark: latency and throughput of the real HTTP service on loopback.

Run (The Complete Journey, the default model)::

    hoprec train -s examples/completejourney/schema.yaml -q "$CJ_QUERY" --model repeat -o models/cj-repeat
    python benchmarks/bench_service.py --model-dir models/cj-repeat \\
        --schema examples/completejourney/schema.yaml --out benchmarks/results/service.json

Starts ``hoprec serve`` in a child process (fresh event store), then measures:

1. ``POST /recommend`` with a category filter and k=12 from ``--concurrency`` clients for
   ``--duration`` seconds: p50, p99, requests/s, errors (client-side times, send to last byte),
   twice: saturated (each client sends its next request as soon as it has an answer: the most
   requests/s, and by Little's law a latency of about clients / throughput) and paced (the clients
   share a schedule of ``--rate`` requests/s: the latency at that load).  The service's own
   latency histogram (``/metrics``) gives its side of each run.
2. ``POST /events`` (a purchase) then ``POST /recommend`` for the same user: the time from sending
   the event to receiving a list that shows it, and whether it did.
3. The same load with a ``POST /admin/reload`` in the middle: failed requests, reload time.
4. The exact-scan bound: bytes a request must read to score every item (item embeddings, or the
   dense score vector for models without them) divided by the measured memory bandwidth.

The load generator is plain asyncio sockets (keep-alive HTTP/1.1, one connection per client) so
that it costs the shared CPU as little as possible; it runs on the same machine as the service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method: str, path: str, body: bytes = b"", headers: str = "") -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        head = (f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n{headers}\r\n")
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await self.reader.readexactly(length)
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def recommend_body(users: list, categories: list[str], k: int, rng: random.Random) -> bytes:
    body = {"user_id": rng.choice(users), "k": k, "filters": {"categories": [rng.choice(categories)]}}
    return json.dumps(body).encode()


async def load(port, users, categories, k, concurrency, duration, during=None, rate=None) -> dict:
    """``concurrency`` clients sending /recommend for ``duration`` seconds: back to back (closed
    loop, ``rate=None``), or on a fixed schedule of ``rate`` requests/s shared by the clients (open
    loop; latency counts from the scheduled time, so queueing behind busy clients is included)."""
    lat, errors, statuses = [], [], {}
    start = time.perf_counter()
    stop = start + duration
    ticket = iter(range(10**9))

    async def client(i: int) -> None:
        rng = random.Random(i)
        conn = Conn(port)
        try:
            while time.perf_counter() < stop:
                body = recommend_body(users, categories, k, rng)
                if rate is None:
                    t0 = time.perf_counter()
                else:
                    t0 = start + next(ticket) / rate
                    if t0 >= stop:
                        break
                    await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
                try:
                    status, _ = await conn.request("POST", "/recommend", body)
                except (ConnectionError, OSError, asyncio.IncompleteReadError) as e:
                    errors.append(repr(e))
                    conn.close()
                    conn = Conn(port)
                    continue
                lat.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200:
                    errors.append(status)
        finally:
            conn.close()

    t0 = time.perf_counter()
    extra = [asyncio.create_task(during())] if during else []
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    wall = time.perf_counter() - t0
    side = [await t for t in extra]
    ms = np.array(lat) * 1000
    return {
        "requests": len(lat), "seconds": round(wall, 2), "req_per_s": round(len(lat) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2),
        "errors": len(errors), "statuses": {str(s): n for s, n in statuses.items()},
        "mode": "closed loop" if rate is None else f"open loop at {rate} req/s",
        **({"during": side[0]} if side else {}),
    }


def server_histogram(port: int, route: str = "/recommend") -> dict[float, float]:
    """Cumulative bucket counts of the service's own latency histogram for ``route``."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    out = {}
    for line in text.splitlines():
        if line.startswith("hoprec_request_seconds_bucket") and f'route="{route}"' in line:
            le = line.split('le="')[1].split('"')[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def histogram_quantiles(before: dict, after: dict) -> dict:
    """p50/p99 (ms, linear inside a bucket) of the requests between two histogram readings."""
    les = sorted(after)
    cum = np.array([after[le] - before.get(le, 0.0) for le in les])
    total = cum[-1]
    out = {"requests": int(total)}
    for q in (0.5, 0.99):
        j = int(np.searchsorted(cum, q * total))
        lo = 0.0 if j == 0 else les[j - 1]
        hi = les[j] if np.isfinite(les[j]) else lo
        prev = 0.0 if j == 0 else cum[j - 1]
        frac = (q * total - prev) / max(cum[j] - prev, 1e-12)
        out[f"p{int(q * 100)}_ms"] = round(1000 * (lo + frac * (hi - lo)), 2)
    return out


async def events_reflected(port, users, trials: int) -> dict:
    """Purchase an item the user was not shown, then ask again: the time from sending the event to
    the answer, whether that answer took the event into account (``folded_events`` grew), whether
    the list changed and whether it shows the item (repeat-purchase models put it first; a
    factor model moves the whole list instead)."""
    conn = Conn(port)
    rng = random.Random(7)
    times, reflected, changed, shown_after = [], 0, 0, 0
    for _ in range(trials):
        user = rng.choice(users)
        _, first = await conn.request("POST", "/recommend", json.dumps({"user_id": user, "k": 12}).encode())
        first = json.loads(first)
        shown = [it["item_id"] for it in first["items"]]
        _, sim = await conn.request("GET", f"/items/{shown[0]}/similar?k=50")
        item = next(it["item_id"] for it in json.loads(sim)["items"] if it["item_id"] not in shown)
        ev = {"events": [{"user_id": user, "item_id": item, "kind": "purchase"}] * 3}
        t0 = time.perf_counter()
        status, _ = await conn.request("POST", "/events", json.dumps(ev).encode())
        _, after = await conn.request("POST", "/recommend", json.dumps({"user_id": user, "k": 12}).encode())
        times.append(time.perf_counter() - t0)
        after = json.loads(after)
        now = [it["item_id"] for it in after["items"]]
        reflected += status == 200 and after["folded_events"] >= first["folded_events"] + 3
        changed += now != shown
        shown_after += item in now
    conn.close()
    ms = np.array(times) * 1000
    return {"trials": trials, "reflected": reflected, "list_changed": changed,
            "item_shown": shown_after, "p50_ms": round(float(np.median(ms)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2)}


def bandwidth_gbs(mib: int = 256, repeats: int = 5) -> float:
    """Memory read bandwidth (GB/s): the best of ``repeats`` dot products of two large vectors."""
    n = mib * 2**20 // 4
    a, b = np.ones(n, np.float32), np.ones(n, np.float32)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        float(a @ b)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best / 1e9


def scan_bytes(model_dir: Path) -> tuple[int, str]:
    from hoprec.models.base import Recommender

    model = Recommender.load(model_dir / "model")
    emb = model.embeddings()
    if emb is None:
        return model.n_items * 4, f"{model.name}: no item embeddings; a dense float32 score per item"
    v = np.asarray(emb[1], np.float32)
    return v.nbytes, f"{model.name}: item embeddings {v.shape[0]} x {v.shape[1]} float32"


def wait_ready(port: int, proc: subprocess.Popen, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"service exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("service not ready in time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--schema", type=Path, default=Path("examples/completejourney/schema.yaml"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--k", type=int, default=12)
    ap.add_argument("--rate", type=float, default=500.0, help="offered load of the open-loop run")
    ap.add_argument("--event-trials", type=int, default=50)
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service (repeatable)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/service.json"))
    args = ap.parse_args()

    port = free_port()
    events = Path(tempfile.mkdtemp(prefix="hoprec-bench-")) / "events.sqlite"
    env = {**os.environ, "HOPREC_API_KEY": KEY, **dict(e.split("=", 1) for e in args.env)}
    cmd = [sys.executable, "-m", "hoprec.cli", "serve", str(args.model_dir), "-s", str(args.schema),
           "--port", str(port), "--workers", str(args.workers), "--events", str(events)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    try:
        wait_ready(port, proc, timeout=1800)
        start_s = time.perf_counter() - t0
        users = pd.read_parquet(args.model_dir / "users.parquet")["external_id"].tolist()
        items = pd.read_parquet(args.model_dir / "serving" / "items.parquet")
        import httpx

        cat_col = httpx.get(f"http://127.0.0.1:{port}/health/ready").json()["columns"]["category"]
        categories = items[cat_col].value_counts().index[:20].astype(str).tolist()

        async def run() -> dict:
            await load(port, users, categories, args.k, args.concurrency, 3.0)  # warm-up
            h0 = server_histogram(port)
            steady = await load(port, users, categories, args.k, args.concurrency, args.duration)
            h1 = server_histogram(port)
            steady["server_side"] = histogram_quantiles(h0, h1)
            paced = await load(port, users, categories, args.k, args.concurrency, args.duration,
                               rate=args.rate)
            paced["server_side"] = histogram_quantiles(h1, server_histogram(port))
            ev = await events_reflected(port, users, args.event_trials)

            async def reload_midway() -> dict:
                await asyncio.sleep(args.duration / 3)
                conn = Conn(port)
                t = time.perf_counter()
                status, body = await conn.request("POST", "/admin/reload", b"{}", f"X-API-Key: {KEY}\r\n")
                conn.close()
                return {"status": status, "seconds": round(time.perf_counter() - t, 2)}

            reload = await load(port, users, categories, args.k, args.concurrency, args.duration, reload_midway)
            return {"saturated": steady, "paced": paced, "events": ev, "reload": reload}

        res = asyncio.run(run())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    nbytes, what = scan_bytes(args.model_dir)
    bw = bandwidth_gbs()
    out = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg(), "model_dir": str(args.model_dir), "workers": args.workers,
        "concurrency": args.concurrency, "k": args.k, "filter": f"{cat_col} in one of the 20 largest",
        "service_start_s": round(start_s, 1), **res,
        "exact_scan": {"bytes": nbytes, "what": what, "bandwidth_gb_s": round(bw, 1),
                       "bound_ms": round(nbytes / (bw * 1e9) * 1000, 3)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
