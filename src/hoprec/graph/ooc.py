"""Out of core: events read by DuckDB and written as a memory-mapped interaction graph.

:func:`build_interaction_graph` is the path for event tables too large for pandas: DuckDB reads
the event table's files, drops rows at or after the cutoff, applies the table's ``filter`` and
event kinds, aggregates each (entity, item) pair (summed kind weight, last time; pairs whose
weight is not positive get no edge, as :func:`hoprec.graph.build_graph` does with
``aggregate_pairs``), and hands the pairs to :class:`~hoprec.graph.mmap_store.CSRWriter` in
chunks ordered by time.  DuckDB spills its aggregation and sort to ``temp_directory`` past
``memory_limit``; Python holds one chunk and ``O(nodes)`` counters.  The result is a folder
:func:`~hoprec.graph.mmap_store.open_graph` maps: node types ``entity`` and ``item`` tables,
edge types ``(E, table, I)`` and ``(I, rev_table, E)``, internal ids in sorted order of the
external ids seen in the events before the cutoff (``nodes/<type>/id_map.parquet``).

What this path does not do (use :func:`hoprec.graph.build_graph` on a snapshot for those):
node features, attribute nodes, context and item-item edges, ``kind_column`` event tables and
non-file sources.
"""

from __future__ import annotations

import glob
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from hoprec.data.schema import Schema, SchemaError
from hoprec.graph.mmap_store import FORMAT, CSRWriter, _AtomicFolder, open_graph
from hoprec.graph.store import HeteroGraph


def _reader(schema: Schema, table: str) -> str:
    spec = schema.tables[table]
    if not spec.source.path:
        raise SchemaError(f"table {table!r}: the out-of-core graph reads file sources only "
                          f"(source.path: CSV or Parquet), not {spec.source.model_dump(exclude_none=True)}")
    pattern = schema.resolve_path(spec.source.path)
    files = sorted(glob.glob(pattern)) if any(ch in pattern for ch in "*?[") else [pattern]
    files = [f for f in files if Path(f).is_file()]
    if not files:
        raise SchemaError(f"table {table!r}: no file matches {pattern}")
    lst = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    parquet = files[0].lower().endswith((".parquet", ".pq")) or spec.source.format == "parquet"
    return f"read_parquet({lst})" if parquet else f"read_csv({lst}, header=true)"


def _weight_sql(schema: Schema, table: str) -> str:
    ev = schema.tables[table].event
    if ev is None:
        raise SchemaError(f"table {table!r} has no `event:` section: it is not an event table")
    if ev.kind_column:
        raise SchemaError(f"table {table!r}: event.kind_column is not supported by the out-of-core "
                          f"graph yet; use kind / kind_when")
    cases = " ".join(f"WHEN ({cond}) THEN {float(ev.weight(k))!r}" for k, cond in (ev.kind_when or {}).items())
    base = repr(float(ev.weight(ev.kind)))
    return f"CASE {cases} ELSE {base} END" if cases else base


def build_interaction_graph(
    schema: Schema, table: str, folder: str | Path, entity_column: str, item_column: str,
    cutoff: str | pd.Timestamp | None = None, memory_limit: str = "2GB", threads: int | None = None,
    chunk_rows: int = 1_000_000, temp_directory: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> HeteroGraph:
    """Write the (entity, item) graph of event ``table`` to ``folder`` and return it, mapped."""
    spec = schema.tables.get(table)
    if spec is None:
        raise SchemaError(f"no table {table!r}; tables: {', '.join(schema.tables)}")
    for col in (entity_column, item_column):
        if col not in spec.foreign_keys:
            raise SchemaError(f"table {table!r}: {col!r} is not one of its foreign keys "
                              f"({', '.join(spec.foreign_keys) or 'none'})")
    if not spec.time_column:
        raise SchemaError(f"table {table!r} has no time_column")
    ent, item = spec.foreign_keys[entity_column], spec.foreign_keys[item_column]
    say = progress or (lambda _m: None)
    tmpdir = tempfile.TemporaryDirectory(prefix="hoprec-ooc-", dir=temp_directory)
    con = duckdb.connect(str(Path(tmpdir.name) / "work.duckdb"))
    try:
        con.execute(f"SET memory_limit='{memory_limit}'")
        con.execute(f"SET temp_directory='{tmpdir.name}'")
        con.execute("SET preserve_insertion_order=false")
        if threads:
            con.execute(f"SET threads={int(threads)}")
        q = lambda c: '"' + c.replace('"', '""') + '"'  # noqa: E731
        where = [f"{q(spec.time_column)} IS NOT NULL", f"{q(entity_column)} IS NOT NULL",
                 f"{q(item_column)} IS NOT NULL"]
        if cutoff is not None:
            where.append(f"CAST({q(spec.time_column)} AS TIMESTAMP) < TIMESTAMP '{pd.Timestamp(cutoff)}'")
        if spec.filter:
            where.append(f"coalesce(({spec.filter}), false)")
        say(f"reading {table} and aggregating pairs")
        con.execute(f"""
            CREATE TABLE pairs AS
            SELECT {q(entity_column)} AS e, {q(item_column)} AS i, sum(w) AS w, max(ts) AS ts,
                   bool_or(w > 0) AS pos
            FROM (SELECT *, {_weight_sql(schema, table)} AS w,
                         CAST({q(spec.time_column)} AS TIMESTAMP) AS ts
                  FROM {_reader(schema, table)} WHERE {' AND '.join(where)})
            GROUP BY ALL""")
        con.execute("DELETE FROM pairs WHERE NOT pos OR w <= 0")
        say("numbering nodes")
        for name, col in (("emap", "e"), ("imap", "i")):
            con.execute(f"CREATE TABLE {name} AS SELECT {col} AS ext, "
                        f"CAST(row_number() OVER (ORDER BY {col}) - 1 AS BIGINT) AS idx "
                        f"FROM (SELECT DISTINCT {col} FROM pairs)")
        con.execute("""CREATE TABLE edges AS
            SELECT em.idx AS e, im.idx AS i, epoch_ns(p.ts) AS t, CAST(p.w AS FLOAT) AS w
            FROM pairs p JOIN emap em ON p.e = em.ext JOIN imap im ON p.i = im.ext""")
        con.execute("DROP TABLE pairs")
        n_e = con.execute("SELECT count(*) FROM emap").fetchone()[0]
        n_i = con.execute("SELECT count(*) FROM imap").fetchone()[0]

        def chunks(src: str, dst: str) -> Callable[[], Iterator[tuple[np.ndarray, ...]]]:
            def gen() -> Iterator[tuple[np.ndarray, ...]]:
                sql = f"SELECT {src}, {dst}, t, w FROM edges ORDER BY t, {dst}, {src}"
                reader = con.sql(sql).to_arrow_reader(chunk_rows)
                for batch in reader:
                    yield tuple(batch.column(j).to_numpy() for j in range(4))
            return gen

        rel = table.replace(".", "_")
        with _AtomicFolder(folder) as tmp:
            for t, name in ((ent, "emap"), (item, "imap")):
                (tmp / "nodes" / t).mkdir(parents=True, exist_ok=True)
                con.execute(f"COPY (SELECT ext AS external_id FROM {name} ORDER BY idx) TO "
                            f"'{tmp / 'nodes' / t / 'id_map.parquet'}' (FORMAT parquet)")
            say(f"writing {ent} -> {item} edges")
            CSRWriter(tmp / "edges" / f"{ent}__{rel}__{item}", n_e, n_i).write(chunks("e", "i"))
            say(f"writing {item} -> {ent} edges")
            CSRWriter(tmp / "edges" / f"{item}__rev_{rel}__{ent}", n_i, n_e).write(chunks("i", "e"))
            meta = {"format": FORMAT, "num_nodes": {ent: int(n_e), item: int(n_i)},
                    "edge_types": [[ent, rel, item], [item, f"rev_{rel}", ent]],
                    "cat_cardinalities": {}, "entity_type": ent, "item_type": item,
                    "cutoff": None if cutoff is None else str(pd.Timestamp(cutoff))}
            (tmp / "graph.json").write_text(json.dumps(meta, indent=1))
    finally:
        con.close()
        tmpdir.cleanup()
    return open_graph(folder)
