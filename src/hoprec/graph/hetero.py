"""Tables -> one heterogeneous, time-stamped graph, read from a dataset snapshot.

The graph is built from :attr:`Dataset.db`, a snapshot that holds nothing at or after the cutoff,
so no edge can leak the future.  What becomes what:

- **Node types**: every table with a primary key.  The task's entity and item tables use the
  dataset's id maps (node id == the models' internal id); other tables get an :class:`IdMap` over
  their keys in the snapshot.  A table that only lends its columns to another
  (``attributes_from``) and that no foreign key points at is folded into that table.
- **Foreign keys of a keyed table** ``T.col -> X``: edges ``(T, col, X)`` and ``(X, rev_col, T)``.
- **Event tables of the task's history** (entity and item foreign keys): one interaction edge per
  (entity, item) pair, ``(E, table, I)`` and ``(I, rev_table, E)``.  A row weighs its kind's
  weight, times its quantity (``use_quantity``), times ``0.5 ** (age_days / half_life_days)``
  toward the cutoff (``half_life_days``).  Returns (negative weights) only lower the weight of
  their pair: a pair's weight is the sum over its rows, and pairs without a positive row or
  whose sum is not positive get no edge.  With ``aggregate_pairs`` (default) a pair is one edge
  with the summed weight and the time of its last row; otherwise every positive row is an edge,
  scaled by the pair's ``net / positive`` weight (that scaling uses returns up to the cutoff).
- **Context edges** (``context_edges``): every other foreign key ``col -> X`` of those event rows
  (a store, a basket) links both the row's item and its entity to ``X``:
  ``(I, f"{table}_{col}", X)``, ``(E, f"{table}_{col}", X)`` and their ``rev_`` reverses, from
  positive rows only, weighted and aggregated like interaction edges.
- **Link tables** (no primary key, not in the history, two or more foreign keys): each pair of
  foreign keys ``(a -> A, b -> B)`` in schema order gives ``(A, table, B)`` and
  ``(B, rev_table, A)`` (``f"{table}_{a}_{b}"`` when the table has more than two), one per row or
  per distinct pair (``aggregate_pairs``, weight = number of rows, time = the last).
- **Attribute nodes** (``attribute_nodes``): each ``categorical`` column ``c`` of a node table
  ``T`` becomes a node type ``f"{T}:{c}"`` (one node per value, in the encoder's vocabulary
  order) with edges ``(T, c, f"{T}:{c}")`` and ``rev_c``: an item nobody bought still reaches
  its brand's other items.
- **Item-to-item edges** from the history: ``(I, co_purchase, I)`` and ``(I, bought_after, I)``
  with ``rev_bought_after`` (see :mod:`hoprec.graph.derived`).

Every edge has a ``time`` (the row's, in ns; :data:`STATIC_TIME` for static tables) and a
float32 ``weight`` (1 unless said above).  Node and relation names hold no ``.`` (PyG and
``torch.nn.ModuleDict`` keys reject it).
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from hoprec.data.database import QUANTITY, WEIGHT, Database
from hoprec.data.dataset import Dataset
from hoprec.data.idmap import IdMap
from hoprec.graph import derived
from hoprec.graph.features import TableEncoder
from hoprec.graph.store import STATIC_TIME, EdgeStore, EdgeType, HeteroGraph
from hoprec.task.task import HistorySource, Task

_ENCODED = ("numerical", "categorical", "text", "timestamp")
_NS_PER_DAY = 86_400 * 10**9


class GraphConfig(BaseModel):
    """How :func:`build_graph` turns tables into a graph; every default is stated here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute_nodes: bool = True  # categorical columns of node tables become node types
    context_edges: bool = True  # other foreign keys of event rows link item and entity to them
    use_quantity: bool = False  # multiply event weights by the row's quantity
    half_life_days: float | None = Field(default=None, gt=0)  # None: no time decay
    aggregate_pairs: bool = True  # parallel event/link rows -> one edge (summed weight, last time)
    co_purchase: bool = True
    co_purchase_normalize: bool = False  # count / sqrt(n_i n_j) instead of the basket count
    co_purchase_min_count: int = Field(default=1, ge=1)
    bought_after: bool = True
    after_window_days: float = Field(default=14.0, gt=0)
    max_item_neighbours: int = Field(default=50, ge=1)  # top-k per item for derived edges
    text_dim: int = Field(default=64, ge=1)  # hashed buckets per text column
    max_pairs: int = Field(default=5_000_000, ge=1000)  # item pairs per derived chunk (memory)
    exclude_tables: tuple[str, ...] = ()  # tables left out (ablations); not the task's own


def rev(relation: str) -> str:
    """The name of the reverse relation."""
    return f"rev_{relation}"


def _times(df: pd.DataFrame, column: str | None) -> np.ndarray:
    if column is None or column not in df:
        return np.full(len(df), STATIC_TIME, np.int64)
    t = pd.to_datetime(df[column]).astype("datetime64[ns]").to_numpy()
    return np.where(np.isnat(t), STATIC_TIME, t.view(np.int64))


def _aggregate(src: np.ndarray, dst: np.ndarray, time: np.ndarray, weight: np.ndarray,
               n_dst: int) -> tuple[np.ndarray, ...]:
    """One edge per distinct (src, dst): summed weight, latest time."""
    key, inv = np.unique(src * n_dst + dst, return_inverse=True)
    w = np.bincount(inv, weights=weight, minlength=len(key))
    t = np.full(len(key), np.iinfo(np.int64).min)
    np.maximum.at(t, inv, time)
    return key // n_dst, key % n_dst, t, w


class _Builder:
    def __init__(self, dataset: Dataset, task: Task, config: GraphConfig) -> None:
        if dataset.db is None or dataset.db.cutoff is None:
            raise ValueError("build_graph needs a Dataset built from a snapshot (dataset.db)")
        self.ds, self.task, self.cfg = dataset, task, config
        self.db: Database = dataset.db
        self.schema = task.schema
        self.cutoff_ns = int(pd.Timestamp(dataset.cutoff).value)
        self.maps: dict[str, IdMap] = {}
        self.parts: dict[EdgeType, list[tuple[np.ndarray, ...]]] = defaultdict(list)
        self.graph = HeteroGraph({}, {}, entity_type=task.entity_table, item_type=task.item_table,
                                 cutoff=pd.Timestamp(dataset.cutoff))
        own = {task.entity_table, task.item_table, *(h.table for h in task.history)}
        for t in config.exclude_tables:
            if t not in self.schema.tables:
                raise ValueError(f"GraphConfig.exclude_tables: no table {t!r} in schema "
                                 f"(tables: {', '.join(self.schema.tables)})")
            if t in own:
                raise ValueError(f"GraphConfig.exclude_tables: {t!r} is the task's own table; "
                                 f"only other tables can be left out")
        self.excluded = set(config.exclude_tables)

    # ------------------------------------------------------------------ nodes
    def node_tables(self) -> list[str]:
        tables = self.schema.tables
        pointed = {t for s in tables.values() for t in s.foreign_keys.values()}
        folded = {s.attributes_from for s in tables.values() if s.attributes_from} - pointed
        first = [self.task.entity_table, self.task.item_table]
        rest = [n for n, s in tables.items()
                if s.primary_key and n not in folded and n not in first and n not in self.excluded]
        return list(dict.fromkeys(first)) + rest

    def column_types(self, table: str) -> dict[str, str]:
        spec = self.schema.tables[table]
        borrowed = spec.attributes_from and spec.attributes_from not in self.excluded
        types = dict(self.schema.tables[spec.attributes_from].columns) if borrowed else {}
        types.update(spec.columns)
        tc = self.db.time_columns.get(table)
        if tc:
            types[tc] = "timestamp"
        keys = {spec.primary_key, *spec.foreign_keys}
        return {c: t for c, t in types.items() if t in _ENCODED and c not in keys}

    def frame(self, table: str, ids: IdMap) -> pd.DataFrame:
        """The table's rows aligned to node ids (ids without a row: all missing)."""
        spec = self.schema.tables[table]
        df = self.db[table]
        if (spec.attributes_from and spec.attributes_from in self.db.tables
                and spec.attributes_from not in self.excluded):
            attrs = self.db[spec.attributes_from]
            extra = [c for c in attrs.columns if c not in df.columns]
            if extra:
                df = df.merge(attrs[[spec.primary_key, *extra]], on=spec.primary_key, how="left")
        out = df.drop_duplicates(spec.primary_key).set_index(spec.primary_key).reindex(ids.external)
        return out.reset_index(drop=True)

    def add_node_type(self, name: str, ids: IdMap, time: np.ndarray | None = None) -> None:
        self.maps[name] = self.graph.id_maps[name] = ids
        self.graph.num_nodes[name] = len(ids)
        t = np.full(len(ids), STATIC_TIME, np.int64) if time is None else time
        self.graph.node_time[name] = torch.from_numpy(t)

    def nodes(self, encoders: dict[str, TableEncoder]) -> None:
        g = self.graph
        for table in self.node_tables():
            pk = self.schema.tables[table].primary_key
            if table == self.task.entity_table:
                ids = self.ds.users
            elif table == self.task.item_table:
                ids = self.ds.items
            else:
                ids = IdMap.from_values(self.db[table][pk])
            frame = self.frame(table, ids)
            row_time = _times(frame, self.db.time_columns.get(table))
            self.add_node_type(table, ids, row_time)
            enc = encoders.get(table) or TableEncoder(self.column_types(table), self.cfg.text_dim)
            if table not in encoders:
                enc.fit(frame, g.cutoff)
            x_num, x_cat = enc.transform(frame, g.cutoff)
            g.encoders[table] = enc
            g.x_num[table] = torch.from_numpy(x_num)
            g.x_cat[table] = torch.from_numpy(x_cat)
            g.cat_cardinalities[table] = enc.cardinalities
            if self.cfg.attribute_nodes:
                for j, col in enumerate(enc.cat_columns):
                    vtype = f"{table}:{col}"
                    self.add_node_type(vtype, IdMap(enc.vocab[col]))
                    g.x_num[vtype] = torch.zeros((len(enc.vocab[col]), 0))
                    g.x_cat[vtype] = torch.zeros((len(enc.vocab[col]), 0), dtype=torch.int64)
                    g.cat_cardinalities[vtype] = []
                    has = np.flatnonzero(x_cat[:, j] > 0)
                    self.add((table, col, vtype), has, x_cat[has, j] - 1, row_time[has],
                             np.ones(len(has), np.float32))

    # ------------------------------------------------------------------ edges
    def add(self, etype: EdgeType, src: np.ndarray, dst: np.ndarray, time: np.ndarray,
            weight: np.ndarray, aggregate: bool = False) -> None:
        """Add edges of ``etype`` and of its reverse."""
        s, r, d = etype
        if aggregate:
            src, dst, time, weight = _aggregate(src, dst, time, weight, self.graph.num_nodes[d])
        self.parts[etype].append((src, dst, time, weight))
        self.parts[(d, rev(r), s)].append((dst, src, time, weight))

    def ids(self, table: str, values: pd.Series) -> np.ndarray:
        return self.maps[table].to_internal(values.to_numpy(), missing=-1)

    def keyed_table_edges(self, table: str) -> None:
        spec = self.schema.tables[table]
        df = self.db[table]
        src = self.ids(table, df[spec.primary_key])
        time = _times(df, self.db.time_columns.get(table))
        for col, target in spec.foreign_keys.items():
            if target not in self.maps:
                continue
            dst = self.ids(target, df[col])
            ok = (src >= 0) & (dst >= 0)
            self.add((table, col, target), src[ok], dst[ok], time[ok], np.ones(int(ok.sum()), np.float32))

    def link_table_edges(self, table: str) -> None:
        spec = self.schema.tables[table]
        df = self.db[table]
        fks = [(c, t) for c, t in spec.foreign_keys.items() if t in self.maps]
        time = _times(df, self.db.time_columns.get(table))
        for (a, ta), (b, tb) in combinations(fks, 2):
            rel = table if len(fks) == 2 else f"{table}_{a}_{b}"
            src, dst = self.ids(ta, df[a]), self.ids(tb, df[b])
            ok = (src >= 0) & (dst >= 0)
            self.add((ta, rel, tb), src[ok], dst[ok], time[ok], np.ones(int(ok.sum()), np.float32),
                     aggregate=self.cfg.aggregate_pairs)

    def event_edges(self, h: HistorySource) -> None:
        cfg, ent, item = self.cfg, self.task.entity_table, self.task.item_table
        df = self.db[h.table]
        u, i = self.ids(ent, df[h.entity_column]), self.ids(item, df[h.item_column])
        time = _times(df, self.db.time_columns.get(h.table))
        w = df[WEIGHT].to_numpy(np.float64) if WEIGHT in df else np.ones(len(df))
        if cfg.use_quantity and QUANTITY in df:
            w = w * df[QUANTITY].to_numpy(np.float64)
        if cfg.half_life_days is not None:
            age = (self.cutoff_ns - time) / _NS_PER_DAY
            w = w * np.power(0.5, age / cfg.half_life_days)
        ok = (u >= 0) & (i >= 0)
        u, i, time, w = u[ok], i[ok], time[ok], w[ok]
        n_items = len(self.maps[item])
        key, inv = np.unique(u * n_items + i, return_inverse=True)
        net = np.bincount(inv, weights=w, minlength=len(key))
        pos = np.bincount(inv, weights=np.clip(w, 0, None), minlength=len(key))
        keep = (pos > 0) & (net > 0)
        if cfg.aggregate_pairs:
            last = np.full(len(key), np.iinfo(np.int64).min)
            np.maximum.at(last, inv, time)
            src, dst = key[keep] // n_items, key[keep] % n_items
            self.add((ent, h.table, item), src, dst, last[keep], net[keep].astype(np.float32))
        else:
            row = keep[inv] & (w > 0)
            scale = np.divide(net, pos, out=np.zeros_like(net), where=pos > 0)
            self.add((ent, h.table, item), u[row], i[row], time[row],
                     (w[row] * scale[inv[row]]).astype(np.float32))
        if not cfg.context_edges:
            return
        spec = self.schema.tables[h.table]
        positive = w > 0
        for col, target in spec.foreign_keys.items():
            if col in (h.entity_column, h.item_column) or target not in self.maps:
                continue
            x = self.ids(target, df[col])[ok]
            sel = positive & (x >= 0)
            for side, ids in ((item, i), (ent, u)):
                self.add((side, f"{h.table}_{col}", target), ids[sel], x[sel], time[sel],
                         w[sel], aggregate=cfg.aggregate_pairs)

    def item_item_edges(self) -> None:
        cfg, item = self.cfg, self.task.item_table
        baskets = derived.Baskets.from_interactions(self.ds.interactions, self.ds.n_items)
        if cfg.co_purchase:
            e = derived.co_purchase(baskets, cfg.max_item_neighbours, cfg.co_purchase_normalize,
                                    cfg.co_purchase_min_count, cfg.max_pairs)
            self.parts[(item, "co_purchase", item)].append((e.src, e.dst, e.time, e.weight))
        if cfg.bought_after:
            e = derived.bought_after(baskets, cfg.after_window_days, cfg.max_item_neighbours,
                                     cfg.max_pairs)
            self.add((item, "bought_after", item), e.src, e.dst, e.time, e.weight)

    def finish(self) -> HeteroGraph:
        for et in list(self.parts):
            parts = self.parts.pop(et)  # let the pieces go as soon as they are in a store
            src, dst, time, weight = (np.concatenate([p[k] for p in parts]) for k in range(4))
            self.graph.edges[et] = EdgeStore.from_coo(
                src, dst, time, weight.astype(np.float32),
                self.graph.num_nodes[et[0]], self.graph.num_nodes[et[2]],
            )
        return self.graph


def build_graph(
    dataset: Dataset, task: Task, config: GraphConfig | None = None,
    encoders: dict[str, TableEncoder] | None = None,
) -> HeteroGraph:
    """The heterogeneous graph of ``dataset``'s snapshot (see the module docstring).

    ``encoders`` (e.g. ``previous_graph.encoders``) reuses fitted feature encoders, so that
    category codes and scalings stay the same across cutoffs.
    """
    b = _Builder(dataset, task, config or GraphConfig())
    b.nodes(encoders or {})
    history = {h.table: h for h in task.history}
    for name, spec in task.schema.tables.items():
        if name not in b.db.tables or name in b.excluded:
            continue
        if name in history:
            b.event_edges(history[name])
        if spec.primary_key and name in b.maps:
            b.keyed_table_edges(name)
        elif name not in history and not spec.primary_key and len(spec.foreign_keys) >= 2:
            b.link_table_edges(name)
    if b.cfg.co_purchase or b.cfg.bought_after:
        b.item_item_edges()
    return b.finish()
