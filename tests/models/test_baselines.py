"""Known-answer tests for the baselines: the right order is computed by hand from the fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from hoprec.models.itemknn import ItemKNN
from hoprec.models.mf import ALS, BPR
from hoprec.models.popular import Popular
from hoprec.models.repeat import RepeatPurchase


def _ranking(model, user: int = 0) -> list[int]:
    rec = model.recommend(np.array([user]), model.n_items)
    return rec.items[0][rec.items[0] >= 0].tolist()


# ----------------------------------------------------------------------------- Popular
@pytest.mark.parametrize(
    ("window", "distinct", "expected"),
    [
        # in-window counts 4:3 5:2 1,3,6:1, ties by all-history count (7 has 4 users), then id
        (30, True, [4, 5, 1, 3, 6, 7, 0, 2, 8]),
        (None, True, [7, 4, 5, 0, 1, 2, 3, 6, 8]),
        # events: 6 was bought five times; ties outside the window: 7 (4 events) > 2 (3) > 0 (1)
        (30, False, [6, 4, 5, 1, 3, 7, 2, 0, 8]),
        # 90 days reaches back to items 0 and 2 (sixty days ago) but not 7 (200 days)
        (90, True, [4, 5, 0, 1, 2, 3, 6, 7, 8]),
    ],
)
def test_popular_counts_window_and_mode(timed, window, distinct, expected):
    model = Popular(window_days=window, distinct_users=distinct).fit(timed)
    assert _ranking(model) == expected
    assert _ranking(model, user=3) == expected  # not personal


def test_popular_returns_do_not_count(timed):
    model = Popular(window_days=30).fit(timed)
    assert int(model.scores[5]) == 2  # two buyers; user 3's return is not a negative count
    assert (model.recommend(np.array([0, 99]), 3).source == "model").all()


# ----------------------------------------------------------------------------- RepeatPurchase
def test_repeat_recent_before_old_then_popular(timed):
    model = RepeatPurchase(half_life_days=30).fit(timed)
    rec = model.recommend(np.array([0]), 9)
    items, scores = rec.items[0], rec.scores[0]
    assert items[:2].tolist() == [1, 0]  # bought 2 days ago, then 60 days ago
    # the score encodes log2 of the decayed sum: the gap is (60 - 2) / 30 half-lives
    assert scores[0] - scores[1] == pytest.approx(58 / 30, rel=1e-5)
    assert scores[2:].max() < scores[:2].min()
    fill = [i for i in np.argsort(-model.popularity, kind="stable") if i not in (0, 1)]
    assert items[2:].tolist() == fill


def test_repeat_half_life_changes_order(timed):
    # user 1: item 2 three times 60 days ago, item 3 once yesterday
    assert _ranking(RepeatPurchase(half_life_days=7).fit(timed), user=1)[:2] == [3, 2]
    assert _ranking(RepeatPurchase(half_life_days=365).fit(timed), user=1)[:2] == [2, 3]


def test_repeat_without_fill_lists_only_own_items(timed):
    model = RepeatPurchase(fill_popular=False).fit(timed)
    assert model.recommend(np.array([0]), 4).items[0].tolist() == [1, 0, -1, -1]
    assert model.recommend(np.array([5]), 2).items[0].tolist() == [6, 7]


# ----------------------------------------------------------------------------- ItemKNN
def _precision_at_1(model, checker) -> float:
    users = np.arange(checker.n_board)
    rec = model.recommend(users, 1, exclude=checker.train)
    assert (rec.source == "model").all()
    return float((rec.items[:, 0] == checker.held_out).mean())


@pytest.mark.parametrize(
    "params",
    [{}, {"similarity": "bm25"}, {"neighbours": 10}, {"half_life_days": 7.0}],
)
def test_itemknn_checkerboard(checker, params):
    model = ItemKNN(**params).fit(checker.dataset)
    assert _precision_at_1(model, checker) == 1.0
    # without exclusions, the positive scores are exactly the user's group
    users = np.arange(checker.n_board)
    rec = model.recommend(users, checker.dataset.n_items)
    for u in users:
        positive = rec.items[u][rec.scores[u] > 0]
        assert len(positive) > 0 and (positive % 2 == u % 2).all()
    sim_items, sim_scores = model.similar_items(np.arange(4), 3)
    for i in range(4):
        near = sim_items[i][sim_scores[i] > 0]
        assert len(near) > 0 and (near % 2 == i % 2).all()


def test_itemknn_neighbours_bound_similarity(checker):
    model = ItemKNN(neighbours=3).fit(checker.dataset)
    assert (np.diff(model.similarity.indptr) <= 3).all()


# ----------------------------------------------------------------------------- ALS / BPR
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "make",
    [
        lambda seed: ALS(factors=8, regularization=1.0, random_state=seed),
        lambda seed: BPR(factors=8, learning_rate=0.05, iterations=100, random_state=seed),
    ],
    ids=["als", "bpr"],
)
def test_factorization_checkerboard(checker, make, seed):
    model = make(seed).fit(checker.dataset)
    assert _precision_at_1(model, checker) == 1.0
    sim_items, _ = model.similar_items(np.arange(4), 1)
    assert (sim_items[:, 0] % 2 == np.arange(4) % 2).all()
    assert model.user_factors.dtype == model.item_factors.dtype == np.float32


def test_bpr_keeps_a_bias_column(checker):
    model = BPR(factors=4).fit(checker.dataset)
    assert model.item_factors.shape == (20, 5)
    assert (model.user_factors[:, -1] == 1.0).all()
