"""Item vectors in PostgreSQL with pgvector: retrieval state shared by many service instances.

The same interface as :class:`hoprec.serve.index.VectorIndex` (``search(queries, k) -> (ids,
scores)``, best first, true inner products, -1 padding), but the vectors live in one table that
every stateless instance queries::

    CREATE TABLE <table> (id bigint PRIMARY KEY, embedding vector(d))
    CREATE INDEX ON <table> USING hnsw (embedding vector_ip_ops) WITH (m = 16, ef_construction = 64)

``id`` is the model's internal item id (0 .. n_items - 1); external keys are mapped at the edges
by the caller, as everywhere in hoprec.  pgvector's ``<#>`` operator is the *negative* inner
product, so rows are ordered by ``embedding <#> q`` and the score returned is its negation.

Two modes, chosen per search (``exact=``) or by default from how the index was built:

- **approximate** (``kind == "hnsw"``): the HNSW index, ``hnsw.ef_search`` candidates
  (``max(ef_search, k)``);
- **exact**: index scans are switched off for the query's transaction, so PostgreSQL scans every
  row: the exact top k, as FAISS ``IndexFlatIP`` gives.

:func:`build_pgvector_index` writes atomically: rows are copied into a new table, indexed, then
swapped in for the old one in one transaction; a failed build leaves the old table serving.
The server needs the ``vector`` extension (``.ci/postgres.sh`` installs it).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import numpy as np

from hoprec.compat import require

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


def _conninfo(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+psycopg://`` -> ``postgresql://``)."""
    if url.startswith("postgresql+"):
        return "postgresql://" + url.split("://", 1)[1]
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]!r}; expected postgresql://user:pass@host/db")
    return url


def _check_name(table: str) -> str:
    if not _NAME.match(table):
        raise ValueError(f"table name {table!r} is not valid here: use lower-case letters, digits and "
                         f"underscores, starting with a letter or underscore, at most 41 characters")
    return table


def _vec(v: np.ndarray) -> str:
    return "[" + ",".join(map(repr, v.tolist())) + "]"


def _connect(url: str):
    psycopg = require("psycopg", "postgres")
    conn = psycopg.connect(_conninfo(url), autocommit=False)
    return conn


@dataclass
class PgVectorIndex:
    """Top-k item ids by ``query . item`` from a pgvector table (see the module docstring)."""

    url: str
    table: str
    dim: int
    n_items: int
    kind: str  # "hnsw" (approximate by default) or "exact"
    ef_search: int = 100
    _conn: object = field(default=None, repr=False)

    @classmethod
    def open(cls, url: str, table: str = "hoprec_item_vectors", ef_search: int = 100) -> PgVectorIndex:
        """Attach to a table written by :func:`build_pgvector_index`."""
        _check_name(table)
        conn = _connect(url)
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            if not cur.fetchone()[0]:
                conn.close()
                raise ValueError(f"no table {table!r} in the database; write it with build_pgvector_index")
            cur.execute(f"SELECT count(*), max(vector_dims(embedding)) FROM {table}")
            n, dim = cur.fetchone()
            cur.execute("SELECT count(*) FROM pg_indexes WHERE tablename = %s AND indexdef ILIKE %s",
                        (table, "%USING hnsw%"))
            hnsw = cur.fetchone()[0] > 0
        conn.rollback()
        return cls(url, table, int(dim or 0), int(n), "hnsw" if hnsw else "exact", ef_search, conn)

    @property
    def conn(self):
        if self._conn is None or self._conn.closed:
            self._conn = _connect(self.url)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def __enter__(self) -> PgVectorIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def search(self, queries: np.ndarray, k: int, exact: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, scores)``, each ``(n, min(k, n_items))``, best first; -1 / -inf pad missing hits.

        ``exact=None`` uses the HNSW index when the table has one; ``True`` scans every row.
        """
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have {q.shape[1]} dimensions, the index {self.dim}")
        if not np.isfinite(q).all():
            raise ValueError("queries hold NaN or infinite values")
        k = min(int(k), self.n_items)
        ids = np.full((len(q), k), -1, np.int64)
        scores = np.full((len(q), k), -np.inf, np.float32)
        if k <= 0:
            return ids, scores
        use_exact = self.kind != "hnsw" if exact is None else exact
        conn = self.conn
        sql = (f"SELECT id, -(embedding <#> %s::vector) FROM {self.table} "
               f"ORDER BY embedding <#> %s::vector LIMIT %s")
        try:
            with conn.cursor() as cur:
                if use_exact:
                    cur.execute("SET LOCAL enable_indexscan = off")
                else:
                    cur.execute(f"SET LOCAL hnsw.ef_search = {max(int(self.ef_search), k)}")
                for row, v in enumerate(q):
                    text = _vec(v)
                    cur.execute(sql, (text, text, k), prepare=True)
                    got = cur.fetchall()
                    if got:
                        ids[row, : len(got)] = [g[0] for g in got]
                        scores[row, : len(got)] = [g[1] for g in got]
        finally:
            conn.rollback()  # read-only: end the transaction (and its SET LOCAL)
        return ids, scores


def build_pgvector_index(
    vectors: np.ndarray, url: str, table: str = "hoprec_item_vectors", approximate: bool = True,
    hnsw_m: int = 16, ef_construction: int = 64, ef_search: int = 100,
) -> PgVectorIndex:
    """Write ``vectors`` (row i = internal item i) to ``table`` and index them; swap atomically.

    ``approximate=False`` writes no HNSW index (every search is an exact scan).
    """
    _check_name(table)
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2 or len(v) == 0 or v.shape[1] == 0:
        raise ValueError(f"item vectors must be a non-empty (n_items, d) array, got {v.shape}")
    if not np.isfinite(v).all():
        bad = int(np.flatnonzero(~np.isfinite(v).all(axis=1))[0])
        raise ValueError(f"item vectors hold NaN or infinite values (first: row {bad})")
    new = f"{table}__new_{uuid.uuid4().hex[:8]}"
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.commit()
            cur.execute(f"CREATE TABLE {new} (id bigint PRIMARY KEY, embedding vector({v.shape[1]}))")
            with cur.copy(f"COPY {new} (id, embedding) FROM STDIN") as copy:
                for i, row in enumerate(v):
                    copy.write_row((i, _vec(row)))
            if approximate:
                cur.execute(f"CREATE INDEX {new}_hnsw ON {new} USING hnsw (embedding vector_ip_ops) "
                            f"WITH (m = {int(hnsw_m)}, ef_construction = {int(ef_construction)})")
            cur.execute(f"ANALYZE {new}")
            conn.commit()
            # the swap: readers see the old table or the new one, never a mix
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"ALTER TABLE {new} RENAME TO {table}")
            cur.execute(f"ALTER INDEX {new}_pkey RENAME TO {table}_pkey")
            if approximate:
                cur.execute(f"ALTER INDEX {new}_hnsw RENAME TO {table}_hnsw")
            conn.commit()
    except BaseException:
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {new}")
        conn.commit()
        conn.close()
        raise
    conn.close()
    return PgVectorIndex.open(url, table, ef_search=ef_search)


def drop_pgvector_index(url: str, table: str = "hoprec_item_vectors") -> None:
    """Remove the table (and its index)."""
    _check_name(table)
    with _connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {table}")
