"""Every source kind read through a schema file, and the errors bad input gets.

The same small shop (products, and purchase events naming customers and products) is written as
CSV, a CSV glob, Parquet, a DuckDB file, an SQLite file and PostgreSQL tables, then read with
``load_schema`` + ``load_database``.  PostgreSQL tests need a real server: ``.ci/postgres.sh``
starts one and prints the ``HOPREC_TEST_PG_URL`` to export.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from hoprec.data.database import load_database
from hoprec.data.schema import SchemaError, load_schema

PRODUCTS = pd.DataFrame(
    {
        "product_id": [10, 11, 12, 13],
        "title": ["Green apples", "Whole milk", "Rye bread", "Orange juice"],
        "category": ["fruit", "dairy", "bakery", "drinks"],
        "price": [1.5, 0.99, 2.25, 3.1],
    }
)
EVENTS = pd.DataFrame({
    "customer_id": ["c1", "c2", "c1", "c3", "c2", "c1"],
    "product_id": [10, 11, 12, 10, 13, 11],
    "ts": [
        "2024-01-03 10:00:00", "2024-01-01 09:30:00", "2024-01-02 18:15:00",
        "2024-01-05 12:00:00", "2024-01-04 08:45:00", "2024-01-06 20:00:00",
    ],
    "quantity": [1, 2, 1, 3, -1, 1],
})  # fmt: skip


def _tables(events_source: dict, products_source: dict) -> dict:
    return {
        "events": {
            "source": events_source,
            "time_column": "ts",
            "foreign_keys": {"customer_id": "customers", "product_id": "products"},
            "columns": {"quantity": "numerical"},
            "event": {"kind": "purchase", "quantity_column": "quantity"},
        },
        "products": {
            "source": products_source,
            "primary_key": "product_id",
            "columns": {"title": "text", "category": "categorical", "price": "numerical"},
        },
        "customers": {"source": {"derived": True}, "primary_key": "customer_id"},
    }


def _write_schema(folder: Path, tables: dict, name: str = "shop") -> Path:
    path = folder / "schema.yaml"
    path.write_text(yaml.safe_dump({"name": name, "tables": tables}, sort_keys=False))
    return path


def _check_shop(db, n_events: int = len(EVENTS)) -> None:
    """What every source must give: typed, sorted, validated tables with no warnings."""
    assert db.warnings == []
    events = db["events"]
    assert len(events) == n_events
    assert str(events["ts"].dtype) == "datetime64[ns]"
    assert events["ts"].is_monotonic_increasing
    assert str(events["product_id"].dtype) == "int64"
    assert pd.api.types.is_numeric_dtype(events["quantity"])
    assert set(events["_kind"]) == {"purchase"}
    products = db["products"].sort_values("product_id").reset_index(drop=True)
    assert products["product_id"].tolist() == PRODUCTS["product_id"].tolist()
    assert products["price"].astype(float).round(2).tolist() == PRODUCTS["price"].tolist()
    assert products["title"].tolist() == PRODUCTS["title"].tolist()
    customers = db["customers"]
    assert sorted(customers["customer_id"]) == sorted(set(events["customer_id"]))
    assert db.time_columns["customers"] == "first_seen"


# --- files -------------------------------------------------------------------------------------


def test_csv_single_file(tmp_path):
    EVENTS.to_csv(tmp_path / "events.csv", index=False)
    PRODUCTS.to_csv(tmp_path / "products.csv", index=False)
    path = _write_schema(tmp_path, _tables({"path": "events.csv"}, {"path": "products.csv"}))
    db = load_database(load_schema(path))
    _check_shop(db)
    first = db["events"].iloc[0]
    assert (first["customer_id"], first["ts"]) == ("c2", pd.Timestamp("2024-01-01 09:30"))
    assert first["_quantity"] == 2.0


def test_csv_glob_over_several_files(tmp_path):
    (tmp_path / "events").mkdir()
    EVENTS.iloc[:2].to_csv(tmp_path / "events" / "part-2024-01.csv", index=False)
    EVENTS.iloc[2:5].to_csv(tmp_path / "events" / "part-2024-02.csv", index=False)
    EVENTS.iloc[5:].to_csv(tmp_path / "events" / "part-2024-03.csv.gz", index=False)
    (tmp_path / "events" / "notes.txt").write_text("not matched by the glob")
    PRODUCTS.to_csv(tmp_path / "products.csv", index=False)
    path = _write_schema(
        tmp_path, _tables({"path": "events/part-*.csv*"}, {"path": "products.csv"})
    )
    _check_shop(load_database(load_schema(path)))


def test_parquet(tmp_path):
    events = EVENTS.assign(ts=pd.to_datetime(EVENTS["ts"]))
    events.to_parquet(tmp_path / "events.parquet", index=False)
    PRODUCTS.to_parquet(tmp_path / "products.parquet", index=False)
    path = _write_schema(
        tmp_path, _tables({"path": "events.parquet"}, {"path": "products.parquet"})
    )
    _check_shop(load_database(load_schema(path)))


def test_path_source_with_query_over_view_source(tmp_path):
    """A query sees the file(s) as the view ``source`` and may filter, join and compute."""
    EVENTS.to_csv(tmp_path / "events.csv", index=False)
    PRODUCTS.to_csv(tmp_path / "products.csv", index=False)
    query = (
        "SELECT customer_id, product_id, ts, quantity * 10 AS quantity FROM source "
        "WHERE quantity > 0"
    )
    path = _write_schema(
        tmp_path, _tables({"path": "events.csv", "query": query}, {"path": "products.csv"})
    )
    db = load_database(load_schema(path))
    _check_shop(db, n_events=int((EVENTS["quantity"] > 0).sum()))
    assert sorted(db["events"]["quantity"]) == [10, 10, 10, 20, 30]


def test_duckdb_database_with_table_and_query(tmp_path):
    with duckdb.connect(str(tmp_path / "shop.duckdb")) as con:
        con.register("e", EVENTS)
        con.register("p", PRODUCTS)
        con.execute(
            "CREATE TABLE events AS SELECT * EXCLUDE (ts), CAST(ts AS TIMESTAMP) AS ts FROM e"
        )
        con.execute("CREATE TABLE products AS SELECT * FROM p")
    query = "SELECT p.* FROM products p WHERE p.product_id IN (SELECT product_id FROM events)"
    path = _write_schema(
        tmp_path,
        _tables(
            {"duckdb": "shop.duckdb", "table": "events"}, {"duckdb": "shop.duckdb", "query": query}
        ),
    )
    db = load_database(load_schema(path))
    _check_shop(db)


def test_sqlite_url_with_table_and_query(tmp_path):
    db_file = tmp_path / "shop.sqlite"
    with sqlite3.connect(db_file) as con:
        EVENTS.to_sql("events", con, index=False)
        PRODUCTS.to_sql("products", con, index=False)
    url = f"sqlite:///{db_file}"
    query = "SELECT customer_id, product_id, ts, quantity FROM events WHERE ts >= '2024-01-01'"
    path = _write_schema(
        tmp_path, _tables({"url": url, "query": query}, {"url": url, "table": "products"})
    )
    _check_shop(load_database(load_schema(path)))


# --- PostgreSQL (a real server) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url():
    """The server's URL from HOPREC_TEST_PG_URL: missing fails the run on CI, skips elsewhere."""
    url = os.environ.get("HOPREC_TEST_PG_URL", "").strip()
    if not url:
        msg = (
            "HOPREC_TEST_PG_URL is not set, so the PostgreSQL source is untested: run "
            '`eval "$(bash .ci/postgres.sh)"` (starts a local server) or export a URL like '
            "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{msg} (CI is set: the PostgreSQL tests must run there)", pytrace=False)
        pytest.skip(msg)
    if url.startswith(("postgresql://", "postgres://")):  # plain URL: use the installed driver
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@pytest.fixture
def pg_schema(pg_url):
    """A fresh PostgreSQL schema (namespace) holding the shop's tables; dropped afterwards."""
    import sqlalchemy as sa

    name = f"hoprec_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
            conn.execute(
                sa.text(
                    f'CREATE TABLE "{name}".products (product_id integer PRIMARY KEY, title text, '
                    "category text, price numeric(10, 2))"
                )
            )
            conn.execute(
                sa.text(
                    f'CREATE TABLE "{name}".events (customer_id text, product_id integer, '
                    "ts timestamptz, quantity integer, note text)"
                )
            )
            conn.execute(
                sa.text(
                    f'INSERT INTO "{name}".products VALUES (:product_id, :title, :category, :price)'
                ),
                PRODUCTS.to_dict("records"),
            )
            rows = EVENTS.assign(ts=EVENTS["ts"] + "+00", note="ok").to_dict("records")
            rows.append({**rows[0], "note": "test row", "ts": "2023-06-01 00:00:00+00"})
            conn.execute(
                sa.text(
                    f'INSERT INTO "{name}".events VALUES (:customer_id, :product_id, '
                    "CAST(:ts AS timestamptz), :quantity, :note)"
                ),
                rows,
            )
        yield name
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        engine.dispose()


@pytest.mark.postgres
def test_postgres_table_and_query(tmp_path, pg_url, pg_schema, monkeypatch):
    # The URL comes from the environment, as a real schema file keeps credentials out of YAML.
    monkeypatch.setenv("HOPREC_PG", pg_url)
    query = (
        "SELECT customer_id, product_id, ts, quantity, ts::date AS day "
        f"FROM \"{pg_schema}\".events WHERE note LIKE 'ok%'"
    )
    path = _write_schema(
        tmp_path,
        _tables(
            {"url": "${HOPREC_PG}", "query": query},
            {"url": "${HOPREC_PG}", "table": f"{pg_schema}.products"},
        ),
    )
    db = load_database(load_schema(path))
    _check_shop(db)  # the test row (note "test row") is filtered out by the query
    assert db["events"]["ts"].iloc[0] == pd.Timestamp("2024-01-01 09:30")  # timestamptz as UTC


@pytest.mark.postgres
def test_postgres_missing_table_lists_the_tables(tmp_path, pg_schema, pg_url):
    import sqlalchemy as sa

    path = _write_schema(
        tmp_path,
        _tables(
            {"url": pg_url, "table": f"{pg_schema}.events"},
            {"url": pg_url, "table": f"{pg_schema}.prodcts"},
        ),
    )
    with pytest.raises(SchemaError) as err:
        load_database(load_schema(path))
    msg = str(err.value)
    assert "table 'products'" in msg and f"no table '{pg_schema}.prodcts'" in msg
    assert "(it has: events, products)" in msg
    password = sa.engine.make_url(pg_url).password
    if password:
        assert f":{password}@" not in msg and ":***@" in msg  # the password is never shown


# --- bad input ---------------------------------------------------------------------------------


@pytest.fixture
def csv_shop(tmp_path):
    EVENTS.to_csv(tmp_path / "events.csv", index=False)
    PRODUCTS.to_csv(tmp_path / "products.csv", index=False)
    return tmp_path


def test_missing_file_names_table_and_path(csv_shop):
    path = _write_schema(csv_shop, _tables({"path": "events.csv"}, {"path": "data/products.csv"}))
    with pytest.raises(SchemaError) as err:
        load_database(load_schema(path))
    msg = str(err.value)
    assert "table 'products'" in msg
    assert f"source file not found: {csv_shop / 'data' / 'products.csv'}" in msg


def test_missing_column_names_table_column_and_suggestion(csv_shop):
    tables = _tables({"path": "events.csv"}, {"path": "products.csv"})
    tables["events"]["columns"] = {"quantitty": "numerical"}
    with pytest.raises(SchemaError) as err:
        load_database(load_schema(_write_schema(csv_shop, tables)))
    msg = str(err.value)
    assert "table 'events'" in msg
    assert "'quantitty' (did you mean 'quantity'?)" in msg
    assert "it has: customer_id, product_id, ts, quantity" in msg


def test_missing_duckdb_table_lists_tables(tmp_path):
    with duckdb.connect(str(tmp_path / "shop.duckdb")) as con:
        con.register("e", EVENTS)
        con.register("p", PRODUCTS)
        con.execute("CREATE TABLE events AS SELECT * FROM e")
        con.execute("CREATE TABLE products AS SELECT * FROM p")
    path = _write_schema(
        tmp_path,
        _tables(
            {"duckdb": "shop.duckdb", "table": "evnts"},
            {"duckdb": "shop.duckdb", "table": "products"},
        ),
    )
    with pytest.raises(SchemaError) as err:
        load_database(load_schema(path))
    msg = str(err.value)
    assert "table 'events': no table 'evnts'" in msg
    assert "(it has: events, products)" in msg


def test_unparseable_timestamp_names_table_column_row_and_value(tmp_path):
    events = EVENTS.copy()
    events.loc[2, "ts"] = "next tuesday"
    events.to_csv(tmp_path / "events.csv", index=False)
    PRODUCTS.to_csv(tmp_path / "products.csv", index=False)
    path = _write_schema(tmp_path, _tables({"path": "events.csv"}, {"path": "products.csv"}))
    with pytest.raises(SchemaError) as err:
        load_database(load_schema(path))
    msg = str(err.value)
    assert "table 'events', column 'ts'" in msg
    assert "1 row(s) (row 3)" in msg
    assert "data row 3 = 'next tuesday'" in msg


def test_duplicate_primary_key_gives_count_and_examples(tmp_path):
    EVENTS.to_csv(tmp_path / "events.csv", index=False)
    products = pd.concat([PRODUCTS, PRODUCTS.iloc[[1, 1, 3]]], ignore_index=True)
    products.to_csv(tmp_path / "products.csv", index=False)
    path = _write_schema(tmp_path, _tables({"path": "events.csv"}, {"path": "products.csv"}))
    with pytest.raises(SchemaError) as err:
        load_database(load_schema(path))
    msg = str(err.value)
    assert "table 'products': primary key 'product_id' has 3 duplicate value(s)" in msg
    assert "e.g. [11, 13]" in msg


def test_foreign_keys_matching_no_primary_key_warn_and_keep_rows(tmp_path):
    events = EVENTS.copy()
    events.loc[[1, 3, 4], "product_id"] = [98, 99, 99]
    events.to_csv(tmp_path / "events.csv", index=False)
    PRODUCTS.to_csv(tmp_path / "products.csv", index=False)
    path = _write_schema(tmp_path, _tables({"path": "events.csv"}, {"path": "products.csv"}))
    db = load_database(load_schema(path))
    assert len(db["events"]) == len(EVENTS)  # rows kept
    (warning,) = db.warnings
    assert warning.startswith("events.product_id -> products.product_id: 3 row(s)")
    assert "(2 distinct values, e.g. [98, 99])" in warning or "e.g. [99, 98]" in warning
    assert "rows kept" in warning


def test_unknown_field_names_the_field_path(csv_shop):
    tables = _tables({"path": "events.csv"}, {"path": "products.csv"})
    tables["events"]["foreign_key"] = tables["events"].pop("foreign_keys")
    tables["customers"]["source"]["derivd"] = True
    path = _write_schema(csv_shop, tables)
    with pytest.raises(SchemaError) as err:
        load_schema(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: the schema is not valid:")
    assert "tables.events.foreign_key: unknown field" in msg
    assert "tables.customers.source.derivd: unknown field" in msg


def test_derived_table_nobody_points_at(csv_shop):
    tables = _tables({"path": "events.csv"}, {"path": "products.csv"})
    tables["stores"] = {"source": {"derived": True}, "primary_key": "store_id"}
    with pytest.raises(SchemaError, match="tables.stores: derived, but no table has a foreign key"):
        load_schema(_write_schema(csv_shop, tables))


def test_missing_sqlite_table_lists_tables(tmp_path):
    db_file = tmp_path / "shop.sqlite"
    with sqlite3.connect(db_file) as con:
        EVENTS.to_sql("events", con, index=False)
    url = f"sqlite:///{db_file}"
    path = _write_schema(
        tmp_path, _tables({"url": url, "table": "events"}, {"url": url, "table": "products"})
    )
    with pytest.raises(
        SchemaError, match=r"table 'products': no table 'products' in .*\(it has: events\)"
    ):
        load_database(load_schema(path))


# --- regressions -------------------------------------------------------------------------------


def test_timestamp_strings_with_utc_offsets_are_read_as_utc(tmp_path):
    """SQLite keeps times as text; mixed offsets (and "Z") must compare on one clock."""
    db_file = tmp_path / "shop.sqlite"
    events = EVENTS.assign(
        ts=["2024-01-03T11:00:00+01:00", "2024-01-01T09:30:00Z", "2024-01-02T20:15:00+02:00",
            "2024-01-05T12:00:00+00:00", "2024-01-04T03:45:00-05:00", "2024-01-06T20:00:00Z"]
    )  # fmt: skip
    with sqlite3.connect(db_file) as con:
        events.to_sql("events", con, index=False)
        PRODUCTS.to_sql("products", con, index=False)
    url = f"sqlite:///{db_file}"
    path = _write_schema(
        tmp_path, _tables({"url": url, "table": "events"}, {"url": url, "table": "products"})
    )
    db = load_database(load_schema(path))
    _check_shop(db)
    expected = sorted(pd.to_datetime(EVENTS["ts"]))
    assert db["events"]["ts"].tolist() == expected


def test_derived_keys_of_mixed_types_across_tables(tmp_path):
    """Store 2 is an integer in one file, a string beside "S1" in another: one key, no warning."""
    (tmp_path / "a.csv").write_text("store_id,ts\n1,2024-01-01\n2,2024-01-02\n")
    (tmp_path / "b.csv").write_text("store_id,ts\nS1,2024-01-01\n2,2024-01-03\n")
    tables = {
        "a": {
            "source": {"path": "a.csv"},
            "time_column": "ts",
            "foreign_keys": {"store_id": "stores"},
        },
        "b": {
            "source": {"path": "b.csv"},
            "time_column": "ts",
            "foreign_keys": {"store_id": "stores"},
        },
        "stores": {"source": {"derived": True}, "primary_key": "store_id"},
    }
    db = load_database(load_schema(_write_schema(tmp_path, tables)))
    assert sorted(db["stores"]["store_id"]) == ["1", "2", "S1"]
    assert db["stores"].set_index("store_id")["first_seen"]["2"] == pd.Timestamp("2024-01-02")
    assert db.warnings == []
