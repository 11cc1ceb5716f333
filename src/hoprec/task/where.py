"""Evaluate a query's WHERE clause over the entity table as of a cutoff.

Operands are the entity's own columns (``households.income``) or aggregates of its past rows in a
table with a foreign key to it (``COUNT(transactions.*, -90, 0, days)``: rows in
``[cutoff - 90 days, cutoff)``).  Comparisons with a missing value are false, as in SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hoprec.data.database import Database
from hoprec.task import pql

if TYPE_CHECKING:
    from hoprec.task.task import Task

_OPS = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
_ZERO_WHEN_EMPTY = {"COUNT", "COUNT_DISTINCT", "SUM"}


def evaluate(node: pql.Condition, task: Task, db: Database, cutoff: pd.Timestamp) -> pd.Series:
    """Boolean mask over the rows of the entity table (positional, same order)."""
    keys = db[task.entity_table][task.entity_key]
    return pd.Series(_cond(node, task, db, cutoff, keys), index=keys.index)


def _cond(node, task, db, cutoff, keys) -> np.ndarray:
    if isinstance(node, pql.And):
        return _cond(node.left, task, db, cutoff, keys) & _cond(node.right, task, db, cutoff, keys)
    if isinstance(node, pql.Or):
        return _cond(node.left, task, db, cutoff, keys) | _cond(node.right, task, db, cutoff, keys)
    if isinstance(node, pql.Not):
        return ~_cond(node.operand, task, db, cutoff, keys)
    if isinstance(node, pql.IsNull):
        isna = pd.isna(_operand(node.operand, task, db, cutoff, keys))
        return ~isna if node.negated else isna
    if isinstance(node, pql.InList):
        vals = pd.Series(_operand(node.operand, task, db, cutoff, keys))
        hit = vals.isin([v.value for v in node.values]).to_numpy() & vals.notna().to_numpy()
        return ~hit & vals.notna().to_numpy() if node.negated else hit
    if isinstance(node, pql.Comparison):
        left = pd.Series(_operand(node.left, task, db, cutoff, keys))
        right = _operand(node.right, task, db, cutoff, keys)
        right = pd.Series(right) if isinstance(right, np.ndarray) else right
        try:
            out = _OPS[node.op](left, right)
        except TypeError as e:
            raise pql.PQLError(f"cannot compare these values: {e}", _pos(node.left), task.query.text) from None
        return out.fillna(False).to_numpy(dtype=bool)
    raise TypeError(f"unknown condition node {node!r}")


def _pos(op) -> int:
    return getattr(op, "position", 0)


def _operand(op, task: Task, db: Database, cutoff: pd.Timestamp, keys: pd.Series):
    if isinstance(op, pql.Literal):
        return op.value
    if isinstance(op, pql.ColumnRef):
        if op.table != task.entity_table:
            raise pql.PQLError(
                f"WHERE may name columns of the entity table {task.entity_table!r} directly; "
                f"use an aggregate such as COUNT({op.table}.*, -30, 0, days) for {op.table!r}",
                op.position, task.query.text,
            )
        return db[task.entity_table][op.column].to_numpy()
    if isinstance(op, pql.Aggregate):
        return _aggregate(op, task, db, cutoff, keys)
    raise TypeError(f"unknown operand {op!r}")


def _aggregate(agg: pql.Aggregate, task: Task, db: Database, cutoff, keys: pd.Series) -> np.ndarray:
    schema = task.schema
    table = agg.ref.table
    spec = schema.tables[table]
    links = [c for c, t in spec.foreign_keys.items() if t == task.entity_table]
    if len(links) != 1 or spec.time_column is None:
        raise pql.PQLError(
            f"{agg.func}({agg.ref}) needs a table with a time_column and one foreign key to "
            f"{task.entity_table!r}", agg.position, task.query.text,
        )
    start, end = agg.window.to_timedelta_pair()
    df = db[table]
    tc = spec.time_column
    rows = df[(df[tc] >= cutoff + start) & (df[tc] < cutoff + end)]
    key = rows[links[0]]
    func = agg.func
    if agg.ref.column is None:
        stat = key.value_counts()
    else:
        col = rows[agg.ref.column]
        g = col.groupby(key)
        stat = {
            "COUNT": g.count, "COUNT_DISTINCT": g.nunique, "SUM": g.sum, "AVG": g.mean,
            "MIN": g.min, "MAX": g.max, "FIRST": g.first, "LAST": g.last,
            "LIST_DISTINCT": g.nunique,
        }[func]()
    out = stat.reindex(keys.to_numpy())
    if func in _ZERO_WHEN_EMPTY or agg.ref.column is None:
        out = out.fillna(0)
    return out.to_numpy()
