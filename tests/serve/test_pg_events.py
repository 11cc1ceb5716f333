"""The PostgreSQL event store on a real server: instances share events, acknowledged events
survive ``kill -9`` of the writer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from hoprec.serve.events import Event
from hoprec.serve.pg_events import PostgresEventStore

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_url():
    url = os.environ.get("HOPREC_TEST_PG_URL", "").strip()
    if not url:
        msg = ("HOPREC_TEST_PG_URL is not set, so the PostgreSQL event store is untested: run "
               '`eval "$(bash .ci/postgres.sh)"`')
        if os.environ.get("CI"):
            pytest.fail(f"{msg} (CI is set: the PostgreSQL tests must run there)", pytrace=False)
        pytest.skip(msg)
    return url


@pytest.fixture
def prefix(pg_url):
    p = f"t{uuid.uuid4().hex[:10]}_"
    yield p
    store = PostgresEventStore(pg_url, p)
    store.drop()
    store.close()


def _ev(i: int) -> Event:
    return Event(f"u{i % 3}", f"i{i}", "purchase", 1_700_000_000_000_000_000 + i, 1.0 + i)


def test_two_instances_share_events_and_meta(pg_url, prefix):
    a, b = PostgresEventStore(pg_url, prefix), PostgresEventStore(pg_url, prefix)
    assert not b.changed()
    seqs = a.append([_ev(i) for i in range(5)])
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert b.changed() and not b.changed()  # says it once
    got = b.read_since(0)
    assert [e.seq for e in got] == seqs and got[2] == Event("u2", "i2", "purchase", _ev(2).time_ns, 3.0, seqs[2])
    assert [e.seq for e in b.read_since(seqs[2])] == seqs[3:]
    a.set_meta("model_version", "7")
    assert b.get_meta("model_version") == "7" and b.get_meta("nothing") is None
    df = b.to_frame()
    assert list(df.columns) == ["seq", "user_id", "item_id", "kind", "quantity", "time"] and len(df) == 5
    assert str(df.time.dt.tz) == "UTC" and b.count() == 5
    a.close()
    b.close()


def test_acknowledged_events_survive_kill_9_of_the_writer(pg_url, prefix):
    script = textwrap.dedent(f"""
        import os, signal
        from hoprec.serve.events import Event
        from hoprec.serve.pg_events import PostgresEventStore
        s = PostgresEventStore({pg_url!r}, {prefix!r})
        seqs = s.append([Event("u", f"i{{i}}", "purchase", i) for i in range(50)])
        print(seqs[-1], flush=True)   # acknowledged
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == -9, res.stderr
    last = int(res.stdout.strip())
    reader = PostgresEventStore(pg_url, prefix)
    got = reader.read_since(0)
    assert len(got) == 50 and got[-1].seq == last
    reader.close()


def test_bad_prefix_is_refused(pg_url):
    with pytest.raises(ValueError, match="table prefix"):
        PostgresEventStore(pg_url, "x; DROP TABLE y")
