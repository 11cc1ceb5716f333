"""The event store in PostgreSQL: several stateless service instances share one.

:class:`PostgresEventStore` implements :class:`hoprec.serve.events.EventStore` (the same methods
as :class:`~hoprec.serve.events.SQLiteEventStore`) over one table::

    CREATE TABLE <prefix>events (seq bigserial PRIMARY KEY, user_id text, item_id text, kind text,
                                 time_ns bigint, quantity double precision, received_ns bigint)
    CREATE TABLE <prefix>meta (key text PRIMARY KEY, value text)

``append`` inserts a batch in one transaction and returns once PostgreSQL has committed it
(``synchronous_commit`` is on by default: the WAL is flushed before the commit returns), so an
acknowledged event survives a crash of the service or of the server.  Every instance reads the
others' events with ``read_since(seq)``; ``changed()`` compares the largest sequence number with
the last one this instance saw (one index lookup).  Sequence numbers are unique and increase with
commit order within one session; across concurrent writers a smaller number may commit later, so
readers that must not miss events re-read a small overlap (``read_since(seq - overlap)``) and
drop numbers they have seen.
"""

from __future__ import annotations

import re
import threading

import pandas as pd

from hoprec.compat import require
from hoprec.serve.events import Event

_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,30}$")


class PostgresEventStore:
    """Events in PostgreSQL (see the module docstring); safe across threads and processes."""

    def __init__(self, url: str, prefix: str = "hoprec_") -> None:
        from hoprec.serve.pgvector_index import _conninfo

        if not _PREFIX.match(prefix):
            raise ValueError(f"table prefix {prefix!r} is not valid: lower-case letters, digits and "
                             f"underscores, starting with a letter or underscore")
        psycopg = require("psycopg", "postgres")
        self.events, self.meta = f"{prefix}events", f"{prefix}meta"
        self._lock = threading.Lock()
        self._conn = psycopg.connect(_conninfo(url), autocommit=True)
        with self._conn.transaction():
            self._conn.execute(f"""CREATE TABLE IF NOT EXISTS {self.events} (
                seq bigserial PRIMARY KEY, user_id text NOT NULL, item_id text NOT NULL,
                kind text NOT NULL, time_ns bigint NOT NULL, quantity double precision NOT NULL DEFAULT 1,
                received_ns bigint NOT NULL)""")
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {self.events}_user ON {self.events} (user_id)")
            self._conn.execute(f"CREATE TABLE IF NOT EXISTS {self.meta} (key text PRIMARY KEY, value text NOT NULL)")
        self._seen = self._max_seq()

    def _max_seq(self) -> int:
        return int(self._conn.execute(f"SELECT coalesce(max(seq), 0) FROM {self.events}").fetchone()[0])

    def append(self, events: list[Event]) -> list[int]:
        now = pd.Timestamp.now(tz="UTC").value
        rows = [(e.user_id, e.item_id, e.kind, int(e.time_ns), float(e.quantity), now) for e in events]
        seqs: list[int] = []
        with self._lock, self._conn.transaction(), self._conn.cursor() as cur:
            for r in rows:  # RETURNING per row keeps the numbers in the given order
                cur.execute(f"INSERT INTO {self.events} (user_id, item_id, kind, time_ns, quantity, "
                            f"received_ns) VALUES (%s, %s, %s, %s, %s, %s) RETURNING seq", r)
                seqs.append(int(cur.fetchone()[0]))
        return seqs

    def read_since(self, seq: int, limit: int = 100_000) -> list[Event]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT user_id, item_id, kind, time_ns, quantity, seq FROM {self.events} "
                f"WHERE seq > %s ORDER BY seq LIMIT %s", (int(seq), int(limit))).fetchall()
        return [Event(*r) for r in rows]

    def changed(self) -> bool:
        with self._lock:
            top = self._max_seq()
            if top != self._seen:
                self._seen = top
                return True
        return False

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute(f"SELECT value FROM {self.meta} WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute(f"INSERT INTO {self.meta} (key, value) VALUES (%s, %s) "
                               f"ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute(f"SELECT count(*) FROM {self.events}").fetchone()[0])

    def to_frame(self) -> pd.DataFrame:
        """Every stored event (``seq, user_id, item_id, kind, time, quantity``), in order."""
        with self._lock:
            rows = self._conn.execute(f"SELECT seq, user_id, item_id, kind, time_ns, quantity "
                                      f"FROM {self.events} ORDER BY seq").fetchall()
        df = pd.DataFrame(rows, columns=["seq", "user_id", "item_id", "kind", "time_ns", "quantity"])
        df["time"] = pd.to_datetime(df.pop("time_ns").astype("int64"), unit="ns", utc=True)
        return df

    def drop(self) -> None:
        """Remove both tables (tests, teardown)."""
        with self._lock:
            self._conn.execute(f"DROP TABLE IF EXISTS {self.events}, {self.meta}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
