"""A durable event store: what ``POST /events`` acknowledged survives a crash, even ``kill -9``.

:class:`EventStore` is the interface the service uses; :class:`SQLiteEventStore` implements it
with SQLite in WAL mode and ``synchronous=FULL``: ``append`` returns only after the transaction's
WAL frames are fsync'ed, so every acknowledged event is on disk.  Each event gets a sequence
number; readers (other workers, the next training run) read everything after the last number they
saw.  ``changed()`` is cheap (``PRAGMA data_version``) so every request can ask whether another
process wrote since.  A PostgreSQL store implements the same five methods.

Times are UTC nanoseconds since the epoch; ids are stored as text (the API's external ids).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    quantity REAL NOT NULL DEFAULT 1,
    received_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_user ON events (user_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Event:
    """One interaction as the API received it (external ids)."""

    user_id: str
    item_id: str
    kind: str
    time_ns: int
    quantity: float = 1.0
    seq: int = 0


class EventStore(Protocol):
    """What the service needs from an event store (SQLite here, PostgreSQL later)."""

    def append(self, events: list[Event]) -> list[int]:
        """Store ``events`` durably; return their sequence numbers once they are safe."""

    def read_since(self, seq: int, limit: int = 100_000) -> list[Event]:
        """Events with a sequence number above ``seq``, in order."""

    def changed(self) -> bool:
        """Whether another connection wrote since the last call (cheap; may say True spuriously)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...


class SQLiteEventStore:
    """Events in one SQLite file (WAL, ``synchronous=FULL``); safe across threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._version = self._data_version()

    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def append(self, events: list[Event]) -> list[int]:
        now = pd.Timestamp.now(tz="UTC").value
        rows = [(e.user_id, e.item_id, e.kind, int(e.time_ns), float(e.quantity), now) for e in events]
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                seqs = []
                for r in rows:
                    cur.execute(
                        "INSERT INTO events (user_id, item_id, kind, time_ns, quantity, received_ns) "
                        "VALUES (?, ?, ?, ?, ?, ?)", r,
                    )
                    seqs.append(int(cur.lastrowid))
                cur.execute("COMMIT")  # WAL + synchronous=FULL: fsync'ed before this returns
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return seqs

    def read_since(self, seq: int, limit: int = 100_000) -> list[Event]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT user_id, item_id, kind, time_ns, quantity, seq FROM events "
                "WHERE seq > ? ORDER BY seq LIMIT ?", (int(seq), int(limit)),
            ).fetchall()
        return [Event(*r) for r in rows]

    def changed(self) -> bool:
        with self._lock:
            v = self._data_version()
            if v != self._version:
                self._version = v
                return True
        return False

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value),
            )

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def to_frame(self) -> pd.DataFrame:
        """Every stored event (``user_id, item_id, kind, time, quantity``), for the next training run."""
        with self._lock:
            df = pd.read_sql_query(
                "SELECT seq, user_id, item_id, kind, time_ns, quantity FROM events ORDER BY seq",
                self._conn,
            )
        df["time"] = pd.to_datetime(df.pop("time_ns"), unit="ns", utc=True)
        return df

    def close(self) -> None:
        with self._lock:
            self._conn.close()
