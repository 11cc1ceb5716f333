"""Neighbour sampling invariants, after PyG's test_link_neighbor_loader.py.

Every sampled edge exists in the graph; local ids map back to global ids; no sampled edge is at or
after its seed's time; fan-outs hold per node and hop; the same seed draws the same sample.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from hoprec.graph import NeighborSampler
from hoprec.graph.sampler import _draw, _time_cut

FANOUTS = [4, 3]


@pytest.fixture(scope="module")
def seeds(rich_graph):
    """Customers and products with seed times spread over the history (some before any event)."""
    g = rich_graph
    lo = int(g.edges[("customers", "orders", "products")].time.min())
    hi = g.cutoff.value
    rng = np.random.default_rng(3)
    cust = torch.arange(g.num_nodes["customers"])
    prod = torch.from_numpy(rng.integers(0, g.num_nodes["products"], 30))
    times = {t: torch.from_numpy(rng.integers(lo - 86_400 * 10**9, hi + 1, len(ids)))
             for t, ids in (("customers", cust), ("products", prod))}
    return {"customers": cust, "products": prod}, times


@pytest.fixture(scope="module")
def sub(rich_graph, seeds):
    return NeighborSampler(rich_graph, FANOUTS, seed=0).sample(*seeds)


def test_sampled_edges_exist_and_ids_map_back(rich_graph, sub):
    g = rich_graph
    for t, node in sub.node.items():
        assert node.dtype == torch.int64 and ((node >= 0) & (node < g.num_nodes[t])).all()
    total = 0
    for et, ei in sub.edge_index.items():
        s, _, d = et
        assert ei.shape[0] == 2 and ei.shape[1] == len(sub.edge_id[et])
        assert (ei[0] < len(sub.node[s])).all() and (ei[1] < len(sub.node[d])).all()
        want = g.edges[et].edge_index[:, sub.edge_id[et]]
        assert torch.equal(sub.node[s][ei[0]], want[0]) and torch.equal(sub.node[d][ei[1]], want[1])
        assert torch.equal(sub.edge_weight[et], g.edges[et].weight[sub.edge_id[et]])
        total += ei.shape[1]
    assert total > 500


def test_seeds_come_first_and_nodes_are_unique_per_seed(sub, seeds):
    ids, _ = seeds
    assert torch.equal(sub.node["customers"][: len(ids["customers"])], ids["customers"])
    assert torch.equal(sub.node["products"][: len(ids["products"])], ids["products"])
    assert torch.equal(sub.seed_local["products"], torch.arange(len(ids["products"])))
    n_cust = len(ids["customers"])
    assert torch.equal(sub.batch["products"][: len(ids["products"])],
                       torch.arange(n_cust, n_cust + len(ids["products"])))
    for t, node in sub.node.items():
        keys = list(zip(sub.batch[t].tolist(), node.tolist()))
        n_seeds = len(ids.get(t, []))
        assert len(set(keys[n_seeds:])) == len(keys) - n_seeds  # one node per (seed, id)


def test_no_sampled_edge_at_or_after_its_seed(sub):
    assert sub.seed_time is not None
    for t in sub.node:
        assert torch.equal(sub.time[t], sub.seed_time[sub.batch[t]])
    for et, ei in sub.edge_index.items():
        s, _, d = et
        assert torch.equal(sub.batch[s][ei[0]], sub.batch[d][ei[1]])  # edges stay inside a seed
        assert (sub.edge_time[et] < sub.time[d][ei[1]]).all(), et


def test_fanout_per_node_and_hop_and_all_when_fewer(rich_graph, sub):
    checked_full = 0
    for et, counts in sub.num_sampled_edges.items():
        s, _, d = et
        assert len(counts) == len(FANOUTS)
        ei = sub.edge_index[et]
        start = 0
        for hop, n in enumerate(counts):
            part = ei[:, start:start + n]
            start += n
            per_dst = Counter(part[1].tolist())
            assert max(per_dst.values(), default=0) <= FANOUTS[hop], (et, hop)
            # a node with at most k older edges gets all of them
            store = rich_graph.edges[et]
            for dl, c in per_dst.items():
                gid, tm = int(sub.node[d][dl]), int(sub.time[d][dl])
                times = store.time[int(store.rowptr[gid]): int(store.rowptr[gid + 1])]
                valid = int((times < tm).sum())
                assert c == min(valid, FANOUTS[hop])
                checked_full += 1
    assert checked_full > 100
    hops = {t: len(v) for t, v in sub.num_sampled_nodes.items()}
    assert set(hops.values()) == {len(FANOUTS) + 1}
    assert all(sum(v) == len(sub.node[t]) for t, v in sub.num_sampled_nodes.items())


def test_same_seed_same_sample_other_seed_differs(rich_graph, seeds):
    a = NeighborSampler(rich_graph, FANOUTS, seed=7).sample(*seeds)
    b = NeighborSampler(rich_graph, FANOUTS, seed=7).sample(*seeds)
    c = NeighborSampler(rich_graph, FANOUTS, seed=8).sample(*seeds)
    assert all(torch.equal(a.node[t], b.node[t]) for t in a.node)
    assert all(torch.equal(a.edge_id[e], b.edge_id[e]) for e in a.edge_id)
    assert any(not torch.equal(a.edge_id[e], c.edge_id[e]) for e in a.edge_id)


def test_without_seed_time_nodes_are_shared(rich_graph):
    ids = torch.tensor([0, 1, 2, 3])
    out = NeighborSampler(rich_graph, [5, 5], seed=0).sample({"customers": ids})
    assert out.seed_time is None
    for t, node in out.node.items():
        rest = node[len(ids):] if t == "customers" else node
        assert len(set(rest.tolist())) == len(rest)
    assert len(out.edge_index[("customers", "orders", "products")][0]) > 0


def test_fanout_per_edge_type_and_errors(rich_graph, seeds):
    et = ("customers", "orders", "products")
    rev = ("products", "rev_orders", "customers")
    out = NeighborSampler(rich_graph, {rev: [2, 0], et: [0, 3]}, seed=0).sample(*seeds)
    assert set(out.edge_index) == {et, rev}
    assert out.num_sampled_edges[rev][1] == 0 and out.num_sampled_edges[et][0] == 0
    assert set(torch.cat([out.node["customers"], out.node["products"]]).tolist())
    with pytest.raises(KeyError, match="not in the graph"):
        NeighborSampler(rich_graph, {("a", "b", "c"): [1]})
    with pytest.raises(ValueError, match="same number of hops"):
        NeighborSampler(rich_graph, {et: [1], rev: [1, 2]})
    with pytest.raises(IndexError):
        NeighborSampler(rich_graph, [1]).sample({"customers": torch.tensor([10_000])})


def test_draw_is_uniform_without_replacement():
    gen = torch.Generator().manual_seed(0)
    row, pos = _draw(torch.tensor([100, 0, 7]), torch.tensor([10, 2, 0]), 3, gen)
    assert Counter(row.tolist()) == {0: 3, 1: 2} and sorted(pos[row == 1].tolist()) == [0, 1]
    n = 4000  # 4000 rows of 10 edges each, 3 drawn per row
    row, pos = _draw(torch.arange(n) * 10, torch.full((n,), 10), 3, gen)
    assert torch.equal(torch.bincount(row), torch.full((n,), 3))
    offset = (pos - row * 10).reshape(n, 3)
    assert ((offset >= 0) & (offset < 10)).all()
    assert (offset.sort(dim=1).values.diff(dim=1) > 0).all()  # no edge twice in a row
    freq = torch.bincount(offset.flatten(), minlength=10) / n
    assert torch.allclose(freq, torch.full((10,), 0.3, dtype=freq.dtype), atol=0.03)


def test_time_cut_is_a_binary_search(rich_graph):
    store = rich_graph.edges[("products", "rev_orders", "customers")]
    gid = torch.arange(store.num_dst)
    start, end = store.rowptr[gid], store.rowptr[gid + 1]
    rng = np.random.default_rng(0)
    before = torch.from_numpy(rng.choice(store.time.numpy(), len(gid)))
    cut = _time_cut(store, start, end, before)
    for v in range(len(gid)):
        times = store.time[int(start[v]): int(end[v])]
        assert int(cut[v] - start[v]) == int((times < before[v]).sum())


def test_pyg_node_loader(rich_graph, seeds):
    pytest.importorskip("torch_geometric")
    from torch_geometric.loader import NodeLoader

    from hoprec.graph.pyg import PyGNeighborSampler

    ids, times = seeds
    data = rich_graph.to_pyg()
    loader = NodeLoader(data, PyGNeighborSampler(rich_graph, FANOUTS, seed=0),
                        input_nodes=("customers", ids["customers"]),
                        input_time=times["customers"], batch_size=16)
    batch = next(iter(loader))
    assert batch["customers"].batch_size == 16
    assert torch.equal(batch["customers"].n_id[:16], ids["customers"][:16])
    for et in batch.edge_types:
        s, _, d = et
        e_id = batch[et].e_id
        want = rich_graph.edges[et].edge_index[:, e_id]
        ei = batch[et].edge_index
        assert torch.equal(batch[s].n_id[ei[0]], want[0]) and torch.equal(batch[d].n_id[ei[1]], want[1])
        seed_t = batch["customers"].seed_time[batch[d].batch[ei[1]]]
        assert (batch[et].time < seed_t).all()
