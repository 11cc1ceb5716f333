"""A tiny, deterministic shop database for tests, examples and docs.

``make_fake_shop(folder)`` writes ``customers.csv``, ``products.parquet``, ``orders.csv`` (one row
per order line, with a basket id and returns) and ``schema.yaml``.  Customers favour one category
and re-buy their own staples, so both "buy it again" and co-occurrence carry signal, and the
right answers are known in spirit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SCHEMA = """\
name: fakeshop
recommend:
  exclude_purchased: false
  diversity_attribute: products.category
  sparse_history_max: 3
tables:
  customers:
    source: {path: customers.csv}
    primary_key: customer_id
    columns: {segment: categorical, signup: timestamp}
  products:
    source: {path: products.parquet}
    primary_key: product_id
    columns: {category: categorical, brand: categorical, price: numerical, title: text}
  orders:
    source: {path: orders.csv}
    time_column: ts
    foreign_keys: {customer_id: customers, product_id: products}
    columns: {quantity: numerical, order_id: id, is_return: numerical}
    event:
      kind: purchase
      kind_when: {return: "is_return = 1"}
      quantity_column: quantity
      basket_column: order_id
"""

QUERY = (
    "PREDICT LIST_DISTINCT(orders.product_id, 0, 7, days) RANK TOP 5 FOR EACH customers.customer_id"
)


def make_fake_shop(
    folder: str | Path, n_customers: int = 60, n_products: int = 40, n_categories: int = 4,
    days: int = 70, seed: int = 0,
) -> Path:
    """Write the fake shop into ``folder`` and return the schema path."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start = pd.Timestamp("2024-01-01")
    cust = pd.DataFrame({
        "customer_id": [f"C{i:03d}" for i in range(n_customers)],
        "segment": rng.choice(["retail", "pro"], n_customers),
        "signup": [str((start - pd.Timedelta(days=int(d))).date()) for d in rng.integers(0, 300, n_customers)],
    })
    cats = np.arange(n_products) % n_categories
    prod = pd.DataFrame({
        "product_id": np.arange(100, 100 + n_products),
        "category": [f"cat{c}" for c in cats],
        "brand": [f"brand{b}" for b in rng.integers(0, 6, n_products)],
        "price": np.round(rng.uniform(1, 50, n_products), 2),
        "title": [f"product {i} in cat{c}" for i, c in enumerate(cats)],
    })
    rows = []
    order = 0
    for ci in range(n_customers):
        fav = rng.integers(0, n_categories)
        pool = np.flatnonzero(cats == fav)
        staples = rng.choice(pool, size=min(3, len(pool)), replace=False)
        day = int(rng.integers(0, 10))
        while day < days:
            ts = start + pd.Timedelta(days=day, hours=int(rng.integers(8, 20)))
            items = set(staples[rng.random(len(staples)) < 0.6].tolist())
            items |= set(rng.choice(pool, size=int(rng.integers(1, 3))).tolist())
            if rng.random() < 0.2:
                items.add(int(rng.integers(0, n_products)))
            for it in sorted(items):
                rows.append((f"O{order:05d}", cust.customer_id[ci], 100 + it, ts, int(rng.integers(1, 4)), 0))
            if rng.random() < 0.05 and items:
                it = sorted(items)[0]
                rows.append((f"R{order:05d}", cust.customer_id[ci], 100 + it, ts + pd.Timedelta(days=2), 1, 1))
            order += 1
            day += int(rng.integers(3, 9))
    orders = pd.DataFrame(rows, columns=["order_id", "customer_id", "product_id", "ts", "quantity", "is_return"])
    orders["ts"] = orders["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
    cust.to_csv(folder / "customers.csv", index=False)
    prod.to_parquet(folder / "products.parquet", index=False)
    orders.to_csv(folder / "orders.csv", index=False)
    (folder / "schema.yaml").write_text(SCHEMA)
    return folder / "schema.yaml"
