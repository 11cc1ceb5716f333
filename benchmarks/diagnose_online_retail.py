"""Why is buy-it-again lower on Online Retail than the reference evaluator says? (diagnostic)

Run:  python benchmarks/diagnose_online_retail.py
Scores plain frequency-then-recency buy-it-again on the TEST split under variants of the data
conventions, to rule causes in or out. Nothing here chooses a model setting; it only explains a
gap (BENCHMARKS.md, "Open discrepancy").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hoprec.data.database import load_database
from hoprec.data.schema import load_schema
from hoprec.evaluate import metrics as M
from hoprec.evaluate.protocol import make_split
from hoprec.models.base import top_k
from hoprec.task.task import Task

ROOT = Path(__file__).resolve().parents[1]
QUERY = "PREDICT LIST_DISTINCT(invoice_lines.StockCode, 0, 30, days) RANK TOP 12 FOR EACH customers.CustomerID"


def frequency_scores(n_users: int, n_items: int, u, i, t) -> np.ndarray:
    g = pd.DataFrame({"u": u, "i": i, "t": t}).groupby(["u", "i"]).agg(n=("t", "size"), last=("t", "max")).reset_index()
    sc = np.full((n_users, n_items), -1.0, dtype=np.float64)
    sc[g.u, g.i] = g.n + g["last"].astype("int64") / 1e19  # count, then recency
    return sc


def map12(sc: np.ndarray, users: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> float:
    recs, _ = top_k(sc[users].astype(np.float32), 12)
    return M.mean_metrics(M.ranking_metrics(recs, indptr, indices, 12))["map"]


def main() -> None:
    schema = load_schema(ROOT / "examples/online_retail/schema.yaml")
    db = load_database(schema)
    task = Task.from_query(schema, QUERY)
    end = db["invoice_lines"]["InvoiceDate"].max()
    for label, cut in [("our test cutoff", task.cutoffs(db)["test"]), ("data end - 30 days", end - pd.Timedelta(days=30))]:
        sp = make_split(task, db, cut, "test")
        ds, it = sp.dataset, sp.dataset.interactions
        pos = it.positive()
        sc = frequency_scores(ds.n_users, ds.n_items, it.user[pos], it.item[pos], it.time[pos])
        print(f"{label} ({cut}): lines {map12(sc, sp.users, sp.truth_indptr, sp.truth_indices):.4f}")
        df = pd.DataFrame({"u": it.user[pos], "i": it.item[pos], "b": it.basket[pos], "t": it.time[pos]}).drop_duplicates(["u", "i", "b"])
        sc_inv = frequency_scores(ds.n_users, ds.n_items, df.u, df.i, df.t)
        print(f"{label}: invoices instead of lines {map12(sc_inv, sp.users, sp.truth_indptr, sp.truth_indices):.4f}")
    sp = make_split(task, db, task.cutoffs(db)["test"], "test")
    ds, it = sp.dataset, sp.dataset.interactions
    codes = pd.Series(ds.items.external.astype(str))
    nonprod = ~codes.str.match(r"^\d").to_numpy()
    pos = it.positive()
    sc = frequency_scores(ds.n_users, ds.n_items, it.user[pos], it.item[pos], it.time[pos])
    sc[:, nonprod] = -np.inf
    keep = ~np.isin(sp.truth_indices, np.flatnonzero(nonprod))
    rows = np.repeat(np.arange(len(sp.users)), np.diff(sp.truth_indptr))
    indptr = np.r_[0, np.cumsum(np.bincount(rows[keep], minlength=len(sp.users)))]
    print(f"without {nonprod.sum()} non-product codes: {map12(sc, sp.users, indptr, sp.truth_indices[keep]):.4f}")
    # cancellations read as purchases, in history and in labels
    cut = task.cutoffs(db)["test"]
    lines = db["invoice_lines"]
    win = lines[(lines.InvoiceDate >= cut) & (lines.InvoiceDate < cut + pd.Timedelta(days=30))].dropna(subset=["CustomerID"])
    lab = win[["CustomerID", "StockCode"]].drop_duplicates()
    u = ds.users.to_internal(lab.CustomerID.to_numpy(), missing=-1)
    i = ds.items.to_internal(lab.StockCode.to_numpy(), missing=-1)
    ok = (u >= 0) & (i >= 0)
    sc_all = frequency_scores(ds.n_users, ds.n_items, it.user, it.item, it.time)
    users = np.intersect1d(np.unique(u[ok]), sp.users)
    ip, ii = M.truth_to_csr([np.unique(i[ok & (u == x)]) for x in users])
    print(f"returns read as purchases: {map12(sc_all, users, ip, ii):.4f}")


if __name__ == "__main__":
    main()
