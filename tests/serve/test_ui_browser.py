"""The /ui page as a person uses it: headless Chromium (Debian's package, through Playwright)
against the real service on a loopback port, plus the page's read-only JSON routes.

Needs ``apt-get install chromium`` (``.ci/run`` does it) and ``pip install 'hoprec[ui]'``;
``HOPREC_CHROMIUM`` points at another Chromium binary.  Screenshots go to the test's tmp folder,
and also to ``$HOPREC_UI_SCREENSHOTS`` when set (how docs/ui.png was made).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.serve.conftest import Server

pytestmark = pytest.mark.slow  # a uvicorn start and a browser start (~5 s alone)


def chromium_path() -> str:
    path = os.environ.get("HOPREC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(f"no Chromium at {path}: install Debian's package (apt-get install chromium; "
                    ".ci/run does) or set HOPREC_CHROMIUM to a Chromium binary")
    return path


@pytest.fixture(scope="module")
def ui_server(model_dirs, tmp_path_factory):
    s = Server(model_dirs["itemknn"], tmp_path_factory.mktemp("ui-events") / "events.sqlite").start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def api(ui_server):
    with httpx.Client(base_url=ui_server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def shop(serve_shop):
    folder = Path(serve_shop).parent
    orders = pd.read_csv(folder / "orders.csv")
    products = pd.read_parquet(folder / "products.parquet")
    return orders, products


@pytest.fixture()
def page(ui_server, tmp_path):
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("the browser test needs Playwright: pip install 'hoprec[ui]'")
    expect.set_options(timeout=30_000)  # a loaded 2-core machine is slow to lay out
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.goto(ui_server.url + "/ui")
        yield pg
        browser.close()
    assert not errors, f"errors in the page: {errors}"


def shoot(pg, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("HOPREC_UI_SCREENSHOTS"):
        out = Path(os.environ["HOPREC_UI_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / path.name)
    return path


# ---------------------------------------------------------------------------------- JSON routes
def test_history_route_returns_the_customers_events(api, shop):
    orders, products = shop
    mine = orders[orders.customer_id == "C001"]
    h = api.get("/users/C001/history", params={"limit": 10_000}).json()
    assert h["known"] and h["n_events"] == len(mine) == len(h["events"])
    times = [e["time"] for e in h["events"]]
    assert times == sorted(times)
    cat_of = dict(zip(products.product_id.astype(str), products.category))
    for e in h["events"]:
        assert e["category"] == cat_of[str(e["item_id"])]
        assert e["kind"] == ("purchase" if e["weight"] > 0 else "return")
    assert sum(c["count"] for c in h["categories"]) == len(mine)
    assert h["segment"].startswith("segment = ")
    short = api.get("/users/C001/history", params={"limit": 5}).json()
    assert short["truncated"] and short["events"] == h["events"][-5:]
    cold = api.get("/users/NOBODY/history").json()
    assert cold == {**cold, "known": False, "n_events": 0, "events": []}


def test_search_and_card_routes(api, shop):
    orders, products = shop
    users = api.get("/users/search", params={"limit": 3}).json()["users"]
    counts = orders.customer_id.value_counts()
    assert [u["events"] for u in users] == sorted(counts.to_numpy().tolist(), reverse=True)[:3]
    found = api.get("/users/search", params={"q": "c00"}).json()["users"]
    assert found and all(str(u["user_id"]).startswith("C00") for u in found)
    items = api.get("/items/search", params={"q": "cat1", "limit": 200}).json()["items"]
    assert {i["category"] for i in items} == {"cat1"} and len(items) == (products.category == "cat1").sum()
    some = [str(x) for x in products.product_id[:3]]
    cards = api.get("/items", params=[("ids", x) for x in [*some, "NOPE"]]).json()
    assert [str(c["item_id"]) for c in cards["items"]] == some and cards["unknown"] == ["NOPE"]
    assert cards["items"][0]["title"] == products.title.iloc[0]
    facets = api.get("/items/facets").json()
    assert sum(c["items"] for c in facets["categories"]) == len(products)
    assert api.get("/ui/assets/secrets.txt").status_code == 404
    html = api.get("/ui")
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    for src in ("/ui/assets/app.js", "/ui/assets/app.css"):  # everything the page loads is ours
        assert src in html.text and api.get(src).status_code == 200
    assert "http://" not in html.text and "https://" not in html.text


# ---------------------------------------------------------------------------------- the page
def test_a_person_explores_a_customer(page, tmp_path):
    from playwright.sync_api import expect

    expect(page.get_by_test_id("model-info")).to_contain_text("model itemknn")
    page.get_by_test_id("user-input").fill("C001")
    page.get_by_test_id("user-go").click()
    base = page.get_by_test_id("recs-base").get_by_test_id("rec-item")
    expect(base).to_have_count(10)
    expect(page.get_by_test_id("source-badge")).to_contain_text("personal")
    expect(page.get_by_test_id("recs-base").get_by_test_id("reason").first).to_contain_text("bought")
    expect(page.get_by_test_id("history-lane").first).to_be_visible()
    shoot(page, tmp_path, "ui-customer")

    # a per-category cap changes the list: items new to it are marked
    page.locator("#opt-cap").fill("2")
    page.locator("#opt-cap").dispatch_event("change")
    opts = page.get_by_test_id("recs-opts")
    expect(opts.locator(".move.new").first).to_be_visible()
    chips = opts.locator(".chip").all_inner_texts()
    assert max(chips.count(c) for c in set(chips)) <= 2
    # a category filter keeps only that category
    page.locator("#opt-cap").fill("")
    page.get_by_test_id("category-filter").select_option(["cat1 (10)"])
    expect(opts.locator(".chip").first).to_have_text("cat1")
    assert set(opts.locator(".chip").all_inner_texts()) == {"cat1"}

    # a product's similar and complementary items
    base.first.get_by_test_id("item-link").click()
    drawer = page.get_by_test_id("item-drawer")
    expect(drawer).to_be_visible()
    expect(page.get_by_test_id("similar-list").get_by_test_id("rec-item").first).to_be_visible()
    expect(page.get_by_test_id("complementary-list").get_by_test_id("rec-item").first).to_be_visible()
    shoot(page, tmp_path, "ui-item")


def test_session_playground_updates_as_items_are_added(page, tmp_path):
    from playwright.sync_api import expect

    page.get_by_test_id("product-search").fill("cat2")
    results = page.get_by_test_id("product-result")
    expect(results.first).to_contain_text("cat2")
    results.nth(0).get_by_test_id("product-add").click()
    recs = page.get_by_test_id("session-recs").get_by_test_id("rec-item")
    expect(recs.first).to_be_visible()
    expect(page.locator("#session-badge")).to_contain_text("session")
    first = [recs.nth(i).get_attribute("data-item") for i in range(recs.count())]
    # add the top recommendation: it leaves the list (already in the session) and the list moves
    page.get_by_test_id("session-recs").get_by_test_id("rec-add").first.click()
    expect(page.get_by_test_id("session-chip")).to_have_count(2)
    expect(page.get_by_test_id("session-recs").locator(f"[data-item='{first[0]}']")).to_have_count(0)
    second = [recs.nth(i).get_attribute("data-item") for i in range(recs.count())]
    assert second != first
    shoot(page, tmp_path, "ui-session")


@pytest.mark.parametrize(("user", "source"), [("C999", "segment"), ("brand-new-visitor", "popular")])
def test_cold_customers_show_the_fallback_that_served_them(page, user, source):
    from playwright.sync_api import expect

    page.get_by_test_id("user-input").fill(user)
    page.get_by_test_id("user-go").click()
    badge = page.get_by_test_id("source-badge").locator(".badge")
    expect(badge).to_have_attribute("data-source", source)
    expect(badge).to_have_class("badge fallback")
    expect(page.get_by_test_id("recs-base").get_by_test_id("rec-item")).to_have_count(10)
    expect(page.get_by_test_id("timeline")).to_contain_text("cold customer")
    expect(page.get_by_test_id("user-summary")).to_contain_text("not in the model" if source == "popular" else user)
