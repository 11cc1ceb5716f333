"""A generator of realistic relational shops at any size, streamed to Parquet.

``generate_shop(folder, scale=1.0)`` writes ``customers.parquet``, ``products.parquet``,
``lines.parquet`` (one row per product in a basket) and ``schema.yaml`` beside them, which
``hoprec schema check`` accepts and ``hoprec evaluate`` reads with :data:`QUERY`.  The same
``(scale, seed)`` always gives byte-identical data.

Sizes (:func:`shop_sizes`; ``s`` = scale, scale 1 is about The Complete Journey's 1.5M lines):

============  ========================  =====  =======  ========
what          formula                   1x     10x      100x
============  ========================  =====  =======  ========
customers     2,500 s                   2,500  25,000   250,000
products      20,000 s ** 0.5           20,000 63,246   200,000
stores        40 s ** 0.5               40     126      400
categories    12 departments x 8 categories x 4 subcategories (fixed: catalogue trees do not
              grow with traffic)
lines         about 600 per customer    1.5M   15M      150M
============  ========================  =====  =======  ========

How customers behave (every knob is a module constant below):

- **Popularity skew**: each product has a Zipf weight ``1 / rank ** ZIPF_EXPONENT`` over a random
  ranking of the whole catalogue.
- **Category tree and brands**: department -> category -> subcategory; every brand belongs to one
  department; prices are log-normal around a per-category level.
- **Repeat buying**: every customer has ``STAPLES`` staple products from their favourite
  categories and takes a line from them with a personal probability (mean 0.3).
- **Exploration**: other lines pick a category (the customer's favourites with probability
  ``FAVOURITE_SHARE``, else the shop-wide mix of that week), then a product by Zipf weight among
  the products already launched.
- **Seasonal drift**: each category's share of the shop-wide mix follows a yearly sine with its
  own phase and amplitude, so what sells drifts across the year.
- **New products**: ``NEW_PRODUCT_SHARE`` of the catalogue launches during the period (the
  products table's time column), never sold before its launch.
- **New customers**: a customer's first basket is at the latest of the period's start and their
  signup date; a fifth sign up during the period.

Memory: the catalogue and the customers are held (small); lines are generated ``chunk_customers``
customers at a time and appended to ``lines.parquet`` as one row group per chunk, so peak memory
does not grow with the number of lines.  Files are written under temporary names and renamed
when complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

START = pd.Timestamp("2023-01-01")
DAYS = 365
N_DEPARTMENTS, N_CATEGORIES, N_SUBCATEGORIES = 12, 8, 4  # per parent
ZIPF_EXPONENT = 1.05
STAPLES = 30
FAVOURITES = 3
FAVOURITE_SHARE = 0.6
NEW_PRODUCT_SHARE = 0.25
LINES_PER_CUSTOMER = 600  # measured: about 600 distinct-product lines per customer
BASKETS_PER_YEAR = 79  # mean over customers active the whole year (1x: about 1.5M lines)
BASKET_SIZE_MEAN = 9.5  # before merging repeated products of one basket (about 7.5 after)
SEGMENTS = ("budget", "family", "premium", "single", "senior")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
REGIONS = ("north", "south", "east", "west", "central")

#: The default-style query for a generated shop.
QUERY = "PREDICT LIST_DISTINCT(lines.product_id, 0, 30, days) RANK TOP 12 FOR EACH customers.customer_id"

SCHEMA = """\
# A generated shop (hoprec.data.generate): scale {scale}, seed {seed}, {days} days from {start}.
# Query: {query}
name: {name}
description: Generated shop at scale {scale} (seed {seed}).
recommend:
  exclude_purchased: false
  diversity_attribute: products.department
  sparse_history_max: 20
tables:
  lines:
    description: One row per product in a basket.
    source: {{path: lines.parquet}}
    time_column: ts
    foreign_keys: {{customer_id: customers, product_id: products, store_id: stores, order_id: orders}}
    columns: {{quantity: numerical, unit_price: numerical}}
    event: {{kind: purchase, quantity_column: quantity, basket_column: order_id}}
  customers:
    source: {{path: customers.parquet}}
    primary_key: customer_id
    columns: {{segment: categorical, age_band: categorical, region: categorical, signup: timestamp}}
  products:
    description: Known from its launch; a fifth of the catalogue launches during the period.
    source: {{path: products.parquet}}
    primary_key: product_id
    time_column: launched
    columns: {{department: categorical, category: categorical, subcategory: categorical, brand: categorical, price: numerical}}
  stores: {{source: {{derived: true}}, primary_key: store_id}}
  orders: {{source: {{derived: true}}, primary_key: order_id}}
"""

LINE_SCHEMA = pa.schema([
    ("order_id", pa.int64()),
    ("customer_id", pa.int64()),
    ("product_id", pa.int64()),
    ("store_id", pa.int32()),
    ("ts", pa.timestamp("us")),
    ("quantity", pa.int16()),
    ("unit_price", pa.float32()),
])
CUSTOMER_ID0, PRODUCT_ID0, STORE_ID0 = 1_000_000, 5_000_000, 100


@dataclass(frozen=True)
class ShopSizes:
    customers: int
    products: int
    stores: int
    lines_expected: int

    @property
    def categories(self) -> int:
        return N_DEPARTMENTS * N_CATEGORIES


def shop_sizes(scale: float) -> ShopSizes:
    """Table sizes at ``scale`` (see the module docstring)."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    customers = max(20, round(2_500 * scale))
    products = max(N_DEPARTMENTS * N_CATEGORIES * 2, round(20_000 * scale**0.5))
    stores = max(2, round(40 * scale**0.5))
    return ShopSizes(customers, products, stores, customers * LINES_PER_CUSTOMER)


@dataclass
class _Catalogue:
    category: np.ndarray  # per product, 0..C-1 (department = category // N_CATEGORIES)
    launch_day: np.ndarray  # float days since START (negative: before the period)
    price: np.ndarray
    weight: np.ndarray  # Zipf popularity weight per product
    # products sorted by (category, launch): lookups for "a product of category c launched by t"
    order: np.ndarray
    keys: np.ndarray  # category * 10_000 + launch_day, sorted
    cum: np.ndarray  # cumulative Zipf weight along `order`
    cat_start: np.ndarray  # first position of each category in `order`
    old_by_cat: list[np.ndarray]  # products launched before the period, per category


def _catalogue(rng: np.random.Generator, sizes: ShopSizes, folder: Path) -> _Catalogue:
    n = sizes.products
    n_cat = sizes.categories
    category = np.arange(n) % n_cat  # every category has products
    category = category[rng.permutation(n)]
    first = np.unique(category, return_index=True)[1]  # one old product per category at least
    launch = np.where(rng.random(n) < NEW_PRODUCT_SHARE, rng.uniform(0, DAYS, n),
                      -rng.uniform(1, 3 * DAYS, n))
    launch[first] = -rng.uniform(1, 3 * DAYS, len(first))
    rank = rng.permutation(n) + 1
    weight = 1.0 / rank.astype(np.float64) ** ZIPF_EXPONENT
    cat_level = rng.lognormal(1.0, 0.6, n_cat)
    price = np.round(cat_level[category] * rng.lognormal(0.0, 0.35, n), 2).astype(np.float32)
    dept = category // N_CATEGORIES
    sub = category * N_SUBCATEGORIES + rng.integers(0, N_SUBCATEGORIES, n)
    n_brands = max(N_DEPARTMENTS, n // 25)
    brand_dept = np.arange(n_brands) % N_DEPARTMENTS
    brands_of = [np.flatnonzero(brand_dept == d) for d in range(N_DEPARTMENTS)]
    brand = np.array([brands_of[d][i % len(brands_of[d])] for d, i in
                      zip(dept, rng.integers(0, 1 << 30, n))])
    launched = START + pd.to_timedelta(np.round(launch * 86_400), unit="s")
    products = pd.DataFrame({
        "product_id": PRODUCT_ID0 + np.arange(n, dtype=np.int64),
        "department": [f"D{d:02d}" for d in dept],
        "category": [f"D{c // N_CATEGORIES:02d}-C{c % N_CATEGORIES}" for c in category],
        "subcategory": [f"D{c // N_CATEGORIES:02d}-C{c % N_CATEGORIES}-S{s % N_SUBCATEGORIES}"
                        for c, s in zip(category, sub)],
        "brand": [f"B{b:05d}" for b in brand],
        "price": price,
        "launched": launched.astype("datetime64[us]"),
    })
    _write_frame(products, folder / "products.parquet")
    order = np.lexsort((launch, category))
    keys = category[order] * 10_000.0 + launch[order]
    cum = np.cumsum(weight[order])
    cat_start = np.searchsorted(category[order], np.arange(n_cat))
    old_by_cat = [np.flatnonzero((category == c) & (launch < 0)) for c in range(n_cat)]
    return _Catalogue(category, launch, price, weight, order, keys, cum, cat_start, old_by_cat)


def _write_frame(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)
    os.replace(tmp, path)


def _seasonal_mix(rng: np.random.Generator, n_cat: int) -> np.ndarray:
    """Cumulative shop-wide category mix per week, shape ``(weeks, n_cat)``, rows end at 1."""
    weeks = DAYS // 7 + 1
    base = rng.gamma(1.0, 1.0, n_cat)
    phase = rng.uniform(0, 2 * np.pi, n_cat)
    amp = rng.uniform(0.0, 0.8, n_cat)
    w = np.arange(weeks)[:, None] * 7 / 365.25 * 2 * np.pi
    mix = base * (1 + amp * np.sin(w + phase))
    cum = np.cumsum(mix, axis=1)
    return cum / cum[:, -1:]


def _customers(rng: np.random.Generator, sizes: ShopSizes, folder: Path):
    n = sizes.customers
    signup = np.where(rng.random(n) < 0.2, rng.uniform(0, DAYS * 0.8, n), -rng.uniform(0, 4 * DAYS, n))
    df = pd.DataFrame({
        "customer_id": CUSTOMER_ID0 + np.arange(n, dtype=np.int64),
        "segment": np.asarray(SEGMENTS)[rng.integers(0, len(SEGMENTS), n)],
        "age_band": np.asarray(AGE_BANDS)[rng.integers(0, len(AGE_BANDS), n)],
        "region": np.asarray(REGIONS)[rng.integers(0, len(REGIONS), n)],
        "signup": (START + pd.to_timedelta(np.round(signup * 86_400), unit="s")).astype("datetime64[us]"),
    })
    _write_frame(df, folder / "customers.parquet")
    return np.maximum(signup, 0.0)


def _pick(cat: _Catalogue, categories: np.ndarray, day: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per line: a product of ``categories[i]`` launched before ``day[i]``, by Zipf weight."""
    lo = cat.cat_start[categories]
    hi = np.searchsorted(cat.keys, categories * 10_000.0 + day, side="right")  # launched so far
    base = np.where(lo > 0, cat.cum[np.maximum(lo - 1, 0)], 0.0)
    top = cat.cum[hi - 1]
    pos = np.searchsorted(cat.cum, base + u * (top - base), side="right")
    pos = np.clip(pos, lo, hi - 1)
    return cat.order[pos]


def _chunk(rng: np.random.Generator, cat: _Catalogue, mix: np.ndarray, first_day: np.ndarray,
           customer0: int, order0: int, n_stores: int) -> tuple[pa.Table, int]:
    """Every line of customers ``customer0 .. customer0 + len(first_day) - 1``, and the number
    of baskets (order ids ``order0 ..``)."""
    n = len(first_day)
    n_cat = len(cat.cat_start)
    # customers: favourites, staples, habits
    fav = rng.integers(0, n_cat, (n, FAVOURITES))
    fav_w = np.cumsum(rng.dirichlet(np.ones(FAVOURITES), n), axis=1)
    staple_cat = fav[np.arange(n)[:, None], rng.integers(0, FAVOURITES, (n, STAPLES))]
    staples = np.empty((n, STAPLES), np.int64)
    for c in np.unique(staple_cat):  # staples: old products of the category, by Zipf weight
        where = staple_cat == c
        pool = cat.old_by_cat[c]
        cw = np.cumsum(cat.weight[pool])
        pick = np.searchsorted(cw / cw[-1], rng.random(int(where.sum())), side="right")
        staples[where] = pool[np.minimum(pick, len(pool) - 1)]
    p_repeat = rng.beta(1.5, 3.5, n)
    home = rng.integers(0, n_stores, n)
    active = DAYS - first_day
    rate = rng.gamma(2.0, 1.0, n) / 2.0 * BASKETS_PER_YEAR / 365.0
    n_baskets = np.maximum(rng.poisson(rate * active), 1)
    # baskets
    b_cust = np.repeat(np.arange(n), n_baskets)
    b_day = first_day[b_cust] + rng.random(len(b_cust)) * active[b_cust]
    b_day = np.floor(b_day) + rng.uniform(8, 21, len(b_cust)) / 24  # shop hours
    b_day = np.minimum(b_day, DAYS - 1e-6)
    b_order = np.lexsort((b_day, b_cust))
    b_cust, b_day = b_cust[b_order], b_day[b_order]
    b_store = np.where(rng.random(len(b_cust)) < 0.85, home[b_cust], rng.integers(0, n_stores, len(b_cust)))
    size = 1 + rng.poisson(BASKET_SIZE_MEAN - 1, len(b_cust))
    # lines
    l_basket = np.repeat(np.arange(len(b_cust)), size)
    l_cust = b_cust[l_basket]
    l_day = b_day[l_basket]
    m = len(l_basket)
    repeat = rng.random(m) < p_repeat[l_cust]
    staple_pick = staples[l_cust, np.minimum(rng.geometric(0.1, m) - 1, STAPLES - 1)]
    use_fav = rng.random(m) < FAVOURITE_SHARE
    fav_pick = fav[l_cust, np.minimum((rng.random(m)[:, None] > fav_w[l_cust]).sum(1), FAVOURITES - 1)]
    week = np.minimum((l_day // 7).astype(np.int64), len(mix) - 1)
    flat = (mix + np.arange(len(mix))[:, None]).ravel()  # rows end at 1, 2, ...: one searchsorted
    mix_pick = np.searchsorted(flat, week + rng.random(m), side="right") - week * n_cat
    mix_pick = np.clip(mix_pick, 0, n_cat - 1)
    categories = np.where(use_fav, fav_pick, mix_pick)
    explore = _pick(cat, categories, l_day, rng.random(m))
    product = np.where(repeat, staple_pick, explore)
    # drop duplicate products inside a basket (a basket line is one product)
    key = l_basket * np.int64(len(cat.category)) + product
    _, keep = np.unique(key, return_index=True)
    keep.sort()
    l_basket, product, l_day = l_basket[keep], product[keep], l_day[keep]
    ts = START.value // 1000 + np.round(l_day * 86_400e6).astype(np.int64)
    price = cat.price[product] * rng.choice(np.array([1.0, 1.0, 1.0, 0.8], np.float32), len(product))
    return pa.Table.from_arrays([
        pa.array(order0 + l_basket, pa.int64()),
        pa.array(CUSTOMER_ID0 + customer0 + b_cust[l_basket], pa.int64()),
        pa.array(PRODUCT_ID0 + product, pa.int64()),
        pa.array((STORE_ID0 + b_store[l_basket]).astype(np.int32)),
        pa.array(ts.astype("datetime64[us]")),
        pa.array((1 + rng.poisson(0.3, len(product))).astype(np.int16)),
        pa.array(price.astype(np.float32)),
    ], schema=LINE_SCHEMA), len(b_cust)


def generate_shop(
    folder: str | Path, scale: float = 1.0, seed: int = 0, chunk_customers: int = 2_000,
    name: str | None = None, progress: Callable[[int, int, int], None] | None = None,
) -> Path:
    """Write a generated shop into ``folder`` and return the path of its ``schema.yaml``.

    ``progress(customers_done, customers_total, lines_written)`` is called after each chunk.
    """
    if chunk_customers < 1:
        raise ValueError(f"chunk_customers must be >= 1, got {chunk_customers}")
    sizes = shop_sizes(scale)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    root = np.random.SeedSequence([seed, 7])
    cat_seed, cust_seed, mix_seed, lines_seed = root.spawn(4)
    cat = _catalogue(np.random.default_rng(cat_seed), sizes, folder)
    first_day = _customers(np.random.default_rng(cust_seed), sizes, folder)
    mix = _seasonal_mix(np.random.default_rng(mix_seed), sizes.categories)
    n_chunks = -(-sizes.customers // chunk_customers)
    chunk_seeds = lines_seed.spawn(n_chunks)
    path = folder / "lines.parquet"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    written = orders = 0
    try:
        with pq.ParquetWriter(tmp, LINE_SCHEMA, compression="zstd") as writer:
            for i in range(n_chunks):
                lo, hi = i * chunk_customers, min((i + 1) * chunk_customers, sizes.customers)
                table, n_orders = _chunk(np.random.default_rng(chunk_seeds[i]), cat, mix,
                                         first_day[lo:hi], lo, orders, sizes.stores)
                writer.write_table(table)
                written += table.num_rows
                orders += n_orders
                if progress:
                    progress(hi, sizes.customers, written)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    schema = folder / "schema.yaml"
    text = SCHEMA.format(scale=scale, seed=seed, days=DAYS, start=START.date(), query=QUERY,
                         name=name or f"generated_{scale:g}x")
    tmp_schema = schema.with_name(f".{schema.name}.tmp-{os.getpid()}")
    tmp_schema.write_text(text)
    os.replace(tmp_schema, schema)
    return schema
