"""Acknowledged events survive kill -9; a reload under load fails no request; workers agree."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pandas as pd
import pytest

from hoprec.serve.events import Event, SQLiteEventStore
from tests.serve.conftest import API_KEY, Server

pytestmark = pytest.mark.slow  # several uvicorn starts


def post(c, path, body, headers=None):
    headers = {"content-type": "application/json", **(headers or {})}
    return c.post(path, content=json.dumps(body), headers=headers)


def test_store_roundtrip_and_change_detection(tmp_path):
    a, b = SQLiteEventStore(tmp_path / "e.sqlite"), SQLiteEventStore(tmp_path / "e.sqlite")
    assert a._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert a._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert not b.changed()
    seqs = a.append([Event("u1", "10", "view", 1), Event("u2", "11", "purchase", 2, 3.0)])
    assert b.changed() and not b.changed()
    got = b.read_since(0)
    assert [e.seq for e in got] == seqs and got[1] == Event("u2", "11", "purchase", 2, 3.0, seqs[1])
    assert b.read_since(seqs[0]) == got[1:]
    b.set_meta("k", "v1")
    b.set_meta("k", "v2")
    assert a.get_meta("k") == "v2" and a.get_meta("missing") is None
    assert list(a.to_frame().columns) == ["seq", "user_id", "item_id", "kind", "quantity", "time"]
    a.close()
    b.close()


def test_kill9_loses_no_acknowledged_event(model_dirs, tmp_path):
    events = tmp_path / "events.sqlite"
    srv = Server(model_dirs["repeat"], events).start()
    acked = []
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for n in range(40):
                r = post(c, "/events", {"events": [{"user_id": "k9-user", "item_id": 100 + n % 40, "kind": "purchase"}]})
                assert r.status_code == 200
                acked += r.json()["seqs"]
            post(c, "/events", {"events": [{"user_id": "k9-user", "item_id": 133, "kind": "purchase"}] * 5})
    finally:
        srv.kill9()
    store = SQLiteEventStore(events)
    stored = {e.seq for e in store.read_since(0)}
    store.close()
    assert set(acked) <= stored and len(stored) == 45
    srv2 = Server(model_dirs["repeat"], events).start()  # restart: the history is folded in again
    try:
        with httpx.Client(base_url=srv2.url, timeout=30) as c:
            body = post(c, "/recommend", {"user_id": "k9-user", "k": 3}).json()
        assert body["folded_events"] == 45 and body["items"][0]["item_id"] == 133
    finally:
        srv2.stop()


def test_reload_under_load_fails_nothing_and_workers_follow(model_dirs, tmp_path):
    events = tmp_path / "events.sqlite"
    a = Server(model_dirs["repeat"], events, HOPREC_RELOAD_POLL_S="0.2").start()
    b = Server(model_dirs["repeat"], events, HOPREC_RELOAD_POLL_S="0.2").start()
    failures, done, versions = [], threading.Event(), set()

    def hammer():
        with httpx.Client(base_url=a.url, timeout=30) as c:
            while not done.is_set():
                try:
                    r = post(c, "/recommend", {"user_id": "C010", "k": 5, "filters": {"categories": ["cat2"]}})
                    if r.status_code != 200:
                        failures.append(r.status_code)
                    else:
                        versions.add(r.json()["model_version"])
                except httpx.HTTPError as e:
                    failures.append(repr(e))

    try:
        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        with httpx.Client(base_url=a.url, timeout=60) as c:
            r = post(c, "/admin/reload", {"model_dir": str(model_dirs["als"])}, headers={"X-API-Key": API_KEY})
            assert r.status_code == 200 and r.json()["model"] == "als"
        time.sleep(0.5)
        done.set()
        for t in threads:
            t.join()
        assert failures == [] and len(versions) == 2
        # the other process swaps too, and sees events stored through the first
        with httpx.Client(base_url=b.url, timeout=30) as cb, httpx.Client(base_url=a.url, timeout=30) as ca:
            deadline = time.monotonic() + 20
            while post(cb, "/recommend", {"user_id": "C010"}).json()["model_version"].split("@")[0] != "als":
                assert time.monotonic() < deadline, "worker b never reloaded"
                time.sleep(0.2)
            post(ca, "/events", {"events": [{"user_id": "shared-user", "item_id": 121, "kind": "purchase"}]})
            seen = post(cb, "/recommend", {"user_id": "shared-user", "k": 3}).json()
            assert seen["folded_events"] == 1
    finally:
        done.set()
        a.stop()
        b.stop()


def test_export_events_for_the_next_training_run(tmp_path):
    from typer.testing import CliRunner

    from hoprec.cli import app

    store = SQLiteEventStore(tmp_path / "e.sqlite")
    store.append([Event("C001", "101", "purchase", 1_700_000_000_000_000_000, 2.0),
                  Event("C002", "102", "view", 1_700_000_100_000_000_000)])
    store.close()
    res = CliRunner().invoke(app, ["export-events", str(tmp_path / "e.sqlite"), "-o", str(tmp_path / "ev.parquet"),
                                   "--since", "1"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(tmp_path / "ev.parquet")
    assert df[["user_id", "item_id", "kind"]].values.tolist() == [["C002", "102", "view"]]
    assert str(df["time"].iloc[0]) == "2023-11-14 22:15:00+00:00"
    res = CliRunner().invoke(app, ["export-events", str(tmp_path / "nope.sqlite"), "-o", str(tmp_path / "x.csv")])
    assert res.exit_code == 2 and "no event store" in res.output


def test_live_at_once_ready_only_when_loaded_and_a_failed_load_says_why(tmp_path):
    import subprocess
    import sys

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{}")  # a model directory that cannot load
    srv = Server(broken, tmp_path / "events.sqlite")
    srv.proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "hoprec.serve.app:app_from_env",
         "--host", "127.0.0.1", "--port", str(srv.port), "--log-level", "warning"],
        env=srv.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                live = httpx.get(srv.url + "/health/live", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert live.status_code == 200
        while (r := httpx.get(srv.url + "/health/ready", timeout=5)).json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert r.status_code == 503 and r.json()["status"] == "failed" and r.json()["error"]
        with httpx.Client(base_url=srv.url) as c:
            assert post(c, "/recommend", {"user_id": "C001"}).status_code == 503
    finally:
        srv.stop()
