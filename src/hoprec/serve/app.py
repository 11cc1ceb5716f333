"""The HTTP service: thin FastAPI routers over :class:`~hoprec.serve.recommender.RecommendationService`.

``create_app(settings, extra_routers=[...])`` builds the app; the model directory is loaded once,
in the lifespan, and ``/health/ready`` answers 200 only after that.  A page or API of another
stage mounts itself through ``extra_routers`` (``hoprec.serve.ui.router`` is included when that
module exists).

Several uvicorn workers stay consistent through the event store: each request first applies what
other workers stored (``PRAGMA data_version`` says whether there is anything), and a reload writes
the new model directory to the store so every worker swaps within ``reload_poll_s``.  A reload
builds the new service beside the old one and swaps a reference: requests in flight finish on the
old model, none fails.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import secrets
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import pandas as pd

from hoprec.compat import require

require("fastapi", "serve")
require("prometheus_client", "serve")

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import Response  # noqa: E402
from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    generate_latest,
)
from pydantic import ValidationError  # noqa: E402

from hoprec.serve import schemas as S  # noqa: E402
from hoprec.serve.events import Event  # noqa: E402
from hoprec.serve.recommender import Answer, Options, RecommendationService  # noqa: E402
from hoprec.serve.rerank import Filters  # noqa: E402
from hoprec.serve.runtime import Metrics, ServiceHolder, _Guard  # noqa: E402
from hoprec.serve.settings import Settings, get_settings  # noqa: E402


# ---------------------------------------------------------------------------------- helpers
def _holder(request: Request) -> ServiceHolder:
    return request.app.state.holder


Holder = Annotated[ServiceHolder, Depends(_holder)]


def _options(svc: RecommendationService, body: S._Options) -> tuple[Options, list]:
    f = body.filters
    notes: list = []
    filters = Filters()
    if f is not None:
        excl, _ = svc.item_internal(f.exclude_item_ids)
        allow = None
        if f.allow_item_ids is not None:
            allow, unknown = svc.item_internal(f.allow_item_ids)
            if unknown:
                notes.append(f"filters.allow_item_ids: unknown items ignored: {unknown[:10]}")
            allow = tuple(allow.tolist())
        filters = Filters(
            tuple(f.categories) if f.categories is not None else None,
            tuple(f.brands) if f.brands is not None else None,
            f.price_min, f.price_max, f.available_only, tuple(excl.tolist()), allow,
        )
    div = body.diversity
    lam = div.lambda_ if isinstance(div, S.DiversityIn) else None
    cap = div.max_per_category if isinstance(div, S.DiversityIn) else None
    on = bool(div) if isinstance(div, bool) else True
    places = body.discovery_positions
    if places is not None and any(p < 0 or p >= body.k for p in places):
        raise ValueError(f"discovery_positions: every place must be in [0, k={body.k}), got {places}")
    places = tuple(places) if places is not None else None
    return Options(body.k, filters, body.exclude_purchased, on, lam, cap, body.explain, places), notes


def _out(ans: Answer, svc: RecommendationService, user_id: Any = None, notes: list | None = None) -> dict:
    items = [{"item_id": i, "score": s} for i, s in zip(ans.items, ans.scores)]
    if ans.reasons is not None:
        for it, r in zip(items, ans.reasons):
            it["reasons"] = r
    msg = "; ".join([m for m in [ans.message, *(notes or [])] if m]) or None
    return {"user_id": user_id, "items": items, "source": ans.source, "user_known": ans.user_known,
            "message": msg, "folded_events": ans.folded_events, "model_version": svc.model_version}


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status, media_type="application/json")


def _check_key(holder: ServiceHolder, x_api_key: str | None, authorization: str | None) -> None:
    key = holder.settings.api_key
    given = x_api_key or (authorization[7:] if authorization and authorization.startswith("Bearer ") else None)
    if not key:
        raise HTTPException(401, "admin routes are disabled: set HOPREC_API_KEY on the server")
    if not given or not secrets.compare_digest(given.encode(), key.encode()):
        raise HTTPException(401, "admin routes need the API key (header X-API-Key or Authorization: Bearer)")


# ---------------------------------------------------------------------------------- routers
health = APIRouter(prefix="/health", tags=["health"])
recs = APIRouter(tags=["recommend"])
admin = APIRouter(prefix="/admin", tags=["admin"])
ops = APIRouter(tags=["ops"])


@health.get("/live")
async def live() -> dict:
    return {"status": "live"}


@health.get("/ready")
async def ready(holder: Holder) -> Response:
    svc = holder.service
    if svc is None:
        if holder.error:
            return _json({"status": "failed", "error": holder.error}, 503)
        return _json({"status": "loading"}, 503)
    return _json({"status": "ready", **svc.describe()})


async def _body(request: Request, model: type[S.BaseModel]) -> Any:
    """Validate the raw body with pydantic-core's JSON parser (faster than FastAPI's route body
    handling); errors become the same 422 as any other validation error."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as e:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False)]
        raise RequestValidationError(errors) from None


_BODIES: list[type[S.BaseModel]] = []


def _schema(model: type[S.BaseModel]) -> dict:
    """OpenAPI request body for routes that read the body themselves (the model and the models
    it uses are added to the document's components by ``create_app``)."""
    _BODIES.append(model)
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _openapi(app: FastAPI):
    def build() -> dict:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            comps = doc.setdefault("components", {}).setdefault("schemas", {})
            for model in _BODIES:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                comps.update(schema.pop("$defs", {}))
                comps[model.__name__] = schema
            app.openapi_schema = doc
        return app.openapi_schema

    return build


@recs.post("/recommend", response_model=S.RecommendOut, openapi_extra=_schema(S.RecommendIn))
async def recommend(request: Request) -> Response:
    body: S.RecommendIn = await _body(request, S.RecommendIn)
    holder: ServiceHolder = request.app.state.holder
    svc = holder.current()
    opts, notes = _options(svc, body)
    ans = svc.recommend(body.user_id, opts, body.item_ids)
    holder.metrics.answered(ans)
    return _json(_out(ans, svc, body.user_id, notes))


@recs.post("/recommend/session", response_model=S.RecommendOut, openapi_extra=_schema(S.SessionIn))
async def recommend_session(request: Request) -> Response:
    body: S.SessionIn = await _body(request, S.SessionIn)
    holder: ServiceHolder = request.app.state.holder
    svc = holder.current()
    opts, notes = _options(svc, body)
    ans = svc.recommend_session(body.item_ids, opts)
    holder.metrics.answered(ans)
    return _json(_out(ans, svc, None, notes))


@recs.post("/recommend/batch", openapi_extra=_schema(S.BatchIn))
async def recommend_batch(request: Request) -> Response:
    body: S.BatchIn = await _body(request, S.BatchIn)
    holder: ServiceHolder = request.app.state.holder
    if len(body.user_ids) > holder.settings.max_batch:
        raise HTTPException(422, f"user_ids: at most {holder.settings.max_batch} users per call")
    svc = holder.current()
    opts, notes = _options(svc, body)
    results = []
    for uid in body.user_ids:
        ans = svc.recommend(uid, opts)
        holder.metrics.answered(ans)
        results.append(_out(ans, svc, uid, notes))
    return _json({"results": results, "model_version": svc.model_version})


@recs.get("/items/{item_id}/similar", response_model=S.RecommendOut)
async def similar(
    item_id: str, holder: Holder,
    kind: Annotated[str, Query(pattern="^(similar|complementary)$")] = "similar",
    k: Annotated[int, Query(ge=1, le=1000)] = 12,
) -> Response:
    svc = holder.current()
    try:
        ans = svc.similar(item_id, kind, Options(k=k))
    except KeyError as e:
        raise HTTPException(404, str(e).strip("'\"")) from None
    holder.metrics.answered(ans)
    return _json(_out(ans, svc))


@recs.post("/events", openapi_extra=_schema(S.EventsIn))
async def events(request: Request) -> Response:
    body: S.EventsIn = await _body(request, S.EventsIn)
    holder: ServiceHolder = request.app.state.holder
    svc = holder.current()
    now = pd.Timestamp.now(tz="UTC")
    evs = []
    for n, e in enumerate(body.events):
        try:
            t = pd.Timestamp(e.time) if e.time else now
        except ValueError:
            raise HTTPException(422, f"events[{n}].time: not an ISO 8601 time: {e.time!r}") from None
        t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        evs.append(Event(str(e.user_id), str(e.item_id), e.kind, t.value, e.quantity))
    seqs = await asyncio.to_thread(holder.store.append, evs)  # durable before we answer
    holder.metrics.events.inc(len(evs))
    svc = holder.service
    svc.sync(holder.store, force=True, overlap=holder.overlap)  # the next /recommend reflects them
    applied = [str(e.item_id).strip() in svc.item_lookup and ev.time_ns >= svc.as_of_ns
               for e, ev in zip(body.events, evs)]
    return _json({"stored": len(seqs), "seqs": seqs, "applied": applied})


@admin.post("/reload")
async def reload(
    holder: Holder, body: S.ReloadIn | None = None,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    _check_key(holder, x_api_key, authorization)
    target = Path(body.model_dir) if body and body.model_dir else None
    if target is not None and not (target / "manifest.json").is_file():
        raise HTTPException(422, f"model_dir: {target} is not a hoprec model directory (no manifest.json)")
    t0 = time.perf_counter()
    svc = await holder.reload(target)
    return _json({"status": "reloaded", "seconds": round(time.perf_counter() - t0, 3), **svc.describe()})


@ops.get("/metrics")
async def metrics(holder: Holder) -> Response:
    return Response(generate_latest(holder.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# ---------------------------------------------------------------------------------- the app
def _field(loc: Sequence) -> str:
    return ".".join(str(x) for x in loc if x != "body") or "body"


def create_app(settings: Settings | None = None, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The service app; ``settings`` default to :func:`get_settings` (environment variables)."""
    settings = settings or get_settings()
    metrics = Metrics()
    holder = ServiceHolder(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # load in the background: /health/live answers at once, /health/ready once loaded
        loading = asyncio.create_task(holder.start())

        def failed(task: asyncio.Task) -> None:
            if not task.cancelled() and task.exception() is not None:
                holder.error = f"{type(task.exception()).__name__}: {task.exception()}"

        loading.add_done_callback(failed)
        yield
        loading.cancel()
        if holder.store is not None:
            holder.store.close()

    app = FastAPI(title="hoprec", summary="Recommendations from a shop's relational database",
                  lifespan=lifespan)
    app.state.holder = holder
    app.openapi = _openapi(app)
    app.dependency_overrides[get_settings] = lambda: settings

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"field": _field(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ctype = request.headers.get("content-type", "")
        if request.method == "POST" and "json" not in ctype:
            errors.insert(0, {"field": "body", "type": "content_type",
                              "msg": f"send a JSON body with Content-Type: application/json (got {ctype or 'none'!r})"})
        summary = "; ".join(f"{e['field']}: {e['msg']}" for e in errors[:5])
        return _json({"error": summary, "detail": errors}, 422)

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> Response:
        return _json({"error": str(exc), "detail": [{"msg": str(exc)}]}, 422)

    for r in (health, recs, admin, ops, *extra_routers):
        app.include_router(r)
    if importlib.util.find_spec("hoprec.serve.ui") is not None:
        from hoprec.serve import ui

        app.include_router(ui.router)
    app.add_middleware(_Guard, max_body=settings.max_body_bytes, metrics=metrics)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory hoprec.serve.app:app_from_env`` (settings from HOPREC_*)."""
    return create_app(Settings())
