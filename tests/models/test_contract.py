"""Every registered model keeps the one contract of :mod:`hoprec.models.base`."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hoprec.models.base import Recommender, top_k
from hoprec.models.registry import BASELINES, available_models, create_model, get_model_class

from .conftest import make_dataset

# models that need the relational snapshot have their own contract tests on the fake shop
# (tests/models/test_graph_models.py)
NAMES = [n for n in available_models() if not get_model_class(n).needs_relational]


def _has_similar(model: Recommender) -> bool:
    return type(model)._similar is not Recommender._similar


def _users(checker) -> np.ndarray:
    # board users, the user with no events, the user with only a return, and two unknown ids
    n = checker.n_board
    return np.array([0, 1, 7, n, n + 1, n + 2, 10_000])


@pytest.fixture(params=NAMES)
def fitted(request, checker) -> Recommender:
    return create_model(request.param).fit(checker.dataset)


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.source, b.source)


def test_registry_names_match_classes():
    for name in NAMES:
        cls = get_model_class(name)
        assert cls.name == name and issubclass(cls, Recommender)
        assert 1 <= len(cls.param_grid) <= 4


def test_save_load_keeps_everything(fitted, checker, tmp_path):
    users = _users(checker)
    before = fitted.recommend(users, 5, exclude=checker.train)
    fitted.save(tmp_path / "model")
    fitted.save(tmp_path / "model")  # overwriting an existing folder is fine
    for loaded in (Recommender.load(tmp_path / "model"), type(fitted).load(tmp_path / "model")):
        assert type(loaded) is type(fitted)
        assert loaded.get_config() == fitted.get_config()
        _same(loaded.recommend(users, 5, exclude=checker.train), before)
        if _has_similar(fitted):
            items = np.arange(checker.dataset.n_items)
            for a, b in zip(
                loaded.similar_items(items, 4), fitted.similar_items(items, 4), strict=True
            ):
                np.testing.assert_array_equal(a, b)


def test_refit_is_deterministic(fitted, checker):
    again = type(fitted).from_config(fitted.get_config()).fit(checker.dataset)
    users = _users(checker)
    _same(again.recommend(users, 8), fitted.recommend(users, 8))


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip(name):
    cls = get_model_class(name)
    model = cls()
    config = model.get_config()
    assert config["model"] == name
    assert cls.from_config(config).get_config() == config
    assert repr(model).startswith(f"{cls.__name__}(")
    for params in cls.param_grid:
        grid_model = cls(**params)
        assert cls.from_config(grid_model.get_config()).get_config() == grid_model.get_config()
    with pytest.raises(ValueError):
        cls(no_such_field=1)
    with pytest.raises(ValueError):
        cls.from_config({**config, "no_such_field": 1})
    other = next(n for n in NAMES if n != name)
    with pytest.raises(ValueError):
        cls.from_config({**config, "model": other})


def test_exclude_never_recommended(fitted, checker):
    users = _users(checker)
    rng = np.random.default_rng(0)
    n_items = checker.dataset.n_items
    for exclude in (
        checker.train,
        sp.random(checker.n_board + 3, n_items, density=0.3, format="csr", rng=rng),
    ):
        rec = fitted.recommend(users, n_items, exclude=exclude)
        for row, u in zip(rec.items, users, strict=True):
            banned = set(exclude[u].indices) if u < exclude.shape[0] else set()
            assert not banned & set(row[row >= 0].tolist())
            assert (row >= 0).sum() == n_items - len(banned)  # every score is finite


def test_items_allow_list(fitted, checker):
    allowed = np.array([1, 4, 7, 10])
    rec = fitted.recommend(_users(checker), 6, items=allowed)
    assert set(rec.items[rec.items >= 0].tolist()) <= set(allowed.tolist())
    assert ((rec.items >= 0).sum(axis=1) == len(allowed)).all()
    assert (rec.items[:, len(allowed) :] == -1).all()


def test_lists_are_sorted_and_unique(fitted, checker):
    rec = fitted.recommend(_users(checker), 10)
    assert (np.diff(rec.scores, axis=1) <= 0).all()
    for row in rec.items:
        assert len(set(row.tolist())) == len(row)


def test_fallback_for_unknown_and_historyless_users(fitted, checker):
    users = _users(checker)
    rec = fitted.recommend(users, 5)
    n_known = 3  # users 0, 1 and 7 have history
    if fitted.name == "popular":  # not personal: it serves everyone itself
        assert (rec.source == "model").all()
    else:
        assert rec.source.tolist() == ["model"] * n_known + ["popular"] * (len(users) - n_known)
        expected, _ = top_k(fitted.popularity[None, :], 5)
        assert (rec.items[n_known:] == expected).all()


def test_bad_arguments(fitted, checker):
    n_items = checker.dataset.n_items
    for k in (0, -1, n_items + 1):
        with pytest.raises(ValueError):
            fitted.recommend(np.array([0]), k)
    assert fitted.recommend(np.array([0]), n_items).items.shape == (1, n_items)
    with pytest.raises(ValueError):
        fitted.recommend(np.array([-1]), 1)


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_model_raises(name, tmp_path):
    model = create_model(name)
    with pytest.raises(RuntimeError):
        model.recommend(np.array([0]), 1)
    with pytest.raises(RuntimeError):
        model.similar_items(np.array([0]), 1)
    with pytest.raises(RuntimeError):
        model.save(tmp_path / "model")


def test_similar_items(fitted, checker):
    n_items = checker.dataset.n_items
    items = np.arange(n_items)
    if not _has_similar(fitted):
        with pytest.raises(NotImplementedError):
            fitted.similar_items(items, 3)
        return
    ids, scores = fitted.similar_items(items, n_items)  # k is capped at n_items - 1
    assert ids.shape == (n_items, n_items - 1)
    assert not (ids == items[:, None]).any()
    assert (np.diff(scores, axis=1) <= 0).all()
    with pytest.raises(ValueError):
        fitted.similar_items(np.array([n_items]), 3)


@pytest.mark.parametrize("name", BASELINES)  # a learned model may refuse data with no labels
def test_fit_without_positive_events(name):
    dataset = make_dataset([(0, 1, 3.0)], 3, 4, weights=[-1.0])  # one return, nothing bought
    rec = create_model(name).fit(dataset).recommend(np.arange(4), 2)
    assert (rec.items >= 0).all()
    assert (rec.source == ("model" if name == "popular" else "popular")).all()
