"""What the service knows besides the model: histories, item attributes, item-item edges.

:class:`ServingData` is built once from the training snapshot (``from_dataset``) and cached in
``MODEL_DIR/serving/`` (written atomically), so a service starts without re-reading the shop's
tables.  Everything is indexed by the model directory's internal ids.

- ``history``: each user's events, sorted by time (CSR over users: item, time in ns, kind weight).
- item attributes: the item table's columns; the roles ``category``, ``brand``, ``price``,
  ``available`` and ``title`` are guessed from column names (``category``/``product_category``/
  the schema's diversity attribute, ``brand``, ``price``, ``in_stock``/``available``,
  ``title``/``name``/``description``/``product_type``) unless the settings name them.
- ``co``: same-basket counts and ``after``: bought-within-14-days-after counts
  (:mod:`hoprec.graph.derived`), each item keeping its 50 strongest partners.
- ``segment``: one categorical user column; the popularity of each item inside each segment serves
  cold users whose segment is known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hoprec.atomic import atomic_dir
from hoprec.data.dataset import Dataset
from hoprec.data.idmap import IdMap
from hoprec.graph.derived import Baskets, bought_after, co_purchase

FOLDER = "serving"
ROLE_GUESSES: dict[str, tuple[str, ...]] = {
    "category": ("category", "product_category", "sub_category", "department", "genre"),
    "brand": ("brand", "manufacturer", "maker", "vendor"),
    "price": ("price", "unit_price", "list_price", "current_price"),
    "available": ("available", "in_stock", "is_available", "availability", "stock"),
    "title": ("title", "name", "product_name", "description", "product_type"),
}


def _csr(m: sp.spmatrix) -> dict[str, np.ndarray]:
    m = sp.csr_matrix(m)
    return {"data": m.data, "indices": m.indices, "indptr": m.indptr}


@dataclass
class ServingData:
    n_users: int
    n_items: int
    as_of: pd.Timestamp
    hist_indptr: np.ndarray  # (n_users + 1,)
    hist_item: np.ndarray  # int64, per event
    hist_time: np.ndarray  # int64 ns UTC
    hist_weight: np.ndarray  # float32 kind weight (returns negative)
    item_attrs: pd.DataFrame  # index: internal item id
    user_segment: np.ndarray  # int64 code per user, -1 unknown
    segment_values: list[str]
    segment_popularity: np.ndarray  # (n_segments, n_items) float32
    co: sp.csr_matrix
    after: sp.csr_matrix
    exclude_purchased: bool = False
    segment_column: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ building
    @classmethod
    def empty(cls, n_users: int, n_items: int, as_of: pd.Timestamp) -> ServingData:
        """No history, attributes or edges: the service then serves the model alone."""
        z = np.zeros(0, np.int64)
        none = sp.csr_matrix((n_items, n_items), dtype=np.float32)
        return cls(n_users, n_items, pd.Timestamp(as_of), np.zeros(n_users + 1, np.int64), z, z.copy(),
                   np.zeros(0, np.float32), pd.DataFrame(index=pd.RangeIndex(n_items)),
                   np.full(n_users, -1, np.int64), [], np.zeros((0, n_items), np.float32), none,
                   none.copy(), info={"empty": True})

    @classmethod
    def from_dataset(
        cls, dataset: Dataset, exclude_purchased: bool = False, users: IdMap | None = None,
        items: IdMap | None = None, segment_column: str | None = None, edges: bool = True,
    ) -> ServingData:
        """Serving data for ``dataset``'s snapshot, in the ids of ``users``/``items`` if given."""
        users = users or dataset.users
        items = items or dataset.items
        inter = dataset.interactions
        u = _reindex(inter.user, dataset.users, users)
        i = _reindex(inter.item, dataset.items, items)
        ok = (u >= 0) & (i >= 0)
        inter = inter.select(ok)
        u, i = u[ok], i[ok]
        t = inter.time.astype("datetime64[ns]").view(np.int64)
        order = np.lexsort((t, u))
        nu, ni = len(users), len(items)
        indptr = np.zeros(nu + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=nu), out=indptr[1:])
        attrs = _reindex_frame(dataset.item_features, dataset.items, items)
        uf = _reindex_frame(dataset.user_features, dataset.users, users)
        seg_col = segment_column or _first_categorical(uf)
        seg_codes, seg_values = np.full(nu, -1, np.int64), []
        if seg_col is not None and seg_col in uf:
            codes, uniq = pd.factorize(uf[seg_col].astype("string"), use_na_sentinel=True)
            seg_codes, seg_values = codes.astype(np.int64), [str(v) for v in uniq]
        seg_pop = np.zeros((len(seg_values), ni), np.float32)
        pos = inter.weight > 0
        if len(seg_values):
            s = seg_codes[u[pos]]
            known = s >= 0
            pairs = np.unique(np.stack([s[known], u[pos][known], i[pos][known]]), axis=1)
            np.add.at(seg_pop, (pairs[0], pairs[2]), 1.0)
        if edges and pos.any():
            remapped = inter.select(np.ones(len(inter), bool))
            remapped.user, remapped.item = u, i
            baskets = Baskets.from_interactions(remapped, ni)
            co, after = _edges_matrix(co_purchase(baskets), ni), _edges_matrix(bought_after(baskets), ni)
        else:
            co = after = sp.csr_matrix((ni, ni), dtype=np.float32)
        return cls(
            nu, ni, pd.Timestamp(dataset.cutoff), indptr, i[order].astype(np.int64),
            t[order].astype(np.int64), inter.weight[order].astype(np.float32), attrs, seg_codes,
            seg_values, seg_pop, co, after, exclude_purchased, seg_col,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write to the folder ``path`` atomically (a reader sees the old folder or the new one)."""
        path = Path(path)
        with atomic_dir(path) as tmp:
            arrays = {
                "hist_indptr": self.hist_indptr, "hist_item": self.hist_item,
                "hist_time": self.hist_time, "hist_weight": self.hist_weight,
                "user_segment": self.user_segment, "segment_popularity": self.segment_popularity,
                **{f"co_{k}": v for k, v in _csr(self.co).items()},
                **{f"after_{k}": v for k, v in _csr(self.after).items()},
            }
            np.savez(tmp / "arrays.npz", **arrays)
            attrs = self.item_attrs.copy()
            attrs.columns = [str(c) for c in attrs.columns]
            attrs.to_parquet(tmp / "items.parquet")
            meta = {
                "n_users": self.n_users, "n_items": self.n_items, "as_of": str(self.as_of),
                "segment_values": self.segment_values, "segment_column": self.segment_column,
                "exclude_purchased": self.exclude_purchased, **self.info,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ServingData:
        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        with np.load(path / "arrays.npz", allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        n, m = int(meta["n_users"]), int(meta["n_items"])

        def csr(prefix: str) -> sp.csr_matrix:
            parts = (a[f"{prefix}_data"], a[f"{prefix}_indices"], a[f"{prefix}_indptr"])
            return sp.csr_matrix(parts, shape=(m, m))

        known = {"n_users", "n_items", "as_of", "segment_values", "segment_column", "exclude_purchased"}
        return cls(
            n, m, pd.Timestamp(meta["as_of"]), a["hist_indptr"], a["hist_item"], a["hist_time"],
            a["hist_weight"], pd.read_parquet(path / "items.parquet"), a["user_segment"],
            list(meta["segment_values"]), a["segment_popularity"], csr("co"), csr("after"),
            bool(meta["exclude_purchased"]), meta.get("segment_column"),
            {k: v for k, v in meta.items() if k not in known},
        )

    # ------------------------------------------------------------------ access
    def user_events(self, user: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(items, times_ns, weights)`` of an internal user's history (empty if unknown)."""
        if not 0 <= user < self.n_users:
            e = np.zeros(0, np.int64)
            return e, e.copy(), np.zeros(0, np.float32)
        lo, hi = self.hist_indptr[user], self.hist_indptr[user + 1]
        return self.hist_item[lo:hi], self.hist_time[lo:hi], self.hist_weight[lo:hi]

    def role_column(self, role: str, override: str | None = None) -> str | None:
        """The item column playing ``role`` (see ``ROLE_GUESSES``), or None."""
        if override:
            if override not in self.item_attrs.columns:
                raise ValueError(
                    f"item column {override!r} (for {role}) not in the item table; columns: "
                    f"{', '.join(map(str, self.item_attrs.columns)) or '(none)'}"
                )
            return override
        cols = {str(c).lower(): str(c) for c in self.item_attrs.columns}
        for guess in ROLE_GUESSES[role]:
            if guess in cols:
                return cols[guess]
        return None


def _reindex(ids: np.ndarray, src: IdMap, dst: IdMap) -> np.ndarray:
    if src is dst or (len(src) == len(dst) and src.external.equals(dst.external)):
        return np.asarray(ids, dtype=np.int64)
    return dst.to_internal(src.to_external(ids), missing=-1)


def _reindex_frame(df: pd.DataFrame, src: IdMap, dst: IdMap) -> pd.DataFrame:
    if df is None or df.empty:
        return pd.DataFrame(index=pd.RangeIndex(len(dst)))
    ids = _reindex(df.index.to_numpy(), src, dst)
    out = df.iloc[ids >= 0].copy()
    out.index = ids[ids >= 0]
    return out.reindex(pd.RangeIndex(len(dst)))


def _first_categorical(df: pd.DataFrame) -> str | None:
    for c in df.columns:
        s = df[c]
        if (isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object
                or pd.api.types.is_string_dtype(s)) and 1 < s.nunique() <= 100:
            return str(c)
    return None


def _edges_matrix(edges, n: int) -> sp.csr_matrix:
    m = sp.csr_matrix((edges.weight.astype(np.float32), (edges.src, edges.dst)), shape=(n, n))
    m.sum_duplicates()
    return m


def build_from_schema(model_dir: str | Path, schema_path: str | Path, progress=None) -> ServingData:
    """Read the shop's tables as of the model's cutoff and build its serving data."""
    from hoprec.data.database import load_database
    from hoprec.data.schema import load_schema
    from hoprec.task.task import Task
    from hoprec.train.artifacts import MANIFEST

    model_dir = Path(model_dir)
    manifest = json.loads((model_dir / MANIFEST).read_text())
    schema = load_schema(schema_path)
    if manifest.get("schema_digest") != schema.digest():
        raise ValueError(
            f"{model_dir} was trained with a different schema (digest {manifest.get('schema_digest')}, "
            f"{schema_path} has {schema.digest()}): retrain it or pass the schema it was trained with"
        )
    task = Task.from_query(schema, manifest["query"])
    db = load_database(schema, progress=progress)
    dataset = task.build_dataset(db.snapshot(pd.Timestamp(manifest["as_of"])))
    data = ServingData.from_dataset(
        dataset, schema.recommend.exclude_purchased, IdMap.load(model_dir / "users.parquet"),
        IdMap.load(model_dir / "items.parquet"),
    )
    data.info["diversity_attribute"] = schema.recommend.diversity_attribute
    return data


def load_or_build(model_dir: str | Path, schema_path: str | Path | None = None, progress=None) -> ServingData | None:
    """``MODEL_DIR/serving`` if present, else build it from ``schema_path`` and cache it there."""
    folder = Path(model_dir) / FOLDER
    if (folder / "meta.json").is_file():
        return ServingData.load(folder)
    if schema_path is None:
        return None
    data = build_from_schema(model_dir, schema_path, progress)
    data.save(folder)
    return data
