"""Batch export: ranked rows ``entity_id, rank, item_id, score, as_of`` for many entities.

Writes CSV or Parquet files, or a database table (``URL#table``), always atomically: a reader sees
the previous output or the complete new one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hoprec.data.idmap import IdMap
from hoprec.models.base import Recommender


def recommend_frame(
    model: Recommender, users: IdMap, items: IdMap, entity_ids: pd.Index, k: int,
    as_of: pd.Timestamp, exclude: sp.csr_matrix | None = None,
) -> pd.DataFrame:
    """Top-k rows for each external entity id (unknown ids get the cold-start fallback).

    The ranking is the service's (:meth:`RecommendationService.recommend_internal`): the same
    retrieval, exclusions and fallbacks as ``POST /recommend`` without filters or re-ranking.
    """
    from hoprec.serve.recommender import RecommendationService

    service = RecommendationService(model, users, items, None, {"as_of": str(as_of)})
    internal = users.to_internal(entity_ids, missing=-1)
    unknown = internal < 0
    internal[unknown] = len(users) + np.arange(int(unknown.sum()))
    rec_items, rec_scores, _ = service.recommend_internal(internal, min(k, len(items)), exclude)
    n = len(entity_ids)
    valid = rec_items >= 0
    rows, ranks = np.nonzero(valid)
    return pd.DataFrame({
        "entity_id": np.asarray(entity_ids)[rows],
        "rank": (ranks + 1).astype(np.int32),
        "item_id": items.to_external(rec_items[valid]),
        "score": rec_scores[valid].astype(np.float32),
        "as_of": pd.Timestamp(as_of).as_unit("ns"),
    }).reset_index(drop=True) if n else pd.DataFrame(
        columns=["entity_id", "rank", "item_id", "score", "as_of"]
    )


def remap_matrix(m: sp.csr_matrix, rows_from: IdMap, cols_from: IdMap, rows_to: IdMap, cols_to: IdMap) -> sp.csr_matrix:
    """Re-index a users x items matrix from one pair of id maps to another (unknown ids dropped)."""
    coo = m.tocoo()
    r = rows_to.to_internal(rows_from.to_external(coo.row), missing=-1)
    c = cols_to.to_internal(cols_from.to_external(coo.col), missing=-1)
    ok = (r >= 0) & (c >= 0)
    return sp.csr_matrix((coo.data[ok], (r[ok], c[ok])), shape=(len(rows_to), len(cols_to)))


def write_frame(df: pd.DataFrame, target: str) -> str:
    """Write ``df`` to a .csv/.parquet path or ``URL#table``; returns a description of where."""
    if "://" in target:
        url, _, table = target.partition("#")
        if not table:
            raise ValueError(f"database output needs a table name: {url}#TABLE")
        return _write_table(df, url, table)
    path = Path(target)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix not in (".csv", ".parquet", ".csv.gz"):
        raise ValueError(f"--output {target}: use a .csv, .csv.gz or .parquet file, or URL#table")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        if suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, compression="gzip" if suffix.endswith(".gz") else None)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return str(path)


def _write_table(df: pd.DataFrame, url: str, table: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    staging = f"{table}__hoprec_new"
    try:
        df.to_sql(staging, engine, if_exists="replace", index=False, chunksize=10_000)
        with engine.begin() as conn:  # swap in one transaction: readers never see half a table
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
            conn.execute(sa.text(f'ALTER TABLE "{staging}" RENAME TO "{table}"'))
    finally:
        engine.dispose()
    return f"{engine.url.render_as_string(hide_password=True)} table {table}"
