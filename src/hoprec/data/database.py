"""Ingest: read every table through the schema, validate it, and hold it as one database.

Validation is strict where silence would mislead and lenient where dropping data would:

- missing files, tables or columns, unparseable timestamps or numbers, duplicate or empty primary
  keys: a :class:`SchemaError` naming the table, column and row;
- foreign-key values that match no primary key: the rows are kept (no event is dropped for
  lacking attributes) and the count with a few examples goes to :attr:`Database.warnings`;
- derived entity tables (``source: {derived: true}``) hold every key the referencing tables use,
  with ``first_seen`` (the earliest referencing row) as their time column.

A :meth:`Database.snapshot` at a cutoff holds only rows strictly before it: nothing at or after a
cutoff reaches features, graph or training for that cutoff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from hoprec.data.schema import Schema, SchemaError, TableSpec
from hoprec.data.sources import read_source

FIRST_SEEN = "first_seen"
KIND, WEIGHT, QUANTITY = "_kind", "_weight", "_quantity"


@dataclass
class Database:
    """All tables of a schema as DataFrames, with their time columns (``None`` = static)."""

    schema: Schema
    tables: dict[str, pd.DataFrame]
    time_columns: dict[str, str | None]
    warnings: list[str] = field(default_factory=list)
    cutoff: pd.Timestamp | None = None

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def columns(self) -> dict[str, list[str]]:
        return {n: [c for c in df.columns if not c.startswith("_")] for n, df in self.tables.items()}

    def time_range(self, tables: list[str] | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
        """Earliest and latest timestamp over the given (default: all timed) tables."""
        lo, hi = [], []
        for name in tables or list(self.tables):
            tc = self.time_columns.get(name)
            if tc and tc != FIRST_SEEN and len(self.tables[name]):
                s = self.tables[name][tc]
                lo.append(s.min())
                hi.append(s.max())
        if not lo:
            raise SchemaError("no timed rows: no table has a time_column with data")
        return min(lo), max(hi)

    def snapshot(self, cutoff: pd.Timestamp) -> Database:
        """The database as it stood just before ``cutoff`` (rows at or after it removed)."""
        cutoff = pd.Timestamp(cutoff)
        tables = {}
        for name, df in self.tables.items():
            tc = self.time_columns.get(name)
            tables[name] = df[df[tc] < cutoff] if tc else df
        return Database(self.schema, tables, dict(self.time_columns), list(self.warnings), cutoff)


def _row_hint(df: pd.DataFrame, bad: pd.Series, max_examples: int = 3) -> str:
    idx = np.flatnonzero(bad.to_numpy())
    examples = ", ".join(f"row {i + 1}" for i in idx[:max_examples])
    return f"{len(idx)} row(s) ({examples}{', …' if len(idx) > max_examples else ''})"


def _parse_time(name: str, spec: TableSpec, df: pd.DataFrame) -> None:
    col = spec.time_column
    if col is None:
        return
    raw = df[col]
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw.dt.tz_convert(None) if getattr(raw.dt, "tz", None) is not None else raw  # as UTC
    elif pd.api.types.is_numeric_dtype(raw):
        parsed = pd.to_datetime(raw, unit="s", errors="coerce")
    else:
        try:
            parsed = pd.to_datetime(raw, format=spec.time_format, errors="coerce")
        except ValueError:  # mixed UTC offsets: only a common zone makes them comparable
            parsed = pd.to_datetime(raw, format=spec.time_format, errors="coerce", utc=True)
        if getattr(parsed.dt, "tz", None) is not None:  # offsets in the strings: as UTC
            parsed = parsed.dt.tz_convert(None)
    bad = parsed.isna() & raw.notna()
    if raw.isna().any():
        bad = bad | raw.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        fmt = f"the format {spec.time_format!r}" if spec.time_format else "an ISO date/time (or set time_format)"
        raise SchemaError(
            f"table {name!r}, column {col!r}: {_row_hint(df, bad)} cannot be read as a timestamp; "
            f"first: data row {i + 1} = {raw.iloc[i]!r}; expected {fmt}"
        )
    df[col] = parsed.astype("datetime64[ns]")


def _coerce_columns(name: str, spec: TableSpec, df: pd.DataFrame) -> None:
    for col, ctype in spec.columns.items():
        if col == spec.time_column or col not in df:
            continue
        s = df[col]
        if ctype == "numerical" and not pd.api.types.is_numeric_dtype(s):
            num = pd.to_numeric(s, errors="coerce")
            bad = num.isna() & s.notna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise SchemaError(
                    f"table {name!r}, column {col!r} (numerical): {_row_hint(df, bad)} are not "
                    f"numbers; first: data row {i + 1} = {s.iloc[i]!r}"
                )
            df[col] = num
        elif ctype == "timestamp" and not pd.api.types.is_datetime64_any_dtype(s):
            df[col] = pd.to_datetime(s, errors="coerce")
        elif ctype in ("categorical", "text") and not pd.api.types.is_string_dtype(s):
            df[col] = s.astype("string")


def _normalise_keys(spec: TableSpec, df: pd.DataFrame) -> None:
    """Ids are int64 where every value is an integer, strings otherwise (never floats)."""
    for col in [spec.primary_key, *spec.foreign_keys]:
        if not col or col not in df:
            continue
        s = df[col]
        if pd.api.types.is_integer_dtype(s):
            df[col] = s.astype("int64") if not s.isna().any() else s.astype("Int64")
        elif pd.api.types.is_float_dtype(s):
            ok = s.dropna()
            if (ok == ok.round()).all():
                df[col] = s.astype("Int64")
            else:
                df[col] = s.astype("string")
        else:
            df[col] = s.astype("string").str.strip()


def _check_primary_key(name: str, spec: TableSpec, df: pd.DataFrame) -> None:
    pk = spec.primary_key
    if not pk:
        return
    if df[pk].isna().any():
        raise SchemaError(f"table {name!r}: primary key {pk!r} is empty in {_row_hint(df, df[pk].isna())}")
    dup = df[pk].duplicated(keep=False)
    if dup.any():
        examples = df.loc[dup, pk].drop_duplicates().head(3).tolist()
        raise SchemaError(
            f"table {name!r}: primary key {pk!r} has {int(df[pk].duplicated().sum())} duplicate "
            f"value(s), e.g. {examples}; a primary key must be unique (drop primary_key if the "
            f"table has none)"
        )


def _apply_filter(name: str, spec: TableSpec, df: pd.DataFrame) -> pd.DataFrame:
    if not spec.filter:
        return df
    try:
        keep = duckdb.query_df(df, "t", f"SELECT coalesce(({spec.filter}), false) AS k FROM t").df()["k"]
    except duckdb.Error as e:
        raise SchemaError(f"table {name!r}: filter {spec.filter!r} is not valid SQL here: {e}") from None
    return df[keep.to_numpy(dtype=bool)].reset_index(drop=True)


def _event_columns(name: str, spec: TableSpec, df: pd.DataFrame) -> None:
    ev = spec.event
    if ev is None:
        return
    if ev.kind_column:
        kinds = df[ev.kind_column].astype("string")
        kinds = kinds.map(lambda v: ev.kind_values.get(v, v) if isinstance(v, str) else ev.kind)
    else:
        kinds = pd.Series(ev.kind, index=df.index, dtype="string")
    if ev.kind_when:
        cases = " ".join(f"WHEN ({cond}) THEN '{k}'" for k, cond in ev.kind_when.items())
        try:
            when = duckdb.query_df(df, "t", f"SELECT CASE {cases} ELSE NULL END AS k FROM t").df()["k"]
        except duckdb.Error as e:
            raise SchemaError(f"table {name!r}: event.kind_when is not valid SQL here: {e}") from None
        kinds = pd.Series(np.where(when.notna(), when, kinds), index=df.index, dtype="string")
    uniq = kinds.dropna().unique().tolist()
    weights = {k: spec.event.weight(k) for k in uniq}
    df[KIND] = kinds.astype("category")
    df[WEIGHT] = kinds.map(weights).astype("float32")
    if ev.quantity_column:
        q = pd.to_numeric(df[ev.quantity_column], errors="coerce").abs().fillna(1.0)
        df[QUANTITY] = q.astype("float32")
    else:
        df[QUANTITY] = np.float32(1.0)


def _derive(schema: Schema, name: str, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    spec = schema.tables[name]
    pk = spec.primary_key
    parts = []
    for other, ospec in schema.tables.items():
        if other == name or other not in tables:
            continue
        for col, target in ospec.foreign_keys.items():
            if target != name:
                continue
            odf = tables[other]
            tc = ospec.time_column
            part = pd.DataFrame({pk: odf[col]})
            part[FIRST_SEEN] = odf[tc] if tc else pd.Timestamp.min
            parts.append(part.dropna(subset=[pk]))
    if len({str(p[pk].dtype) for p in parts}) > 1 and not all(
        pd.api.types.is_integer_dtype(p[pk]) for p in parts
    ):  # 2 in one table, "S1" in another: keys are strings, as _check_foreign_keys compares them
        for p in parts:
            p[pk] = p[pk].astype("string")
    allkeys = pd.concat(parts, ignore_index=True)
    derived = allkeys.groupby(pk, sort=True)[FIRST_SEEN].min().reset_index()
    if spec.attributes_from:
        attrs = tables[spec.attributes_from]
        derived = derived.merge(attrs, on=pk, how="left", suffixes=("", "_attr"))
    return derived


def _check_foreign_keys(schema: Schema, tables: dict[str, pd.DataFrame], warnings: list[str]) -> None:
    for name, spec in schema.tables.items():
        df = tables[name]
        for col, target in spec.foreign_keys.items():
            pk = schema.tables[target].primary_key
            values, keys = df[col], tables[target][pk]
            if values.dtype != keys.dtype and not (
                pd.api.types.is_integer_dtype(values) and pd.api.types.is_integer_dtype(keys)
            ):
                values = values.astype("string")
                df[col] = values
                if pd.api.types.is_integer_dtype(keys):
                    tables[target][pk] = keys.astype("string")
                    keys = tables[target][pk]
            nulls = int(values.isna().sum())
            if nulls:
                warnings.append(
                    f"{name}.{col}: {nulls} row(s) have no {target} key (kept; they join no {target} row)"
                )
            miss = ~values.isin(keys) & values.notna()
            if miss.any():
                examples = values[miss].drop_duplicates().head(3).tolist()
                warnings.append(
                    f"{name}.{col} -> {target}.{pk}: {int(miss.sum())} row(s) "
                    f"({values[miss].nunique()} distinct values, e.g. {examples}) match no "
                    f"{target} row; rows kept, without {target} attributes"
                )


def load_database(schema: Schema, progress: Callable[[str], None] | None = None) -> Database:
    """Read, type and validate every table of ``schema``."""
    tables: dict[str, pd.DataFrame] = {}
    time_columns: dict[str, str | None] = {}
    warnings: list[str] = []
    derived = [n for n, t in schema.tables.items() if t.source.derived]
    for name, spec in schema.tables.items():
        if spec.source.derived:
            continue
        if progress:
            progress(name)
        df = read_source(schema, name)
        df = _apply_filter(name, spec, df)
        _normalise_keys(spec, df)
        _parse_time(name, spec, df)
        _coerce_columns(name, spec, df)
        _check_primary_key(name, spec, df)
        _event_columns(name, spec, df)
        if spec.time_column:
            df = df.sort_values(spec.time_column, kind="stable").reset_index(drop=True)
        tables[name] = df
        time_columns[name] = spec.time_column
    for name in derived:
        if progress:
            progress(name)
        tables[name] = _derive(schema, name, tables)
        timed_refs = any(
            name in o.foreign_keys.values() and o.time_column for o in schema.tables.values()
        )
        time_columns[name] = FIRST_SEEN if timed_refs else None
    _check_foreign_keys(schema, tables, warnings)
    return Database(schema, tables, time_columns, warnings)
