"""Read one table's rows from its source: CSV/Parquet files or globs, DuckDB, SQL databases.

Only the columns the schema uses are read.  Missing files, tables and columns raise
:class:`~hoprec.data.schema.SchemaError` naming the table, the source and what would be valid.
"""

from __future__ import annotations

import glob
from pathlib import Path

import duckdb
import pandas as pd

from hoprec.data.schema import Schema, SchemaError, TableSpec


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _file_format(spec_format: str, files: list[str]) -> str:
    if spec_format != "auto":
        return spec_format
    name = files[0].lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if any(name.endswith(s) for s in (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")):
        return "csv"
    raise SchemaError(f"cannot tell the format of {files[0]}: set source.format to csv or parquet")


def _duck_reader(fmt: str, files: list[str], csv_options: dict) -> str:
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    if fmt == "parquet":
        return f"read_parquet({file_list}, union_by_name=true)"
    opts = {"header": True, "union_by_name": True, **csv_options}
    args = ", ".join(f"{k}={_sql_literal(v)}" for k, v in opts.items())
    return f"read_csv({file_list}, {args})"


def _sql_literal(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"'{k}': {_sql_literal(x)}" for k, x in v.items()) + "}"
    return "'" + str(v).replace("'", "''") + "'"


def _select_columns(table: str, where: str, available: list[str], wanted: list[str]) -> str:
    missing = [c for c in wanted if c not in available]
    if missing:
        import difflib

        hints = []
        for c in missing:
            close = difflib.get_close_matches(c, available, n=1)
            hints.append(f"{c!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise SchemaError(
            f"table {table!r}: column(s) {', '.join(hints)} not found in {where}; "
            f"it has: {', '.join(available[:40])}"
        )
    return ", ".join(_quote(c) for c in wanted)


def _select(con: duckdb.DuckDBPyConnection, table: str, where: str, relation: str,
            columns: list[str]) -> pd.DataFrame:
    """The wanted ``columns`` of ``relation`` (a table name or a parenthesised query)."""
    available = [d[0] for d in con.execute(f"SELECT * FROM {relation} AS q LIMIT 0").description]
    cols = _select_columns(table, where, available, columns)
    return con.execute(f"SELECT {cols} FROM {relation} AS q").df()


def read_file_source(schema: Schema, name: str, spec: TableSpec, columns: list[str]) -> pd.DataFrame:
    src = spec.source
    pattern = schema.resolve_path(src.path or "")
    files = sorted(glob.glob(pattern)) if any(ch in pattern for ch in "*?[") else [pattern]
    files = [f for f in files if Path(f).is_file()]
    if not files:
        raise SchemaError(f"table {name!r}: source file not found: {pattern}")
    fmt = _file_format(src.format, files)
    reader = _duck_reader(fmt, files, src.csv_options)
    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW source AS SELECT * FROM {reader}")
        relation = f"({src.query})" if src.query else "source"
        return _select(con, name, files[0] if len(files) == 1 else pattern, relation, columns)
    except duckdb.Error as e:
        raise SchemaError(f"table {name!r}: cannot read {pattern}: {e}") from None
    finally:
        con.close()


def read_duckdb_source(schema: Schema, name: str, spec: TableSpec, columns: list[str]) -> pd.DataFrame:
    src = spec.source
    path = src.duckdb if src.duckdb == ":memory:" else schema.resolve_path(src.duckdb or "")
    if path != ":memory:" and not Path(path).is_file():
        raise SchemaError(f"table {name!r}: DuckDB database not found: {path}")
    con = duckdb.connect(path, read_only=path != ":memory:")
    try:
        if src.table:
            tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
            if src.table not in tables:
                raise SchemaError(
                    f"table {name!r}: no table {src.table!r} in {path} (it has: {', '.join(tables)})"
                )
            relation = _quote(src.table)
        else:
            relation = f"({src.query})"
        return _select(con, name, path, relation, columns)
    except duckdb.Error as e:
        raise SchemaError(f"table {name!r}: DuckDB error reading {path}: {e}") from None
    finally:
        con.close()


def read_sql_source(schema: Schema, name: str, spec: TableSpec, columns: list[str]) -> pd.DataFrame:
    import sqlalchemy as sa

    src = spec.source
    url = src.url or ""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        url = "sqlite:///" + schema.resolve_path(url[len("sqlite:///"):])  # relative to the schema
    shown = sa.engine.make_url(url).render_as_string(hide_password=True) if url else url
    try:
        engine = sa.create_engine(url)
    except Exception as e:  # bad URL or missing driver
        raise SchemaError(f"table {name!r}: cannot use database URL {shown}: {e}") from None
    try:
        with engine.connect() as conn:
            if src.table:
                schema_name, _, tname = src.table.rpartition(".")
                insp = sa.inspect(conn)
                names = insp.get_table_names(schema=schema_name or None) + insp.get_view_names(
                    schema=schema_name or None
                )
                if tname not in names:
                    raise SchemaError(
                        f"table {name!r}: no table {src.table!r} in {shown} "
                        f"(it has: {', '.join(sorted(names)) or 'no tables'})"
                    )
                available = [c["name"] for c in insp.get_columns(tname, schema=schema_name or None)]
                relation = ".".join(_quote(p) for p in src.table.split("."))
            else:
                relation = f"({src.query}) AS q"
                result = conn.execute(sa.text(f"SELECT * FROM {relation} LIMIT 0"))
                available = list(result.keys())
            cols = _select_columns(name, shown, available, columns)
            return pd.read_sql_query(sa.text(f"SELECT {cols} FROM {relation}"), conn)
    except SchemaError:
        raise
    except Exception as e:
        raise SchemaError(f"table {name!r}: error reading {shown}: {e}") from None
    finally:
        engine.dispose()


def read_source(schema: Schema, name: str) -> pd.DataFrame:
    """The raw rows of table ``name`` (only the columns the schema uses), as a DataFrame."""
    spec = schema.tables[name]
    columns = spec.used_columns()
    kind = spec.source.kind
    if kind == "file":
        return read_file_source(schema, name, spec, columns)
    if kind == "duckdb":
        return read_duckdb_source(schema, name, spec, columns)
    if kind == "sql":
        return read_sql_source(schema, name, spec, columns)
    raise SchemaError(f"table {name!r}: a derived table has no source to read")
