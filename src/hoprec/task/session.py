"""A session query bound to a schema: ``PREDICT NEXT(table.item) RANK TOP k FOR EACH SESSION``.

Binds to the event table ``table`` and its item column ``item``.  Sessions come from the
table's ``event.session_column``, else its ``basket_column`` (a basket is a session), else its
visitor column split on inactivity (``event.sessions.gap_minutes``, default 30).  Settings live
under ``event.sessions`` (:class:`hoprec.data.schema.SessionSpec`).

Cutoffs: the test cutoff is the first timestamp of the rows meeting ``event.sessions.test_when``
when the data ships its own test split (YOOCHOOSE: ``split = 'test'``, a column the schema's
source query takes from the file name), else ``test_days`` before the last event.  Validation is
carved from the end of training the same way (the last ``test_days`` of training sessions).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from hoprec.data.database import WEIGHT, Database
from hoprec.data.idmap import IdMap
from hoprec.data.schema import Schema, SchemaError, SessionSpec
from hoprec.graph.sessions import Sessions, sessionize
from hoprec.task.pql import PQLError, Query, parse


@dataclass
class SessionTask:
    schema: Schema
    query: Query
    table: str
    item_column: str
    item_table: str | None
    k: int
    settings: SessionSpec
    session_column: str | None  # a session (or basket) column, else None
    visitor_column: str | None  # whose inactivity splits sessions when there is no session column

    @classmethod
    def from_query(cls, schema: Schema, text: str | Query) -> SessionTask:
        query = parse(text) if isinstance(text, str) else text
        if not query.per_session or query.next_ref is None:
            raise PQLError("expected PREDICT NEXT(table.item_column) ... FOR EACH SESSION", 0, query.text)
        query.validate({n: schema.columns_of(n) for n in schema.tables})
        ref = query.next_ref
        spec = schema.tables[ref.table]
        if spec.event is None or spec.time_column is None:
            raise PQLError(
                f"NEXT needs an event table with a time_column; {ref.table!r} has "
                f"{'no event section' if spec.event is None else 'no time_column'}",
                ref.position, query.text,
            )
        if ref.column is None:
            raise PQLError("NEXT needs the item column, e.g. NEXT(events.item_id)", ref.position, query.text)
        ev = spec.event
        settings = ev.sessions or SessionSpec()
        session_col = ev.session_column or ev.basket_column
        visitor = settings.visitor_column
        if session_col is None and visitor is None:
            others = [c for c, t in spec.foreign_keys.items() if c != ref.column]
            if len(others) != 1:
                raise SchemaError(
                    f"tables.{ref.table}.event: no session_column or basket_column, so sessions are "
                    f"cut on inactivity per visitor; name the visitor column in "
                    f"event.sessions.visitor_column (foreign keys: {', '.join(others) or 'none'})"
                )
            visitor = others[0]
        return cls(
            schema=schema, query=query, table=ref.table, item_column=ref.column,
            item_table=spec.foreign_keys.get(ref.column), k=query.top_k or 20, settings=settings,
            session_column=session_col, visitor_column=visitor,
        )

    @property
    def time_column(self) -> str:
        return self.schema.tables[self.table].time_column or ""

    def events(self, db: Database) -> pd.DataFrame:
        """The table's positive events (returns never count as clicks), with an item id."""
        df = db[self.table]
        if WEIGHT in df:
            df = df[df[WEIGHT] > 0]
        return df[df[self.item_column].notna()]

    def sessions(self, db: Database) -> tuple[Sessions, IdMap]:
        """Every session of the table (all time) in internal item ids, and the item id map."""
        df = self.events(db)
        items = IdMap.from_values(df[self.item_column])
        ids = items.to_internal(df[self.item_column].to_numpy())
        times = df[self.time_column].to_numpy(dtype="datetime64[ns]")
        gap = pd.Timedelta(minutes=self.settings.gap_minutes)
        seed = 0 if self.settings.tie_order == "shuffle" else None
        if self.session_column:
            s = sessionize(ids, times, session_keys=df[self.session_column].to_numpy(), shuffle_ties=seed)
        else:
            s = sessionize(ids, times, visitor_keys=df[self.visitor_column].to_numpy(), gap=gap,
                           shuffle_ties=seed)
        return s, items

    def item_attributes(self, db: Database, items: IdMap) -> tuple[np.ndarray, tuple[str, ...]]:
        """Per item, an int code for each categorical attribute (-1 unknown): the event table's
        categorical columns (an item's most frequent value) and the item table's."""
        cols, names = [], []
        spec = self.schema.tables[self.table]
        df = self.events(db)
        for c, t in spec.columns.items():
            if t == "categorical" and c not in (self.session_column, self.visitor_column) and c in df:
                mode = (df[[self.item_column, c]].dropna().groupby(self.item_column)[c]
                        .agg(lambda x: x.value_counts().index[0]))
                cols.append(mode.reindex(items.external).to_numpy())
                names.append(f"{self.table}.{c}")
        if self.item_table is not None:
            ispec = self.schema.tables[self.item_table]
            idf = db[self.item_table].drop_duplicates(ispec.primary_key).set_index(ispec.primary_key)
            if pd.api.types.is_integer_dtype(idf.index) != pd.api.types.is_integer_dtype(items.external):
                idf.index = idf.index.astype("string")
            for c in idf.columns:
                if self._categorical(self.item_table, c):
                    cols.append(idf[c].reindex(items.external).to_numpy())
                    names.append(f"{self.item_table}.{c}")
        codes = np.full((len(items), len(cols)), -1, dtype=np.int64)
        for j, v in enumerate(cols):
            codes[:, j] = pd.factorize(pd.Series(v), use_na_sentinel=True)[0]
        return codes, tuple(names)

    def _categorical(self, table: str, column: str) -> bool:
        spec = self.schema.tables[table]
        if spec.columns.get(column) == "categorical":
            return True
        if spec.attributes_from:
            return self.schema.tables[spec.attributes_from].columns.get(column) == "categorical"
        return False

    def test_cutoff(self, db: Database) -> pd.Timestamp:
        """Where test begins: the first ``test_when`` row, else ``test_days`` before the end."""
        df = self.events(db)
        tc = self.time_column
        if self.settings.test_when:
            try:
                hit = duckdb.query_df(
                    df, "t", f"SELECT min({_quote(tc)}) AS m FROM t WHERE coalesce(({self.settings.test_when}), false)"
                ).df()["m"].iloc[0]
            except duckdb.Error as e:
                raise SchemaError(
                    f"tables.{self.table}.event.sessions.test_when {self.settings.test_when!r} is "
                    f"not valid SQL over the table's columns ({', '.join(df.columns)}): {e}"
                ) from None
            if pd.isna(hit):
                raise SchemaError(
                    f"tables.{self.table}.event.sessions.test_when {self.settings.test_when!r} "
                    f"matches no row, so there is no test split"
                )
            return pd.Timestamp(hit)
        return pd.Timestamp(df[tc].max()) - pd.Timedelta(days=self.settings.test_days)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
