"""Every route of the real service (uvicorn in a subprocess) against a repeat model dir."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.serve.conftest import API_KEY

pytestmark = pytest.mark.slow  # one uvicorn start (~3 s) for the module


def post(client, path, body, headers=None):
    headers = {"content-type": "application/json", **(headers or {})}
    return client.post(path, content=json.dumps(body), headers=headers)


def products(serve_shop):
    return pd.read_parquet(serve_shop.parent / "products.parquet").set_index("product_id")


def test_health(client):
    assert client.get("/health/live").json() == {"status": "live"}
    r = client.get("/health/ready")
    assert r.status_code == 200 and r.json()["model"] == "repeat" and r.json()["serving_data"]


def test_recommend_known_user_is_personal_and_sized(client):
    r = post(client, "/recommend", {"user_id": "C001", "k": 7})
    assert r.status_code == 200
    body = r.json()
    assert body["source"] == "model" and body["user_known"] and len(body["items"]) == 7
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert len({it["item_id"] for it in body["items"]}) == 7


def test_filters(client, serve_shop):
    p = products(serve_shop)
    body = {"user_id": "C002", "k": 5, "filters": {"categories": ["cat1"], "price_max": 30.0,
                                                   "exclude_item_ids": [101]}}
    items = [it["item_id"] for it in post(client, "/recommend", body).json()["items"]]
    assert items and 101 not in items
    assert all(p.loc[i, "category"] == "cat1" and p.loc[i, "price"] <= 30 for i in items)
    brand = p["brand"].iloc[0]
    items = [it["item_id"] for it in post(client, "/recommend", {
        "user_id": "C002", "k": 20, "filters": {"brands": [brand], "price_min": 10}}).json()["items"]]
    assert set(items) == set(p.index[(p.brand == brand) & (p.price >= 10)])
    allow = [105, 110, 115]
    items = [it["item_id"] for it in post(client, "/recommend", {
        "user_id": "C002", "k": 10, "filters": {"allow_item_ids": allow}}).json()["items"]]
    assert sorted(items) == allow


def test_exclude_purchased_and_diversity(client, serve_shop):
    own = post(client, "/recommend", {"user_id": "C003", "k": 40}).json()["items"]
    top = [it["item_id"] for it in own[:3]]
    fresh = post(client, "/recommend", {"user_id": "C003", "k": 5, "exclude_purchased": True}).json()
    assert not set(top) & {it["item_id"] for it in fresh["items"]}
    p = products(serve_shop)
    plain = post(client, "/recommend", {"user_id": "C003", "k": 8}).json()["items"]
    div = post(client, "/recommend", {"user_id": "C003", "k": 8, "diversity": {"lambda": 0.3}}).json()["items"]
    ncat = lambda items: p.loc[[it["item_id"] for it in items], "category"].nunique()  # noqa: E731
    assert ncat(div) > ncat(plain)
    capped = post(client, "/recommend", {"user_id": "C003", "k": 8,
                                         "diversity": {"lambda": 1.0, "max_per_category": 2}}).json()["items"]
    assert p.loc[[it["item_id"] for it in capped], "category"].value_counts().max() <= 2


def test_reasons_name_the_customers_items(client):
    body = post(client, "/recommend", {"user_id": "C004", "k": 5, "explain": True}).json()
    for it in body["items"]:
        rs = it["reasons"]
        assert 1 <= len(rs) <= 3 and all(r["text"] and 0 < r["attribution"] <= 1 for r in rs)
    texts = [r["text"] for it in body["items"] for r in it["reasons"]]
    assert any(t.startswith("bought with product") and "which you bought" in t for t in texts)


def test_cold_start_chain(client):
    r = post(client, "/recommend", {"user_id": "nobody", "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["source"] == "popular" and not body["user_known"] and "not in the model" in body["message"]
    seg = post(client, "/recommend", {"user_id": "C999", "k": 5}).json()
    assert seg["source"] == "segment"
    sess = post(client, "/recommend", {"user_id": "nobody2", "k": 5, "item_ids": [101, 105]}).json()
    assert sess["source"] == "session"


def test_session_batch_and_similar(client):
    r = post(client, "/recommend/session", {"item_ids": [101, 105, "nope"], "k": 4, "explain": True}).json()
    assert r["source"] == "session" and len(r["items"]) == 4 and "nope" in r["message"]
    assert not {101, 105} & {it["item_id"] for it in r["items"]}
    b = post(client, "/recommend/batch", {"user_ids": ["C001", "C002", "ghost"], "k": 3}).json()
    assert [x["user_id"] for x in b["results"]] == ["C001", "C002", "ghost"]
    assert [x["source"] for x in b["results"]] == ["model", "model", "popular"]
    assert post(client, "/recommend/batch", {"user_ids": [f"u{i}" for i in range(1001)]}).status_code == 422
    for kind in ("similar", "complementary"):
        s = client.get("/items/101/similar", params={"kind": kind, "k": 3}).json()
        assert len(s["items"]) == 3 and 101 not in [it["item_id"] for it in s["items"]]
    assert client.get("/items/101/similar", params={"kind": "complementary"}).json()["source"] == "bought_after"
    assert client.get("/items/999999/similar").status_code == 404
    assert client.get("/items/101/similar", params={"kind": "nonsense"}).status_code == 422


def test_events_are_reflected_for_known_and_new_users(client):
    before = [it["item_id"] for it in post(client, "/recommend", {"user_id": "C005", "k": 3}).json()["items"]]
    target = next(i for i in range(100, 140) if i not in before)
    ack = post(client, "/events", {"events": [{"user_id": "C005", "item_id": target, "kind": "purchase"},
                                              {"user_id": "C005", "item_id": target, "kind": "purchase"}]})
    assert ack.status_code == 200 and ack.json()["stored"] == 2 and ack.json()["applied"] == [True, True]
    after = post(client, "/recommend", {"user_id": "C005", "k": 3}).json()
    assert after["items"][0]["item_id"] == target and after["folded_events"] == 2
    post(client, "/events", {"events": [{"user_id": "brand-new", "item_id": 117, "kind": "add_to_cart"}]})
    new = post(client, "/recommend", {"user_id": "brand-new", "k": 3}).json()
    assert not new["user_known"] and new["items"][0]["item_id"] == 117 and new["folded_events"] == 1


def test_discovery_places_through_http(client):
    plain = [it["item_id"] for it in post(client, "/recommend", {"user_id": "C002", "k": 6}).json()["items"]]
    body = post(client, "/recommend", {"user_id": "C002", "k": 6, "discovery_positions": [4, 5]}).json()
    mixed = [it["item_id"] for it in body["items"]]
    assert body["source"] == "model" and len(set(mixed)) == 6
    assert mixed[:4] == [x for x in plain if x not in mixed[4:]][:4]
    off = post(client, "/recommend", {"user_id": "C002", "k": 6, "discovery_positions": []}).json()
    assert [it["item_id"] for it in off["items"]] == plain


def test_bad_input(client):
    def err(body, status=422, path="/recommend"):
        r = post(client, path, body)
        assert r.status_code == status, r.text
        return r.json()

    assert "surprise" in err({"user_id": "C001", "surprise": 1})["error"]
    assert "k" in err({"user_id": "C001", "k": 0})["error"]
    assert "k" in err({"user_id": "C001", "k": 1001})["error"]
    assert "filters.price_min" in err({"user_id": "C001", "filters": {"price_min": -1}})["error"]
    assert "discovery_positions" in err({"user_id": "C001", "k": 4, "discovery_positions": [4]})["error"]
    assert "cat9" in err({"user_id": "C001", "filters": {"categories": ["cat9"]}})["error"]
    assert "events.0.kind" in err({"events": [{"user_id": "a", "item_id": 1, "kind": "hug"}]}, path="/events")["error"]
    r = client.post("/recommend", content=b'{"user_id": "C001", "k": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]
    r = client.post("/recommend", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"X-API-Key": "wrong"}).status_code == 401


def test_reload_and_metrics(client):
    r = client.post("/admin/reload", headers={"X-API-Key": API_KEY})
    assert r.status_code == 200 and r.json()["status"] == "reloaded"
    text = client.get("/metrics").text
    for needle in ('hoprec_requests_total{route="/recommend",status="200"}',
                   'hoprec_request_seconds_bucket{le="0.005",route="/recommend"}',
                   'hoprec_cache_total{result="hit"}', 'hoprec_served_total{source="popular"}',
                   'hoprec_model_info{as_of=', 'hoprec_reloads_total{result="ok"} 1.0'):
        assert needle in text, needle


def test_openapi_documents_the_bodies(client):
    doc = client.get("/openapi.json").json()
    assert doc["paths"]["/recommend"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RecommendIn"}
    assert "user_id" in doc["components"]["schemas"]["RecommendIn"]["properties"]
    assert "FiltersIn" in doc["components"]["schemas"]
