"""Retrieval: the exact index matches brute force; HNSW keeps recall@K >= 0.98 against it."""

from __future__ import annotations

import numpy as np
import pytest

from hoprec.serve.index import build_index, recall_at_k


def clustered(n_items=10_000, d=32, n_queries=200, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, d))
    items = centres[rng.integers(0, 50, n_items)] + 0.5 * rng.normal(size=(n_items, d))
    items *= rng.uniform(0.5, 2.0, (n_items, 1))  # norms differ, as learned item factors do
    users = centres[rng.integers(0, 50, n_queries)] + rng.normal(size=(n_queries, d))
    return items.astype(np.float32), users.astype(np.float32)


def test_exact_index_is_brute_force():
    items, users = clustered(3_000)
    index = build_index(items)
    assert index.kind == "exact"
    ids, scores = index.search(users, 12)
    brute = users @ items.T
    np.testing.assert_allclose(scores, np.take_along_axis(brute, ids, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(scores[:, 0], brute.max(axis=1), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def indexes():
    items, users = clustered()
    return build_index(items), build_index(items, exact_max_items=5_000), users


@pytest.mark.slow  # builds a 10,000-item HNSW graph (a few seconds on 2 cores)
@pytest.mark.parametrize("k", [12, 100])
def test_hnsw_recall_against_exact(indexes, k):
    exact, approx, users = indexes
    assert exact.kind == "exact" and approx.kind == "hnsw"
    truth, _ = exact.search(users, k)
    got, scores = approx.search(users, k)
    assert recall_at_k(got, truth) >= 0.98
    assert (np.diff(scores, axis=1) <= 1e-5).all()  # best first


def test_recall_helper_and_bad_input():
    assert recall_at_k(np.array([[1, 2, 3]]), np.array([[3, 2, 9]])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="n_items, d"):
        build_index(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match="dimensions"):
        build_index(np.ones((5, 4), np.float32)).search(np.ones((1, 3)), 2)


@pytest.mark.slow
def test_service_overfetch_recall(indexes):
    """As the service retrieves: 20x over-fetch at ef = max(ef_search, fetch), exact re-rank."""
    exact, approx, users = indexes
    k = 12
    truth, _ = exact.search(users, k)
    cand, _ = approx.search(users, 20 * k, ef=max(approx.ef_search, 20 * k))
    safe = np.maximum(cand, 0)
    scores = np.einsum("nd,nkd->nk", users, approx.vectors[safe])
    scores[cand < 0] = -np.inf
    top = np.take_along_axis(cand, np.argsort(-scores, axis=1)[:, :k], 1)
    assert recall_at_k(top, truth) >= 0.98


@pytest.mark.slow  # three small HNSW builds
def test_hnsw_graph_is_cached(tmp_path):
    items, users = clustered(2_000)
    first = build_index(items, exact_max_items=500, cache_dir=tmp_path)
    files = list(tmp_path.glob("hnsw-*.faiss"))
    assert len(files) == 1
    again = build_index(items, exact_max_items=500, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.search(users, 10)[0], again.search(users, 10)[0])
    build_index(items * 2, exact_max_items=500, cache_dir=tmp_path)  # other vectors: another file
    assert len(list(tmp_path.glob("hnsw-*.faiss"))) == 2
