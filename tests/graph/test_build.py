"""Tables -> graph: nodes, every kind of edge against the data, leakage, returns, features."""

from __future__ import annotations

import itertools
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from hoprec.graph import STATIC_TIME, GraphConfig, build_graph
from hoprec.graph.features import TableEncoder, _hash_text

RETURN_ONLY, UNTOUCHED = 998, 999  # see conftest.py


def pairs(graph, etype, external=True):
    """The edges of ``etype`` as a set of (src, dst), in external ids unless told otherwise."""
    s, _, d = etype
    src, dst = graph.edges[etype].edge_index.numpy()
    if external:
        src, dst = graph.id_maps[s].to_external(src), graph.id_maps[d].to_external(dst)
    return set(zip(src.tolist(), dst.tolist()))


def edge_dict(graph, etype, field="weight"):
    src, dst = graph.edges[etype].edge_index.numpy()
    vals = getattr(graph.edges[etype], field).numpy()
    return {(int(a), int(b)): v.item() for a, b, v in zip(src, dst, vals)}


def test_node_counts_match_id_maps(rich_graph, rich_dataset):
    g, ds, snap = rich_graph, rich_dataset, rich_dataset.db
    assert g.id_maps["customers"] is ds.users and g.id_maps["products"] is ds.items
    assert g.num_nodes["customers"] == ds.n_users and g.num_nodes["products"] == ds.n_items
    assert g.num_nodes["suppliers"] == snap["suppliers"].supplier_id.nunique() == 3
    assert g.num_nodes["stores"] == snap["stores"].store_id.nunique() == 3
    assert g.num_nodes["products:category"] == 4 and g.num_nodes["products:brand"] == 6
    assert "promotions" not in g.num_nodes and "orders" not in g.num_nodes  # no key: edges only
    for t, n in g.num_nodes.items():
        assert g.x_num[t].shape[0] == g.x_cat[t].shape[0] == g.node_time[t].shape[0] == n
        assert len(g.id_maps[t]) == n
        assert g.x_cat[t].shape[1] == len(g.cat_cardinalities[t])
    assert g.metadata() == (list(g.num_nodes), list(g.edges))


def test_csr_by_destination_sorted_by_time(rich_graph):
    for et, s in rich_graph.edges.items():
        assert s.rowptr[0] == 0 and s.rowptr[-1] == len(s) and (s.degree() >= 0).all(), et
        assert s.num_dst == rich_graph.num_nodes[et[2]] and s.num_src == rich_graph.num_nodes[et[0]]
        dst = s.dst
        same = dst[1:] == dst[:-1]
        assert (dst[1:] >= dst[:-1]).all() and (s.time[1:][same] >= s.time[:-1][same]).all(), et
        assert s.weight.dtype == torch.float32 and s.time.dtype == torch.int64


def test_every_reverse_mirrors_its_forward(rich_graph):
    for (s, r, d) in rich_graph.edges:
        if r.startswith("rev_"):
            fwd, back = (d, r[4:], s), (s, r, d)
            assert {(b, a) for a, b in pairs(rich_graph, fwd, False)} == pairs(rich_graph, back, False)
            wf, wb = edge_dict(rich_graph, fwd), edge_dict(rich_graph, back)
            assert all(wb[(b, a)] == w for (a, b), w in wf.items())


def test_foreign_key_edges_are_the_data(rich_graph, rich_dataset):
    g, snap = rich_graph, rich_dataset.db
    prod = snap["products"]
    assert pairs(g, ("products", "supplier_id", "suppliers")) == set(zip(prod.product_id, prod.supplier_id))
    o = snap["orders"]
    buys = o[o._weight > 0]
    assert pairs(g, ("products", "orders_store_id", "stores")) == set(zip(buys.product_id, buys.store_id))
    assert pairs(g, ("customers", "orders_store_id", "stores")) == set(zip(buys.customer_id, buys.store_id))
    promo = snap["promotions"]
    assert len(promo) == 4  # the one shown after the cutoff is not in the snapshot
    assert pairs(g, ("customers", "promotions", "products")) == set(zip(promo.customer_id, promo.product_id))
    assert edge_dict(g, ("customers", "promotions", "products"))[
        (int(g.id_maps["customers"].to_internal(["C000"])[0]),
         int(g.id_maps["products"].to_internal([101])[0]))] == 2.0  # two rows, one edge
    assert pairs(g, ("products", "category", "products:category")) == {
        (p, c) for p, c in zip(prod.product_id, prod.category)}


def test_no_edge_at_or_after_the_cutoff(rich_graph, fake_graph):
    for g in (rich_graph, fake_graph):
        cut = g.cutoff.value
        for et, s in g.edges.items():
            assert (s.time < cut).all(), et
        assert all((t < cut).all() for t in g.node_time.values())
    static = rich_graph.edges[("products", "supplier_id", "suppliers")].time
    assert (static == STATIC_TIME).all()


def _net_weights(snap, quantity=False, half_life=None):
    o = snap["orders"].copy()
    w = o._weight.astype(float) * (o._quantity if quantity else 1.0)
    if half_life:
        age = (snap.cutoff - o.ts) / pd.Timedelta(days=1)
        w = w * 0.5 ** (age / half_life)
    o["w"] = w
    return o.groupby(["customer_id", "product_id"]).agg(w=("w", "sum"), pos=("w", lambda s: (s > 0).any()),
                                                         last=("ts", "max"))


@pytest.mark.parametrize("quantity,half_life", [(False, None), (True, 30.0)])
def test_interaction_weights_and_returns(rich_dataset, rich_task, quantity, half_life):
    cfg = GraphConfig(use_quantity=quantity, half_life_days=half_life, co_purchase=False,
                      bought_after=False)
    g = build_graph(rich_dataset, rich_task, cfg)
    ref = _net_weights(rich_dataset.db, quantity, half_life)
    want = ref[ref.pos & (ref.w > 0)]
    et = ("customers", "orders", "products")
    src, dst = g.edges[et].edge_index.numpy()
    ext = zip(g.id_maps["customers"].to_external(src), g.id_maps["products"].to_external(dst))
    got = {k: (w, t) for k, w, t in zip(ext, g.edges[et].weight.tolist(), g.edges[et].time.tolist())}
    assert set(got) == set(want.index)
    for key, row in want.iterrows():
        assert got[key][0] == pytest.approx(row.w, rel=1e-5)
        assert got[key][1] == row["last"].value
    o = rich_dataset.db["orders"]
    returned = set(zip(o.customer_id[o._weight < 0], o.product_id[o._weight < 0]))
    assert returned & set(got), "the fake shop has pairs with a purchase and a return"
    assert ("C001", RETURN_ONLY) in returned and ("C001", RETURN_ONLY) not in got


def test_returns_lower_the_pair_weight(rich_dataset, rich_task):
    g = build_graph(rich_dataset, rich_task, GraphConfig(co_purchase=False, bought_after=False))
    o = rich_dataset.db["orders"]
    counts = o.groupby(["customer_id", "product_id"])._kind.agg(
        lambda k: Counter(k.astype(str)))
    both = [(key, c) for key, c in counts.items() if c["return"] and c["purchase"] > c["return"]]
    assert both
    w = edge_dict(g, ("customers", "orders", "products"))
    for (cust, prod), c in both:
        key = (int(g.id_maps["customers"].to_internal([cust])[0]),
               int(g.id_maps["products"].to_internal([prod])[0]))
        assert w[key] == c["purchase"] - c["return"]


def test_unaggregated_edges_sum_to_the_pair_weight(rich_dataset, rich_task):
    base = GraphConfig(co_purchase=False, bought_after=False)
    agg = build_graph(rich_dataset, rich_task, base)
    raw = build_graph(rich_dataset, rich_task, base.model_copy(update={"aggregate_pairs": False}))
    et = ("customers", "orders", "products")
    assert len(raw.edges[et]) > len(agg.edges[et])
    sums: Counter = Counter()
    for k, w in zip(zip(*raw.edges[et].edge_index.tolist()), raw.edges[et].weight.tolist()):
        sums[k] += w
    want = edge_dict(agg, et)
    assert set(sums) == set(want)
    assert all(sums[k] == pytest.approx(w, rel=1e-5) for k, w in want.items())


def _baskets(ds):
    """(owner, time, set of items) per basket of positive rows, brute force."""
    it = ds.interactions
    pos = it.weight > 0
    out: dict = {}
    for u, i, t, b in zip(it.user[pos], it.item[pos], it.time[pos].view(np.int64), it.basket[pos]):
        owner, first, items = out.setdefault(int(b), (int(u), int(t), set()))
        items.add(int(i))
        out[int(b)] = (owner, min(first, int(t)), items)
    return list(out.values())


def test_co_purchase_matches_brute_force(fake_graph, fake_dataset):
    want: Counter = Counter()
    for _, _, items in _baskets(fake_dataset):
        for a, b in itertools.permutations(sorted(items), 2):
            want[(a, b)] += 1
    got = edge_dict(fake_graph, ("products", "co_purchase", "products"))
    assert got == dict(want)  # 40 items, 50 neighbours each: nothing truncated
    assert all(got[(b, a)] == w for (a, b), w in got.items())


def test_co_purchase_top_k_stays_symmetric(fake_dataset, fake_task):
    g = build_graph(fake_dataset, fake_task, GraphConfig(max_item_neighbours=3, bought_after=False))
    got = edge_dict(g, ("products", "co_purchase", "products"))
    assert all((b, a) in got for a, b in got)
    full = Counter()
    for _, _, items in _baskets(fake_dataset):
        for a, b in itertools.permutations(sorted(items), 2):
            full[(a, b)] += 1
    for a in range(fake_dataset.n_items):
        ranked = sorted(((-w, b) for (x, b), w in full.items() if x == a))[:3]
        assert all((a, b) in got for _, b in ranked)  # an item keeps its own top 3
    for a, b in got:  # and every edge is in the top 3 of one of its ends
        top = {a2: {y for _, y in sorted((-w, y) for (x, y), w in full.items() if x == a2)[:3]}
               for a2 in (a, b)}
        assert b in top[a] or a in top[b]


def test_co_purchase_normalized(fake_dataset, fake_task):
    g = build_graph(fake_dataset, fake_task, GraphConfig(co_purchase_normalize=True, bought_after=False))
    counts = edge_dict(build_graph(fake_dataset, fake_task, GraphConfig(bought_after=False)),
                       ("products", "co_purchase", "products"))
    n = Counter(i for _, _, items in _baskets(fake_dataset) for i in items)
    got = edge_dict(g, ("products", "co_purchase", "products"))
    assert set(got) == set(counts)
    assert all(w == pytest.approx(counts[(a, b)] / np.sqrt(n[a] * n[b]), rel=1e-5)
               for (a, b), w in got.items())


def test_bought_after_matches_brute_force(fake_graph, fake_dataset):
    window = 14 * 86_400 * 10**9
    baskets = _baskets(fake_dataset)
    want: Counter = Counter()
    for (o1, t1, i1), (o2, t2, i2) in itertools.permutations(baskets, 2):
        if o1 == o2 and 0 < t2 - t1 <= window:
            for a in i1:
                for b in i2:
                    if a != b:
                        want[(a, b)] += 1
    et = ("products", "bought_after", "products")
    got = edge_dict(fake_graph, et)
    assert got == dict(want)
    assert any((b, a) not in got or got[(b, a)] != w for (a, b), w in got.items())  # directed
    last = Counter()
    for _, t, items in baskets:
        for i in items:
            last[i] = max(last[i], t)
    assert all(t == last[b] for (a, b), t in edge_dict(fake_graph, et, "time").items())


def test_untouched_product_reaches_others_through_attributes(rich_graph):
    g = rich_graph
    p = int(g.id_maps["products"].to_internal([UNTOUCHED])[0])
    for et in [("customers", "orders", "products"), ("products", "co_purchase", "products"),
               ("products", "bought_after", "products"), ("products", "orders_store_id", "stores")]:
        src, dst = g.edges[et].edge_index
        assert p not in (dst if et[0] == "customers" else src).tolist(), et
    cat = g.edges[("products", "category", "products:category")].edge_index
    value = cat[1][cat[0] == p]
    assert len(value) == 1 and g.id_maps["products:category"].to_external(value)[0] == "cat2"
    # CSR by destination: the products that point at a category value are that value's row
    store, v = g.edges[("products", "category", "products:category")], int(value[0])
    same = store.col[int(store.rowptr[v]): int(store.rowptr[v + 1])].tolist()
    assert p in same and len(same) > 1  # a 2-hop path to cat2 items with history


def test_features_finite_deterministic_and_encoded(rich_graph, rich_dataset, rich_task):
    again = build_graph(rich_dataset, rich_task)
    for t in rich_graph.num_nodes:
        assert torch.isfinite(rich_graph.x_num[t]).all()
        assert torch.equal(rich_graph.x_num[t], again.x_num[t]) and torch.equal(rich_graph.x_cat[t], again.x_cat[t])
        card = torch.tensor(rich_graph.cat_cardinalities[t], dtype=torch.int64)
        assert (rich_graph.x_cat[t] >= 0).all() and (rich_graph.x_cat[t] < card).all()
    enc = rich_graph.encoders["products"]
    assert enc.num_names[:2] == ["price", "price:missing"] and enc.cat_columns == ["category", "brand"]
    x = rich_graph.x_num["products"]
    missing = torch.from_numpy(rich_dataset.item_features.price.isna().to_numpy().copy())
    assert missing.sum() == 1 and (x[missing, 0] == 0).all() and (x[:, 1] == missing).all()
    assert x[~missing, 0].mean().abs() < 1e-5
    sup = rich_graph.x_cat["suppliers"][:, 0].tolist()
    assert sorted(sup) == [0, 1, 2]  # fr, uk and 0 for the missing country


def test_text_hashing_is_fixed():
    # CRC-32 buckets: the same numbers in every process and on every machine
    x = _hash_text(pd.Series(["Red apple", "apple", None]), 8)
    # crc32("apple") % 8 == 0, crc32("red") % 8 == 7, both with the sign bit set
    assert x.tolist() == [[1, 0, 0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0, 0], [0] * 8]


def test_encoder_keeps_codes_for_unseen_values():
    enc = TableEncoder({"brand": "categorical", "seen": "timestamp"}).fit(
        pd.DataFrame({"brand": ["b", "a"], "seen": ["2024-01-01", "2024-01-03"]}), pd.Timestamp("2024-01-05"))
    x_num, x_cat = enc.transform(pd.DataFrame({"brand": ["a", "zzz", None], "seen": [None, "2024-01-02", None]}),
                                 pd.Timestamp("2024-01-05"))
    assert x_cat[:, 0].tolist() == [1, 0, 0] and enc.cardinalities == [3]
    assert x_num[:, 1].tolist() == [1.0, 0.0, 1.0] and x_num[1, 0] == 0.0  # 3 days = the mean


def test_encoders_can_be_reused_across_cutoffs(rich_graph, rich_task, rich_db):
    val = rich_task.build_dataset(rich_db.snapshot(rich_task.cutoffs(rich_db)["val"]))
    g = build_graph(val, rich_task, encoders=rich_graph.encoders)
    assert g.cat_cardinalities == rich_graph.cat_cardinalities
    assert (g.edges[("customers", "orders", "products")].time < val.cutoff.value).all()


def test_config_is_strict_and_summary_prints(rich_graph):
    with pytest.raises(ValidationError):
        GraphConfig(attribute_node=False)
    text = rich_graph.summary()
    assert "customers -> orders -> products" in text and "products:category" in text


def test_without_attribute_or_derived_edges(rich_dataset, rich_task):
    g = build_graph(rich_dataset, rich_task, GraphConfig(
        attribute_nodes=False, context_edges=False, co_purchase=False, bought_after=False))
    assert not any(":" in t for t in g.num_nodes)
    assert {e[1] for e in g.edges} == {"orders", "rev_orders", "supplier_id", "rev_supplier_id",
                                        "promotions", "rev_promotions"}


def test_without_pyg_the_message_names_the_extra(rich_graph, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_geometric", None)
    monkeypatch.setitem(sys.modules, "torch_geometric.data", None)
    with pytest.raises(ImportError, match=r"hoprec\[pyg\]"):
        rich_graph.to_pyg()


def test_to_pyg(rich_graph):
    pytest.importorskip("torch_geometric")
    data = rich_graph.to_pyg()
    assert data.metadata() == rich_graph.metadata()
    et = ("customers", "orders", "products")
    assert torch.equal(data[et].edge_index, rich_graph.edges[et].edge_index)
    assert data["products"].x.shape == rich_graph.x_num["products"].shape
    data.validate()


def test_exclude_tables_leaves_a_table_out(rich_dataset, rich_task):
    from hoprec.graph.hetero import GraphConfig, build_graph

    full = build_graph(rich_dataset, rich_task, GraphConfig())
    others = [t for t in full.node_types if ":" not in t and t not in (full.entity_type, full.item_type)]
    assert others, "the rich shop has tables besides customers and products"
    drop = others[0]
    g = build_graph(rich_dataset, rich_task, GraphConfig(exclude_tables=(drop,)))
    assert drop not in g.node_types
    assert not [e for e in g.edge_types if drop in (e[0], e[2])]
    with pytest.raises(ValueError, match="task's own table"):
        build_graph(rich_dataset, rich_task, GraphConfig(exclude_tables=(full.item_type,)))
    with pytest.raises(ValueError, match="no table"):
        build_graph(rich_dataset, rich_task, GraphConfig(exclude_tables=("nope",)))
