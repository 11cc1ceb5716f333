"""Graphs of the fake shop, and of a richer variant with every kind of table the builder reads.

The rich shop adds to the fake one: a ``store_id`` foreign key on order lines (a derived
``stores`` table), a ``suppliers`` table that products point at, a ``promotions`` link table
(customer, product, time; no key, no event), product 998 that was only ever returned, product
999 that nobody touched, and a product without a price.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hoprec.data.database import load_database
from hoprec.data.fake import QUERY, make_fake_shop
from hoprec.data.schema import load_schema
from hoprec.graph import GraphConfig, build_graph
from hoprec.task.task import Task

RICH_SCHEMA = """\
name: richshop
tables:
  customers:
    source: {path: customers.csv}
    primary_key: customer_id
    columns: {segment: categorical, signup: timestamp}
  products:
    source: {path: products.parquet}
    primary_key: product_id
    foreign_keys: {supplier_id: suppliers}
    columns: {category: categorical, brand: categorical, price: numerical, title: text}
  suppliers:
    source: {path: suppliers.csv}
    primary_key: supplier_id
    columns: {country: categorical, rating: numerical}
  stores:
    source: {derived: true}
    primary_key: store_id
  orders:
    source: {path: orders.csv}
    time_column: ts
    foreign_keys: {customer_id: customers, product_id: products, store_id: stores}
    columns: {quantity: numerical, order_id: id, is_return: numerical}
    event:
      kind: purchase
      kind_when: {return: "is_return = 1"}
      quantity_column: quantity
      basket_column: order_id
  promotions:
    source: {path: promotions.csv}
    time_column: shown
    foreign_keys: {customer_id: customers, product_id: products}
"""

RETURN_ONLY, UNTOUCHED = 998, 999


def _cutoff_of(task, db):
    return task.cutoffs(db)["test"]


@pytest.fixture(scope="session")
def fake_task(fake_shop, fake_query):
    return Task.from_query(load_schema(fake_shop), fake_query)


@pytest.fixture(scope="session")
def fake_dataset(fake_task, fake_db):
    return fake_task.build_dataset(fake_db.snapshot(_cutoff_of(fake_task, fake_db)))


@pytest.fixture(scope="session")
def fake_graph(fake_dataset, fake_task):
    return build_graph(fake_dataset, fake_task)


@pytest.fixture(scope="session")
def rich_shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("richshop")
    make_fake_shop(folder)
    orders = pd.read_csv(folder / "orders.csv")
    orders["store_id"] = [f"S{int(c[1:]) % 3}" for c in orders.customer_id]
    extra = pd.DataFrame([
        ("R99998", "C001", RETURN_ONLY, "2024-01-20 10:00:00", 1, 1, "S1"),
    ], columns=list(orders.columns))
    pd.concat([orders, extra]).to_csv(folder / "orders.csv", index=False)
    prod = pd.read_parquet(folder / "products.parquet")
    prod["supplier_id"] = [f"SUP{i % 3}" for i in range(len(prod))]
    prod.loc[1, "price"] = np.nan
    more = pd.DataFrame({
        "product_id": [RETURN_ONLY, UNTOUCHED], "category": ["cat1", "cat2"],
        "brand": ["brand0", "brand2"], "price": [5.0, 9.99],
        "title": ["returned thing", "lonely product in cat2"], "supplier_id": ["SUP0", "SUP1"],
    })
    pd.concat([prod, more], ignore_index=True).to_parquet(folder / "products.parquet", index=False)
    pd.DataFrame({"supplier_id": ["SUP0", "SUP1", "SUP2"], "country": ["uk", "fr", None],
                  "rating": [4.5, 3.0, 5.0]}).to_csv(folder / "suppliers.csv", index=False)
    pd.DataFrame({
        "customer_id": ["C000", "C000", "C002", "C003", "C003"],
        "product_id": [101, 101, 105, 110, UNTOUCHED],
        "shown": ["2024-01-05", "2024-01-09", "2024-02-01", "2024-02-10", "2024-05-01"],
    }).to_csv(folder / "promotions.csv", index=False)
    (folder / "schema.yaml").write_text(RICH_SCHEMA)
    return folder / "schema.yaml"


@pytest.fixture(scope="session")
def rich_db(rich_shop):
    return load_database(load_schema(rich_shop))


@pytest.fixture(scope="session")
def rich_task(rich_shop):
    return Task.from_query(load_schema(rich_shop), QUERY)


@pytest.fixture(scope="session")
def rich_dataset(rich_task, rich_db):
    return rich_task.build_dataset(rich_db.snapshot(_cutoff_of(rich_task, rich_db)))


@pytest.fixture(scope="session")
def rich_graph(rich_dataset, rich_task):
    return build_graph(rich_dataset, rich_task, GraphConfig())
