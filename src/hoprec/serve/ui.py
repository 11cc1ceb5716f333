"""The web page at ``/ui`` and the read-only routes it needs beside the service's own.

The page (``serve/ui/index.html``, ``app.js``, ``app.css``: static files bundled with the package,
nothing fetched from elsewhere) calls the service's JSON routes (``/recommend``,
``/recommend/session``, ``/items/{id}/similar``, ``/health/ready``) and these:

- ``GET /users/{user_id}/history``: the customer's events (training history plus events folded in
  since), newest last, with each item's title and category;
- ``GET /users/search?q=``: customer ids starting with (then containing) ``q``; with no ``q``, the
  customers with the longest histories, as examples;
- ``GET /items/search?q=``: items whose id, title or category match ``q``, most popular first;
- ``GET /items?ids=A&ids=B``: item cards (title, category, brand, price, availability);
- ``GET /items/facets``: the categories and brands filters accept, with item counts.

Everything reads the :class:`~hoprec.serve.recommender.RecommendationService` the app holds, never
HTTP internals; ids are external at this edge.  The app includes :data:`router` when this module
exists (see :func:`hoprec.serve.app.create_app`).
"""

from __future__ import annotations

import weakref
from importlib import resources
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from hoprec.data.schema import DEFAULT_KIND_WEIGHTS

ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
KIND_BY_WEIGHT: dict[float, str] = {}
for _kind, _w in sorted(DEFAULT_KIND_WEIGHTS.items(), key=lambda kv: kv[0] != "purchase"):
    KIND_BY_WEIGHT.setdefault(_w, _kind)  # weight 1.0 reads as a purchase, not a rating

router = APIRouter(tags=["ui"])
_search_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _service(request: Request):
    return request.app.state.holder.current()


def _asset(name: str) -> bytes:
    return (resources.files("hoprec.serve") / "ui" / name).read_bytes()


# ---------------------------------------------------------------------------------- the page
@router.get("/ui", response_class=HTMLResponse, include_in_schema=False)
@router.get("/ui/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(_asset("index.html"), headers={"Cache-Control": "no-cache"})


@router.get("/ui/assets/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, f"no asset {name!r} (known: {sorted(ASSETS)})")
    return Response(_asset(name), media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})


# ---------------------------------------------------------------------------------- helpers
def _ext(values, i: int) -> Any:
    """An external id as a plain JSON value (numpy scalars unwrapped)."""
    v = values[i]
    return v.item() if isinstance(v, np.generic) else v


def _card(svc, i: int) -> dict[str, Any]:
    cat = svc.catalogue
    card: dict[str, Any] = {"item_id": _ext(svc.item_ext, i), "title": str(cat.titles[i])}
    card["category"] = cat.category_names[cat.category[i]] if cat.category[i] >= 0 else None
    card["brand"] = cat.brand_names[cat.brand[i]] if cat.brand[i] >= 0 else None
    if cat.price is not None and np.isfinite(cat.price[i]):
        card["price"] = float(cat.price[i])
    if cat.available is not None:
        card["available"] = bool(cat.available[i])
    return card


def _lower_index(svc) -> dict[str, Any]:
    """Lower-case search keys of users and items, built once per loaded service."""
    idx = _search_cache.get(svc)
    if idx is None:
        cat = svc.catalogue
        cats = np.array([n.lower() for n in cat.category_names] + [""], dtype=object)
        idx = {
            "users": np.array([str(u).lower() for u in svc.users.external.tolist()], dtype=object),
            "items": np.array([str(x).lower() for x in svc.item_ext.tolist()], dtype=object),
            "titles": np.array([str(t).lower() for t in cat.titles], dtype=object),
            "categories": cats[np.where(cat.category >= 0, cat.category, len(cats) - 1)],
            "n_events": np.diff(svc.data.hist_indptr) if len(svc.data.hist_indptr) else
            np.zeros(len(svc.users), np.int64),
        }
        _search_cache[svc] = idx
    return idx


def _matches(keys: np.ndarray, q: str) -> tuple[np.ndarray, np.ndarray]:
    """``(starts-with mask, contains mask)`` of ``q`` over lower-case ``keys``."""
    s = pd.Series(keys, dtype=object)
    return s.str.startswith(q).to_numpy(bool), s.str.contains(q, regex=False).to_numpy(bool)


Limit = Annotated[int, Query(ge=1, le=200, description="At most this many results.")]


# ---------------------------------------------------------------------------------- users
@router.get("/users/search")
async def user_search(request: Request, q: str = "", limit: Limit = 20) -> dict:
    """Customer ids starting with, then containing, ``q``; no ``q``: the longest histories."""
    svc = _service(request)
    idx = _lower_index(svc)
    q = q.strip().lower()
    if q:
        starts, contains = _matches(idx["users"], q)
        ids = np.concatenate([np.flatnonzero(starts), np.flatnonzero(contains & ~starts)])[:limit]
    else:
        ids = np.lexsort((np.arange(len(idx["n_events"])), -idx["n_events"]))[:limit]
    ext = svc.users.external
    return {"users": [{"user_id": _ext(ext, u), "events": int(idx["n_events"][u]) if u < len(idx["n_events"]) else 0}
                      for u in ids.tolist()]}


@router.get("/users/{user_id}/history")
async def user_history(
    request: Request, user_id: str,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Newest events kept.")] = 500,
) -> dict:
    """The customer's events, oldest first (the newest ``limit``), with item cards' essentials."""
    svc = _service(request)
    u, known = svc.user_internal(user_id)
    items, times, weights, n_new = svc.history(u)
    order = np.argsort(times, kind="stable")[-limit:]
    n_total = len(items)
    first_new = n_total - n_new  # folded events come after the training history
    cat = svc.catalogue
    events = []
    for j in order.tolist():
        i = int(items[j])
        w = float(weights[j])
        events.append({
            "item_id": _ext(svc.item_ext, i),
            "title": str(cat.titles[i]),
            "category": cat.category_names[cat.category[i]] if cat.category[i] >= 0 else None,
            "time": pd.Timestamp(int(times[j]), tz="UTC").isoformat(),
            "kind": KIND_BY_WEIGHT.get(w, "event"), "weight": w, "new": j >= first_new,
        })
    counts: dict[str, int] = {}
    for e in events:
        counts[e["category"] or "(no category)"] = counts.get(e["category"] or "(no category)", 0) + 1
    segment = None
    if u is not None and u < len(svc.data.user_segment) and svc.data.user_segment[u] >= 0:
        segment = f"{svc.data.segment_column} = {svc.data.segment_values[svc.data.user_segment[u]]}"
    return {
        "user_id": user_id, "known": known, "as_of": str(svc.data.as_of), "segment": segment,
        "n_events": n_total, "n_new": n_new, "truncated": n_total > len(events), "events": events,
        "categories": [{"category": c, "count": n} for c, n in sorted(counts.items(), key=lambda kv: -kv[1])],
    }


# ---------------------------------------------------------------------------------- items
@router.get("/items/search")
async def item_search(request: Request, q: str = "", limit: Limit = 20) -> dict:
    """Items whose id, title or category match ``q`` (id matches first), most popular first."""
    svc = _service(request)
    idx = _lower_index(svc)
    q = q.strip().lower()
    pop = np.asarray(svc.popularity, dtype=np.float64)
    if not q:
        ids = np.lexsort((np.arange(len(pop)), -pop))[:limit]
    else:
        exact = idx["items"] == q
        id_start, _ = _matches(idx["items"], q)
        _, in_title = _matches(idx["titles"], q)
        _, in_cat = _matches(idx["categories"], q)
        tier = np.select([exact, id_start, in_title, in_cat], [0, 1, 2, 3], default=4)
        hit = np.flatnonzero(tier < 4)
        ids = hit[np.lexsort((hit, -pop[hit], tier[hit]))][:limit]
    return {"items": [_card(svc, i) for i in ids.tolist()]}


@router.get("/items/facets")
async def item_facets(request: Request) -> dict:
    """The values the category and brand filters accept, with how many items carry each."""
    svc = _service(request)
    cat = svc.catalogue

    def counts(codes: np.ndarray, names: list[str], top: int) -> list[dict]:
        n = np.bincount(codes[codes >= 0], minlength=len(names))
        order = np.lexsort((np.arange(len(names)), -n))[:top]
        return [{"name": names[i], "items": int(n[i])} for i in order.tolist()]

    return {"categories": counts(cat.category, cat.category_names, 500),
            "brands": counts(cat.brand, cat.brand_names, 200),
            "price": cat.price is not None, "available": cat.available is not None,
            "columns": cat.columns}


@router.get("/items")
async def item_cards(
    request: Request,
    ids: Annotated[list[str], Query(max_length=500, description="Item ids (repeat the parameter).")],
) -> dict:
    """Cards of the known ``ids`` (order kept); unknown ids are listed apart."""
    svc = _service(request)
    known, unknown = svc.item_internal(ids)
    return {"items": [_card(svc, i) for i in known.tolist()], "unknown": unknown}
