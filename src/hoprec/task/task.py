"""A predictive query bound to a schema: who is ranked, what is predicted, over which window.

``PREDICT LIST_DISTINCT(transactions.product_id, 0, 30, days) RANK TOP 12 FOR EACH
households.household_id`` binds to: entity table ``households`` (key ``household_id``), target
table ``transactions`` (time column, foreign key to households), item column ``product_id`` (a
foreign key to the item table ``products``) and a label window of ``[cutoff, cutoff + 30 days)``.
History for the models comes from every event table that links both entities and items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hoprec.data.database import KIND, QUANTITY, WEIGHT, Database
from hoprec.data.dataset import Dataset, Interactions
from hoprec.data.idmap import IdMap
from hoprec.data.schema import Schema, SchemaError
from hoprec.task import where as where_eval
from hoprec.task.pql import PQLError, Query, parse


class TaskError(ValueError):
    """The query cannot be answered with this schema or data; the message says why."""


@dataclass(frozen=True)
class HistorySource:
    """An event table that links entities and items, and which columns do so."""

    table: str
    entity_column: str
    item_column: str
    basket_column: str | None


@dataclass
class Task:
    schema: Schema
    query: Query
    entity_table: str
    entity_key: str
    target_table: str
    target_entity_column: str
    item_column: str
    item_table: str
    item_key: str
    window: tuple[pd.Timedelta, pd.Timedelta]
    k: int
    history: tuple[HistorySource, ...]

    # ------------------------------------------------------------------ binding
    @classmethod
    def from_query(cls, schema: Schema, text: str) -> Task:
        query = parse(text)
        if query.per_session:
            raise TaskError(
                "session queries (FOR EACH SESSION) run with `hoprec evaluate` "
                "(hoprec.task.session.SessionTask); this command takes customer queries only"
            )
        query.validate({n: schema.columns_of(n) for n in schema.tables})
        assert query.target is not None and query.entity is not None and query.top_k is not None
        tgt = query.target.ref
        ent = query.entity
        tspec = schema.tables[tgt.table]
        if tspec.time_column is None:
            raise PQLError(
                f"table {tgt.table!r} has no time_column, so it has no future to predict; "
                f"set time_column in the schema", tgt.position, text,
            )
        espec = schema.tables[ent.table]
        if ent.column != espec.primary_key:
            raise PQLError(
                f"FOR EACH needs the primary key of {ent.table!r} ({espec.primary_key!r}), "
                f"got {ent.column!r}", ent.position, text,
            )
        links = [c for c, t in tspec.foreign_keys.items() if t == ent.table]
        if len(links) != 1:
            raise PQLError(
                f"{tgt.table!r} must have exactly one foreign key to {ent.table!r}, has "
                f"{len(links)} ({', '.join(links) or 'none'})", tgt.position, text,
            )
        if tgt.column is None or tgt.column not in tspec.foreign_keys:
            raise PQLError(
                f"LIST_DISTINCT needs a foreign-key column of {tgt.table!r} naming the items "
                f"(foreign keys: {', '.join(tspec.foreign_keys) or 'none'})", tgt.position, text,
            )
        item_table = tspec.foreign_keys[tgt.column]
        history = []
        for name, spec in schema.tables.items():
            is_target = name == tgt.table
            if spec.event is None and not is_target:
                continue
            ecols = [c for c, t in spec.foreign_keys.items() if t == ent.table]
            icols = [c for c, t in spec.foreign_keys.items() if t == item_table]
            if len(ecols) == 1 and (icols if not is_target else [tgt.column]):
                icol = tgt.column if is_target else icols[0]
                basket = spec.event.basket_column if spec.event else None
                history.append(HistorySource(name, ecols[0], icol, basket))
        start, end = query.target.window.to_timedelta_pair()
        return cls(
            schema=schema, query=query, entity_table=ent.table, entity_key=ent.column,
            target_table=tgt.table, target_entity_column=links[0], item_column=tgt.column,
            item_table=item_table, item_key=schema.tables[item_table].primary_key or "",
            window=(pd.Timedelta(start), pd.Timedelta(end)), k=query.top_k, history=tuple(history),
        )

    # ------------------------------------------------------------------ cutoffs
    def data_end(self, db: Database) -> pd.Timestamp:
        """The end of the last full window: the start of the unit after the last target event."""
        _, last = db.time_range([self.target_table])
        unit = self.query.target.window.unit if self.query.target else "days"
        freq = {"minutes": "min", "hours": "h", "days": "D", "weeks": "D"}[unit]
        step = pd.Timedelta(1, unit={"min": "m", "h": "h", "D": "D"}[freq])
        return last.floor(freq) + step

    def cutoffs(self, db: Database, as_of: pd.Timestamp | None = None, n_train: int = 0) -> dict:
        """``test``, ``val`` and up to ``n_train`` earlier ``train`` cutoffs, one window apart.

        The test window ends at the data's end (or at ``as_of``); validation is the window
        before it; training cutoffs step back one window at a time while data remains.
        """
        first, _ = db.time_range([self.target_table])
        end = self.data_end(db) if as_of is None else pd.Timestamp(as_of)
        span = self.window[1] - self.window[0]
        test = end - self.window[1]
        val = test - span
        if val - span <= first:
            raise TaskError(
                f"the data ({first} .. {end}) is too short for a validation and a test window of "
                f"{span} each after some history; use a shorter window"
            )
        train = []
        c = val - span
        while len(train) < n_train and c - span > first:
            train.append(c)
            c -= span
        return {"test": test, "val": val, "train": train}

    def check_as_of(self, db: Database, as_of: pd.Timestamp) -> pd.Timestamp:
        first, last = db.time_range([self.target_table])
        as_of = pd.Timestamp(as_of)
        if not (first < as_of <= last + pd.Timedelta(days=1)):
            raise TaskError(
                f"--as-of {as_of} is outside the data: {self.target_table} runs from {first} to {last}"
            )
        return as_of

    # ------------------------------------------------------------------ labels
    def labels(self, db: Database, cutoff: pd.Timestamp) -> pd.DataFrame:
        """Distinct (entity, item) pairs of the target table inside the window after ``cutoff``."""
        df = db[self.target_table]
        tc = self.schema.tables[self.target_table].time_column
        lo, hi = cutoff + self.window[0], cutoff + self.window[1]
        rows = df[(df[tc] >= lo) & (df[tc] < hi)]
        if WEIGHT in rows:
            rows = rows[rows[WEIGHT] > 0]
        out = rows[[self.target_entity_column, self.item_column]].dropna()
        out.columns = ["entity", "item"]
        return out.drop_duplicates().reset_index(drop=True)

    def eligible_entities(self, db: Database, cutoff: pd.Timestamp) -> pd.Index:
        """External ids of entities that pass the WHERE clause as of ``cutoff``."""
        keys = db[self.entity_table][self.entity_key]
        if self.query.where is None:
            return pd.Index(keys)
        mask = where_eval.evaluate(self.query.where, self, db, cutoff)
        return pd.Index(keys[mask.to_numpy()])

    # ------------------------------------------------------------------ dataset
    def build_dataset(self, snap: Database) -> Dataset:
        """Interactions and features known at ``snap.cutoff`` (``snap`` must be a snapshot)."""
        frames = []
        for h in self.history:
            df = snap[h.table]
            tc = self.schema.tables[h.table].time_column
            part = pd.DataFrame({
                "entity": df[h.entity_column], "item": df[h.item_column], "time": df[tc],
                "weight": df[WEIGHT] if WEIGHT in df else np.float32(1.0),
                "quantity": df[QUANTITY] if QUANTITY in df else np.float32(1.0),
                "kind": df[KIND].astype("string") if KIND in df else "purchase",
                "basket": (df[h.basket_column].astype("string") if h.basket_column else pd.NA),
            })
            frames.append(part.dropna(subset=["entity", "item"]))
        inter = pd.concat(frames, ignore_index=True).sort_values("time", kind="stable")
        ent_df, item_df = snap[self.entity_table], snap[self.item_table]
        users = IdMap.from_values(pd.concat([ent_df[self.entity_key], inter["entity"]]))
        items = IdMap.from_values(pd.concat([item_df[self.item_key], inter["item"]]))
        kinds = pd.Categorical(inter["kind"].fillna("purchase"))
        basket_codes = pd.factorize(inter["basket"], use_na_sentinel=True)[0]
        interactions = Interactions(
            user=users.to_internal(inter["entity"].to_numpy()),
            item=items.to_internal(inter["item"].to_numpy()),
            time=inter["time"].to_numpy(dtype="datetime64[ns]"),
            weight=inter["weight"].to_numpy(dtype=np.float32),
            quantity=inter["quantity"].to_numpy(dtype=np.float32),
            kind=np.asarray(kinds.codes, dtype=np.int16),
            kinds=tuple(str(c) for c in kinds.categories),
            basket=basket_codes.astype(np.int64),
        )
        return Dataset(
            users=users, items=items, interactions=interactions, cutoff=pd.Timestamp(snap.cutoff),
            user_features=_features(ent_df, self.entity_key, users),
            item_features=_features(item_df, self.item_key, items),
            db=snap, horizon=self.window[1] - self.window[0], task=self,
        )

    def diversity_codes(self, dataset: Dataset) -> np.ndarray | None:
        """Per internal item, an int code of the diversity attribute (-1 unknown), if configured."""
        ref = self.schema.recommend.diversity_attribute
        if not ref:
            return None
        table, col = ref.split(".", 1)
        if table != self.item_table or col not in dataset.item_features:
            raise SchemaError(
                f"recommend.diversity_attribute {ref!r}: must be a column of the item table "
                f"{self.item_table!r} (columns: {', '.join(dataset.item_features.columns)})"
            )
        codes, _ = pd.factorize(dataset.item_features[col], use_na_sentinel=True)
        return codes.astype(np.int64)


def _features(df: pd.DataFrame, key: str, ids: IdMap) -> pd.DataFrame:
    """The table's columns re-indexed by internal id (rows missing from the table are NaN)."""
    cols = [c for c in df.columns if c != key and not c.startswith("_")]
    feats = df.drop_duplicates(key).set_index(key)[cols]
    feats = feats.reindex(ids.external)
    feats.index = pd.RangeIndex(len(ids))
    return feats
