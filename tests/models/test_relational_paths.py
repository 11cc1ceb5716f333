"""Meta-path signals through the shop's other tables (a mailer -> its products), in the hybrid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hoprec.data.database import load_database
from hoprec.data.fake import SCHEMA, make_fake_shop
from hoprec.data.schema import load_schema
from hoprec.models.base import Recommender
from hoprec.models.registry import create_model
from hoprec.models.relational_paths import PathSignals
from hoprec.task.task import Task

MAILERS = """\
  mailers:
    source: {path: mailers.csv}
    primary_key: mailer_id
    time_column: sent
  mailer_customers:
    source: {path: mailer_customers.csv}
    time_column: sent
    foreign_keys: {mailer_id: mailers, customer_id: customers}
  mailer_products:
    source: {path: mailer_products.csv}
    time_column: sent
    foreign_keys: {mailer_id: mailers, product_id: products}
"""
QUERY = "PREDICT LIST_DISTINCT(orders.product_id, 0, 7, days) RANK TOP 5 FOR EACH customers.customer_id"


@pytest.fixture(scope="module")
def mailer_shop(tmp_path_factory):
    """The fake shop plus a weekly mailer: half the customers get it a day before the week, and
    most of those buy the mailer's product (never bought before) that week.  Only the
    customer -> mailer -> product path says which customers and which product."""
    folder = tmp_path_factory.mktemp("mailershop")
    schema_path = make_fake_shop(folder, n_customers=80, n_products=60, days=70)
    schema_path.write_text(SCHEMA + MAILERS)
    orders = pd.read_csv(folder / "orders.csv")
    customers = sorted(orders.customer_id.unique())
    rng = np.random.default_rng(1)
    start = pd.Timestamp("2024-01-01")
    mailers, mc, mp, extra = [], [], [], []
    for week in range(4, 10):  # week w's label window: [start + 7w, start + 7w + 7)
        wstart = start + pd.Timedelta(days=7 * week)
        sent = wstart - pd.Timedelta(days=1)
        product = 160 + week  # products 160.. are new to everyone (the fake shop has 100..159)
        mailers.append((f"M{week}", sent))
        mp.append((f"M{week}", product, sent))
        for c in rng.choice(customers, size=len(customers) // 2, replace=False):
            mc.append((f"M{week}", c, sent))
            if rng.random() < 0.8:
                extra.append((f"X{week}{c}", c, product, wstart + pd.Timedelta(days=int(rng.integers(0, 6))), 1, 0))
    fmt = "%Y-%m-%d %H:%M:%S"
    pd.DataFrame(mailers, columns=["mailer_id", "sent"]).assign(sent=lambda d: d.sent.dt.strftime(fmt)).to_csv(folder / "mailers.csv", index=False)
    pd.DataFrame(mc, columns=["mailer_id", "customer_id", "sent"]).assign(sent=lambda d: d.sent.dt.strftime(fmt)).to_csv(folder / "mailer_customers.csv", index=False)
    pd.DataFrame(mp, columns=["mailer_id", "product_id", "sent"]).assign(sent=lambda d: d.sent.dt.strftime(fmt)).to_csv(folder / "mailer_products.csv", index=False)
    prods = pd.read_parquet(folder / "products.parquet")
    new = pd.DataFrame({"product_id": np.arange(160, 170), "category": "cat9", "brand": "brandX",
                        "price": 9.0, "title": "mailer product"})
    pd.concat([prods, new]).to_parquet(folder / "products.parquet", index=False)
    ex = pd.DataFrame(extra, columns=orders.columns)
    ex["ts"] = pd.to_datetime(ex.ts).dt.strftime(fmt)
    pd.concat([orders, ex]).to_csv(folder / "orders.csv", index=False)
    schema = load_schema(schema_path)
    db = load_database(schema)
    task = Task.from_query(schema, QUERY)
    cutoff = start + pd.Timedelta(days=63)  # week 9's window is the test window
    return task, db, cutoff, pd.DataFrame(mc, columns=["mailer_id", "customer_id", "sent"])


def test_paths_are_found_from_the_schema_and_respect_time(mailer_shop):
    task, db, cutoff, _ = mailer_shop
    ds = task.build_dataset(db.snapshot(cutoff))
    paths = PathSignals.from_dataset(ds)
    assert paths.names == ["path_mailer_customers__mailer_products"]
    # at the start of week 5 the mailers of weeks 4 and 5 are known, week 6's is not
    a, b = paths.at(np.datetime64(pd.Timestamp("2024-01-01") + pd.Timedelta(days=35)))[0]
    reached = set(np.flatnonzero(np.asarray(b.sum(axis=0)).ravel() > 0))
    assert reached == set(ds.items.to_internal([164, 165]).tolist())
    assert np.allclose(np.asarray(a.sum(axis=1)).ravel()[np.asarray(a.sum(axis=1)).ravel() > 0], 1.0)


@pytest.mark.slow
def test_hybrid_recommends_the_mailer_product_to_the_customers_it_reached(mailer_shop, tmp_path):
    task, db, cutoff, mc = mailer_shop
    ds = task.build_dataset(db.snapshot(cutoff))
    params = {"n_windows": 4, "n_estimators": 50, "min_child_samples": 5, "horizon_days": 7}
    target = int(ds.items.to_internal([169])[0])
    sent = mc[mc.mailer_id == "M9"].customer_id.to_numpy()
    users = ds.users.to_internal(sent)
    others = np.setdiff1d(np.arange(ds.n_users), users)

    def share(model) -> tuple[float, float]:
        hit = (model.recommend(np.arange(ds.n_users), 5).items == target).any(axis=1)
        return hit[users].mean(), hit[others].mean()

    with_paths = create_model("hybrid", relational_paths=True, **params).fit(ds)
    assert "path_mailer_customers__mailer_products" in with_paths.feature_names()
    reached, not_reached = share(with_paths)
    assert reached > 0.8 and not_reached < 0.2
    without = create_model("hybrid", **params).fit(ds)
    assert share(without)[0] < 0.2  # nothing else points at it
    with_paths.save(tmp_path / "h")
    loaded = Recommender.load(tmp_path / "h")
    np.testing.assert_array_equal(loaded.recommend(users, 5).items, with_paths.recommend(users, 5).items)
    # the table ablation: leaving the mailers out removes the path
    ablated = create_model("hybrid", relational_paths=True, exclude_tables=["mailer_customers"], **params).fit(ds)
    assert not any(n.startswith("path_") for n in ablated.feature_names())
