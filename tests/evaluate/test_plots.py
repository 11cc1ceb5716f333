"""Report figures and the arrays behind them, on a real evaluation of the fake shop."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hoprec.data.schema import load_schema
from hoprec.evaluate import plots
from hoprec.evaluate.protocol import CURVE_K, evaluate
from hoprec.evaluate.report import ARRAYS_FILE, read_results, write_results
from hoprec.models.popular import Popular
from hoprec.task.task import Task

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def task(fake_shop, fake_query):
    return Task.from_query(load_schema(fake_shop), fake_query)


@pytest.fixture(scope="module")
def result(task, fake_db):
    return evaluate(task, fake_db, ["popular", "repeat", "itemknn"])


def assert_png(path: Path) -> tuple[int, int]:
    """A readable PNG: magic bytes, decodes, not tiny; returns (height, width)."""
    from matplotlib.image import imread

    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] >= 200 and img.shape[1] >= 400
    assert img.std() > 0.01  # something is drawn
    return img.shape[:2]


def test_arrays_agree_with_the_headline_figures(result):
    k = result.k
    for r in result.results:
        a = r.arrays
        assert len(a["test/map"]) == result.split_stats["test"]["scored_entities"]
        for metric in ("map", "recall", "ndcg"):
            assert np.nanmean(a[f"test/{metric}"]) == pytest.approx(r.metrics[metric])
            # the curve at the task's K is the headline figure (the same top-k lists)
            assert a[f"curve/{metric}"][k - 1] == pytest.approx(r.metrics[metric])
        assert a["curve/coverage"][k - 1] == pytest.approx(r.metrics["coverage"])
        n_items = result.split_stats["test"]["items_at_cutoff"]
        assert len(a["curve/map"]) == min(CURVE_K, n_items)
        assert np.all(np.diff(a["curve/recall"]) >= -1e-12)  # longer lists never lose recall
        assert a["popularity_deciles"].sum() == pytest.approx(1.0)
        sparse = next(s for s in r.slices if s.startswith("sparse"))
        if r.slices[sparse]["n"]:
            assert np.nanmean(a[f"slice/{sparse}/map"]) == pytest.approx(r.slices[sparse]["map"])
    assert result.arrays["data/truth_popularity_deciles"].sum() == pytest.approx(1.0)


def test_popular_recommends_from_the_top_of_its_own_ranking(result):
    """popular ranks by recent popularity: its lists sit in the upper half of the catalogue."""
    pop = next(r for r in result.results if r.model == "popular")
    assert pop.arrays["popularity_deciles"][5:].sum() > 0.5


def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_more_entities(result):
    small = plots.intervals(result, "map")
    big = copy.copy(result)
    big.results = [copy.copy(r) for r in result.results]
    for r in big.results:  # the same entities 16 times over: same mean, a quarter of the width
        r.arrays = {key: np.tile(v, 16) if key.startswith("test/") else v for key, v in r.arrays.items()}
    large = plots.intervals(big, "map")
    for (m, lo, hi, n), (m2, lo2, hi2, n2) in zip(small, large):
        assert lo <= m <= hi and lo2 <= m2 <= hi2
        assert m2 == pytest.approx(m) and n2 == 16 * n
        assert hi > lo and (hi2 - lo2) < 0.4 * (hi - lo)


def test_paired_difference(result):
    names = [r.model for r in result.results]
    rep, pop = names.index("repeat"), names.index("popular")
    assert plots.paired_difference(result, "map", rep, rep) == (0.0, 0.0, 0.0)
    d, lo, hi = plots.paired_difference(result, "map", rep, pop)
    assert d == pytest.approx(result.results[rep].metrics["map"] - result.results[pop].metrics["map"])
    assert 0 < lo <= d <= hi  # the fake shop re-buys staples: repeat beats popular clearly


def test_every_figure_is_a_valid_png(result, tmp_path):
    figs = plots.draw_all(result, tmp_path)
    assert [f.name for f in figs] == ["leaderboard", "curves", "popularity", "slices"]  # no log
    for f in figs:
        assert f.path.parent == tmp_path and f.title and f.caption
        assert_png(f.path)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


class LoggingPopular(Popular):
    """Popular that logs a training curve the way step-trained models do."""

    def _fit(self, dataset):
        super()._fit(dataset)
        self.history = [{"step": s, "loss": 1.0 / s, "val_map": 0.1 + 0.01 * s} for s in range(1, 6)]


def test_training_log_convention_and_figure(result, fake_db, task, tmp_path):
    ds = task.build_dataset(fake_db.snapshot(task.cutoffs(fake_db)["test"]))
    assert Popular().fit(ds).training_log() == []
    model = LoggingPopular().fit(ds)
    assert model.training_log() == model.history and model.training_log() is not model.history
    logged = copy.copy(result)
    logged.results = [copy.copy(r) for r in result.results]
    logged.results[0].training_log = model.training_log()
    fig = plots.training_figure(logged, tmp_path / "training.png")
    assert fig is not None and assert_png(fig.path)
    assert plots.training_figure(result, tmp_path / "none.png") is None


def test_results_round_trip_with_arrays(result, tmp_path):
    write_results(result, tmp_path)
    back = read_results(tmp_path)
    assert json.dumps(back.to_dict(), default=str) == json.dumps(result.to_dict(), default=str)
    for r, b in zip(result.results, back.results):
        assert r.arrays.keys() == b.arrays.keys()
        for key in r.arrays:
            np.testing.assert_array_equal(r.arrays[key], b.arrays[key])
    np.testing.assert_array_equal(back.arrays["data/truth_popularity_deciles"],
                                  result.arrays["data/truth_popularity_deciles"])
    assert "arrays" not in json.loads((tmp_path / "results.json").read_text())["results"][0]


def test_arrays_of_another_run_are_refused(result, tmp_path):
    write_results(result, tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    data["results"] = data["results"][:1]
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="does not match"):
        read_results(tmp_path)


def test_older_results_without_arrays_still_draw(tmp_path):
    """results.json from before per-entity arrays (the committed spine results) still reads."""
    src = REPO / "benchmarks" / "results" / "online_retail" / "results.json"
    shutil.copy(src, tmp_path / "results.json")
    old = read_results(tmp_path)
    assert not (tmp_path / ARRAYS_FILE).exists() and not plots.has_arrays(old)
    figs = {f.name: f for f in plots.draw_all(old, tmp_path / "fig")}
    assert set(figs) == {"leaderboard", "popularity", "slices"}  # curves need the arrays
    for f in figs.values():
        assert_png(f.path)
    assert "no intervals" in figs["leaderboard"].caption
    m, lo, hi, n = plots.intervals(old, "map")[0]
    assert m == old.results[0].metrics["map"] and np.isnan(lo) and n == old.results[0].metrics["n"]
