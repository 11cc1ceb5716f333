"""The shop generator: sizes, determinism, streaming, realism, and that the pipeline reads it."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hoprec.cli import app
from hoprec.data.database import load_database
from hoprec.data.generate import QUERY, generate_shop, shop_sizes
from hoprec.data.schema import load_schema

SCALE = 0.04  # 100 customers, 4,000 products, about 60k lines


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gen")
    return generate_shop(folder, scale=SCALE, seed=3, chunk_customers=30)


def _digest(folder) -> dict[str, str]:
    return {f: hashlib.sha256((folder / f).read_bytes()).hexdigest()
            for f in ("customers.parquet", "products.parquet", "lines.parquet", "schema.yaml")}


def test_sizes_scale_customers_linearly_and_products_by_square_root():
    one, ten, hundred = shop_sizes(1), shop_sizes(10), shop_sizes(100)
    assert (one.customers, ten.customers, hundred.customers) == (2_500, 25_000, 250_000)
    assert (one.products, hundred.products) == (20_000, 200_000)
    assert one.lines_expected == 1_500_000 and hundred.lines_expected == 150_000_000
    with pytest.raises(ValueError, match="scale must be > 0"):
        shop_sizes(0)


def test_same_seed_same_bytes_other_seed_other_data(shop, tmp_path):
    again = generate_shop(tmp_path / "a", scale=SCALE, seed=3, chunk_customers=30)
    assert _digest(again.parent) == _digest(shop.parent)
    other = generate_shop(tmp_path / "b", scale=SCALE, seed=4, chunk_customers=30)
    assert _digest(other.parent)["lines.parquet"] != _digest(shop.parent)["lines.parquet"]


def test_lines_are_streamed_one_row_group_per_chunk(shop):
    meta = pq.ParquetFile(shop.parent / "lines.parquet").metadata
    n_customers = shop_sizes(SCALE).customers
    assert meta.num_row_groups == -(-n_customers // 30)
    assert 0.7 * shop_sizes(SCALE).lines_expected < meta.num_rows < 1.3 * shop_sizes(SCALE).lines_expected
    assert not list(shop.parent.glob(".*tmp*"))  # no temporary file left behind


def test_shop_looks_like_a_shop(shop):
    lines = pd.read_parquet(shop.parent / "lines.parquet")
    products = pd.read_parquet(shop.parent / "products.parquet")
    # keys hold, and no product sells before its launch
    assert lines.product_id.isin(products.product_id).all()
    launched = lines.merge(products[["product_id", "launched"]], on="product_id")
    assert (launched.ts >= launched.launched).all()
    new = products.launched >= pd.Timestamp("2023-01-01")
    assert 0.15 < new.mean() < 0.35 and lines.product_id.isin(products.product_id[new]).any()
    # one product per basket line; baskets belong to one customer
    assert not lines.duplicated(["order_id", "product_id"]).any()
    assert (lines.groupby("order_id").customer_id.nunique() == 1).all()
    # popularity skew: the top 1% of sold products take a large share of lines
    counts = lines.product_id.value_counts().to_numpy()
    assert counts[: max(1, len(counts) // 100)].sum() / counts.sum() > 0.15
    # repeat buying: most customers re-buy some product on a later day
    day = lines.ts.dt.floor("D")
    per_pair = lines.assign(day=day).groupby(["customer_id", "product_id"]).day.nunique()
    assert (per_pair > 1).groupby(level=0).any().mean() > 0.9
    # category tree: every category belongs to one department
    assert (products.groupby("category").department.nunique() == 1).all()
    assert (products.groupby("subcategory").category.nunique() == 1).all()


def test_seasonal_drift_changes_the_category_mix(shop):
    lines = pd.read_parquet(shop.parent / "lines.parquet", columns=["product_id", "ts"])
    products = pd.read_parquet(shop.parent / "products.parquet", columns=["product_id", "category"])
    d = lines.merge(products, on="product_id")
    quarter = d.ts.dt.quarter
    share = pd.crosstab(d.category, quarter, normalize="columns")
    assert np.abs(share[1] - share[3]).sum() > 0.1  # total variation between Q1 and Q3 mixes


def test_schema_reads_and_default_query_evaluates(shop, tmp_path):
    db = load_database(load_schema(shop))
    assert set(db.tables) == {"lines", "customers", "products", "stores", "orders"}
    assert db.warnings == []
    res = CliRunner().invoke(app, ["evaluate", "-s", str(shop), "-q", QUERY, "-m", "popular,repeat",
                                   "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "repeat" in res.output and (tmp_path / "r" / "results.json").is_file()


def test_cli_generate_and_bad_scale(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["datasets", "generate", "--scale", "0.01", "-o", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert (tmp_path / "s" / "schema.yaml").is_file() and "query:" in res.output
    bad = runner.invoke(app, ["datasets", "generate", "--scale", "-1", "-o", str(tmp_path / "t")])
    assert bad.exit_code == 2 and "scale must be > 0" in bad.output
    assert not (tmp_path / "t").exists()
