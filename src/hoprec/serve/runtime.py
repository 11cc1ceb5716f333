"""What one service process runs besides the routes: the current service and its reloads, the
event store, the Prometheus metrics and the body-size/latency middleware.

:class:`ServiceHolder` keeps the :class:`~hoprec.serve.recommender.RecommendationService` being
served.  Before each request it applies what other workers or instances stored in the event store
(``PRAGMA data_version`` for SQLite says whether there is anything), and every ``reload_poll_s``
it checks whether a reload was announced through the store, so all workers follow one
``/admin/reload``.  A reload builds the new service in a thread beside the old one and swaps one
reference: requests in flight finish on the old model.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
import uuid
from pathlib import Path

from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hoprec.compat import require
from hoprec.serve.events import EventStore, SQLiteEventStore
from hoprec.serve.recommender import Answer, RecommendationService, ServiceConfig
from hoprec.serve.settings import Settings

GENERATION = "model_generation"


class Metrics:
    """Prometheus metrics of one app (own registry, so tests can run several apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("hoprec_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram(
            "hoprec_request_seconds", "Request latency", ["route"], registry=r,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.cache = Counter("hoprec_cache", "Per-user score cache lookups", ["result"], registry=r)
        self.sources = Counter("hoprec_served", "Answers by what served them (fallbacks)", ["source"], registry=r)
        self.events = Counter("hoprec_events", "Events stored", registry=r)
        self.reloads = Counter("hoprec_reloads", "Model reloads", ["result"], registry=r)
        self.model = Gauge("hoprec_model_info", "The model being served", ["model", "version", "as_of"], registry=r)

    def answered(self, ans: Answer) -> None:
        self.cache.labels("hit" if ans.cached else "miss").inc()
        self.sources.labels(ans.source).inc()


class ServiceHolder:
    """The current service, the event store, and the reload machinery of one worker."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.service: RecommendationService | None = None
        self.store: EventStore | None = None
        self.model_dir: Path | None = None
        self.generation: str | None = None
        self.reloading: asyncio.Task | None = None
        self._polled = 0.0
        self.overlap = 0  # sequence numbers re-read per sync (see RecommendationService.sync)
        self.error: str | None = None  # why the first load failed, for /health/ready

    def config(self) -> ServiceConfig:
        s = self.settings
        cols = {"category": s.category_column, "brand": s.brand_column, "price": s.price_column,
                "available": s.available_column, "title": s.title_column}
        return ServiceConfig(s.overfetch, s.exact_max_items, s.mmr_lambda, s.cache_size, s.cache_mb,
                             cols, s.precompute, s.precompute_items, s.precompute_above_ms,
                             s.precompute_mb)

    def build(self, model_dir: Path) -> RecommendationService:
        svc = RecommendationService.from_model_dir(model_dir, self.config(), self.settings.schema_path)
        svc.precompute()
        svc.sync(self.store, force=True, overlap=self.overlap)
        return svc

    def _swap(self, svc: RecommendationService, model_dir: Path) -> None:
        svc.sync(self.store, force=True, overlap=self.overlap)  # events stored while it was being built
        old, self.service, self.model_dir = self.service, svc, model_dir
        gc.unfreeze()  # the previous model's objects may be garbage now
        gc.collect()
        gc.freeze()  # the loaded model is long-lived: keep it out of the collector's later passes
        if old is not None:
            self.metrics.model.remove(old.model.name, old.model_version, str(old.data.as_of))
        self.metrics.model.labels(svc.model.name, svc.model_version, str(svc.data.as_of)).set(1)

    async def start(self) -> None:
        s = self.settings
        if s.threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(s.threads)  # process-wide: BLAS and OpenMP (FAISS) alike
            require("faiss", "serve").omp_set_num_threads(s.threads)
        if s.model_dir is None:
            raise ValueError("no model directory: set HOPREC_MODEL_DIR or pass MODEL_DIR")
        if s.events_url:
            from hoprec.serve.pg_events import PostgresEventStore

            self.store, self.overlap = PostgresEventStore(s.events_url), 1000
        else:
            self.store = SQLiteEventStore(s.resolved_events_path())
        model_dir = Path(s.model_dir).resolve()
        gen = self.store.get_meta(GENERATION)
        if gen:  # a reload from this same start directory outlives restarts
            g = json.loads(gen)
            if g.get("base") == str(model_dir) and Path(g["model_dir"]).is_dir():
                model_dir = Path(g["model_dir"])
            self.generation = g["id"]
        svc = await asyncio.to_thread(self.build, model_dir)
        self._swap(svc, model_dir)

    def current(self) -> RecommendationService:
        """The service to answer with, after applying what other workers stored."""
        svc = self.service
        if svc is None:
            raise HTTPException(503, "the model is still loading")
        svc.sync(self.store, overlap=self.overlap)
        now = time.monotonic()
        if now - self._polled > self.settings.reload_poll_s and self.reloading is None:
            self._polled = now
            gen = self.store.get_meta(GENERATION)
            if gen and json.loads(gen)["id"] != self.generation:
                g = json.loads(gen)
                self.reloading = asyncio.get_running_loop().create_task(
                    self.reload(Path(g["model_dir"]), announce=False, generation=g["id"]))
        return svc

    async def reload(self, model_dir: Path | None = None, announce: bool = True,
                     generation: str | None = None) -> RecommendationService:
        model_dir = Path(model_dir or self.model_dir).resolve()
        try:
            svc = await asyncio.to_thread(self.build, model_dir)
        except Exception:
            self.metrics.reloads.labels("failed").inc()
            raise
        finally:
            self.reloading = None
        self._swap(svc, model_dir)
        self.generation = generation or uuid.uuid4().hex
        if announce:
            self.store.set_meta(GENERATION, json.dumps({
                "id": self.generation, "model_dir": str(model_dir),
                "base": str(Path(self.settings.model_dir).resolve()),
            }))
        self.metrics.reloads.labels("ok").inc()
        return svc


class _Guard:
    """Pure ASGI middleware: body size limit (413) and per-route counts and latency."""

    def __init__(self, app, max_body: int, metrics: Metrics) -> None:
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500}
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                return await self._too_large(send)
        seen = 0

        async def limited():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge
            return msg

        async def sending(msg):
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            await send(msg)

        try:
            await self.app(scope, limited, sending)
        except _TooLarge:
            await self._too_large(send)
            status["code"] = 413
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path, str(status["code"])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - t0)

    async def _too_large(self, send):
        body = json.dumps({"detail": f"request body larger than {self.max_body} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
