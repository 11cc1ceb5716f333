"""The recommendation logic without HTTP: fold-in, the batch path, fallbacks, re-ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hoprec.serve.events import Event
from hoprec.serve.recommender import Options, RecommendationService
from hoprec.serve.rerank import Filters
from hoprec.train.artifacts import load_model_dir


@pytest.fixture(scope="module")
def services(model_dirs):
    return {m: RecommendationService.from_model_dir(d) for m, d in model_dirs.items()}


@pytest.mark.parametrize("name", ["repeat", "itemknn", "als"])
def test_fold_in_of_the_full_history_matches_the_fitted_scores(services, name):
    svc = services[name]
    users = np.flatnonzero(svc.model.has_history)[:30]
    overlap = []
    for u in users:
        items, times, weights, _ = svc.history(int(u))
        folded = svc.model.score_history(items, times, weights, int(u))
        fitted = svc.model._score(np.array([u]))[0]
        top_f, top_m = np.argsort(-folded)[:10], np.argsort(-fitted)[:10]
        if name == "als":
            # the fitted user factors were solved against the previous sweep's item factors (and
            # by a few CG steps): a fresh exact solve is close, not identical
            assert np.corrcoef(folded, fitted)[0, 1] > 0.99
            overlap.append(len(set(top_f) & set(top_m)) / 10)
        else:
            np.testing.assert_array_equal(top_f, top_m)
    assert not overlap or np.mean(overlap) >= 0.9


@pytest.mark.parametrize("name", ["repeat", "als"])
def test_batch_path_equals_model_recommend(services, name, model_dirs):
    art = load_model_dir(model_dirs[name])
    users = np.arange(len(art.users) + 3)  # three unknown users at the end
    want = art.model.recommend(users, 5)
    plain = RecommendationService(art.model, art.users, art.items, None, art.manifest)  # as predict
    got, _, sources = plain.recommend_internal(users, 5)
    np.testing.assert_array_equal(got, want.items)
    assert sources[-1] == "popular"
    # with serving data, the one known customer without history gets the segment fallback
    got, _, sources = services[name].recommend_internal(users, 5)
    differ = np.flatnonzero((got != want.items).any(axis=1))
    assert [sources[i] for i in differ] == ["segment"]


def test_service_without_serving_data_still_answers(model_dirs):
    art = load_model_dir(model_dirs["repeat"])
    svc = RecommendationService(art.model, art.users, art.items, None, art.manifest)
    a = svc.recommend("C001", Options(k=4, explain=True))
    assert a.source == "model" and len(a.items) == 4
    with pytest.raises(ValueError, match="no category column"):
        svc.recommend("C001", Options(k=4, filters=Filters(categories=("cat1",))))


def test_events_before_the_cutoff_or_for_unknown_items_are_not_folded(model_dirs):
    svc = RecommendationService.from_model_dir(model_dirs["repeat"])
    old = pd.Timestamp("2020-01-01").value
    now = pd.Timestamp.now().value
    assert svc.apply_events([Event("C001", "101", "purchase", old, seq=1),
                             Event("C001", "999", "purchase", now, seq=2),
                             Event("C001", "101", "purchase", now, seq=3)]) == [False, False, True]
    assert svc.recommend("C001", Options(k=3)).folded_events == 1


def test_hybrid_style_blend_for_models_without_a_hook(services, monkeypatch):
    svc = services["als"]
    monkeypatch.setattr(type(svc.model), "_score_history", lambda self, *a: None)
    before = svc.recommend("C020", Options(k=3)).items
    target = next(i for i in range(100, 140) if i not in before)
    svc.apply_events([Event("C020", str(target), "purchase", pd.Timestamp.now().value, seq=10_000)])
    a = svc.recommend("C020", Options(k=3))
    assert a.source == "model+events" and target in a.items


def test_mmr_lambda_one_is_plain_ranking(services):
    svc = services["itemknn"]
    plain = svc.recommend("C030", Options(k=6)).items
    assert svc.recommend("C030", Options(k=6, diversity=True, mmr_lambda=1.0)).items == plain


class OutOfOrderStore:
    """Sequence numbers that commit out of order, as with several PostgreSQL writers."""

    def __init__(self) -> None:
        self.rows: list[Event] = []

    def read_since(self, seq: int, limit: int = 100_000) -> list[Event]:
        return sorted((e for e in self.rows if e.seq > seq), key=lambda e: e.seq)[:limit]

    def changed(self) -> bool:
        return True


def test_sync_with_overlap_catches_late_commits(model_dirs):
    now = pd.Timestamp.now().value
    store = OutOfOrderStore()
    store.rows = [Event("C001", "101", "purchase", now, seq=1), Event("C001", "102", "purchase", now, seq=3)]
    svc = RecommendationService.from_model_dir(model_dirs["repeat"])
    plain = RecommendationService.from_model_dir(model_dirs["repeat"])
    assert svc.sync(store, overlap=10) == 2 and plain.sync(store) == 2
    store.rows.append(Event("C001", "103", "purchase", now, seq=2))  # committed late
    assert svc.sync(store, overlap=10) == 1 and svc.sync(store, overlap=10) == 0
    assert plain.sync(store) == 0  # without the overlap it is missed
    assert svc.history(svc.user_internal("C001")[0])[3] == 3


def test_reasons_include_similar_customers_for_embedding_models(services):
    from hoprec.serve.reasons import HistorySummary, explain

    svc = services["als"]
    u = svc.user_lookup["C001"]
    items, times, weights, _ = svc.history(u)
    recs = svc.recommend("C001", Options(k=5)).internal
    peers, bought = svc._peers(u)
    assert len(peers) == 20 and u not in peers
    reasons = explain(recs, HistorySummary.of(items, times, weights), svc.co_norm_csc,
                      svc.after_norm_csc, svc.catalogue, "model", top=100, neighbours=peers,
                      user_items=bought)
    for per_item, j in zip(reasons, recs):
        assert abs(sum(r["attribution"] for r in per_item) - 1) < 1e-3
        peer = [r for r in per_item if r["kind"] == "similar_customers"]
        n = int((bought[:, [j]].toarray().ravel()[peers] > 0).sum())
        assert (peer[0]["text"] == f"bought by {n} of the 20 customers most like you") if n else not peer
    assert services["repeat"]._peers(0) == (None, None)  # no user vectors, no such reason


def test_precomputed_top_lists_give_the_same_answers(model_dirs):
    from hoprec.serve.recommender import ServiceConfig

    live = RecommendationService.from_model_dir(model_dirs["itemknn"])
    pre = RecommendationService.from_model_dir(
        model_dirs["itemknn"], ServiceConfig(precompute="always", precompute_items=10))
    assert not live.precompute() and pre.precompute() and pre.top[0].shape == (len(pre.users), 10)
    for user in ("C001", "C017", "C033"):
        for opts in (Options(k=5), Options(k=5, filters=Filters(categories=("cat2",))),
                     Options(k=30)):  # the last two need more than the 10 kept: scored live
            assert pre.recommend(user, opts).items == live.recommend(user, opts).items
    assert pre.counters["precomputed_miss"] >= 1


def test_discovery_places_hold_products_the_customer_never_bought(model_dirs):
    """Per-request ``discovery_positions``: those places hold the best-ranked never-bought products
    (live events included), the other places keep the plain ranking's order."""
    svc = RecommendationService.from_model_dir(model_dirs["repeat"])
    for u in np.flatnonzero(svc.model.has_history).tolist():  # a customer whose plain list is all own items
        items, _, weights, _ = svc.history(u)
        owned = set(items[weights > 0].tolist())
        ext = svc.users.to_external(np.array([u]))[0]
        plain = svc.recommend(ext, Options(k=6, exclude_purchased=False))
        if set(plain.internal.tolist()) <= owned:
            break
    else:
        pytest.fail("no customer of the fake shop has six own products in the repeat model's list")
    mixed = svc.recommend(ext, Options(k=6, exclude_purchased=False, discovery_positions=(4, 5)))
    assert not {int(x) for x in mixed.internal[4:]} & owned
    rest = [x for x in plain.internal.tolist() if x not in mixed.internal[4:].tolist()]
    assert mixed.internal[:4].tolist() == rest[:4]
    # a live purchase of the product in place 4 makes it the customer's own: it leaves the place
    bought = int(mixed.internal[4])
    item = str(svc.items.to_external(np.array([bought]))[0])
    assert svc.apply_events([Event(str(ext), item, "purchase", pd.Timestamp.now().value, seq=1)]) == [True]
    again = svc.recommend(ext, Options(k=6, exclude_purchased=False, discovery_positions=(4, 5)))
    assert bought not in again.internal[4:].tolist()
    assert again.internal[5] != bought and len(set(again.internal.tolist())) == 6
