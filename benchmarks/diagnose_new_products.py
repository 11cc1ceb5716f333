"""Can attributes find the products that launch inside the label window? (diagnostic)

Run:  python benchmarks/diagnose_new_products.py cj      (or: or)
On the VALIDATION split: the catalogue products with no sale before the cutoff, how many of
them sell inside the window, how much each item attribute separates those launches from the
rest, and the Recall@12 on new-product truth pairs of a content scorer that gives all twelve
places to never-sold products (the customer's share of purchases in each attribute value of the
product, summed) against twelve random never-sold products. Nothing here chooses a setting; it
explains why no model puts a never-sold product in a MAP-optimal top 12 (BENCHMARKS.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hoprec.data.database import load_database
from hoprec.data.schema import load_schema
from hoprec.evaluate import metrics as M
from hoprec.evaluate.protocol import _subset_truth, make_split
from hoprec.task.task import Task

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_validation import DATASETS  # noqa: E402


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in DATASETS:
        raise SystemExit(__doc__)
    schema_path, query = DATASETS[sys.argv[1]]
    schema = load_schema(ROOT / schema_path)
    db = load_database(schema)
    task = Task.from_query(schema, query)
    split = make_split(task, db, task.cutoffs(db)["val"], "validation")
    ds = split.dataset
    pos = ds.positive_matrix().tocsr()
    sold = np.asarray((pos > 0).sum(axis=0)).ravel() > 0
    unsold = np.flatnonzero(~sold)
    cols = split.truth_indices
    known = cols < ds.n_items
    is_new = np.zeros(len(cols), dtype=bool)
    is_new[known] = ~sold[cols[known]]
    launched = np.unique(cols[is_new])
    print(f"{sys.argv[1]}: {len(unsold):,} catalogue products never sold before the cutoff; "
          f"{len(launched):,} of them ({len(launched) / max(len(unsold), 1):.1%}) sell in the window; "
          f"{is_new.sum():,} new-product truth pairs of {len(cols):,}; per (scored customer, never-sold "
          f"product) pair the base rate is {is_new.sum() / max(len(split.users) * len(unsold), 1):.2e}")
    feats = ds.item_features
    is_launch = np.isin(unsold, launched)
    cat_cols = [c for c in feats.columns if feats[c].nunique() < len(feats) // 5]
    for c in cat_cols:  # launch rate of never-sold products whose attribute value had a recent launch
        codes = pd.factorize(feats[c], use_na_sentinel=True)[0]
        recent = np.zeros(codes.max() + 2, dtype=bool)
        recent[codes[sold] + 1] = True  # values seen on sold products at all
        hot = recent[codes[unsold] + 1]
        rate = [is_launch[hot].mean() if hot.any() else np.nan, is_launch[~hot].mean() if (~hot).any() else np.nan]
        print(f"  {c}: launch rate {rate[0]:.3f} where the value has sold products before, "
              f"{rate[1]:.3f} where it has none ({hot.sum():,} / {(~hot).sum():,} products)")
    # content scorer: sum over attributes of the customer's share of purchases in the product's value
    score = np.zeros((len(split.users), len(unsold)), dtype=np.float32)
    tot = np.maximum(np.asarray(pos[split.users].sum(axis=1)).ravel(), 1)
    for c in cat_cols:
        codes = pd.factorize(feats[c], use_na_sentinel=True)[0] + 1  # 0 = missing
        onehot = sp.csr_matrix((np.ones(ds.n_items), (np.arange(ds.n_items), codes)))
        share = (pos[split.users] @ onehot).toarray() / tot[:, None]
        share[:, 0] = 0.0
        score += share[:, codes[unsold]].astype(np.float32)
    rng = np.random.default_rng(0)
    score += rng.random(score.shape, dtype=np.float32) * 1e-6  # random order among equal scores
    top = unsold[np.argsort(-score, axis=1)[:, :12]]
    rand = unsold[np.argsort(rng.random(score.shape), axis=1)[:, :12]]
    indptr, new_cols = _subset_truth(split.truth_indptr, cols, is_new)
    for name, recs in (("content scorer", top), ("random never-sold", rand)):
        met = M.ranking_metrics(recs, indptr, new_cols, 12)
        print(f"  {name}, twelve places: Recall@12 on new-product pairs {np.nanmean(met['recall']):.4f}, "
              f"hits per place {np.isin(recs, launched).mean():.4f} (launched at all) ")


if __name__ == "__main__":
    main()
