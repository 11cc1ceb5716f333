"""The contract for models that read the whole relational snapshot, on the fake shop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hoprec.data.database import load_database
from hoprec.data.fake import QUERY, make_fake_shop
from hoprec.data.schema import load_schema
from hoprec.models.base import Recommender
from hoprec.models.registry import available_models, create_model, get_model_class
from hoprec.task.task import Task

GRAPH_MODELS = [n for n in available_models() if get_model_class(n).needs_relational]
FAST = {
    "sage": {"steps": 40, "batch_size": 256, "dim": 16, "eval_every": 20},
    "gat": {"steps": 40, "batch_size": 256, "dim": 16, "eval_every": 20},
    "lightgcn": {"steps": 40, "batch_size": 256, "dim": 16, "eval_every": 20, "negatives": 64},
}


@pytest.fixture(scope="module")
def shop_dataset(fake_shop, fake_db):
    task = Task.from_query(load_schema(fake_shop), QUERY)
    return task.build_dataset(fake_db.snapshot(task.cutoffs(fake_db)["test"]))


def test_graph_models_are_registered():
    assert "sage" in GRAPH_MODELS


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_save_load_and_same_seed_same_output(name, shop_dataset, tmp_path):
    users = np.arange(shop_dataset.n_users)
    a = create_model(name, **FAST.get(name, {})).fit(shop_dataset)
    ra = a.recommend(users, 5)
    a.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    rl = loaded.recommend(users, 5)
    np.testing.assert_array_equal(ra.items, rl.items)
    np.testing.assert_allclose(ra.scores, rl.scores, rtol=1e-6)
    b = create_model(name, **FAST.get(name, {})).fit(shop_dataset)
    np.testing.assert_array_equal(b.recommend(users, 5).items, ra.items)
    assert type(a).from_config(a.get_config()).get_config() == a.get_config()
    sim, _ = a.similar_items(np.arange(5), 3)
    assert not (sim == np.arange(5)[:, None]).any()


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_needs_the_relational_snapshot(name, shop_dataset):
    from dataclasses import replace

    with pytest.raises(ValueError, match="snapshot|task"):
        create_model(name, **FAST.get(name, {})).fit(replace(shop_dataset, db=None))


@pytest.mark.parametrize("name,params", [
    ("sage", {"steps": 300, "batch_size": 512, "dim": 32, "eval_every": 50, "patience": 10, "id_dropout": 0.8}),
    ("lightgcn", {"steps": 300, "batch_size": 512, "dim": 32, "eval_every": 50, "patience": 10,
                  "id_dropout": 0.5, "negatives": 256}),
])
def test_cold_product_reaches_the_customers_its_attributes_point_to(tmp_path, name, params):
    """A product with attributes and no interactions is ranked higher for the customers of its
    category than for everybody else: the attribute path works."""
    schema_path = make_fake_shop(tmp_path / "shop", n_customers=80)
    prods = pd.read_parquet(tmp_path / "shop" / "products.parquet")
    new = pd.DataFrame({"product_id": [999], "category": ["cat1"], "brand": ["brand1"],
                        "price": [9.5], "title": ["product new in cat1"]})
    pd.concat([prods, new]).to_parquet(tmp_path / "shop" / "products.parquet", index=False)
    schema = load_schema(schema_path)
    db = load_database(schema)
    task = Task.from_query(schema, QUERY)
    ds = task.build_dataset(db.snapshot(task.cutoffs(db)["test"]))
    model = create_model(name, **params)
    model.fit(ds)
    cold = int(ds.items.to_internal([999])[0])
    assert ds.positive_matrix()[:, cold].nnz == 0
    scores = model._score(np.arange(ds.n_users))
    above = scores > scores[:, [cold]]  # items ranked above the cold product, per customer
    cats = ds.item_features["category"].to_numpy()
    other = cats != "cat1"
    share_above = above[:, other].mean(axis=1)  # share of other-category items above it
    orders = db["orders"]
    cat = orders.merge(db["products"][["product_id", "category"]], on="product_id")
    fav = cat.groupby("customer_id")["category"].agg(lambda s: s.value_counts().index[0])
    users = ds.users.to_internal(fav.index.to_numpy())
    is_cat1 = (fav == "cat1").to_numpy()
    assert is_cat1.sum() >= 5
    # for cat1 customers the new cat1 product beats clearly more other-category products
    assert share_above[users[is_cat1]].mean() < share_above[users[~is_cat1]].mean() - 0.1


def test_hybrid_with_a_graph_embedding_feature(shop_dataset, tmp_path):
    """The hybrid reads a leak-free LightGCN score per training window; save/load keeps it."""
    params = {"embedding": "lightgcn", "n_windows": 2, "n_estimators": 20,
              "embedding_params": FAST["lightgcn"], "horizon_days": 7}
    users = np.arange(shop_dataset.n_users)
    a = create_model("hybrid", **params).fit(shop_dataset)
    assert a.feature_names()[-2:] == ["emb_score", "emb_rank"]
    assert set(a.feature_importance()) == set(a.feature_names())
    ra = a.recommend(users, 5)
    a.save(tmp_path / "h")
    rl = Recommender.load(tmp_path / "h").recommend(users, 5)
    np.testing.assert_array_equal(ra.items, rl.items)


@pytest.mark.parametrize("name", ["sage", "lightgcn"])
def test_checkpoint_resume_gives_the_same_model(name, shop_dataset, tmp_path):
    """A rerun with the same checkpoint folder resumes (here: from the finished run) and ends
    with the same weights, hence the same recommendations; the log records validation MAP."""
    params = {**FAST[name], "checkpoint_dir": str(tmp_path / "ckpt")}
    users = np.arange(shop_dataset.n_users)
    a = create_model(name, **params).fit(shop_dataset)
    assert (tmp_path / "ckpt" / "checkpoint.safetensors").exists()
    assert a.training_log() and all(0 <= r["val_map"] <= 1 for r in a.training_log())
    b = create_model(name, **params).fit(shop_dataset)
    np.testing.assert_array_equal(a.recommend(users, 5).items, b.recommend(users, 5).items)
    with pytest.raises(ValueError, match="another run"):  # other settings: not this checkpoint
        create_model(name, **{**params, "seed": 1}).fit(shop_dataset)


def test_hybrid_feature_ablation(shop_dataset):
    m = create_model("hybrid", drop_features=["item_graph", "count"], n_windows=1, n_estimators=10,
                     horizon_days=7).fit(shop_dataset)
    assert "cooc" not in m.feature_names() and "count" not in m.feature_names()
    assert "rep_h7" in m.feature_names() and m.booster.num_feature() == len(m.feature_names())
    assert "cat_overdue" not in m.feature_names()  # the category rhythm is opt-in
    r = create_model("hybrid", category_rhythm=True, n_windows=1, n_estimators=10,
                     horizon_days=7).fit(shop_dataset)
    assert {"cat_rep_h30", "cat_overdue"} <= set(r.feature_names())
    q = create_model("hybrid", sequence_rhythm=True, n_windows=1, n_estimators=10,
                     horizon_days=7).fit(shop_dataset)
    assert {"baskets_since_last", "item_rebuy"} <= set(q.booster.feature_name())
    assert q.recommend(np.arange(5), 5).items.shape == (5, 5)
    with pytest.raises(ValueError, match="neither a feature nor a group"):
        create_model("hybrid", drop_features=["nope"], n_windows=1).fit(shop_dataset)


def test_hybrid_discovery_places_hold_products_new_to_the_customer(shop_dataset):
    """``discovery_positions`` give fixed places to never-bought products; the rest of the list
    keeps the pure ranking's order, and a longer list starts with the shorter one."""
    params = {"n_windows": 1, "n_estimators": 20, "horizon_days": 7}
    users = np.arange(shop_dataset.n_users)
    pure = create_model("hybrid", **params).fit(shop_dataset)
    mixed = create_model("hybrid", discovery_positions=[3, 4], **params).fit(shop_dataset)
    r, p = mixed.recommend(users, 8), pure.recommend(users, 8)
    bought = shop_dataset.positive_matrix() > 0
    model_rows = np.flatnonzero(r.source == "model")
    assert len(model_rows) > 10
    for row in model_rows:
        u = users[row]
        assert not bought[u, r.items[row, 3]] and not bought[u, r.items[row, 4]]
        rest = [x for x in p.items[row] if x not in r.items[row, 3:5]]
        assert r.items[row, [0, 1, 2, 5, 6, 7]].tolist() == rest[:6]
        assert len(set(r.items[row].tolist())) == 8
    np.testing.assert_array_equal(mixed.recommend(users, 12).items[:, :8], r.items)
    assert (pure.recommend(users, 3).items == r.items[:, :3]).all()
