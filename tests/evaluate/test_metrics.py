"""Tests for hoprec.evaluate.metrics: hand-computed cases plus a pure-Python reference."""

from __future__ import annotations

import doctest
import math
from itertools import combinations

import numpy as np
import pytest

from hoprec.evaluate import metrics as M
from hoprec.evaluate.metrics import (
    RANKING_METRICS,
    StreamingRankingMetrics,
    bootstrap_ci,
    catalogue_coverage,
    hits_matrix,
    intra_list_diversity,
    mean_metrics,
    mean_popularity,
    popularity_deciles,
    ranking_metrics,
    truth_to_csr,
)


def _metrics(recs, truth, k):
    indptr, indices = truth_to_csr([np.asarray(t, dtype=np.int64) for t in truth])
    return ranking_metrics(np.asarray(recs, dtype=np.int64), indptr, indices, k)


def _row(m, i=0):
    return {name: float(v[i]) for name, v in m.items()}


def test_module_docstring_example():
    assert doctest.testmod(M).failed == 0


def test_truth_to_csr():
    indptr, indices = truth_to_csr([np.array([5, 3]), np.array([], dtype=np.int64), [7]])
    assert indptr.tolist() == [0, 2, 2, 3]
    assert indices.tolist() == [5, 3, 7]
    assert indptr.dtype == np.int64 and indices.dtype == np.int64
    indptr, indices = truth_to_csr([])
    assert indptr.tolist() == [0] and indices.size == 0


def test_known_case():
    # recs [1,2,3,4], truth {2,4,9}, k=4: hits at ranks 2 and 4.
    r = _row(_metrics([[1, 2, 3, 4]], [[2, 4, 9]], k=4))
    # AP = (P@2 + P@4) / min(3, 4) = (1/2 + 2/4) / 3 = 1/3
    assert r["map"] == pytest.approx(1 / 3)
    assert r["recall"] == pytest.approx(2 / 3)  # 2 hits / 3 relevant
    assert r["precision"] == pytest.approx(0.5)  # 2 hits / k=4
    # DCG = 1/log2(3) + 1/log2(5); IDCG = 3 ideal hits = 1 + 1/log2(3) + 1/log2(4)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert r["ndcg"] == pytest.approx(dcg / idcg)
    assert r["mrr"] == pytest.approx(0.5)  # first hit at rank 2
    assert r["hit_rate"] == 1.0


def test_hits_matrix_known_case():
    indptr, indices = truth_to_csr([np.array([2, 4, 9]), np.array([1])])
    h = hits_matrix(np.array([[1, 2, 3, 4], [1, 1, -1, -1]]), indptr, indices, k=4)
    assert h.dtype == bool and h.shape == (2, 4)
    # row 1: the repeated item 1 counts only at its first position; pads never hit
    assert h.tolist() == [[False, True, False, True], [True, False, False, False]]


def test_truth_larger_than_k():
    # recs [1,2,3], truth {1,3,5,6,7}, k=3: hits at ranks 1 and 3.
    r = _row(_metrics([[1, 2, 3]], [[1, 3, 5, 6, 7]], k=3))
    # AP = (1/1 + 2/3) / min(5, 3) = (5/3) / 3 = 5/9
    assert r["map"] == pytest.approx(5 / 9)
    assert r["recall"] == pytest.approx(2 / 5)
    assert r["precision"] == pytest.approx(2 / 3)
    # IDCG over min(5, 3) = 3 ideal hits: 1 + 1/log2(3) + 1/log2(4)
    dcg = 1 + 1 / math.log2(4)
    assert r["ndcg"] == pytest.approx(dcg / (1 + 1 / math.log2(3) + 0.5))
    assert r["mrr"] == 1.0


def test_perfect_list_all_ones():
    # every one of k=3 slots is relevant and |truth| = 3 -> every metric is 1
    r = _row(_metrics([[4, 7, 9]], [[9, 4, 7]], k=3))
    assert r == pytest.approx(dict.fromkeys(RANKING_METRICS, 1.0))
    # truth larger than k, all k slots hit: AP and NDCG still 1 (min(|truth|, k) denominators)
    r = _row(_metrics([[4, 7]], [[9, 4, 7, 11]], k=2))
    assert r["map"] == pytest.approx(1.0) and r["ndcg"] == pytest.approx(1.0)
    assert r["recall"] == pytest.approx(0.5)  # 2 of 4 relevant


def test_no_hits_all_zero():
    r = _row(_metrics([[1, 2, 3]], [[8, 9]], k=3))
    assert r == dict.fromkeys(RANKING_METRICS, 0.0)


def test_pads_never_hit():
    # list [5, -1, -1], truth {5, 6}: one hit at rank 1, pads at the end add nothing
    r = _row(_metrics([[5, -1, -1]], [[5, 6]], k=3))
    assert r["precision"] == pytest.approx(1 / 3)  # precision still divides by k
    assert r["recall"] == pytest.approx(0.5)
    assert r["map"] == pytest.approx(1 / 2)  # (1/1) / min(2, 3)
    # a fully padded list scores zero
    r = _row(_metrics([[-1, -1]], [[0, 1]], k=2))
    assert r == dict.fromkeys(RANKING_METRICS, 0.0)


def test_repeated_item_counts_once():
    # [3, 3] with truth {3}: one hit at rank 1; the repeat is not a second hit
    r = _row(_metrics([[3, 3]], [[3]], k=2))
    assert r["recall"] == 1.0 and r["precision"] == 0.5 and r["map"] == 1.0


def test_k_truncates():
    recs = [[1, 2, 3, 4]]
    truth = [[4]]
    # the only relevant item sits at rank 4, so k=3 sees no hit ...
    assert _row(_metrics(recs, truth, k=3)) == dict.fromkeys(RANKING_METRICS, 0.0)
    # ... and k=3 on the full list equals k=3 on a list cut to 3 columns
    full = _metrics([[1, 2, 3, 4], [2, 1, 9, 9]], [[2], [1, 9]], k=3)
    cut = _metrics([[1, 2, 3], [2, 1, 9]], [[2], [1, 9]], k=3)
    for name in RANKING_METRICS:
        np.testing.assert_array_equal(full[name], cut[name])
    # k=4 finds it: MRR 1/4, precision 1/4
    r = _row(_metrics(recs, truth, k=4))
    assert r["mrr"] == pytest.approx(0.25) and r["precision"] == pytest.approx(0.25)


def test_empty_truth_is_nan_and_excluded_from_n():
    m = _metrics([[1, 2], [1, 2], [3, 4]], [[1], [], [9]], k=2)
    for name in RANKING_METRICS:
        assert np.isnan(m[name][1])
        assert m[name].dtype == np.float64 and m[name].shape == (3,)
    means = mean_metrics(m)
    assert means["n"] == 2
    # recall: row 0 = 1, row 2 = 0, row 1 ignored -> 0.5
    assert means["recall"] == pytest.approx(0.5)
    assert means["mrr"] == pytest.approx(0.5)


def test_mean_metrics_all_nan():
    means = mean_metrics(_metrics([[1]], [[]], k=1))
    assert means["n"] == 0 and all(np.isnan(means[name]) for name in RANKING_METRICS)


@pytest.mark.parametrize("k", [0, 5, -1])
def test_bad_k(k):
    indptr, indices = truth_to_csr([[1]])
    with pytest.raises(ValueError, match="k must be"):
        ranking_metrics(np.array([[1, 2, 3, 4]]), indptr, indices, k)


def test_bad_shapes():
    indptr, indices = truth_to_csr([[1], [2]])
    with pytest.raises(ValueError, match="n\\+1"):
        ranking_metrics(np.array([[1, 2]]), indptr, indices, 1)  # 1 row, 2 truth rows
    with pytest.raises(ValueError, match="2-D"):
        ranking_metrics(np.array([1, 2]), indptr[:2], indices[:1], 1)
    with pytest.raises(ValueError, match="2-D"):
        catalogue_coverage(np.array([1, 2]), 1, 5)
    with pytest.raises(ValueError, match="end at"):
        ranking_metrics(np.array([[1], [2]]), indptr, indices[:1], 1)
    with pytest.raises(ValueError, match="k must be"):
        StreamingRankingMetrics(k=0)


def test_catalogue_coverage():
    recs = np.array([[0, 1, 2], [1, 3, -1]])
    # k=2: items {0, 1, 3} of 10 -> 0.3 (2 at column 3 excluded, pad ignored)
    assert catalogue_coverage(recs, 2, n_items=10) == pytest.approx(0.3)
    # k=3: items {0, 1, 2, 3} -> 0.4
    assert catalogue_coverage(recs, 3, n_items=10) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        catalogue_coverage(recs, 3, n_items=3)  # item 3 is out of the catalogue


def test_intra_list_diversity():
    attr = np.array([0, 0, 1, 2, -1])  # item 4 has an unknown attribute
    recs = np.array(
        [
            [0, 1, 2],  # attrs 0,0,1: pairs (0,1) same, (0,2) (1,2) differ -> 2/3
            [0, 2, 3],  # attrs 0,1,2: all 3 pairs differ -> 1
            [4, 0, -1],  # only one known item -> skipped
            [3, 4, 1],  # attrs 2,(unknown),0 -> one pair, differs -> 1
        ]
    )
    # mean over the 3 qualifying lists: (2/3 + 1 + 1) / 3 = 8/9
    assert intra_list_diversity(recs, 3, attr) == pytest.approx(8 / 9)
    # k=2: [0,1] -> 0, [0,2] -> 1, [4,0] skipped, [3,4] skipped -> 1/2
    assert intra_list_diversity(recs, 2, attr) == pytest.approx(0.5)
    assert np.isnan(intra_list_diversity(np.array([[4, -1]]), 2, attr))


def test_mean_popularity():
    pop = np.array([10.0, 1.0, 4.0])
    recs = np.array([[0, 1], [2, -1]])
    # non-pad items 0,1,2 -> (10 + 1 + 4) / 3 = 5
    assert mean_popularity(recs, 2, pop) == pytest.approx(5.0)
    assert mean_popularity(recs, 1, pop) == pytest.approx(7.0)  # items 0,2 -> (10+4)/2
    assert np.isnan(mean_popularity(np.array([[-1]]), 1, pop))


def test_popularity_deciles():
    # 20 items, popularity = item id except item 0 and item 19 swapped; ties none.
    pop = np.arange(20, dtype=float)
    pop[[0, 19]] = pop[[19, 0]]
    # rank ascending: item 19 (pop 0) rank 0, items 1..18 ranks 1..18, item 0 rank 19
    # decile = rank * 10 // 20 -> item 19 -> 0, item 0 -> 9, item 5 -> 2, item 10 -> 5
    recs = np.array([[19, 0, 5], [10, 0, -1]])
    d = popularity_deciles(recs, 3, pop)
    assert d.shape == (10,)
    assert d.sum() == pytest.approx(1.0)
    expected = np.zeros(10)
    expected[[0, 2, 5]] = 1 / 5
    expected[9] = 2 / 5
    np.testing.assert_allclose(d, expected)


def test_popularity_deciles_ties_by_item_id():
    # all equal popularity: rank = item id, 10 items -> decile = item id
    d = popularity_deciles(np.array([[0, 9, 9, 3]]), 4, np.ones(10))
    np.testing.assert_allclose(d, [0.25, 0, 0, 0.25, 0, 0, 0, 0, 0, 0.5])


def test_bootstrap_ci():
    rng = np.random.default_rng(1)
    values = rng.random(500)
    values[::7] = np.nan  # NaN rows are ignored
    lo, hi = bootstrap_ci(values, n_boot=500, seed=3)
    assert lo < np.nanmean(values) < hi
    assert hi - lo < 0.1  # ~ 4 * sd/sqrt(n) = 4 * 0.29/20
    assert bootstrap_ci(values, n_boot=500, seed=3) == (lo, hi)
    assert bootstrap_ci(values, n_boot=500, seed=4) != (lo, hi)
    assert all(np.isnan(bootstrap_ci([np.nan, np.nan])))
    with pytest.raises(ValueError):
        bootstrap_ci(values, alpha=1.5)


def test_bootstrap_ci_blocking_is_consistent(monkeypatch):
    # memory blocking of resamples must not change the result
    values = np.random.default_rng(0).random(50)
    whole = bootstrap_ci(values, n_boot=200, seed=7)
    monkeypatch.setattr(M, "_BOOT_BLOCK", 50 * 30)  # 30 resamples per block
    blocked = bootstrap_ci(values, n_boot=200, seed=7)
    assert blocked[0] == pytest.approx(whole[0]) and blocked[1] == pytest.approx(whole[1])


def _random_case(seed, n=300, K=8, n_items=40):
    rng = np.random.default_rng(seed)
    recs = np.stack([rng.choice(n_items, size=K, replace=False) for _ in range(n)])
    n_pad = rng.integers(0, 4, size=n)
    for i in range(n):
        if n_pad[i]:
            recs[i, -n_pad[i] :] = -1
    truth = [rng.choice(n_items, size=rng.integers(0, 12), replace=False) for _ in range(n)]
    return recs.astype(np.int64), truth


def test_streaming_equals_batch():
    recs, truth = _random_case(5)
    indptr, indices = truth_to_csr(truth)
    batch = mean_metrics(ranking_metrics(recs, indptr, indices, 5))
    acc = StreamingRankingMetrics(k=5)
    acc.update(recs[:1], *truth_to_csr(truth[:1]))  # dropped by reset()
    acc.reset()
    for lo in range(0, len(recs), 64):
        acc.update(recs[lo : lo + 64], *truth_to_csr(truth[lo : lo + 64]))
    streamed = acc.compute()
    assert streamed["n"] == batch["n"]
    for name in RANKING_METRICS:
        assert streamed[name] == pytest.approx(batch[name], rel=1e-12)


def _reference_row(rec, truth, k):
    """Straightforward pure-Python definitions, one entity at a time."""
    t = set(int(x) for x in truth)
    if not t:
        return dict.fromkeys(RANKING_METRICS, math.nan)
    hits = [int(x) >= 0 and int(x) in t for x in rec[:k]]
    n_hits = sum(hits)
    ap, seen = 0.0, 0
    for i, h in enumerate(hits, start=1):
        if h:
            seen += 1
            ap += seen / i
    dcg = sum(1 / math.log2(i + 1) for i, h in enumerate(hits, start=1) if h)
    idcg = sum(1 / math.log2(i + 1) for i in range(1, min(len(t), k) + 1))
    first = next((i for i, h in enumerate(hits, start=1) if h), None)
    return {
        "map": ap / min(len(t), k),
        "recall": n_hits / len(t),
        "precision": n_hits / k,
        "ndcg": dcg / idcg,
        "mrr": 1 / first if first else 0.0,
        "hit_rate": float(n_hits > 0),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 8])
def test_matches_reference_implementation(seed, k):
    recs, truth = _random_case(seed)
    got = ranking_metrics(recs, *truth_to_csr(truth), k)
    for i in range(len(recs)):
        ref = _reference_row(recs[i], truth[i], k)
        for name in RANKING_METRICS:
            np.testing.assert_allclose(got[name][i], ref[name], rtol=1e-12, err_msg=name)

    # beyond-accuracy metrics against direct definitions
    rng = np.random.default_rng(seed + 100)
    attr = rng.integers(-1, 4, size=40)
    pop = rng.integers(0, 5, size=40).astype(float)
    items = [int(x) for row in recs[:, :k] for x in row if x >= 0]
    assert catalogue_coverage(recs, k, 40) == pytest.approx(len(set(items)) / 40)
    assert mean_popularity(recs, k, pop) == pytest.approx(np.mean([pop[x] for x in items]))
    shares = []
    for row in recs[:, :k]:
        known = [attr[x] for x in row if x >= 0 and attr[x] >= 0]
        pairs = list(combinations(known, 2))
        if pairs:
            shares.append(sum(a != b for a, b in pairs) / len(pairs))
    expected = np.mean(shares) if shares else np.nan
    np.testing.assert_allclose(intra_list_diversity(recs, k, attr), expected, rtol=1e-12)
    ranked = sorted(range(40), key=lambda j: (pop[j], j))
    decile_of = {item: r * 10 // 40 for r, item in enumerate(ranked)}
    counts = np.bincount([decile_of[x] for x in items], minlength=10)
    np.testing.assert_allclose(popularity_deciles(recs, k, pop), counts / len(items))


def test_empty_batch():
    recs = np.zeros((0, 5), dtype=np.int64)
    m = ranking_metrics(recs, np.array([0]), np.array([], dtype=np.int64), 3)
    assert all(v.shape == (0,) for v in m.values())
    assert mean_metrics(m)["n"] == 0
