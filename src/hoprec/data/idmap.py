"""External ids <-> contiguous internal ids, one map per node type.

Raw keys (strings, big integers) live only at the edges: in DataFrames read from the user and in
what is written back.  Inside, every entity and item is a row number ``0 .. n-1``; embeddings and
matrices are indexed by it.  Internal ids follow the sorted order of the external ids, so adding
later rows never reorders the ids that already existed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


class IdMap:
    """A bijection between external ids and ``0 .. len(self)-1``.

    >>> m = IdMap.from_values(["b", "a", "b"])
    >>> m.to_internal(["a", "b", "zzz"], missing=-1).tolist()
    [0, 1, -1]
    >>> m.to_external([1]).tolist()
    ['b']
    """

    def __init__(self, external: pd.Index) -> None:
        if not external.is_unique:
            raise ValueError("IdMap: external ids must be unique")
        self.external = external

    @classmethod
    def from_values(cls, values: object) -> IdMap:
        s = pd.Series(values)
        s = s[s.notna()]
        return cls(pd.Index(pd.unique(s)).sort_values())

    def __len__(self) -> int:
        return len(self.external)

    def __repr__(self) -> str:
        return f"IdMap(n={len(self)}, dtype={self.external.dtype})"

    @property
    def size(self) -> int:
        return len(self.external)

    def to_internal(self, values: object, missing: int | None = None) -> np.ndarray:
        """Internal ids of ``values``; unknown ones raise ``KeyError`` unless ``missing`` is given."""
        vals = pd.Index(pd.Series(values)) if not isinstance(values, pd.Index) else values
        if len(vals) and vals.dtype != self.external.dtype:
            vals = _align(vals, self.external)
        idx = self.external.get_indexer(vals)
        if missing is None and (idx < 0).any():
            bad = vals[idx < 0][:5].tolist()
            raise KeyError(f"unknown ids: {bad}")
        if missing is not None and missing != -1:
            idx = np.where(idx < 0, missing, idx)
        return idx.astype(np.int64)

    def to_external(self, internal: object) -> np.ndarray:
        return self.external.to_numpy()[np.asarray(internal, dtype=np.int64)]

    def save(self, path: str | Path) -> None:
        pd.DataFrame({"external_id": self.external}).to_parquet(path, index=False)

    @classmethod
    def load(cls, path: str | Path) -> IdMap:
        return cls(pd.Index(pd.read_parquet(path)["external_id"]))


def _align(values: pd.Index, reference: pd.Index) -> pd.Index:
    """Cast ``values`` to the dtype of ``reference`` where ids are written differently (1 vs '1')."""
    if pd.api.types.is_integer_dtype(reference.dtype):
        num = pd.to_numeric(pd.Series(values), errors="coerce")
        return pd.Index(num.astype("Int64"))
    return pd.Index(pd.Series(values).astype("string").str.strip())
