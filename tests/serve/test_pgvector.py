"""The pgvector retrieval backend against a real PostgreSQL server with the vector extension.

``.ci/postgres.sh`` starts one (with pgvector) and prints the ``HOPREC_TEST_PG_URL`` to export.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from hoprec.serve.pgvector_index import (
    PgVectorIndex,
    _conninfo,
    build_pgvector_index,
    drop_pgvector_index,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_url():
    """The server's URL from HOPREC_TEST_PG_URL: missing fails the run on CI, skips elsewhere."""
    url = os.environ.get("HOPREC_TEST_PG_URL", "").strip()
    if not url:
        msg = ("HOPREC_TEST_PG_URL is not set, so the pgvector backend is untested: run "
               '`eval "$(bash .ci/postgres.sh)"` (starts a local server with pgvector)')
        if os.environ.get("CI"):
            pytest.fail(f"{msg} (CI is set: the PostgreSQL tests must run there)", pytrace=False)
        pytest.skip(msg)
    import psycopg

    with psycopg.connect(_conninfo(url)) as conn:
        ok = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'").fetchone()[0]
    if not ok:
        pytest.fail(f"the server at {url.split('@')[-1]} has no pgvector extension: start it with "
                    ".ci/postgres.sh, which installs one", pytrace=False)
    return url


@pytest.fixture
def table(pg_url):
    name = f"hoprec_test_vec_{uuid.uuid4().hex[:10]}"
    yield name
    drop_pgvector_index(pg_url, name)


def _clustered(n: int, d: int, seed: int) -> np.ndarray:
    """Item vectors in 20 clusters with varied norms, as trained embeddings look."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    v = centres[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, d))
    return (v * rng.uniform(0.5, 1.5, (n, 1))).astype(np.float32)


def _brute(q: np.ndarray, v: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q @ v.T
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(s, ids, axis=1)


def _recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def test_exact_mode_is_brute_force_and_hnsw_recall_is_high(pg_url, table):
    v = _clustered(3000, 24, 0)
    q = np.random.default_rng(1).normal(size=(40, 24)).astype(np.float32)
    index = build_pgvector_index(v, pg_url, table)
    assert (index.n_items, index.dim, index.kind) == (3000, 24, "hnsw")
    true_ids, true_scores = _brute(q, v, 10)
    ids, scores = index.search(q, 10, exact=True)
    assert np.array_equal(ids, true_ids)
    np.testing.assert_allclose(scores, true_scores, rtol=1e-5, atol=1e-4)
    approx, approx_scores = index.search(q, 10)
    assert _recall(approx, true_ids) >= 0.95
    assert (np.diff(approx_scores, axis=1) <= 1e-6).all()  # best first
    np.testing.assert_allclose(approx_scores, np.take_along_axis(q @ v.T, approx, axis=1), rtol=1e-5, atol=1e-4)
    index.close()


def test_modes_use_the_plans_they_claim(pg_url, table):
    import psycopg

    build_pgvector_index(_clustered(500, 8, 2), pg_url, table)
    vec = "[" + ",".join(["0.1"] * 8) + "]"
    sql = f"EXPLAIN SELECT id FROM {table} ORDER BY embedding <#> '{vec}'::vector LIMIT 5"
    with psycopg.connect(_conninfo(pg_url)) as conn:
        plan = "\n".join(r[0] for r in conn.execute(sql).fetchall())
        assert f"Index Scan using {table}_hnsw" in plan
        conn.execute("SET enable_indexscan = off")
        plan = "\n".join(r[0] for r in conn.execute(sql).fetchall())
        assert "Seq Scan" in plan and "hnsw" not in plan


def test_rebuild_swaps_atomically_and_a_failed_build_keeps_the_old_table(pg_url, table):
    v1, v2 = _clustered(200, 8, 3), _clustered(300, 8, 4)
    build_pgvector_index(v1, pg_url, table, approximate=False)
    with PgVectorIndex.open(pg_url, table) as idx:
        assert (idx.n_items, idx.kind) == (200, "exact")
    build_pgvector_index(v2, pg_url, table)
    idx = PgVectorIndex.open(pg_url, table)
    assert (idx.n_items, idx.kind) == (300, "hnsw")
    q = v2[:3]
    assert np.array_equal(idx.search(q, 5, exact=True)[0], _brute(q, v2, 5)[0])
    bad = v1.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        build_pgvector_index(bad, pg_url, table)
    assert PgVectorIndex.open(pg_url, table).n_items == 300
    import psycopg

    with psycopg.connect(_conninfo(pg_url)) as conn:  # no half-built table left behind
        left = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE %s",
                            (f"{table}__new%",)).fetchone()[0]
    assert left == 0


def test_small_catalogue_pads_and_bad_input_says_what_is_wrong(pg_url, table):
    v = _clustered(4, 3, 5)
    idx = build_pgvector_index(v, pg_url, table)
    ids, scores = idx.search(v[:2], 10)
    assert ids.shape == (2, 4) and (ids >= 0).all()
    with pytest.raises(ValueError, match="3 dimensions|dimensions"):
        idx.search(np.zeros((1, 5)), 2)
    with pytest.raises(ValueError, match="table name"):
        build_pgvector_index(v, pg_url, "items; DROP TABLE x")
    with pytest.raises(ValueError, match="no table"):
        PgVectorIndex.open(pg_url, "hoprec_no_such_table")
    with pytest.raises(ValueError, match="non-empty"):
        build_pgvector_index(np.zeros((0, 3)), pg_url, table)
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        build_pgvector_index(v, "mysql://u:p@h/db", table)
