"""The schema file: what each table is, where it comes from and how its rows relate.

A schema is written once per shop, in YAML, and every later stage reads the data through it::

    name: completejourney
    tables:
      products:
        source: {path: products.parquet}        # CSV/Parquet file or glob, DuckDB, SQL database
        primary_key: product_id
        columns: {department: categorical, brand: categorical, package_size: text}
      households:
        source: {derived: true}                 # rows = the keys other tables use
        primary_key: household_id
        attributes_from: demographics           # left-joined: no household is dropped
      transactions:
        source: {path: transactions.parquet}
        time_column: transaction_timestamp
        foreign_keys: {household_id: households, product_id: products}
        columns: {quantity: numerical}
        event: {kind: purchase, quantity_column: quantity, basket_column: basket_id}

Strings may use ``${VAR}`` or ``${VAR:-default}``; relative paths are resolved against the schema
file's folder.  Every problem is reported as a :class:`SchemaError` naming the file and field.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ColumnType = Literal["id", "categorical", "numerical", "text", "timestamp", "list"]
COLUMN_TYPES: tuple[str, ...] = ("id", "categorical", "numerical", "text", "timestamp", "list")

#: Starting weights per event kind: what a row says about the customer's interest in the item.
#: A return is evidence against the pair: it lowers the pair's weight and is never a positive.
DEFAULT_KIND_WEIGHTS: dict[str, float] = {
    "purchase": 1.0,
    "rating": 1.0,
    "add_to_cart": 0.7,
    "wishlist": 0.6,
    "view": 0.4,
    "click": 0.2,
    "return": -1.0,
}


class SchemaError(ValueError):
    """A schema file, or the data it describes, is not valid; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where a table's rows come from: exactly one of ``path``, ``duckdb``, ``url`` or ``derived``.

    - ``path``: a CSV or Parquet file or glob (``format`` auto-detected from the suffix); with
      ``query``, a DuckDB SQL query over the file(s), which appear as the view ``source``.
    - ``duckdb``: a DuckDB database file, with ``table`` or ``query``.
    - ``url``: an SQLAlchemy database URL (``postgresql://…``, ``sqlite:///…``), with ``table`` or
      ``query``.
    - ``derived: true``: the table's rows are the distinct keys that other tables' foreign keys
      use (for entities no table lists in full); columns join in through ``attributes_from``.
    """

    path: str | None = None
    format: Literal["auto", "csv", "parquet"] = "auto"
    csv_options: dict[str, Any] = Field(default_factory=dict)
    duckdb: str | None = None
    url: str | None = None
    table: str | None = None
    query: str | None = None
    derived: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        kinds = [k for k in ("path", "duckdb", "url") if getattr(self, k)] + (
            ["derived"] if self.derived else []
        )
        if len(kinds) != 1:
            raise ValueError(
                "a source needs exactly one of path, duckdb, url or derived: true "
                f"(got {', '.join(kinds) or 'none'})"
            )
        if (self.duckdb or self.url) and not (self.table or self.query):
            raise ValueError("a duckdb or url source needs `table` or `query`")
        if self.table and self.query:
            raise ValueError("give `table` or `query`, not both")
        if self.path and self.table:
            raise ValueError("a path source takes `query` (over the view `source`), not `table`")
        return self

    @property
    def kind(self) -> str:
        if self.derived:
            return "derived"
        return "file" if self.path else ("duckdb" if self.duckdb else "sql")


class SessionSpec(_Strict):
    """How an event table splits into sessions for ``FOR EACH SESSION`` queries (all optional).

    A session is the ``session_column`` value when the table has one, else the ``basket_column``
    value, else a run of one visitor's events with no pause longer than ``gap_minutes``; the
    visitor is ``visitor_column`` (default: the table's one foreign key to a non-item table).
    Sessions shorter than ``min_length`` events and items with fewer than ``min_item_count``
    training events are dropped, and the counts are reported.  The test cutoff is the first
    timestamp of rows meeting ``test_when`` (a DuckDB condition marking a shipped test split),
    else ``test_days`` before the data's end; validation is the last ``test_days`` of training.
    Training sessions end at least ``split_gap_minutes`` before a cutoff, test sessions start at
    or after it: no session straddles a split.
    """

    gap_minutes: float = Field(30.0, gt=0)
    visitor_column: str | None = None
    min_length: int = Field(2, ge=1)
    min_item_count: int = Field(1, ge=1)
    test_when: str | None = None
    test_days: float = Field(1.0, gt=0)
    split_gap_minutes: float = Field(0.0, ge=0)
    #: order of a session's events with equal timestamps: their source rows, or a seeded shuffle
    #: (for baskets whose rows are sorted by item id, where row order would be a fake pattern)
    tie_order: Literal["source", "shuffle"] = "source"


class EventSpec(_Strict):
    """What an event row means for recommendation.

    Each row gets a kind: ``kind`` for all rows, or the value of ``kind_column`` (mapped through
    ``kind_values``), or the first ``kind_when`` SQL condition (DuckDB syntax) that holds.
    ``weights`` override :data:`DEFAULT_KIND_WEIGHTS`.  ``quantity_column`` (absolute value) and
    ``basket_column``/``session_column`` are optional; ``sessions`` (a :class:`SessionSpec`)
    tunes session queries.
    """

    kind: str = "purchase"
    kind_column: str | None = None
    kind_values: dict[str, str] = Field(default_factory=dict)
    kind_when: dict[str, str] = Field(default_factory=dict)
    weights: dict[str, float] = Field(default_factory=dict)
    quantity_column: str | None = None
    basket_column: str | None = None
    session_column: str | None = None
    sessions: SessionSpec | None = None  # None: the defaults of SessionSpec

    def weight(self, kind: str) -> float:
        if kind in self.weights:
            return float(self.weights[kind])
        if kind in DEFAULT_KIND_WEIGHTS:
            return DEFAULT_KIND_WEIGHTS[kind]
        raise SchemaError(
            f"event kind {kind!r} has no weight: add it under `weights` "
            f"(known kinds: {', '.join(DEFAULT_KIND_WEIGHTS)})"
        )


class TableSpec(_Strict):
    """One table: source, keys, time column, typed columns and (for event tables) their meaning."""

    source: Source
    description: str | None = None
    primary_key: str | None = None
    foreign_keys: dict[str, str] = Field(default_factory=dict)
    time_column: str | None = None
    time_format: str | None = None
    columns: dict[str, ColumnType] = Field(default_factory=dict)
    attributes_from: str | None = None
    filter: str | None = None
    event: EventSpec | None = None

    def used_columns(self) -> list[str]:
        """Every column this table reads from its source, keys first, in a stable order."""
        cols: list[str] = []
        for c in [self.primary_key, *self.foreign_keys, self.time_column, *self.columns]:
            if c and c not in cols:
                cols.append(c)
        ev = self.event
        if ev:
            visitor = ev.sessions.visitor_column if ev.sessions else None
            for c in (ev.kind_column, ev.quantity_column, ev.basket_column, ev.session_column,
                      visitor):
                if c and c not in cols:
                    cols.append(c)
        return cols

    def column_type(self, column: str) -> str | None:
        if column in self.columns:
            return self.columns[column]
        if column == self.primary_key or column in self.foreign_keys:
            return "id"
        if column == self.time_column:
            return "timestamp"
        return None


class RecommendSettings(_Strict):
    """Shop-level defaults shared by evaluation and serving."""

    exclude_purchased: bool = False
    diversity_attribute: str | None = None
    sparse_history_max: int = 5


class Schema(_Strict):
    name: str
    description: str | None = None
    tables: dict[str, TableSpec]
    recommend: RecommendSettings = Field(default_factory=RecommendSettings)
    base_dir: str = "."

    @model_validator(mode="after")
    def _cross_check(self) -> Schema:
        names = list(self.tables)
        for tname, t in self.tables.items():
            where = f"tables.{tname}"
            for col, target in t.foreign_keys.items():
                if target not in self.tables:
                    raise ValueError(
                        f"{where}.foreign_keys.{col}: no table {target!r} "
                        f"(tables: {', '.join(names)})"
                    )
                if not self.tables[target].primary_key:
                    raise ValueError(
                        f"{where}.foreign_keys.{col}: table {target!r} has no primary_key"
                    )
            if t.source.derived:
                if not t.primary_key:
                    raise ValueError(f"{where}: a derived table needs a primary_key")
                if not any(
                    tname in o.foreign_keys.values() for o in self.tables.values() if o is not t
                ):
                    raise ValueError(
                        f"{where}: derived, but no table has a foreign key pointing at it"
                    )
            if t.attributes_from:
                other = self.tables.get(t.attributes_from)
                if other is None:
                    raise ValueError(
                        f"{where}.attributes_from: no table {t.attributes_from!r} "
                        f"(tables: {', '.join(names)})"
                    )
                if other.primary_key != t.primary_key:
                    raise ValueError(
                        f"{where}.attributes_from: {t.attributes_from!r} must have the same "
                        f"primary_key ({t.primary_key!r}), has {other.primary_key!r}"
                    )
            if t.event is not None and t.time_column is None:
                raise ValueError(f"{where}.event: an event table needs a time_column")
        if self.recommend.diversity_attribute:
            ref = self.recommend.diversity_attribute
            if "." not in ref or ref.split(".", 1)[0] not in self.tables:
                raise ValueError(
                    f"recommend.diversity_attribute: expected table.column, got {ref!r}"
                )
        return self

    def digest(self) -> str:
        """A stable hash of what the schema says (not where it was loaded from)."""
        payload = self.model_dump(mode="json", exclude={"base_dir"})
        for t in payload["tables"].values():  # unset session settings leave older digests as they were
            if t.get("event") and t["event"].get("sessions") is None:
                t["event"].pop("sessions", None)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def resolve_path(self, path: str) -> str:
        """Absolute form of a source path (globs kept), relative paths against the schema's folder."""
        p = Path(os.path.expanduser(path))
        return str(p if p.is_absolute() else Path(self.base_dir) / p)

    def event_tables(self) -> list[str]:
        return [n for n, t in self.tables.items() if t.event is not None]

    def columns_of(self, table: str) -> list[str]:
        """Columns a query may name: the table's own, plus those joined in by attributes_from."""
        spec = self.tables[table]
        cols = spec.used_columns()
        if spec.attributes_from:
            cols += [c for c in self.tables[spec.attributes_from].used_columns() if c not in cols]
        return cols


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, file: str) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return os.path.expanduser(default)
            raise SchemaError(f"{file}: environment variable ${{{name}}} is not set and has no default")

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, file) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, file) for v in value]
    return value


def _format_validation_error(file: str, err: ValidationError) -> str:
    lines = [f"{file}: the schema is not valid:"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"] if not str(x).startswith("function-after"))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] == "literal_error":
            msg = f"{msg} (got {e.get('input')!r})"
        lines.append(f"  {loc or '(top level)'}: {msg}")
    return "\n".join(lines)


def schema_from_dict(data: dict[str, Any], base_dir: str | Path = ".", file: str = "<schema>") -> Schema:
    """Validate a schema given as a dict (as parsed from YAML)."""
    if not isinstance(data, dict):
        raise SchemaError(f"{file}: expected a mapping at the top level, got {type(data).__name__}")
    data = _expand(data, file)
    try:
        return Schema.model_validate({**data, "base_dir": str(Path(base_dir).resolve())})
    except ValidationError as e:
        raise SchemaError(_format_validation_error(file, e)) from None


def load_schema(path: str | Path) -> Schema:
    """Read and validate a schema file; errors name the file and the field."""
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"schema file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise SchemaError(f"{p}: not valid YAML: {e}") from None
    return schema_from_dict(data, base_dir=p.parent, file=str(p))
