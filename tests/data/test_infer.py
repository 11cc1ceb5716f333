"""Tests for hoprec.data.infer: the drafted schema's guesses, and that it loads and reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hoprec.data.database import load_database
from hoprec.data.fake import make_fake_shop
from hoprec.data.infer import _id_stem, _tokens, infer_schema
from hoprec.data.schema import SchemaError, load_schema, schema_from_dict

N_CUSTOMERS, N_PRODUCTS, N_STORES, N_ORDERS = 30, 25, 12, 40
N_LINES = sum(1 + o % 3 for o in range(N_ORDERS))  # order o has 1 + o % 3 lines


def _write_shop(folder: Path) -> Path:
    """customers.csv, products.parquet, orders.csv (order lines) and store_visits.csv.

    Orders and visits both name a store by ``store_id``, and no file lists the stores.
    """
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    customers = pd.DataFrame(
        {
            "customer_id": [f"C{i:03d}" for i in range(N_CUSTOMERS)],
            "name": [f"Customer Number {i}" for i in range(N_CUSTOMERS)],
            "segment": rng.choice(["family", "single", "student"], N_CUSTOMERS),
            "signup_date": pd.date_range("2023-01-01", periods=N_CUSTOMERS, freq="5D").strftime(
                "%Y-%m-%d"
            ),
        }
    )
    customers.to_csv(folder / "customers.csv", index=False)
    products = pd.DataFrame(
        {
            "product_id": np.arange(100, 100 + N_PRODUCTS),
            "title": [f"Fresh product {i} of the week" for i in range(N_PRODUCTS)],
            "category": rng.choice(["fruit", "dairy", "bakery", "drinks"], N_PRODUCTS),
            "price": rng.uniform(1, 20, N_PRODUCTS).round(2),
            "updated_at": pd.Timestamp("2024-06-01")
            + pd.to_timedelta(np.arange(N_PRODUCTS), unit="D"),
        }
    )
    products.to_parquet(folder / "products.parquet", index=False)
    rows = []
    start = pd.Timestamp("2024-01-01 08:00")
    for o in range(N_ORDERS):
        customer = customers.customer_id[o % N_CUSTOMERS]
        store = 1 + o % N_STORES
        ts = start + pd.Timedelta(hours=7 * o)
        for line in range(1 + o % 3):
            product = 100 + (o * 3 + line) % N_PRODUCTS
            rows.append(
                (1000 + o, customer, product, 1 + line, ts.strftime("%Y-%m-%d %H:%M:%S"), store)
            )
    orders = pd.DataFrame(
        rows,
        columns=["order_id", "customer_id", "product_id", "quantity", "ordered_at", "store_id"],
    )
    orders.to_csv(folder / "orders.csv", index=False)
    visits = pd.DataFrame(
        {
            "visit_time": [start + pd.Timedelta(hours=3 * i) for i in range(30)],
            "store_id": [1 + (i * 5) % N_STORES for i in range(30)],
            "customer_id": [customers.customer_id[(i * 7) % N_CUSTOMERS] for i in range(30)],
        }
    )
    visits.to_csv(folder / "store_visits.csv", index=False)
    return folder


@pytest.fixture
def shop(tmp_path):
    return _write_shop(tmp_path / "shop")


@pytest.fixture
def drafted(shop):
    text, notes = infer_schema(shop)
    return text, notes, yaml.safe_load(text)


def test_primary_keys(drafted):
    _, notes, data = drafted
    tables = data["tables"]
    assert tables["customers"]["primary_key"] == "customer_id"
    assert tables["products"]["primary_key"] == "product_id"
    assert "primary_key" not in tables["orders"]  # one row per order line: order_id repeats
    assert "primary_key" not in tables["store_visits"]
    assert any(n.startswith("customers: primary key 'customer_id' because") for n in notes)


def test_foreign_keys_with_match_rates(drafted):
    _, notes, data = drafted
    tables = data["tables"]
    assert tables["orders"]["foreign_keys"] == {
        "customer_id": "customers",
        "product_id": "products",
        "store_id": "stores",
    }
    assert tables["store_visits"]["foreign_keys"] == {
        "store_id": "stores",
        "customer_id": "customers",
    }
    note = next(n for n in notes if n.startswith("orders.product_id: foreign key to products"))
    assert f"100% of {N_LINES} sampled rows" in note


def test_derived_table_for_a_key_no_file_lists(drafted):
    _, notes, data = drafted
    stores = data["tables"]["stores"]
    assert stores == {"source": {"derived": True}, "primary_key": "store_id"}
    note = next(n for n in notes if n.startswith("stores: derived table"))
    assert "orders, store_visits" in note


def test_time_columns(drafted):
    _, notes, data = drafted
    tables = data["tables"]
    assert tables["orders"]["time_column"] == "ordered_at"
    assert tables["store_visits"]["time_column"] == "visit_time"
    # An entity list gets a time column only when the name says when the row came into being.
    assert tables["customers"]["time_column"] == "signup_date"
    assert "time_column" not in tables["products"]
    assert tables["products"]["columns"]["updated_at"] == "timestamp"
    assert any(n.startswith("products: no time column although 'updated_at'") for n in notes)


def test_column_types(drafted):
    _, _, data = drafted
    tables = data["tables"]
    assert tables["customers"]["columns"] == {"name": "text", "segment": "categorical"}
    assert tables["products"]["columns"] == {
        "title": "text",
        "category": "categorical",
        "price": "numerical",
        "updated_at": "timestamp",
    }
    assert tables["orders"]["columns"] == {"order_id": "id", "quantity": "numerical"}


def test_event_blocks(drafted):
    text, _, data = drafted
    tables = data["tables"]
    assert tables["orders"]["event"] == {
        "kind": "purchase",
        "quantity_column": "quantity",
        "basket_column": "order_id",
    }
    assert tables["store_visits"]["event"] == {"kind": "purchase"}
    assert "event" not in tables["customers"] and "event" not in tables["products"]
    # The comment above the block lists the other kinds with their default weights.
    block = text[text.index("  orders:") : text.index("    event:")]
    assert "add_to_cart 0.7" in block and "return -1.0" in block


def test_yaml_is_commented_and_ordered(shop, drafted):
    text, _, _ = drafted
    lines = text.splitlines()
    assert lines[:2] == ["# Schema drafted by hoprec from the data files in", f"#   {shop}"]
    assert all(len(line) <= 100 for line in lines[2:])
    # Event tables first, derived tables last; each table block starts with a comment.
    order = [
        line.strip().rstrip(":")
        for line in lines
        if line.startswith("  ")
        and not line.startswith("   ")
        and not line.lstrip().startswith("#")
    ]
    assert order == ["orders", "store_visits", "customers", "products", "stores"]
    for table in order:
        i = lines.index(f"  {table}:")
        assert lines[i - 1].lstrip().startswith("#"), table
    assert "source: {path: orders.csv}" in text


def test_drafted_schema_loads_and_reads(shop, drafted):
    text, _, _ = drafted
    (shop / "schema.yaml").write_text(text)
    schema = load_schema(shop / "schema.yaml")
    db = load_database(schema)
    assert db.warnings == []
    assert len(db["orders"]) == N_LINES and len(db["customers"]) == N_CUSTOMERS
    assert sorted(db["stores"]["store_id"]) == list(range(1, N_STORES + 1))
    assert str(db["orders"]["ordered_at"].dtype) == "datetime64[ns]"
    assert set(db["orders"]["_kind"]) == {"purchase"}
    assert db.time_columns["stores"] == "first_seen"


def test_paths_relative_to_another_folder(shop, tmp_path):
    out = tmp_path / "config"
    out.mkdir()
    text, _ = infer_schema(shop, name="corner_shop", relative_to=out)
    data = yaml.safe_load(text)
    assert data["name"] == "corner_shop"
    assert data["tables"]["orders"]["source"] == {"path": "../shop/orders.csv"}
    (out / "schema.yaml").write_text(text)
    assert len(load_database(load_schema(out / "schema.yaml"))["products"]) == N_PRODUCTS


def test_partial_key_file_becomes_attributes_of_a_derived_table(tmp_path):
    folder = tmp_path / "partial"
    folder.mkdir()
    pd.DataFrame({"household_id": range(10), "income": ["low", "high"] * 5}).to_csv(
        folder / "demographics.csv", index=False
    )
    pd.DataFrame(
        {
            "household_id": [i % 40 for i in range(120)],
            "product_id": [i % 17 for i in range(120)],
            "day": pd.date_range("2024-01-01", periods=120, freq="D").strftime("%Y-%m-%d"),
        }
    ).to_csv(folder / "baskets.csv", index=False)
    text, notes = infer_schema(folder)
    tables = yaml.safe_load(text)["tables"]
    assert tables["households"] == {
        "source": {"derived": True},
        "primary_key": "household_id",
        "attributes_from": "demographics",
    }
    assert tables["baskets"]["foreign_keys"] == {
        "household_id": "households",
        "product_id": "products",
    }
    note = next(n for n in notes if n.startswith("baskets.household_id: not a foreign key"))
    assert "25% of 120 sampled rows" in note and "(at least 90% needed)" in note
    db = load_database(schema_from_dict(yaml.safe_load(text), base_dir=folder))
    assert len(db["households"]) == 40
    assert db["households"]["income"].notna().sum() == 10


def test_single_file_shop_with_us_dates_and_returns(tmp_path):
    """One file as exported from a till: invoice lines, month-first dates, negative quantities."""
    folder = tmp_path / "retail"
    folder.mkdir()
    rows = []
    for i in range(200):
        invoice = 536000 + i // 3
        when = pd.Timestamp("2010-12-01 08:26") + pd.Timedelta(hours=5 * (i // 3))
        rows.append(
            (
                str(invoice),
                f"85{i % 50:03d}",
                f"WHITE HANGING HEART {i % 50}",
                -1 if i % 37 == 0 else 1 + i % 6,
                when.strftime("%m/%d/%Y %H:%M"),
                round(0.5 + (i % 9) * 0.7, 2),
                17000 + i % 23,
                ["UK", "France"][i % 2],
            )
        )
    pd.DataFrame(
        rows,
        columns=[
            "InvoiceNo",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "UnitPrice",
            "CustomerID",
            "Country",
        ],
    ).to_csv(folder / "online_retail.csv", index=False)
    text, notes = infer_schema(folder)
    spec = yaml.safe_load(text)["tables"]
    retail = spec["online_retail"]
    assert retail["time_column"] == "InvoiceDate"
    assert retail["time_format"] == "%m/%d/%Y %H:%M"
    assert retail["foreign_keys"] == {"StockCode": "stocks", "CustomerID": "customers"}
    assert retail["event"] == {
        "kind": "purchase",
        "quantity_column": "Quantity",
        "basket_column": "InvoiceNo",
    }
    assert "kind_when: {return: 'Quantity < 0'}" in text
    assert spec["customers"]["primary_key"] == "CustomerID"
    db = load_database(schema_from_dict(yaml.safe_load(text), base_dir=folder))
    assert db["online_retail"]["InvoiceDate"].min() == pd.Timestamp("2010-12-01 08:26")
    assert len(db["stocks"]) == 50 and len(db["customers"]) == 23
    assert any("check the day/month order" in n for n in notes)


def test_click_log_with_kind_column_and_epoch_milliseconds(tmp_path):
    folder = tmp_path / "clicks"
    folder.mkdir()
    kinds = ["view", "view", "addtocart", "view", "transaction"]
    pd.DataFrame(
        {
            "timestamp": 1_433_221_332_117 + np.arange(100) * 60_000,
            "visitorid": np.arange(100) % 13,
            "event": [kinds[i % 5] for i in range(100)],
            "itemid": np.arange(100) % 21,
        }
    ).to_csv(folder / "events.csv", index=False)
    text, _ = infer_schema(folder)
    events = yaml.safe_load(text)["tables"]["events"]
    assert (
        events["source"]["query"]
        == 'SELECT * REPLACE (epoch_ms("timestamp") AS "timestamp") FROM source'
    )
    assert events["event"] == {
        "kind_column": "event",
        "kind_values": {"addtocart": "add_to_cart", "transaction": "purchase"},
    }
    db = load_database(schema_from_dict(yaml.safe_load(text), base_dir=folder))
    ev = db["events"]
    assert ev["timestamp"].iloc[0] == pd.Timestamp("2015-06-02 05:02:12.117")
    assert ev["_kind"].value_counts().to_dict() == {"view": 60, "add_to_cart": 20, "purchase": 20}


def test_the_fake_shop_is_drafted_like_its_hand_written_schema(tmp_path):
    schema_path = make_fake_shop(tmp_path / "fake")
    hand = yaml.safe_load(schema_path.read_text())["tables"]
    schema_path.unlink()
    drafted = yaml.safe_load(infer_schema(tmp_path / "fake")[0])["tables"]
    for table in ("customers", "products", "orders"):
        assert drafted[table].get("primary_key") == hand[table].get("primary_key"), table
        assert drafted[table].get("foreign_keys", {}) == hand[table].get("foreign_keys", {}), table
    assert drafted["orders"]["time_column"] == "ts"
    assert drafted["orders"]["event"] == hand["orders"]["event"]
    assert drafted["products"]["columns"] == hand["products"]["columns"]


def test_sampled_key_is_checked_over_the_whole_file(tmp_path):
    folder = tmp_path / "dups"
    folder.mkdir()
    ids = list(range(20)) + [3]  # the repeat comes after the sample
    pd.DataFrame({"item_id": ids, "colour": ["red", "blue", "green"] * 7}).to_csv(
        folder / "items.csv", index=False
    )
    pd.DataFrame({"item_id": [1, 2], "n": [1, 2]}).to_csv(folder / "stock.csv", index=False)
    text, notes = infer_schema(folder, sample_rows=10)
    assert "primary_key" not in yaml.safe_load(text)["tables"]["items"]
    assert "item_id is unique in the sample but not in the whole file" in text
    text, notes = infer_schema(folder)
    assert "primary_key" not in yaml.safe_load(text)["tables"]["items"]


def test_unreadable_file_is_skipped_with_a_note(shop):
    (shop / "broken.parquet").write_bytes(b"not parquet at all")
    text, notes = infer_schema(shop)
    assert "broken" not in yaml.safe_load(text)["tables"]
    assert any(n.startswith("skipped broken.parquet because DuckDB cannot read it") for n in notes)
    assert "# Skipped (unreadable): broken.parquet:" in text


def test_folder_of_empty_or_unreadable_files_raises(tmp_path):
    (tmp_path / "orders.csv").write_text("order_id,customer_id\n")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1")
    with pytest.raises(SchemaError) as err:
        infer_schema(tmp_path)
    msg = str(err.value)
    assert f"no data file in {tmp_path} could be used" in msg
    assert "orders.csv: no rows" in msg and "bad.parquet:" in msg


def test_folder_without_data_files_raises(tmp_path):
    (tmp_path / "README.txt").write_text("nothing here")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "orders.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SchemaError, match=r"no data files in .*\*\.csv, \*\.csv\.gz, \*\.parquet"):
        infer_schema(tmp_path)
    with pytest.raises(SchemaError, match="folder not found: .*nowhere"):
        infer_schema(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("customer_id", ["customer"]),
        ("CustomerID", ["customer"]),
        ("customerId", ["customer"]),
        ("InvoiceNo", ["invoice"]),
        ("StockCode", ["stock"]),
        ("visitorid", ["visitor"]),
        ("id", []),
        ("coupon_key", ["coupon"]),
        ("paid", None),
        ("valid", None),
        ("quantity", None),
    ],
)
def test_id_like_names(name, stem):
    assert _id_stem(name) == stem


def test_tokens():
    assert _tokens("HTTPStatusCode") == ["http", "status", "code"]
    assert _tokens("transaction_timestamp") == ["transaction", "timestamp"]
