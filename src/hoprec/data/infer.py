"""Draft a schema from a folder of data files, explaining every guess.

:func:`infer_schema` reads a sample of each ``*.csv``, ``*.csv.gz`` and ``*.parquet`` file in a
folder (with DuckDB and the reader :mod:`hoprec.data.sources` uses, so types come out as ingest sees
them; a file longer than ``sample_rows`` is sampled every n-th row, in file order, so that a log
sorted by time is seen over its whole span) and writes a schema a person can check in a few
minutes: YAML with a comment above each block saying what was guessed from what, and a list of
notes ("guessed X because Y").  The guesses, in the order they are made:

1. **Primary key** of each file: a non-null, unique column whose name ends like an id (``id``,
   ``_id``, ``Id``, ``ID``, ``No``, ``code``, ``key``), preferring ``<table-singular>_id`` and then
   ``id``.  When only part of a file was sampled, uniqueness is checked over the whole file.
2. **Foreign keys**: a column named like another table's primary key (or ``<table-singular>_id``)
   whose sampled values are found among that table's keys; at least 90% of rows must match, and
   the note gives the rate.  Fewer matches make the column a derived table's key instead (below),
   with the partial table joined in by ``attributes_from``.
3. **Derived tables** (``source: {derived: true}``) for an id column that several files use but
   none lists as a unique key, or that one timed file repeats (``store_id`` in transactions).  A
   repeated order/basket/invoice id in a timed file becomes the event's ``basket_column`` instead.
4. **Time column**: the first timestamp column, preferring names with *time*/*date*/*timestamp*.
   A table with a primary key and no foreign keys (an entity list) gets one only when the name says
   when the row came into being (``created_at``, ``signup_date``): ``updated_at`` is not that.
5. **Column types**: timestamp (date/time types, or strings that parse as dates), id (id-like
   names with integer or short string values of high cardinality), numerical, categorical (few
   distinct strings or integers), text (long strings with spaces), list.
6. **Event tables**: a time column and at least two foreign keys give an ``event:`` block, with
   kind ``purchase`` (or a ``kind_column`` whose values are known event kinds), and the quantity
   and basket columns where the names say so.

The result is a draft: it always loads with :func:`~hoprec.data.schema.schema_from_dict`, and for a
clean folder :func:`~hoprec.data.database.load_database` reads it, but what the rows *mean* (which
kind of event, which columns matter) is for a person to confirm.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from hoprec.data.schema import DEFAULT_KIND_WEIGHTS, SchemaError, schema_from_dict
from hoprec.data.sources import _duck_reader

DATA_PATTERNS: tuple[str, ...] = ("*.csv", "*.csv.gz", "*.parquet")

#: Foreign keys need at least this share of sampled rows to match the target's keys.
FK_MIN_MATCH = 0.9
#: Fewer matches, but at least this share: the target lists some of the keys, and becomes the
#: ``attributes_from`` of a derived table holding them all.
FK_PARTIAL_MATCH = 0.05

_ID_SUFFIXES = {"id", "key", "no", "nr", "code", "sku", "upc", "ean", "gtin", "asin", "isbn"}
# Words that end in "id" but do not name an id.
_NOT_IDS = {
    "aid", "acid", "android", "avoid", "bid", "fluid", "grid", "humid", "hybrid", "invalid", "kid",
    "lid", "liquid", "maid", "mid", "paid", "prepaid", "raid", "rapid", "said", "solid", "squid",
    "unpaid", "valid", "vivid", "void",
}  # fmt: skip
_BASKET_WORDS = {"order", "basket", "invoice", "transaction", "receipt", "cart", "ticket"}
_BASKET_WORDS |= {"checkout"}
_SESSION_WORDS = {"session", "visit"}
_TIME_WORDS = {"time", "timestamp", "datetime", "date", "ts", "dt", "day", "epoch"}
_CREATION_WORDS = {
    "created", "creation", "create", "signup", "registered", "registration", "joined", "join",
    "start", "started", "first", "since", "opened", "open", "release", "released", "launch",
    "launched", "published", "listed", "added", "onboarded", "birth",
}  # fmt: skip
_MEASURE_WORDS = {
    "quantity", "qty", "units", "count", "amount", "price", "cost", "value", "total", "sales",
    "revenue", "discount", "disc", "weight", "age", "score", "rating", "duration", "length",
    "width", "height", "volume", "stock", "balance", "spend", "margin", "tax", "fee",
}  # fmt: skip
_QUANTITY_WORDS = {"quantity", "qty", "units"}
_RETURN_WORDS = {"return", "returned", "returns", "refund", "refunded"}
_KIND_COLUMN_WORDS = {"event", "type", "kind", "action", "behavior", "behaviour", "interaction"}
#: Raw event-type values (lower case, letters only) and the kind each one means.
_KIND_SYNONYMS = {
    **dict.fromkeys(["purchase", "purchased", "buy", "bought", "order", "transaction"], "purchase"),
    **dict.fromkeys(["checkout", "sale"], "purchase"),
    **dict.fromkeys(["addtocart", "cart", "addcart", "addtobasket", "basket"], "add_to_cart"),
    **dict.fromkeys(["view", "viewed", "pageview", "pv", "detail", "productview"], "view"),
    **dict.fromkeys(["click", "clicked"], "click"),
    **dict.fromkeys(["wishlist", "fav", "favorite", "favourite", "like", "save"], "wishlist"),
    **dict.fromkeys(["return", "returned", "refund"], "return"),
    **dict.fromkeys(["rating", "rate", "rated", "review"], "rating"),
}  # fmt: skip
_DATEISH = re.compile(
    r"\d{4}-\d{1,2}(-\d{1,2})?"  # 2024-01-31, 2024-01
    r"|\d{1,4}/\d{1,2}/\d{1,4}"  # 12/31/2024, 2024/01/31
    r"|\d{1,2}\.\d{1,2}\.\d{4}"  # 31.12.2024
    r"|\d{1,2}[ -][A-Za-z]{3,9}[ -]\d{2,4}"  # 31 Dec 2024, 31-Dec-24
    r"|[A-Za-z]{3,9} \d{1,2},? \d{4}"  # Dec 31, 2024
)
_INT_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
}  # fmt: skip
_COMMENT_AT = 36
_ROW = "__hoprec_row"


# --- names -------------------------------------------------------------------------------------


def _tokens(name: str) -> list[str]:
    """Words of a column or table name: ``CustomerID`` -> ``['customer', 'id']``."""
    words: list[str] = []
    for part in re.split(r"[^0-9A-Za-z]+", name):
        words += re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", part)
    return [w.lower() for w in words if w]


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _id_stem(name: str) -> list[str] | None:
    """The entity words of an id-like name (``store_id`` -> ``['store']``); None if not id-like."""
    words = _tokens(name)
    if not words:
        return None
    last = words[-1]
    if last in _ID_SUFFIXES:
        return words[:-1]
    if last.endswith("id") and len(last) >= 3 and last not in _NOT_IDS:
        return [*words[:-1], last[:-2]]
    return None


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "zes", "ches", "shes", "tuses")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _plural(word: str) -> str:
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def _table_singular(table: str) -> str:
    words = _tokens(table)
    return "".join([*words[:-1], _singular(words[-1])]) if words else table


def _own_key_names(table: str) -> set[str]:
    """Normalised names a table's own key would have: ``orders`` -> ``orderid``, ``orderno`` …"""
    return {_norm(_table_singular(table)) + s for s in _ID_SUFFIXES}


def _identifier(text: str) -> str:
    out = re.sub(r"[^0-9a-z_]+", "_", text.lower()).strip("_") or "table"
    return f"t_{out}" if out[0].isdigit() else out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- what the sample says about each column ----------------------------------------------------


@dataclass(eq=False)
class _Column:
    name: str
    dtype: str  # DuckDB type
    kind: str  # int | float | string | time | bool | list | other
    nonnull: int = 0
    distinct: int = 0
    stem: list[str] | None = None  # entity words when the name is id-like
    id_shaped: bool = False  # integer values, or short strings without spaces
    avg_len: float = 0.0
    space_share: float = 0.0
    negative: bool = False
    binary: bool = False  # numbers that are all 0 or 1
    date_format: str | None = None  # strings that parse as dates: the format ("" = pandas infers)
    epoch: str | None = None  # "s" or "ms": integers that are Unix times
    values: list[str] = field(default_factory=list)  # the distinct strings, when at most 20
    ctype: str | None = None
    why: str = ""

    @property
    def high_cardinality(self) -> bool:
        return self.distinct >= 20 or self.distinct >= 0.5 * self.nonnull

    @property
    def strong_id(self) -> bool:
        """An id by name and by values (a ``...code`` column only with many distinct values)."""
        if self.stem is None or not self.id_shaped or self.kind not in ("int", "float", "string"):
            return False
        if _tokens(self.name)[-1] == "code" and not self.high_cardinality:
            return False
        return self.nonnull > 0

    @property
    def is_time(self) -> bool:
        return self.kind == "time" or self.date_format is not None or self.epoch is not None


@dataclass(eq=False)
class _Table:
    name: str
    file: Path
    sample: str  # DuckDB table holding the sampled rows
    full: str  # DuckDB view over the whole file
    rows: int  # sampled
    total: int  # in the file
    columns: dict[str, _Column]
    pk: str | None = None
    pk_why: str = ""
    fks: dict[str, str] = field(default_factory=dict)
    fk_why: dict[str, str] = field(default_factory=dict)
    time_column: str | None = None
    time_why: str = ""
    time_format: str | None = None
    query: str | None = None
    event: dict[str, object] | None = None
    event_why: list[str] = field(default_factory=list)
    basket: str | None = None
    session: str | None = None
    notes: list[str] = field(default_factory=list)  # comments for the table's YAML block

    @property
    def truncated(self) -> bool:
        return self.rows < self.total


@dataclass(eq=False)
class _Derived:
    name: str
    pk: str
    users: list[tuple[str, str]]  # (table, column) pointing at it
    attributes_from: str | None
    why: str


def _kind_of(dtype: str) -> str:
    if dtype.startswith("TIMESTAMP") or dtype == "DATE":
        return "time"
    if dtype in _INT_TYPES:
        return "int"
    if dtype in ("FLOAT", "DOUBLE", "REAL") or dtype.startswith("DECIMAL"):
        return "float"
    if dtype == "VARCHAR":
        return "string"
    if dtype == "BOOLEAN":
        return "bool"
    if dtype.endswith("[]") or dtype.startswith("LIST"):
        return "list"
    return "other"


def _date_format(values: pd.Series) -> str | None:
    """How strings parse as dates, the way ``load_database`` parses them; None if they do not.

    Returns "" when pandas infers the format by itself (ISO dates), else the format to give as
    ``time_format`` (day/month order decided by the values; month first when they cannot tell).
    """
    vals = pd.Series(values.dropna().astype(str).str.strip().unique())
    if vals.empty or not vals.str.match(_DATEISH).all():
        return None
    from pandas.tseries.api import guess_datetime_format

    first = vals.iloc[0]
    tries: list[str | None]
    iso = (guess_datetime_format(first) or "").startswith("%Y-%m-%d")
    if iso:
        tries = [None, "ISO8601"]
    else:
        tries = [guess_datetime_format(first), guess_datetime_format(first, dayfirst=True), None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in dict.fromkeys(tries):
            try:
                parsed = pd.to_datetime(vals, format=fmt, errors="coerce", utc=True)
            except (ValueError, TypeError):
                continue
            if parsed.notna().all():
                return "" if fmt is None else fmt
    return None


def _epoch(name: str, values: pd.Series) -> str | None:
    """The unit ("s" or "ms") when a time-named numeric column holds Unix times, else None."""
    words = _tokens(name)
    if not words or not (set(words) & _TIME_WORDS or words[-1] == "at") or _id_stem(name):
        return None
    lo, hi = float(values.min()), float(values.max())
    if 1e8 <= lo and hi <= 4.2e9:
        return "s"
    if 1e11 <= lo and hi <= 4.2e12:
        return "ms"
    return None


def _profile_column(name: str, dtype: str, s: pd.Series) -> _Column:
    col = _Column(name=name, dtype=dtype, kind=_kind_of(dtype), stem=_id_stem(name))
    ok = s.dropna()
    col.nonnull = len(ok)
    if col.kind in ("list", "other") or not col.nonnull:
        return col
    col.distinct = int(ok.nunique())
    if col.kind == "int":
        col.id_shaped = True
        col.negative = bool((ok < 0).any())
        col.binary = bool(ok.isin([0, 1]).all())
        col.epoch = _epoch(name, ok)
    elif col.kind == "float":
        num = ok.astype("float64")
        col.id_shaped = bool((num == num.round()).all())
        col.negative = bool((num < 0).any())
        col.binary = bool(num.isin([0.0, 1.0]).all())
        col.epoch = _epoch(name, num)
    elif col.kind == "string":
        text = ok.astype(str)
        col.avg_len = float(text.str.len().mean())
        col.space_share = float(text.str.contains(r"\s", regex=True).mean())
        col.id_shaped = bool(text.str.len().max() <= 64 and col.space_share <= 0.01)
        if col.stem is None:
            col.date_format = _date_format(text)
        if col.distinct <= 20:
            col.values = sorted(text.unique().tolist())
    return col


# --- the guesses -------------------------------------------------------------------------------


class _Inferrer:
    def __init__(self, folder: Path, relative_to: Path, sample_rows: int) -> None:
        self.folder = folder
        self.relative_to = relative_to
        self.sample_rows = sample_rows
        self.con = duckdb.connect()
        self.tables: dict[str, _Table] = {}
        self.derived: dict[str, _Derived] = {}
        self.notes: list[str] = []
        self.skipped: list[str] = []

    # reading

    def read(self, files: list[Path]) -> None:
        for i, path in enumerate(files):
            fmt = "parquet" if path.name.lower().endswith(".parquet") else "csv"
            stem = re.sub(r"\.(csv\.gz|csv|parquet)$", "", path.name, flags=re.IGNORECASE)
            name = base = _identifier(stem)
            n = 1
            while name in self.tables:
                n += 1
                name = f"{base}_{fmt}" if n == 2 else f"{base}_{n}"
            full, sample = f"file_{i}", f"sample_{i}"
            reader = _duck_reader(fmt, [str(path)], {})
            try:
                self.con.execute(f"CREATE VIEW {full} AS SELECT * FROM {reader}")
                total = self.con.execute(f"SELECT count(*) FROM {full}").fetchone()[0]
                step = max(1, -(-total // self.sample_rows))  # every step-th row, in file order
                self.con.execute(
                    f"CREATE TABLE {sample} AS SELECT * EXCLUDE ({_ROW}) FROM "
                    f"(SELECT *, row_number() OVER () AS {_ROW} FROM {full}) "
                    f"WHERE ({_ROW} - 1) % {step} = 0 ORDER BY {_ROW}"
                )
                described = self.con.execute(f"DESCRIBE {sample}").fetchall()
                df = self.con.execute(f"SELECT * FROM {sample}").df()
            except duckdb.Error as e:
                reason = str(e).strip().splitlines()[0]
                self.skipped.append(f"{path.name}: {reason}")
                self.notes.append(f"skipped {path.name} because DuckDB cannot read it: {reason}")
                continue
            if total == 0:
                self.skipped.append(f"{path.name}: no rows")
                self.notes.append(f"skipped {path.name} because it has no rows")
                continue
            columns = {c: _profile_column(c, str(t), df[c]) for c, t, *_ in described}
            self.tables[name] = _Table(name, path, sample, full, len(df), total, columns)

    def _scope(self, t: _Table) -> str:
        if t.truncated:
            return f"{t.rows:,} rows spread evenly over the file's {t.total:,}"
        return f"all {t.rows:,} rows"

    # 1. primary keys

    def primary_keys(self) -> None:
        unique = {
            t.name: [
                c
                for c in t.columns.values()
                if c.strong_id and c.nonnull == t.rows and c.distinct == t.rows
            ]
            for t in self.tables.values()
        }
        own_keys = {  # per table, the unique columns named after it: its own key elsewhere
            n: {_norm(c.name) for c in cols if _norm(c.name) in _own_key_names(n)}
            for n, cols in unique.items()
        }
        for t in self.tables.values():
            owned_elsewhere = set().union(*(k for n, k in own_keys.items() if n != t.name))
            preferred = [c for c in unique[t.name] if _norm(c.name) in own_keys[t.name]]
            generic = [c for c in unique[t.name] if _norm(c.name) == "id"]
            rest = [c for c in unique[t.name] if _norm(c.name) not in owned_elsewhere]
            own = _own_key_names(t.name)
            named = [
                c for c in t.columns.values() if _norm(c.name) in own and c not in unique[t.name]
            ]
            for c in named:
                dups = c.nonnull - c.distinct
                t.notes.append(
                    f"{c.name} is named after the table but is not its primary key: {dups:,} "
                    f"repeated and {t.rows - c.nonnull:,} empty values in {self._scope(t)}"
                )
            for c in dict.fromkeys([*preferred, *generic, *rest]):
                if t.truncated and not self._unique_in_file(t, c):
                    t.notes.append(f"{c.name} is unique in the sample but not in the whole file")
                    continue
                why = (
                    "named after the table"
                    if c in preferred
                    else ("named id" if c in generic else "the first id-like column")
                )
                t.pk = c.name
                t.pk_why = f"unique and never empty in {self._scope(t)}; {why}"
                if t.truncated:
                    t.pk_why += " (uniqueness checked over the whole file)"
                self.notes.append(f"{t.name}: primary key {c.name!r} because it is {t.pk_why}")
                break

    def _unique_in_file(self, t: _Table, c: _Column) -> bool:
        q = _quote(c.name)
        n, distinct, nonnull = self.con.execute(
            f"SELECT count(*), count(DISTINCT {q}), count({q}) FROM {t.full}"
        ).fetchone()
        return n == distinct == nonnull

    # 2. foreign keys

    @staticmethod
    def _key_sql(c: _Column) -> str:
        q = _quote(c.name)
        if c.kind == "float":
            return f"CAST(TRY_CAST({q} AS BIGINT) AS VARCHAR)"
        return f"trim(CAST({q} AS VARCHAR))"

    def _match(self, t: _Table, c: _Column, o: _Table) -> tuple[float, int, int, list[str]]:
        """Share of ``t.c``'s sampled rows whose value is a key of ``o``; rows; distinct; misses."""
        p = o.columns[o.pk or ""]
        keys = o.full if o.truncated else o.sample
        sql = f"""
            WITH v AS (SELECT {self._key_sql(c)} AS v FROM {t.sample}
                       WHERE {_quote(c.name)} IS NOT NULL),
                 k AS (SELECT DISTINCT {self._key_sql(p)} AS k FROM {keys})
            SELECT count(*), count(k.k), count(DISTINCT v.v),
                   list(DISTINCT v.v) FILTER (WHERE k.k IS NULL)[1:3]
            FROM v LEFT JOIN k ON v.v = k.k
        """
        n, hits, distinct, misses = self.con.execute(sql).fetchone()
        return (hits / n if n else 0.0), n, distinct, list(misses or [])

    def foreign_keys(self) -> dict[tuple[str, str], tuple[str, float]]:
        """Find foreign keys; return the near misses (too few matches): (table, col) -> target."""
        weak: dict[tuple[str, str], tuple[str, float]] = {}
        keyed = [o for o in self.tables.values() if o.pk]
        for t in self.tables.values():
            for c in t.columns.values():
                if c.name == t.pk or not c.id_shaped or c.nonnull == 0:
                    continue
                if c.kind not in ("int", "float", "string"):
                    continue
                found = []
                for o in keyed:
                    if o is t:
                        continue
                    pk_norm = _norm(o.pk or "")
                    by_pk = _norm(c.name) == pk_norm and pk_norm not in _ID_SUFFIXES
                    by_table = _norm(c.name) in _own_key_names(o.name)
                    if not (by_pk or by_table):
                        continue
                    rate, n, distinct, misses = self._match(t, c, o)
                    how = (
                        f"it has the name of the primary key of {o.name}"
                        if by_pk
                        else f"it is named after table {o.name}"
                    )
                    found.append((rate, by_table, o, n, distinct, misses, how))
                if not found:
                    continue
                rate, _, o, n, distinct, misses, how = max(found, key=lambda f: (f[0], f[1]))
                stats = (
                    f"{_pct(rate)} of {n:,} sampled rows ({distinct:,} distinct values) match "
                    f"{o.name}.{o.pk}"
                )
                if misses and rate < 1:
                    stats += f"; unmatched e.g. {misses}"
                if rate >= FK_MIN_MATCH:
                    t.fks[c.name] = o.name
                    t.fk_why[c.name] = f"{_pct(rate)} of sampled rows match {o.name}.{o.pk}"
                    self.notes.append(
                        f"{t.name}.{c.name}: foreign key to {o.name} because {how} and {stats}"
                    )
                else:
                    if rate >= FK_PARTIAL_MATCH:
                        weak[(t.name, c.name)] = (o.name, rate)
                    self.notes.append(
                        f"{t.name}.{c.name}: not a foreign key to {o.name}: {how} but only {stats} "
                        f"(at least {FK_MIN_MATCH:.0%} needed)"
                    )
        return weak

    # 3. time columns (candidates), then 4. derived tables, then the final time columns

    @staticmethod
    def _time_candidate(t: _Table) -> _Column | None:
        times = [c for c in t.columns.values() if c.is_time and c.name not in (t.pk, *t.fks)]
        named = [
            c for c in times if set(_tokens(c.name)) & _TIME_WORDS or _tokens(c.name)[-1:] == ["at"]
        ]
        return (named or times or [None])[0]

    def derived_tables(self, weak: dict[tuple[str, str], tuple[str, float]]) -> None:
        loose: dict[str, list[tuple[_Table, _Column]]] = {}
        for t in self.tables.values():
            for c in t.columns.values():
                if c.name == t.pk or c.name in t.fks or not c.strong_id or not c.stem:
                    continue
                if c.stem[-1] in _BASKET_WORDS | _SESSION_WORDS:
                    if self._time_candidate(t) and _repeats(c):
                        if c.stem[-1] in _BASKET_WORDS:
                            t.basket = t.basket or c.name
                        else:
                            t.session = t.session or c.name
                    continue
                loose.setdefault(_norm(c.name), []).append((t, c))
        taken = set(self.tables)
        for users in loose.values():
            t0, c0 = users[0]
            stem = c0.stem or []
            used_by = list(dict.fromkeys(t.name for t, _ in users))
            partial = [weak[(t.name, c.name)] for t, c in users if (t.name, c.name) in weak]
            attributes = partial[0][0] if partial else None
            if attributes and self.tables[attributes].pk != c0.name:
                attributes = None
            if len(used_by) >= 2:
                why = (
                    f"{c0.name} is used by {', '.join(used_by)} and no file has it as a unique key"
                )
            elif partial:
                why = (
                    f"only {_pct(partial[0][1])} of {t0.name}.{c0.name} values are in "
                    f"{partial[0][0]}, so that table cannot be the list of all of them"
                )
            else:
                if not (self._time_candidate(t0) and self._references(t0, loose) and _repeats(c0)):
                    continue
                why = (
                    f"{t0.name} rows name {c0.name} values ({c0.distinct:,} distinct in the "
                    "sample) "
                    f"and no file lists them"
                )
            name = "_".join([*stem[:-1], _plural(stem[-1])])
            if name in taken:
                name = "_".join([*stem, "keys"])
            while name in taken:
                name += "_"
            taken.add(name)
            for t, c in users:
                t.fks[c.name] = name
                t.fk_why[c.name] = f"derived table {name}"
            self.derived[name] = _Derived(
                name, c0.name, [(t.name, c.name) for t, c in users], attributes, why
            )
            extra = f"; attributes join in from {attributes}" if attributes else ""
            self.notes.append(
                f"{name}: derived table (keys = the {c0.name} values in use) because {why}{extra}"
            )

    @staticmethod
    def _references(t: _Table, loose: dict[str, list[tuple[_Table, _Column]]]) -> bool:
        """Whether ``t``'s rows point at things: no primary key, or two or more references."""
        if not t.pk:
            return True
        repeated = [c for users in loose.values() for u, c in users if u is t and _repeats(c)]
        return len(t.fks) + len(repeated) >= 2

    def time_columns(self) -> None:
        for t in self.tables.values():
            c = self._time_candidate(t)
            if c is None:
                continue
            entity_list = t.pk is not None and not t.fks
            if entity_list and not set(_tokens(c.name)) & _CREATION_WORDS:
                t.notes.append(
                    f"{c.name} is not used as time_column: {t.name} looks like a list of "
                    "entities and "
                    f"the name does not say when a row came into being (add time_column if it does)"
                )
                self.notes.append(
                    f"{t.name}: no time column although {c.name!r} is a timestamp, because "
                    f"{t.name} lists entities (primary key, no foreign keys) and the name does not "
                    f"say when each one appeared"
                )
                continue
            t.time_column = c.name
            others = [x.name for x in t.columns.values() if x.is_time and x is not c]
            why = (
                "its name says time/date"
                if set(_tokens(c.name)) & (_TIME_WORDS | {"at"})
                else ("it is the first timestamp column")
            )
            if entity_list:
                why = "its name says when each row came into being"
            if others:
                why += f" (other timestamp columns: {', '.join(others)})"
            if c.kind == "time":
                source = f"{c.dtype} values"
            elif c.epoch == "s":
                source = "numbers that are Unix times in seconds"
            elif c.epoch == "ms":
                source = "numbers that are Unix times in milliseconds (converted by the query)"
                q = _quote(c.name)
                ms = q if c.kind == "int" else f"CAST({q} AS BIGINT)"
                t.query = f"SELECT * REPLACE (epoch_ms({ms}) AS {q}) FROM source"
            else:
                source = "strings that parse as dates"
                if c.date_format:
                    t.time_format = c.date_format
                    source += f" with the format {c.date_format!r}"
                    if (
                        "%d" in c.date_format
                        and "%m" in c.date_format
                        and "%Y-%m-%d" not in c.date_format
                    ):
                        source += " (check the day/month order)"
            t.time_why = f"{source}; {why}"
            self.notes.append(f"{t.name}: time column {c.name!r} because it holds {t.time_why}")

    # 5. column types

    def column_types(self) -> None:
        for t in self.tables.values():
            for c in t.columns.values():
                if c.name in (t.pk, t.time_column, *t.fks):
                    continue
                c.ctype, c.why = self._column_type(t, c)
                if c.ctype is None:
                    t.notes.append(f"{c.name} left out: {c.why}")
                    self.notes.append(f"{t.name}.{c.name}: left out because {c.why}")
                else:
                    self.notes.append(f"{t.name}.{c.name}: {c.ctype} because {c.why}")

    @staticmethod
    def _column_type(t: _Table, c: _Column) -> tuple[str | None, str]:
        if c.nonnull == 0:
            return None, "it is empty in the sample"
        words = set(_tokens(c.name))
        card = f"{c.distinct:,} distinct of {c.nonnull:,}"
        if c.kind == "time":
            return "timestamp", f"{c.dtype} values"
        if c.date_format is not None:
            return "timestamp", "strings that parse as dates"
        if c.kind == "list":
            return "list", f"{c.dtype} values"
        if c.kind == "bool":
            return "categorical", "true/false values"
        if c.kind == "other":
            return None, f"hoprec has no column type for {c.dtype}"
        if c.name in (t.basket, t.session):
            role = "basket" if c.name == t.basket else "session"
            return "id", f"the {role} of each row ({c.distinct:,} distinct)"
        if c.strong_id and c.high_cardinality:
            return "id", f"id-like name and values ({card})"
        if c.kind == "int":
            if c.epoch:
                return "numerical", "Unix times, but not the time column"
            if words & _MEASURE_WORDS:
                return "numerical", f"integers with a measure-like name ({card})"
            if c.distinct <= 20 and c.distinct <= 0.5 * c.nonnull:
                return "categorical", f"few distinct integers ({card})"
            return "numerical", f"integers ({card})"
        if c.kind == "float":
            return "numerical", "decimal numbers"
        many = c.distinct > 0.5 * c.nonnull and c.distinct >= 10
        if c.avg_len >= 40:
            return "text", f"long strings (mean length {c.avg_len:.0f})"
        if c.space_share >= 0.5 and many:
            return "text", f"strings with spaces, mostly distinct ({card})"
        if c.distinct <= max(50, 0.05 * c.nonnull):
            return "categorical", f"few distinct strings ({card})"
        if c.space_share >= 0.3:
            return "text", f"many distinct strings with spaces ({card})"
        return "categorical", f"many distinct strings ({card}); id if they are identifiers"

    # 6. event tables

    def events(self) -> None:
        for t in self.tables.values():
            if not t.time_column or len(t.fks) < 2:
                continue
            kind = _kind_from_name(t.name)
            event: dict[str, object] = {"kind": kind or "purchase"}
            why = [f"it has a time column and {len(t.fks)} foreign keys"]
            kind_col = self._kind_column(t)
            if kind_col:
                col, mapping = kind_col
                event = {"kind_column": col}
                renamed = {raw: kind for raw, kind in mapping.items() if raw != kind}
                if renamed:
                    event["kind_values"] = renamed
                why.append(f"{col} says what each row is ({', '.join(mapping)})")
            elif kind:
                why.append(f"the table name says each row is a {kind}")
            else:
                why.append("every row is taken as a purchase (check this)")
            qty = next(
                (
                    c
                    for c in t.columns.values()
                    if c.kind in ("int", "float")
                    and set(_tokens(c.name)) & _QUANTITY_WORDS
                    and c.name not in t.fks
                ),
                None,
            )
            if qty is not None:
                event["quantity_column"] = qty.name
                c = qty
                if c.ctype is None:
                    c.ctype, c.why = "numerical", "quantity"
                if c.negative:
                    t.notes.append(
                        f"{c.name} has negative values: if those rows are returns, add "
                        f"kind_when: {{return: '{_sql_name(c.name)} < 0'}} to the event block"
                    )
                    self.notes.append(
                        f"{t.name}.{c.name}: has negative values, perhaps returns "
                        f"(event.kind_when: {{return: '{_sql_name(c.name)} < 0'}})"
                    )
            basket = t.basket or next(
                (
                    c.name
                    for c in t.columns.values()
                    if c.name != t.pk and c.stem and c.stem[-1] in _BASKET_WORDS and c.strong_id
                ),
                None,
            )
            flag = next(
                (
                    c
                    for c in t.columns.values()
                    if set(_tokens(c.name)) & _RETURN_WORDS and (c.kind == "bool" or c.binary)
                ),
                None,
            )
            if flag is not None and "kind_column" not in event:
                cond = _sql_name(flag.name) + ("" if flag.kind == "bool" else " = 1")
                event["kind_when"] = {"return": cond}
                why.append(f"rows with {cond} are returns")
            if basket:
                event["basket_column"] = basket
                why.append(f"{basket} groups rows into baskets")
            if t.session:
                event["session_column"] = t.session
                why.append(f"{t.session} groups rows into sessions")
            t.event = event
            t.event_why = why
            self.notes.append(f"{t.name}: event table because {'; '.join(why)}")

    @staticmethod
    def _kind_column(t: _Table) -> tuple[str, dict[str, str]] | None:
        for c in t.columns.values():
            if c.kind != "string" or c.ctype != "categorical":
                continue
            if not set(_tokens(c.name)) & _KIND_COLUMN_WORDS:
                continue
            return _Inferrer._kinds_of(c) if c.distinct <= 20 else None
        return None

    @staticmethod
    def _kinds_of(c: _Column) -> tuple[str, dict[str, str]] | None:
        """The kind each value of ``c`` means, if every sampled value is a known kind."""
        mapping = {}
        for raw in c.values:
            kind = _KIND_SYNONYMS.get(re.sub(r"[^a-z]", "", raw.lower()))
            if kind is None:
                return None
            mapping[raw] = kind
        return (c.name, mapping) if mapping else None

    # output

    def render(self, name: str) -> str:
        lines = ["# Schema drafted by hoprec from the data files in", f"#   {self.folder}"]
        lines += _comment_lines(
            "Every entry below is a guess to check: the comment above each block says what it was "
            f"guessed from (at most {self.sample_rows:,} rows of each file, spread evenly over "
            "it).  hoprec reads only "
            "the columns named here, so delete what you do not need.  Column types: id, "
            "categorical, numerical, text, timestamp, list.  Paths are relative to this file's "
            "folder.",
            "",
        )
        if self.skipped:
            lines += _comment_lines("Skipped (unreadable): " + "; ".join(self.skipped), "")
        lines += [f"name: {_scalar(name)}", "", "tables:"]
        order = sorted(
            self.tables.values(),
            key=lambda t: (t.event is None, t.time_column is None or bool(t.pk), t.name),
        )
        for t in order:
            lines += self._render_table(t)
        for d in self.derived.values():
            lines += self._render_derived(d)
        return "\n".join(lines).rstrip() + "\n"

    def _render_table(self, t: _Table) -> list[str]:
        rel = _relative(t.file, self.relative_to)
        what = (
            "an event table"
            if t.event
            else ("a list of entities" if t.pk and not t.fks else "a table")
        )
        out = [""]
        out += _comment_lines(
            f"{t.file.name}: {what}; {self._scope(t)} read for these guesses.", "  "
        )
        for note in t.notes:
            out += _comment_lines(note, "  ")
        out.append(f"  {_scalar(t.name)}:")
        if t.query:
            out += [
                "    source:",
                f"      path: {_scalar(rel)}",
                f"      query: {_scalar(t.query)}",
            ]
        else:
            out.append(f"    source: {{path: {_scalar(rel)}}}")
        if t.pk:
            out.append(_commented(f"    primary_key: {_scalar(t.pk)}", t.pk_why))
        else:
            out.append("    # no primary key: no id-like column is unique and never empty")
        if t.time_column:
            out.append(_commented(f"    time_column: {_scalar(t.time_column)}", t.time_why))
            if t.time_format:
                out.append(
                    _commented(f"    time_format: {_scalar(t.time_format)}", "strftime codes")
                )
        if t.fks:
            out.append("    # matched by name, then by values against the target's primary key")
            out.append("    foreign_keys:")
            for col, target in sorted(t.fks.items(), key=lambda kv: list(t.columns).index(kv[0])):
                out.append(_commented(f"      {_scalar(col)}: {_scalar(target)}", t.fk_why[col]))
        typed = [c for c in t.columns.values() if c.ctype]
        if typed:
            out.append("    columns:")
            for c in typed:
                out.append(_commented(f"      {_scalar(c.name)}: {c.ctype}", c.why))
        if t.event:
            weights = ", ".join(f"{k} {v:.1f}" for k, v in DEFAULT_KIND_WEIGHTS.items())
            out += _comment_lines(f"event: {'; '.join(t.event_why)}.", "    ")
            out += _comment_lines(
                f"Kinds and default weights: {weights}.  Set `kind` for every row, or kind_column "
                "(+ kind_values) when a column names each row's kind, or kind_when: {kind: SQL "
                "condition}; `weights` overrides the defaults.",
                "    ",
            )
            out.append("    event:")
            order = ["kind", "kind_column", "kind_values", "kind_when", "quantity_column"]
            keys = sorted(t.event, key=lambda k: order.index(k) if k in order else len(order))
            for key in keys:
                value = t.event[key]
                if isinstance(value, dict):
                    out.append(f"      {key}:")
                    out += [f"        {_scalar(k)}: {_scalar(v)}" for k, v in value.items()]
                else:
                    out.append(f"      {key}: {_scalar(value)}")
        return out

    def _render_derived(self, d: _Derived) -> list[str]:
        users = ", ".join(f"{t}.{c}" for t, c in d.users)
        out = [""]
        out += _comment_lines(
            f"derived: no file lists every {d.pk}, so the rows are the keys in use ({users}).  "
            f"Why: {d.why}.",
            "  ",
        )
        out += [
            f"  {_scalar(d.name)}:",
            "    source: {derived: true}",
            f"    primary_key: {_scalar(d.pk)}",
        ]
        if d.attributes_from:
            out.append(
                _commented(
                    f"    attributes_from: {_scalar(d.attributes_from)}",
                    "left-joined: keys without a row there are kept",
                )
            )
        return out


def _pct(rate: float) -> str:
    """A share as a percentage rounded down, so that 100% means all."""
    return f"{math.floor(rate * 1000) / 10:g}%"


def _sql_name(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else _quote(name)


def _repeats(c: _Column) -> bool:
    return 2 <= c.distinct < c.nonnull


def _kind_from_name(table: str) -> str | None:
    """The event kind a table's name states (``page_views`` -> ``view``), if any."""
    for word in reversed(_tokens(table)):
        kind = _KIND_SYNONYMS.get(_singular(word))
        if kind:
            return kind
    return None


def _scalar(value: object) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _commented(line: str, comment: str) -> str:
    """``line`` with ``comment`` on its right, or above it when that would make it too long."""
    if not comment:
        return line
    if max(len(line), _COMMENT_AT) + 4 + len(comment) <= 100:
        return f"{line.ljust(_COMMENT_AT)}  # {comment}"
    indent = line[: len(line) - len(line.lstrip())]
    return "\n".join([*_comment_lines(comment, indent), line])


def _comment_lines(text: str, indent: str) -> list[str]:
    """``text`` as YAML comment lines of at most 100 characters, continuation lines indented."""
    import textwrap

    width = 100 - len(indent) - 2
    lines = textwrap.wrap(text, width=width, subsequent_indent="  ", break_on_hyphens=False)
    return [f"{indent}# {line}" for line in lines]


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return path.resolve().as_posix()


def _data_files(folder: Path) -> list[Path]:
    files: dict[Path, None] = {}
    for pattern in DATA_PATTERNS:
        for p in sorted(folder.glob(pattern)):
            if p.is_file():
                files[p] = None
    return sorted(files)


def infer_schema(
    folder: str | Path,
    name: str | None = None,
    sample_rows: int = 50_000,
    relative_to: Path | None = None,
) -> tuple[str, list[str]]:
    """Draft a schema for every CSV/Parquet file in ``folder``.

    Args:
        folder: the folder holding ``*.csv``, ``*.csv.gz`` and ``*.parquet`` files (not searched
            recursively); each file becomes a table named after it.
        name: the schema's name (default: the folder's name).
        sample_rows: how many rows of each file the guesses look at: all of a shorter file, else
            every n-th row (in file order, so the sample spans the whole file).  Uniqueness of a
            primary key, and foreign-key matches against it, are checked on the whole key file.
        relative_to: the folder the schema file will be saved in; ``path:`` entries are written
            relative to it (default: ``folder``).

    Returns:
        ``(yaml_text, notes)``: the schema as YAML with comments, and one note per guess, each
        saying what was guessed and why (match rates for foreign keys included).

    Raises:
        SchemaError: the folder does not exist or holds no data file that can be used (each
            unreadable or empty file is skipped, with a note, when others can be).
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise SchemaError(f"cannot draft a schema: folder not found: {root}")
    if sample_rows < 1:
        raise ValueError(f"sample_rows must be at least 1, got {sample_rows}")
    files = _data_files(root)
    if not files:
        raise SchemaError(
            f"cannot draft a schema: no data files in {root} "
            f"(looked for {', '.join(DATA_PATTERNS)}, not in subfolders)"
        )
    base = Path(relative_to).expanduser() if relative_to is not None else root
    inf = _Inferrer(root, base, sample_rows)
    try:
        inf.read(files)
        if not inf.tables:
            raise SchemaError(
                f"cannot draft a schema: no data file in {root} could be used: "
                + "; ".join(inf.skipped)
            )
        inf.primary_keys()
        weak = inf.foreign_keys()
        inf.derived_tables(weak)
        inf.time_columns()
        inf.column_types()
        inf.events()
        for t in list(inf.tables.values()):
            if not (t.pk or t.fks or t.time_column or any(c.ctype for c in t.columns.values())):
                del inf.tables[t.name]
                inf.skipped.append(f"{t.file.name}: no column hoprec can use")
                inf.notes.append(f"skipped {t.file.name} because no column has a usable type")
        if not inf.tables:
            raise SchemaError(
                f"cannot draft a schema: no data file in {root} could be used: "
                + "; ".join(inf.skipped)
            )
        schema_name = name or _identifier(root.resolve().name)
        text = inf.render(schema_name)
    finally:
        inf.con.close()
    if not any(t.event for t in inf.tables.values()):
        inf.notes.append(
            "no event table: none has a time column and two foreign keys; if order lines carry "
            "no time, give them one with a `query:` joining the order's date (see "
            "examples/completejourney/schema.yaml, table campaigns)"
        )
    schema_from_dict(yaml.safe_load(text), base_dir=base, file="<drafted schema>")
    return text, inf.notes
