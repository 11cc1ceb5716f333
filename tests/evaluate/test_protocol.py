"""The evaluation protocol on the fake shop: one split for all models, test figures reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hoprec.data.schema import load_schema
from hoprec.evaluate.protocol import evaluate, make_split
from hoprec.evaluate.report import to_markdown, write_results
from hoprec.models.registry import get_model_class
from hoprec.task.task import Task, TaskError


@pytest.fixture(scope="module")
def task(fake_shop, fake_query):
    return Task.from_query(load_schema(fake_shop), fake_query)


def test_split_scores_entities_with_history_and_labels(task, fake_db):
    cut = task.cutoffs(fake_db)["test"]
    split = make_split(task, fake_db, cut, "test")
    labels = task.labels(fake_db, cut)
    ds = split.dataset
    ext = set(ds.users.to_external(split.users))
    assert ext == set(labels.entity)  # every labelled customer of the fake shop has history
    assert split.truth_indptr[-1] == len(labels)
    # truth rows decode back to the label pairs
    rows = np.repeat(split.users, np.diff(split.truth_indptr))
    pairs = set(zip(ds.users.to_external(rows), ds.items.to_external(split.truth_indices)))
    assert pairs == set(zip(labels.entity, labels.item))


def test_window_without_labels_is_an_error(task, fake_db):
    with pytest.raises(TaskError, match="has no labels"):
        make_split(task, fake_db, task.cutoffs(fake_db)["test"] + np.timedelta64(60, "D"), "test")


def test_evaluate_reports_test_figures(task, fake_db, tmp_path):
    res = evaluate(task, fake_db, ["popular", "repeat"])
    assert [r.model for r in res.results] == ["popular", "repeat"]
    for r in res.results:
        assert 0.0 <= r.metrics["map"] <= 1.0 and r.metrics["n"] == res.split_stats["test"]["scored_entities"]
        assert len(r.validation) == len(get_model_class(r.model).param_grid) >= 1
        best = max(r.validation, key=lambda v: v["map"])["params"]
        assert r.params == best  # chosen on validation
    rep = {r.model: r for r in res.results}
    # the fake shop's customers re-buy staples: buy-it-again must beat global popularity
    assert rep["repeat"].metrics["map"] > rep["popular"].metrics["map"]
    jpath, mpath = write_results(res, tmp_path)
    data = json.loads(jpath.read_text())
    assert data["cutoffs"]["test"] == str(task.cutoffs(fake_db)["test"])
    assert "| repeat |" in mpath.read_text() and "MAP@5" in to_markdown(res)


def test_a_single_setting_is_not_fitted_on_validation(task, fake_db, monkeypatch):
    """Nothing to choose, so no validation fit: the model is fitted once, on the test snapshot."""
    cls = get_model_class("popular")
    monkeypatch.setattr(cls, "param_grid", [{"window_days": 30}])
    fits = []
    real_fit = cls.fit
    monkeypatch.setattr(cls, "fit", lambda self, ds, **kw: fits.append(ds.cutoff) or real_fit(self, ds, **kw))
    res = evaluate(task, fake_db, ["popular"])
    (r,) = res.results
    assert fits == [task.cutoffs(fake_db)["test"]]
    assert r.params == {"window_days": 30} and r.validation[0]["map"] is None


def test_long_fits_report_progress_through_evaluate(task, fake_db):
    """The hybrid's training windows reach ``evaluate``'s progress callback, named by model."""
    lines: list[str] = []
    evaluate(task, fake_db, ["hybrid"], progress=lines.append)
    assert any(line.startswith("hybrid (test): training window 1/") for line in lines)
    assert any("boosting" in line for line in lines)
