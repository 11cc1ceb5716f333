"""Node features from a table's typed columns: numbers, category codes and hashed text.

:class:`TableEncoder` is fitted on one node table (its rows aligned to node ids) and turns rows
into two matrices:

- ``x_num`` float32: each ``numerical`` column z-scored with the fitted mean and standard
  deviation, missing values set to 0 plus a ``<column>:missing`` flag column (always present, so
  the width does not depend on the data); each ``timestamp`` column as days before the cutoff,
  z-scored the same way; each ``text`` column as ``text_dim`` hashed bag-of-words buckets
  (tokens ``[a-z0-9]+`` of the lower-cased text; bucket and sign from CRC-32, so the result is
  the same in every process; counts times a per-bucket idf, rows L2-normalised);
- ``x_cat`` int64: each ``categorical`` column as a code into the fitted vocabulary (sorted
  values), ``0`` reserved for missing or unseen values, so column ``j`` takes values below
  ``cardinalities[j] = len(vocabulary) + 1`` (the size of its embedding table).

``id`` and ``list`` columns are not encoded.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pandas as pd

_TOKEN = re.compile(r"[a-z0-9]+")


def _hash_text(values: pd.Series, dim: int) -> np.ndarray:
    """Signed bucket counts ``(len(values), dim)`` of each string's tokens."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.zeros((len(uniques) + 1, dim), dtype=np.float32)  # last row: missing
    for u, text in enumerate(uniques):
        for tok in _TOKEN.findall(str(text).lower()):
            h = zlib.crc32(tok.encode("utf-8"))
            table[u, h % dim] += 1.0 if (h >> 31) & 1 else -1.0
    return table[np.where(codes < 0, len(uniques), codes)]


class TableEncoder:
    """Turns one table's typed columns into ``x_num`` / ``x_cat``; fit once, reuse to transform.

    >>> df = pd.DataFrame({"price": [1.0, 3.0, None], "brand": ["a", "b", None]})
    >>> enc = TableEncoder({"price": "numerical", "brand": "categorical"}).fit(df)
    >>> x_num, x_cat = enc.transform(df)
    >>> x_num.tolist(), x_cat[:, 0].tolist(), enc.cardinalities
    ([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [1, 2, 0], [3])
    """

    def __init__(self, column_types: dict[str, str], text_dim: int = 64) -> None:
        self.column_types = dict(column_types)
        self.text_dim = int(text_dim)
        self.stats: dict[str, tuple[float, float]] = {}
        self.vocab: dict[str, pd.Index] = {}
        self.idf: dict[str, np.ndarray] = {}

    @property
    def num_columns(self) -> list[str]:
        return [c for c, t in self.column_types.items() if t in ("numerical", "timestamp")]

    @property
    def cat_columns(self) -> list[str]:
        return [c for c, t in self.column_types.items() if t == "categorical"]

    @property
    def text_columns(self) -> list[str]:
        return [c for c, t in self.column_types.items() if t == "text"]

    @property
    def num_names(self) -> list[str]:
        names = [n for c in self.num_columns for n in (c, f"{c}:missing")]
        return names + [f"{c}:h{i}" for c in self.text_columns for i in range(self.text_dim)]

    @property
    def cardinalities(self) -> list[int]:
        return [len(self.vocab[c]) + 1 for c in self.cat_columns]

    def _numeric(self, df: pd.DataFrame, col: str, cutoff: pd.Timestamp | None) -> np.ndarray:
        s = df[col] if col in df else pd.Series(np.nan, index=df.index)
        if self.column_types[col] == "timestamp":
            ts = pd.to_datetime(s, errors="coerce")
            if cutoff is None:
                raise ValueError(f"column {col!r} is a timestamp: encoding it needs a cutoff")
            return ((pd.Timestamp(cutoff) - ts) / pd.Timedelta(days=1)).to_numpy(np.float64, na_value=np.nan)
        return pd.to_numeric(s, errors="coerce").to_numpy(np.float64, na_value=np.nan)

    def fit(self, df: pd.DataFrame, cutoff: pd.Timestamp | None = None) -> TableEncoder:
        for col in self.num_columns:
            v = self._numeric(df, col, cutoff)
            ok = v[np.isfinite(v)]
            mean = float(ok.mean()) if len(ok) else 0.0
            std = float(ok.std()) if len(ok) > 1 else 0.0
            self.stats[col] = (mean, std if std > 1e-12 else 1.0)
        for col in self.cat_columns:
            s = df[col] if col in df else pd.Series(dtype="string")
            self.vocab[col] = pd.Index(pd.unique(s.dropna().astype("string"))).sort_values()
        for col in self.text_columns:
            s = df[col] if col in df else pd.Series(pd.NA, index=df.index, dtype="string")
            counts = _hash_text(s, self.text_dim)
            docfreq = (counts != 0).sum(axis=0)
            self.idf[col] = (np.log((1 + len(s)) / (1 + docfreq)) + 1).astype(np.float32)
        return self

    def transform(
        self, df: pd.DataFrame, cutoff: pd.Timestamp | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(x_num float32 (n, d), x_cat int64 (n, c))`` for the rows of ``df``."""
        n = len(df)
        parts = []
        for col in self.num_columns:
            v = self._numeric(df, col, cutoff)
            mean, std = self.stats[col]
            missing = ~np.isfinite(v)
            parts += [np.where(missing, 0.0, (v - mean) / std), missing.astype(np.float64)]
        x_num = np.stack(parts, axis=1).astype(np.float32) if parts else np.zeros((n, 0), np.float32)
        texts = []
        for col in self.text_columns:
            s = df[col] if col in df else pd.Series(pd.NA, index=df.index, dtype="string")
            x = _hash_text(s, self.text_dim) * self.idf[col]
            norm = np.linalg.norm(x, axis=1, keepdims=True)
            texts.append(np.divide(x, norm, out=np.zeros_like(x), where=norm > 0))
        if texts:
            x_num = np.concatenate([x_num, *texts], axis=1).astype(np.float32)
        cats = []
        for col in self.cat_columns:
            s = df[col] if col in df else pd.Series(pd.NA, index=df.index, dtype="string")
            idx = self.vocab[col].get_indexer(pd.Index(s.astype("string")))
            cats.append(idx.astype(np.int64) + 1)  # -1 (missing, unseen) -> 0
        x_cat = np.stack(cats, axis=1) if cats else np.zeros((n, 0), np.int64)
        return x_num, x_cat
