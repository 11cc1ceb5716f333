"""Business rules and re-ranking, on internal ids: attribute filters, MMR diversity, category caps.

:class:`Catalogue` holds each item's category, brand, price, availability and title as arrays
(codes for the categorical ones) and turns a :class:`Filters` into a boolean mask of allowed items,
remembering the last masks it built (the same filter is asked again and again).

:func:`mmr` is maximal marginal relevance (Carbonell & Goldstein, 1998) over a candidate pool::

    next = argmax_{i not chosen}  lambda * rel(i) - (1 - lambda) * max_{j chosen} sim(i, j)

with ``rel`` the pool's scores rescaled to [0, 1] and ``sim`` the cosine of item vectors when the
model has them, else 1 for the same category, 0.5 for the same brand, 0 otherwise.  A
``max_per_category`` cap skips items whose category already holds that many picks.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Filters:
    """What a request may restrict (external values; ``None`` = no restriction)."""

    categories: tuple[str, ...] | None = None
    brands: tuple[str, ...] | None = None
    price_min: float | None = None
    price_max: float | None = None
    available_only: bool = False
    exclude_items: tuple[int, ...] = ()  # internal ids
    allow_items: tuple[int, ...] | None = None  # internal ids

    def is_empty(self) -> bool:
        return self == Filters()


def _codes(values: pd.Series | None, n: int) -> tuple[np.ndarray, dict[str, int], list[str]]:
    if values is None:
        return np.full(n, -1, np.int64), {}, []
    codes, uniq = pd.factorize(values.astype("string"), use_na_sentinel=True)
    names = [str(u) for u in uniq]
    return codes.astype(np.int64), {v: i for i, v in enumerate(names)}, names


@dataclass
class Catalogue:
    n_items: int
    category: np.ndarray
    category_index: dict[str, int]
    category_names: list[str]
    brand: np.ndarray
    brand_index: dict[str, int]
    brand_names: list[str]
    price: np.ndarray | None
    available: np.ndarray | None
    titles: np.ndarray  # object: a readable name per item
    columns: dict[str, str | None] = field(default_factory=dict)
    _masks: OrderedDict = field(default_factory=OrderedDict)
    _allowed: dict = field(default_factory=dict)

    @classmethod
    def from_frame(cls, attrs: pd.DataFrame, n_items: int, columns: dict[str, str | None],
                   external_ids: np.ndarray) -> Catalogue:
        def col(role: str) -> pd.Series | None:
            name = columns.get(role)
            return attrs[name] if name is not None and name in attrs else None

        cat, cat_idx, cat_names = _codes(col("category"), n_items)
        brand, brand_idx, brand_names = _codes(col("brand"), n_items)
        price = col("price")
        price = None if price is None else pd.to_numeric(price, errors="coerce").to_numpy(np.float64)
        avail = col("available")
        if avail is not None:
            num = pd.to_numeric(avail, errors="coerce")
            text = avail.astype("string").str.lower()
            avail = ((num > 0) | text.isin(["true", "yes", "y", "in stock", "available"])).to_numpy(bool)
        title = col("title")
        names = np.array([str(x) for x in external_ids], dtype=object)
        if title is not None:
            t = title.astype("string").to_numpy(dtype=object)
            names = np.where(pd.isna(t), names, t)
        return cls(n_items, cat, cat_idx, cat_names, brand, brand_idx, brand_names, price, avail,
                   names, dict(columns))

    def _values(self, field_name: str, values: tuple[str, ...], index: dict[str, int]) -> np.ndarray:
        role = "category" if field_name == "categories" else "brand"
        if not index:
            raise ValueError(f"filters.{field_name}: this catalogue has no {role} column "
                             f"(set HOPREC_{role.upper()}_COLUMN to an item column)")
        bad = [v for v in values if v not in index]
        if bad:
            some = ", ".join(sorted(index)[:8])
            raise ValueError(f"filters.{field_name}: unknown {role} {bad[:5]} (known values include: {some})")
        return np.array([index[v] for v in values], dtype=np.int64)

    def allowed(self, mask: np.ndarray) -> np.ndarray | None:
        """The allowed ids of a cached filter mask when it keeps at most a quarter of the items
        (ranking only those is then cheaper than masking every item), else None."""
        key = id(mask)
        hit = self._allowed.get(key)
        if hit is not None and hit[0] is mask:
            return hit[1]
        if mask.flags.writeable:  # a per-request mask (purchases excluded): not cached
            return _allowed_ids(mask)
        ids = _allowed_ids(mask)
        self._allowed[key] = (mask, ids)
        if len(self._allowed) > 256:
            self._allowed.pop(next(iter(self._allowed)))
        return ids

    def mask(self, f: Filters) -> np.ndarray | None:
        """Boolean mask of allowed items, or None when nothing is filtered."""
        if f.is_empty():
            return None
        if f in self._masks:
            self._masks.move_to_end(f)
            return self._masks[f]
        m = np.ones(self.n_items, dtype=bool)
        if f.categories is not None:
            m &= np.isin(self.category, self._values("categories", f.categories, self.category_index))
        if f.brands is not None:
            m &= np.isin(self.brand, self._values("brands", f.brands, self.brand_index))
        if f.price_min is not None or f.price_max is not None:
            if self.price is None:
                raise ValueError("filters.price_min/price_max: this catalogue has no price column "
                                 "(set HOPREC_PRICE_COLUMN to an item column)")
            with np.errstate(invalid="ignore"):
                if f.price_min is not None:
                    m &= self.price >= f.price_min
                if f.price_max is not None:
                    m &= self.price <= f.price_max
        if f.available_only:
            if self.available is None:
                raise ValueError("filters.available_only: this catalogue has no availability column "
                                 "(set HOPREC_AVAILABLE_COLUMN to an item column)")
            m &= self.available
        if f.allow_items is not None:
            allow = np.zeros(self.n_items, dtype=bool)
            allow[list(f.allow_items)] = True
            m &= allow
        if f.exclude_items:
            m[list(f.exclude_items)] = False
        m.setflags(write=False)
        self._masks[f] = m
        if len(self._masks) > 256:
            self._masks.popitem(last=False)
        return m


def _allowed_ids(mask: np.ndarray) -> np.ndarray | None:
    ids = np.flatnonzero(mask)
    return ids if 0 < len(ids) <= len(mask) // 4 else None


def mmr(ids: np.ndarray, scores: np.ndarray, k: int, lam: float, catalogue: Catalogue,
        vectors: np.ndarray | None = None, max_per_category: int | None = None) -> np.ndarray:
    """Positions into ``ids`` (a pool sorted best first) chosen by MMR, at most ``k``."""
    n = len(ids)
    if n == 0:
        return np.zeros(0, np.int64)
    s = scores.astype(np.float64)
    finite = np.isfinite(s)
    lo, hi = (s[finite].min(), s[finite].max()) if finite.any() else (0.0, 1.0)
    rel = np.where(finite, (s - lo) / (hi - lo) if hi > lo else 1.0, 0.0)
    if vectors is not None:
        v = vectors[ids].astype(np.float64)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        sim = v @ v.T
    else:
        cat, brand = catalogue.category[ids], catalogue.brand[ids]
        same_cat = (cat[:, None] == cat[None, :]) & (cat[:, None] >= 0)
        same_brand = (brand[:, None] == brand[None, :]) & (brand[:, None] >= 0)
        sim = np.where(same_cat, 1.0, np.where(same_brand, 0.5, 0.0))
    cats = catalogue.category[ids]
    chosen: list[int] = []
    per_cat: dict[int, int] = {}
    max_sim = np.zeros(n)
    open_ = np.ones(n, dtype=bool)
    while len(chosen) < k and open_.any():
        value = np.where(open_, lam * rel - (1.0 - lam) * max_sim, -np.inf)
        i = int(np.argmax(value))
        open_[i] = False
        c = int(cats[i])
        if max_per_category is not None and c >= 0 and per_cat.get(c, 0) >= max_per_category:
            continue
        chosen.append(i)
        per_cat[c] = per_cat.get(c, 0) + 1
        max_sim = np.maximum(max_sim, sim[i])
    return np.array(chosen, dtype=np.int64)


def cap_per_category(ids: np.ndarray, k: int, catalogue: Catalogue, cap: int) -> np.ndarray:
    """Positions of the first ``k`` items of ``ids`` keeping at most ``cap`` per category."""
    out, per = [], {}
    for pos, c in enumerate(catalogue.category[ids].tolist()):
        if c >= 0 and per.get(c, 0) >= cap:
            continue
        per[c] = per.get(c, 0) + 1
        out.append(pos)
        if len(out) == k:
            break
    return np.array(out, dtype=np.int64)
