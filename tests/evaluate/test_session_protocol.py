"""The session protocol: metrics, splits, unseen items, the schema binding and `hoprec evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from hoprec.cli import app
from hoprec.data.database import load_database
from hoprec.data.schema import SchemaError, load_schema
from hoprec.evaluate.session_protocol import (
    _ranks,
    evaluate_sessions,
    make_splits,
    rank_metrics,
    task_splits,
)
from hoprec.graph.sessions import sessionize
from hoprec.task.pql import PQLError
from hoprec.task.session import SessionTask

QUERY = "PREDICT NEXT(clicks.item) RANK TOP 10 FOR EACH SESSION"


def test_rank_metrics_known_answer():
    ranks = np.array([1, 2, 0, 25])  # 0: not in the list; 25: beyond K = 20
    m = rank_metrics(ranks, (20,))
    assert m["n"] == 4
    assert m["hr@20"] == pytest.approx(0.5)
    assert m["mrr@20"] == pytest.approx((1 + 1 / 2) / 4)
    assert m["ndcg@20"] == pytest.approx((1 + 1 / np.log2(3)) / 4)
    assert _ranks(np.array([[3, 4, 5], [1, 2, 3]]), np.array([5, 9])).tolist() == [3, 0]


def write_shop(tmp_path, session_column: bool = True, test_when: bool = False) -> str:
    """Three days of sessions walking a successor map; a new item 99 appears only on day 3."""
    rng = np.random.default_rng(0)
    succ = np.random.default_rng(1).permutation(20)
    rows, sid = [], 0
    for day in range(3):
        for v in range(60):
            t = pd.Timestamp("2024-03-01") + pd.Timedelta(days=day, hours=int(rng.integers(0, 20)))
            x = int(rng.integers(20))
            for j in range(int(rng.integers(2, 5))):
                rows.append({"session": sid, "visitor": f"v{v}", "item": x, "t": t + pd.Timedelta(minutes=j),
                             "cat": f"c{x % 3}", "split": "test" if day == 2 else "train"})
                x = int(succ[x])
            if day == 2 and v == 0:
                rows.append({"session": sid, "visitor": f"v{v}", "item": 99, "t": t + pd.Timedelta(minutes=9),
                             "cat": "c0", "split": "test"})
            sid += 1
    pd.DataFrame(rows).to_csv(tmp_path / "clicks.csv", index=False)
    event = {"kind": "click", "sessions": {"test_days": 1}}
    if session_column:
        event["session_column"] = "session"
    else:
        event["sessions"]["gap_minutes"] = 30
    if test_when:
        event["sessions"]["test_when"] = "split = 'test'"
    schema = {
        "name": "clicks_shop",
        "tables": {
            "clicks": {
                "source": {"path": "clicks.csv"}, "time_column": "t",
                "foreign_keys": {"item": "items", "visitor": "visitors"},
                "columns": {"cat": "categorical", "split": "text"}, "event": event,
            },
            "items": {"source": {"derived": True}, "primary_key": "item"},
            "visitors": {"source": {"derived": True}, "primary_key": "visitor"},
        },
    }
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(schema))
    return str(tmp_path / "schema.yaml")


def bind(path: str):
    s = load_schema(path)
    return SessionTask.from_query(s, QUERY), load_database(s)


def test_splits_are_leak_free_and_count_unseen_items(tmp_path):
    task, db = bind(write_shop(tmp_path))
    sp = task_splits(task, db)
    test_cut = pd.Timestamp(sp.cutoffs["test"])
    val_cut = pd.Timestamp(sp.cutoffs["validation"])
    assert sp.train.times.max() < np.datetime64(test_cut) <= sp.test.times.min()
    assert sp.val_train.times.max() < np.datetime64(val_cut) <= sp.val.times.min()
    assert sp.val.times.max() < np.datetime64(test_cut)  # validation comes from training time
    assert sp.stats["test_targets_unseen_in_training"] == 1  # item 99, kept as a miss
    assert sp.attribute_names == ("clicks.cat",)
    assert (sp.item_attributes[:, 0] >= 0).all()


def test_inactivity_sessions_and_a_shipped_test_split(tmp_path):
    task, db = bind(write_shop(tmp_path, session_column=False, test_when=True))
    assert task.session_column is None and task.visitor_column == "visitor"  # the one non-item fk
    first_test = db["clicks"].loc[db["clicks"]["split"] == "test", "t"].min()
    assert task.test_cutoff(db) == first_test
    sp = task_splits(task, db)
    assert sp.stats["test_sessions"] > 0 and "straddling" in sp.stats["test_split"]


def test_unseen_test_items_are_misses_not_dropped():
    t = pd.to_datetime(["2024-01-01 08:00", "2024-01-01 08:01", "2024-01-02 10:00",
                        "2024-01-02 10:01", "2024-01-03 10:00", "2024-01-03 10:01"]).to_numpy()
    s = sessionize(np.array([0, 1, 0, 1, 0, 2]), t, session_keys=np.array([1, 1, 2, 2, 3, 3]))
    sp = make_splits(s, 3, pd.Timestamp("2024-01-03"))
    assert sp.stats["test_prefixes"] == 1 and sp.stats["test_targets_unseen_in_training"] == 1


def test_evaluate_sessions_end_to_end(tmp_path):
    task, db = bind(write_shop(tmp_path))
    res = evaluate_sessions(task, db, ["session_pop", "transitions"], grids={"transitions": [{}]})
    by = {r.model: r for r in res.results}
    assert by["transitions"].metrics["hr@10"] > by["session_pop"].metrics["hr@10"]
    assert by["transitions"].metrics["hr@10"] > 0.8  # the successor map is learnable
    r = by["transitions"]
    assert r.metrics["n"] == res.split_stats["test_prefixes"] == r.counts["prefixes"]
    assert r.counts["targets_unseen_in_training"] == 1
    seen, new = r.slices["target seen earlier in session"], r.slices["target new to session"]
    assert seen["n"] + new["n"] == r.metrics["n"]
    assert r.latency_ms["calls"] == r.metrics["n"] and r.latency_ms["median"] > 0


def test_cli_evaluate_accepts_a_session_query(tmp_path):
    path = write_shop(tmp_path)
    res = CliRunner().invoke(app, ["evaluate", "-s", path, "-q", QUERY, "-m", "session_pop,sknn",
                                   "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "HR@10" in res.output and "sknn" in res.output
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["kind"] == "session" and {r["model"] for r in data["results"]} == {"session_pop", "sknn"}
    assert "MRR@10" in (tmp_path / "out" / "leaderboard.md").read_text()


def test_bad_session_queries_say_why(tmp_path):
    path = write_shop(tmp_path, session_column=False)
    s = load_schema(path)
    with pytest.raises(PQLError, match="event table"):
        SessionTask.from_query(s, "PREDICT NEXT(items.item) RANK TOP 10 FOR EACH SESSION")
    raw = yaml.safe_load(open(path))
    raw["tables"]["clicks"]["foreign_keys"]["shop"] = "visitors"  # two candidate visitor columns
    raw["tables"]["clicks"]["source"]["path"] = str(tmp_path / "clicks.csv")
    from hoprec.data.schema import schema_from_dict

    with pytest.raises(SchemaError, match="visitor_column"):
        SessionTask.from_query(schema_from_dict(raw), QUERY)
    res = CliRunner().invoke(app, ["evaluate", "-s", path, "-q", QUERY.replace("item)", "itm)"), "-m", "sknn"])
    assert res.exit_code == 2 and "did you mean item" in res.output
    res = CliRunner().invoke(app, ["evaluate", "-s", path, "-q", QUERY, "-m", "nope"])
    assert res.exit_code == 2 and "unknown session model" in res.output
