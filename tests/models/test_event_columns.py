"""Event-table numerical columns as hybrid signals (:mod:`hoprec.models.event_columns`)."""

from __future__ import annotations

import numpy as np
import pytest

from hoprec.data.fake import QUERY
from hoprec.data.schema import load_schema
from hoprec.models.base import Recommender
from hoprec.models.event_columns import EventColumns
from hoprec.models.registry import create_model
from hoprec.task.task import Task

DAY = 86_400 * 10**9


def _log(v):
    return np.sign(v) * np.log1p(np.abs(v))


def test_signals_worked_by_hand():
    """Item 0: a discount of 3 five days before t, 1 sixty days before, 9 at t (not seen yet)."""
    t = np.datetime64("2024-03-01", "ns")
    t_ns = int(t.astype(np.int64))
    ev = EventColumns(
        names=["disc"], user=np.array([0, 1, 0, 1]), item=np.array([0, 0, 0, 1]),
        time=np.array([t_ns - 5 * DAY, t_ns - 60 * DAY, t_ns, t_ns - 200 * DAY]),
        values=_log(np.array([[3.0], [1.0], [9.0], [2.0]])).astype(np.float32), n_users=2, n_items=2)
    sig = ev.at(t)
    x = sig.features(np.array([0, 1, 1, 0]), np.array([0, 0, 1, 1]))
    assert ev.feature_names() == ["ev_disc_item14", "ev_disc_lift", "ev_disc_pair"]
    recent, long = _log(3.0), (_log(3.0) + _log(1.0)) / 2
    np.testing.assert_allclose(x[0], [recent, recent - long, _log(3.0)], rtol=1e-6)
    np.testing.assert_allclose(x[1, 2], _log(1.0), rtol=1e-6)  # user 1's own line of item 0
    assert np.isnan(x[2, 0]) and np.isnan(x[2, 1])  # item 1: no line in the last 14 / 90 days
    np.testing.assert_allclose(x[2, 2], _log(2.0), rtol=1e-6)
    assert np.isnan(x[3, 2])  # user 0 never bought item 1


@pytest.fixture(scope="module")
def shop(fake_shop, fake_db):
    task = Task.from_query(load_schema(fake_shop), QUERY)
    return task.build_dataset(fake_db.snapshot(task.cutoffs(fake_db)["test"]))


def test_hybrid_reads_the_schemas_numerical_event_columns(shop, tmp_path):
    ev = EventColumns.from_dataset(shop)
    assert ev.names == ["is_return", "quantity"] and len(ev.user) > 0
    assert ev.time.max() < np.datetime64(shop.cutoff, "ns").astype(np.int64)  # a snapshot: no future rows
    params = {"event_columns": True, "n_windows": 1, "n_estimators": 20, "horizon_days": 7}
    m = create_model("hybrid", **params).fit(shop)
    assert {"ev_quantity_item14", "ev_quantity_lift", "ev_quantity_pair"} <= set(m.booster.feature_name())
    users = np.arange(shop.n_users)
    want = m.recommend(users, 5).items
    m.save(tmp_path / "h")
    np.testing.assert_array_equal(Recommender.load(tmp_path / "h").recommend(users, 5).items, want)
    off = create_model("hybrid", drop_features=["event_columns"], **params).fit(shop)
    assert not any(n.startswith("ev_") for n in off.feature_names())
