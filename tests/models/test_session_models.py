"""Session models: the contract (unknown ids, empty sessions, allow-lists, save/load) and
known answers for each baseline; the graph model learns a synthetic pattern."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hoprec.graph.sessions import Sessions, prefixes, sessionize
from hoprec.models.session import (
    SessionData,
    SessionRecommender,
    available_session_models,
    get_session_model_class,
)

BASELINES = ("session_pop", "transitions", "sknn", "vsknn")


def make_sessions(lists: list[list[int]], start: str = "2024-01-01") -> Sessions:
    items, keys, times = [], [], []
    t0 = pd.Timestamp(start)
    for s, lst in enumerate(lists):
        for j, i in enumerate(lst):
            items.append(i)
            keys.append(s)
            times.append(t0 + pd.Timedelta(minutes=10 * s + j))
    return sessionize(np.array(items), pd.DatetimeIndex(times).to_numpy(), session_keys=np.array(keys))


def fit(name: str, lists: list[list[int]], n_items: int, **params) -> SessionRecommender:
    return get_session_model_class(name)(**params).fit(SessionData(make_sessions(lists), n_items))


# A -> B -> C chains, D -> E; item 9 is in the catalogue but never in training
CHAINS = [[0, 1, 2]] * 4 + [[3, 4]] * 2 + [[0, 1]]


@pytest.mark.parametrize("name", BASELINES)
def test_unknown_ids_are_ignored_and_reported(name):
    m = fit(name, CHAINS, 10)
    r = m.recommend_session([1, 9, 42], 3)
    assert r.source == "model"
    assert sorted(r.unknown.tolist()) == [9, 42]
    assert r.items.tolist() == m.recommend_session([1], 3).items.tolist()


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("session", [[], [9], [42, -1]])
def test_empty_or_all_unknown_falls_back_to_popular_and_says_so(name, session):
    m = fit(name, CHAINS, 10)
    r = m.recommend_session(session, 3)
    assert r.source == "popular"
    assert r.items.tolist() == [0, 1, 2]  # clicked 5, 5 and 4 times; 0 before 1 by id
    assert len(r.unknown) == len(session)


@pytest.mark.parametrize("name", BASELINES)
def test_never_recommends_unseen_items_and_respects_the_allow_list(name):
    m = fit(name, CHAINS, 10)
    r = m.recommend_session([0], 10)
    assert 9 not in r.items and (r.items[6:] == -1).all() and np.isneginf(r.scores[6:]).all()
    r = m.recommend_session([0], 3, items=[3, 4, 9])
    assert set(r.items[r.items >= 0].tolist()) <= {3, 4}
    with pytest.raises(ValueError, match="allow-list"):
        m.recommend_session([0], 3, items=[10])
    with pytest.raises(ValueError, match="k must be between 1"):
        m.recommend_session([0], 0)


def test_transitions_known_answer_chain():
    m = fit("transitions", CHAINS, 10)
    assert m.recommend_session([0, 1], 1).items.tolist() == [2]  # A -> B -> C: after B comes C
    assert m.recommend_session([3], 1).items.tolist() == [4]
    assert m.recommend_session([0], 1).items.tolist() == [1]


def test_session_pop_ranks_the_sessions_own_items_first():
    m = fit("session_pop", CHAINS, 10)
    assert m.recommend_session([4, 3, 4], 3).items.tolist() == [4, 3, 0]


def test_sknn_known_answer():
    lists = [[0, 1]] * 3 + [[0, 2]] + [[3, 4]] * 2
    m = fit("sknn", lists, 5, k=10, sample_size=10)
    r = m.recommend_session([0], 3)
    assert r.items.tolist() == [0, 1, 2]  # neighbours: three [0, 1] and one [0, 2]
    assert r.scores[1] == pytest.approx(3 / np.sqrt(2)) and r.scores[2] == pytest.approx(1 / np.sqrt(2))


def test_sknn_samples_the_most_recent_sessions():
    lists = [[0, 1]] * 3 + [[0, 2]]  # the [0, 2] session is the most recent
    m = fit("sknn", lists, 3, k=10, sample_size=1)
    assert m.recommend_session([0], 2).items.tolist() == [0, 2]


def test_vsknn_weighs_recent_clicks_more():
    lists = [[0, 5]] * 2 + [[1, 6]] * 2
    sk = fit("sknn", lists, 7, k=10, sample_size=10)
    vs = fit("vsknn", lists, 7, k=10, sample_size=10, weighting="div")
    # SKNN ties 5 and 6 (equal similarity); V-SKNN follows the latest click (1) to 6
    s_sk = sk.recommend_session([0, 1], 7)
    assert s_sk.scores[s_sk.items.tolist().index(5)] == pytest.approx(s_sk.scores[s_sk.items.tolist().index(6)])
    order = vs.recommend_session([0, 1], 7).items.tolist()
    assert order.index(6) < order.index(5) and order.index(1) < order.index(0)


@pytest.mark.parametrize("name", BASELINES)
def test_save_load_keeps_recommendations(name, tmp_path):
    m = fit(name, CHAINS, 10)
    m.save(tmp_path / name)
    back = SessionRecommender.load(tmp_path / name)
    assert type(back) is type(m) and back.config == m.config
    for s in ([0], [0, 1], [3], [9]):
        assert back.recommend_session(s, 4).items.tolist() == m.recommend_session(s, 4).items.tolist()


def test_unknown_model_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="available: session_pop"):
        get_session_model_class("gru4rec")
    assert "sgnn" in available_session_models()


def test_batch_equals_single_calls():
    m = fit("vsknn", CHAINS, 10)
    sessions = [[0], [0, 1], [], [3, 9]]
    batch = m.recommend_sessions(sessions, 3)
    assert [r.items.tolist() for r in batch] == [m.recommend_session(s, 3).items.tolist() for s in sessions]


# ------------------------------------------------------------------ the graph model
def synthetic(n_sessions: int, n_items: int, seed: int) -> list[list[int]]:
    """Sessions walking a fixed random successor map: the next item is a function of the last."""
    rng = np.random.default_rng(seed)
    succ = np.random.default_rng(99).permutation(n_items)
    out = []
    for _ in range(n_sessions):
        x = int(rng.integers(n_items))
        walk = [x]
        for _ in range(int(rng.integers(2, 6))):
            x = int(succ[x])
            walk.append(x)
        out.append(walk)
    return out


GNN = dict(dim=32, epochs=6, batch_size=128, lr=0.01, lr_decay=1.0, dropout=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{}, {"negatives": 16, "scale": 0.0}])
def test_gnn_learns_a_synthetic_successor_pattern(extra):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    n = 30
    train, test = make_sessions(synthetic(600, n, 0)), make_sessions(synthetic(100, n, 1), "2024-02-01")
    m = get_session_model_class("sgnn")(**GNN, **extra).fit(SessionData(train, n))
    p = prefixes(test)
    recs = m.recommend_sessions([test.items[a:b] for a, b in zip(p.start, p.stop)], 1)
    hr1 = np.mean([r.items[0] == t for r, t in zip(recs, p.target)])
    assert hr1 > 0.9, hr1
    assert m.history[-1]["loss"] < m.history[0]["loss"]


def test_gnn_is_seeded_saves_and_loads(tmp_path):
    pytest.importorskip("torch")
    n = 30
    lists = synthetic(200, n, 0)
    codes = (np.arange(n) % 3).reshape(n, 1)
    data = SessionData(make_sessions(lists), n, codes, ("cat",))
    a = get_session_model_class("sgnn")(**{**GNN, "epochs": 2}).fit(data)
    b = get_session_model_class("sgnn")(**{**GNN, "epochs": 2}).fit(data)
    x = [0, 5, 7]
    assert np.allclose(a._score(np.array(x)), b._score(np.array(x)), atol=1e-5)
    assert len(a.net.attrs) == 1  # the category enters the item vectors
    a.save(tmp_path / "g")
    back = SessionRecommender.load(tmp_path / "g")
    assert back.recommend_session(x, 5).items.tolist() == a.recommend_session(x, 5).items.tolist()
    r = back.recommend_session([x[0], 99], 5)
    assert r.unknown.tolist() == [99] and r.source == "model"


def test_gnn_early_stopping_reports_its_epochs():
    pytest.importorskip("torch")
    n = 30
    data = SessionData(make_sessions(synthetic(300, n, 0)), n,
                       validation=make_sessions(synthetic(50, n, 1), "2024-02-01"))
    m = get_session_model_class("sgnn")(**{**GNN, "epochs": 3}).fit(data)
    assert 1 <= m.chosen_params()["epochs"] <= 3
    assert all("val_mrr20" in h for h in m.history)


def test_blend_uses_the_cached_parts_and_a_fixed_weight():
    pytest.importorskip("torch")
    n = 30
    data = SessionData(make_sessions(synthetic(200, n, 0)), n)
    gnn = get_session_model_class("sgnn")(**{**GNN, "epochs": 1}).fit(data)
    knn = get_session_model_class("vsknn")().fit(data)
    data.cache.update({"sgnn": gnn, "vsknn": knn})
    only_knn = get_session_model_class("sgnn_vsknn")(knn_weight=1.0).fit(data)
    x = np.array([0, 4])
    assert only_knn.gnn is gnn and only_knn.knn is knn
    k = knn._score(x)
    assert np.allclose(only_knn._score(x), k / k.sum(), atol=1e-6)
    assert only_knn.chosen_params()["knn_weight"] == 1.0


def test_gnn_says_when_its_time_budget_ends_training():
    pytest.importorskip("torch")
    n = 30
    data = SessionData(make_sessions(synthetic(200, n, 0)), n)
    with pytest.warns(UserWarning, match="training budget"):
        m = get_session_model_class("sgnn")(**{**GNN, "epochs": 3, "max_seconds": 1e-6}).fit(data)
    assert len(m.history) == 1 and m.history[0]["budget_exhausted"]
