"""YOOCHOOSE 1/64 end to end through the session protocol, with small settings (realdata)."""

from __future__ import annotations

import pytest

from hoprec.data.database import load_database
from hoprec.data.datasets import example_schema, shared_data
from hoprec.data.schema import load_schema
from hoprec.evaluate.session_protocol import evaluate_sessions
from hoprec.task.session import SessionTask

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def yoochoose():
    try:
        root = shared_data()
    except FileNotFoundError as e:
        pytest.fail(str(e))
    if not (root / "yoochoose_1_64" / "clicks_test.csv.gz").is_file():
        pytest.fail(f"yoochoose_1_64/clicks_test.csv.gz not found under {root}: set HOPREC_SHARED_DATA")
    mp = pytest.MonkeyPatch()
    mp.setenv("HOPREC_SHARED_DATA", str(root))
    s = load_schema(example_schema("yoochoose"))
    mp.undo()
    return SessionTask.from_query(s, "PREDICT NEXT(clicks.ItemId) RANK TOP 20 FOR EACH SESSION"), load_database(s)


def test_yoochoose_figures_are_sane(yoochoose):
    task, db = yoochoose
    grids = {"transitions": [{}], "vsknn": [{}],
             "sgnn": [{"epochs": 3, "dim": 32, "max_sessions": 4000, "batch_size": 128, "lr": 0.005}]}
    res = evaluate_sessions(task, db, ["transitions", "vsknn", "sgnn"], grids=grids)
    st = res.split_stats
    # the shipped test file: 1,703 sessions, plus the one training-file session that starts after
    # the first test click; every test item occurs in training
    assert st["test_sessions"] == 1704 and st["test_prefixes"] == 5597
    assert st["test_targets_unseen_in_training"] == 0
    by = {r.model: r.metrics for r in res.results}
    # the independent evaluator's figures on this split: V-SKNN 0.642 / 0.318, transitions 0.476 / 0.264
    assert 0.60 < by["vsknn"]["hr@20"] < 0.68 and 0.29 < by["vsknn"]["mrr@20"] < 0.34
    assert 0.44 < by["transitions"]["hr@20"] < 0.52 and 0.24 < by["transitions"]["mrr@20"] < 0.29
    assert 0.2 < by["sgnn"]["hr@20"] < by["vsknn"]["hr@20"] + 0.1  # 3 small epochs: learning, sane
    for r in res.results:
        assert r.latency_ms["calls"] == 5597 and r.latency_ms["median"] < 50
