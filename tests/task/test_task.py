"""Binding a query to a schema, cutoffs, labels, WHERE and leak-free datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hoprec.data.schema import load_schema
from hoprec.task.pql import PQLError
from hoprec.task.task import Task, TaskError


@pytest.fixture(scope="module")
def task(fake_shop, fake_query):
    return Task.from_query(load_schema(fake_shop), fake_query)


def test_binding(task):
    assert (task.entity_table, task.entity_key) == ("customers", "customer_id")
    assert (task.target_table, task.item_column, task.item_table) == ("orders", "product_id", "products")
    assert task.window == (pd.Timedelta(0), pd.Timedelta(days=7))
    assert task.k == 5
    assert [h.table for h in task.history] == ["orders"]


def test_unknown_column_names_alternatives(fake_shop):
    with pytest.raises(PQLError, match="did you mean product_id"):
        Task.from_query(
            load_schema(fake_shop),
            "PREDICT LIST_DISTINCT(orders.prodct_id, 0, 7, days) RANK TOP 5 FOR EACH customers.customer_id",
        )


def test_table_without_time_column_is_rejected(fake_shop):
    with pytest.raises(PQLError, match="no time_column"):
        Task.from_query(
            load_schema(fake_shop),
            "PREDICT LIST_DISTINCT(products.product_id, 0, 7, days) RANK TOP 5 FOR EACH customers.customer_id",
        )


def test_for_each_needs_primary_key(fake_shop):
    with pytest.raises(PQLError, match="primary key of 'customers'"):
        Task.from_query(
            load_schema(fake_shop),
            "PREDICT LIST_DISTINCT(orders.product_id, 0, 7, days) RANK TOP 5 FOR EACH customers.segment",
        )


def test_cutoffs_end_at_data_end(task, fake_db):
    cut = task.cutoffs(fake_db, n_train=2)
    last = fake_db["orders"]["ts"].max()
    assert cut["test"] + pd.Timedelta(days=7) == last.floor("D") + pd.Timedelta(days=1)
    assert cut["val"] == cut["test"] - pd.Timedelta(days=7)
    assert cut["train"] == [cut["val"] - pd.Timedelta(days=7), cut["val"] - pd.Timedelta(days=14)]


def test_window_too_long_for_data(fake_shop, fake_db):
    t = Task.from_query(
        load_schema(fake_shop),
        "PREDICT LIST_DISTINCT(orders.product_id, 0, 40, days) RANK TOP 5 FOR EACH customers.customer_id",
    )
    with pytest.raises(TaskError, match="too short"):
        t.cutoffs(fake_db)


def test_labels_are_the_window_purchases(task, fake_db):
    cut = task.cutoffs(fake_db)["test"]
    labels = task.labels(fake_db, cut)
    orders = fake_db["orders"]
    inside = orders[(orders.ts >= cut) & (orders.ts < cut + pd.Timedelta(days=7)) & (orders.is_return == 0)]
    expected = set(zip(inside.customer_id, inside.product_id))
    assert set(zip(labels.entity, labels.item)) == expected
    assert not labels.duplicated().any()


def test_returns_are_never_labels(task, fake_db):
    orders = fake_db["orders"]
    ret = orders[orders.is_return == 1].iloc[0]
    labels = task.labels(fake_db, ret.ts.floor("D"))
    same_day_purchase = orders[(orders.customer_id == ret.customer_id) & (orders.product_id == ret.product_id)
                               & (orders.is_return == 0) & (orders.ts >= ret.ts.floor("D"))
                               & (orders.ts < ret.ts.floor("D") + pd.Timedelta(days=7))]
    pair_in_labels = ((labels.entity == ret.customer_id) & (labels.item == ret.product_id)).any()
    assert pair_in_labels == (len(same_day_purchase) > 0)


def test_dataset_has_nothing_at_or_after_cutoff(task, fake_db):
    cut = task.cutoffs(fake_db)["val"]
    ds = task.build_dataset(fake_db.snapshot(cut))
    assert (ds.interactions.time < np.datetime64(cut)).all()
    assert len(ds.interactions) == (fake_db["orders"].ts < cut).sum()
    # returns are kept as negative evidence, never positives
    assert (ds.interactions.weight[ds.interactions.kinds.index("return") == ds.interactions.kind] < 0).all()
    assert ds.n_items == 40 and ds.item_features.loc[0, "category"] == "cat0"


def test_where_on_attribute_and_past_aggregate(fake_shop, fake_db):
    s = load_schema(fake_shop)
    base = "PREDICT LIST_DISTINCT(orders.product_id, 0, 7, days) RANK TOP 5 FOR EACH customers.customer_id"
    cut = pd.Timestamp("2024-02-01")
    snap = fake_db.snapshot(cut)
    pro = Task.from_query(s, base + " WHERE customers.segment = 'pro'").eligible_entities(snap, cut)
    cust = fake_db["customers"]
    assert set(pro) == set(cust.customer_id[cust.segment == "pro"])
    busy = Task.from_query(s, base + " WHERE COUNT(orders.*, -14, 0, days) >= 3").eligible_entities(snap, cut)
    o = fake_db["orders"]
    recent = o[(o.ts >= cut - pd.Timedelta(days=14)) & (o.ts < cut)].groupby("customer_id").size()
    assert set(busy) == set(recent[recent >= 3].index)
    both = Task.from_query(
        s, base + " WHERE customers.segment = 'pro' AND NOT COUNT(orders.*, -14, 0, days) >= 3"
    ).eligible_entities(snap, cut)
    assert set(both) == set(pro) - set(busy)


def test_where_rejects_future_windows(fake_shop):
    with pytest.raises(PQLError, match="past"):
        Task.from_query(
            load_schema(fake_shop),
            "PREDICT LIST_DISTINCT(orders.product_id, 0, 7, days) RANK TOP 5 FOR EACH "
            "customers.customer_id WHERE COUNT(orders.*, 0, 7, days) > 0",
        )


def test_as_of_outside_data(task, fake_db):
    with pytest.raises(TaskError, match="outside the data"):
        task.check_as_of(fake_db, pd.Timestamp("2030-01-01"))
    with pytest.raises(TaskError, match="outside the data"):
        task.check_as_of(fake_db, pd.Timestamp("2000-01-01"))
