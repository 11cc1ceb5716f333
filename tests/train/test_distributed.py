"""Distributed data-parallel training: 2 processes under torchrun match 1 process, and the rank-0
checkpoint loads anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from hoprec.data.generate import generate_shop
from hoprec.data.schema import load_schema
from hoprec.graph.mmap_store import open_graph
from hoprec.graph.ooc import build_interaction_graph
from hoprec.serve.index import build_index
from hoprec.train.dist_models import LightGCNDDP, _Shard, normalized_adjacency
from hoprec.train.distributed import (
    BPRMF,
    Context,
    DistConfig,
    fit,
    hit_rate,
    load_checkpoint,
    load_embeddings,
    save_checkpoint,
    split_holdout,
)

ARGS = ["--epochs", "3", "--batch-size", "512", "--dim", "16", "--lr", "0.02", "--threads", "1"]


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    schema = generate_shop(root / "shop", scale=0.02, seed=1)
    build_interaction_graph(load_schema(schema), "lines", root / "graph", "customer_id", "product_id")
    return root / "graph"


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]


@pytest.mark.slow  # fresh interpreters importing torch: 15-30 s per model on 2 busy cores
@pytest.mark.parametrize("model", ["bprmf", "lightgcn"])
def test_two_processes_match_one_and_checkpoint_loads_anywhere(graph_dir, tmp_path, model):
    args = [*ARGS, "--model", model]
    _run([sys.executable, "-m", "hoprec.train.distributed", "--graph", str(graph_dir),
          "--out", str(tmp_path / "one"), *args])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
          "-m", "hoprec.train.distributed", "--graph", str(graph_dir), "--out", str(tmp_path / "two"), *args])
    one = json.loads((tmp_path / "one" / "run.json").read_text())
    two = json.loads((tmp_path / "two" / "run.json").read_text())
    assert (one["world_size"], one["backend"], one["model"]) == (1, "none", model)
    assert (two["world_size"], two["backend"], two["model"]) == (2, "gloo", model)
    if model == "lightgcn":  # each of the 2 ranks propagated over half of the adjacency's rows
        assert (one["propagation"], two["propagation"]) == ("whole graph", "sharded")
    assert one["examples"] == two["examples"] and len(two["log"]) == 3
    assert two["log"][-1]["loss"] < two["log"][0]["loss"]
    # each step of 2 ranks x 256 examples averages to the 512-example step of one process
    assert abs(one["hit_rate_at_10"] - two["hit_rate_at_10"]) <= 0.02
    for a, b in zip(one["log"], two["log"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)
    m1, _ = load_checkpoint(tmp_path / "one" / "checkpoint")
    m2, meta = load_checkpoint(tmp_path / "two" / "checkpoint")  # rank 0's, loaded here
    assert type(m2).name == model
    for k, v in m1.state_dict().items():
        torch.testing.assert_close(v, m2.state_dict()[k], atol=1e-4, rtol=1e-3)
    # the loaded model reproduces the hit rate rank 0 measured
    g = open_graph(meta["graph"])
    (et,) = [e for e in g.edges if e[0] == g.entity_type]
    s = g.edges[et]
    users, items = s.col.numpy(), s.dst.numpy()
    train, hu, hi = split_holdout(users, items, s.time.numpy(), 0.1, 0)
    seen = sp.csr_matrix((np.ones(len(train)), (users[train], items[train])), shape=(m2.n_users, m2.n_items))
    assert hit_rate(m2, hu, hi, 10, seen) == pytest.approx(two["hit_rate_at_10"])
    # exported vectors: a FAISS scan over them ranks as the model scores
    uv, iv = load_embeddings(tmp_path / "two" / "checkpoint")
    assert uv.shape[0] == m2.n_users and iv.shape[0] == m2.n_items and uv.dtype == np.float32
    got, _ = build_index(iv).search(uv[:20], 5)
    want = m2.scores(torch.arange(20)).topk(5).indices.numpy()
    assert (got == want).mean() > 0.95  # ties aside


def test_holdout_is_each_chosen_customers_latest_pair():
    users = np.array([0, 0, 0, 1, 1, 2])
    items = np.array([5, 6, 7, 5, 8, 9])
    times = np.array([3, 1, 2, 1, 2, 1])
    train, hu, hi = split_holdout(users, items, times, share=0.999, seed=0)
    assert sorted(zip(hu.tolist(), hi.tolist())) == [(0, 5), (1, 8)]  # customer 2 has one pair
    assert sorted(train.tolist()) == [1, 2, 3, 5]


def test_single_process_fit_learns_and_checks_batch_split():
    rng = np.random.default_rng(0)
    n_u, n_i = 40, 30
    users = np.repeat(np.arange(n_u), 6)
    items = (users % 5) * 6 + rng.integers(0, 6, len(users))  # five taste groups
    model = BPRMF(n_u, n_i, 8)
    ctx = Context(0, 1, 0, torch.device("cpu"), None)
    ex = torch.from_numpy(np.stack([users, items], 1))
    log = fit(model, ex, n_i, DistConfig(dim=8, epochs=30, batch_size=48, lr=0.05), ctx)
    assert log[-1]["loss"] < 0.5 * log[0]["loss"]
    top = model.scores(torch.arange(n_u)).topk(6).indices.numpy()
    assert ((top // 6) == (np.arange(n_u) % 5)[:, None]).mean() > 0.8  # each customer's own group
    with pytest.raises(ValueError, match="divisible by the number of processes 3"):
        fit(model, ex, n_i, DistConfig(batch_size=10), Context(0, 3, 0, torch.device("cpu"), None))
    with pytest.raises(ValueError, match="fewer than one batch"):
        fit(model, ex[:5], n_i, DistConfig(batch_size=48), ctx)


def test_missing_checkpoint_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json missing"):
        load_checkpoint(tmp_path)


def test_normalized_adjacency_is_symmetric_d_half_a_d_half():
    users, items = np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 2])  # (1, 1) twice: counts once
    a = normalized_adjacency(users, items, 3, 3).toarray()
    dense = np.zeros((6, 6))
    for u, i in {(0, 0), (0, 1), (1, 1), (1, 2)}:
        dense[u, 3 + i] = dense[3 + i, u] = 1
    d = dense.sum(1)
    inv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1)), 0)
    np.testing.assert_allclose(a, inv[:, None] * dense * inv[None, :], rtol=1e-6)
    assert a[2].sum() == 0  # customer 2 has no pair
    with pytest.raises(ValueError, match=r"products in \[0, 2\)"):
        normalized_adjacency(users, items, 3, 2)


def test_lightgcn_propagates_as_the_formula_and_learns_taste_groups(tmp_path):
    rng = np.random.default_rng(0)
    n_u, n_i = 40, 30
    users = np.repeat(np.arange(n_u), 6)
    items = (users % 5) * 6 + rng.integers(0, 6, len(users))  # five taste groups
    adj = normalized_adjacency(users, items, n_u, n_i)
    torch.manual_seed(0)
    model = LightGCNDDP(n_u, n_i, 8, layers=2)
    with pytest.raises(RuntimeError, match="attach"):
        model.propagate()
    model.attach(adj)
    e0 = model.net.emb.weight.detach().numpy()
    a = adj.toarray()
    np.testing.assert_allclose(model.propagate().detach().numpy(), (e0 + a @ e0 + a @ a @ e0) / 3, atol=1e-5)
    with pytest.raises(RuntimeError, match="freeze"):
        model.scores(torch.arange(3))
    ctx = Context(0, 1, 0, torch.device("cpu"), None)
    ex = torch.from_numpy(np.stack([users, items], 1))
    cfg = DistConfig(model="lightgcn", dim=8, epochs=30, batch_size=48, lr=0.05)
    log = fit(model, ex, n_i, cfg, ctx)
    assert log[-1]["loss"] < 0.5 * log[0]["loss"]
    model.freeze()
    top = model.scores(torch.arange(n_u)).topk(6).indices.numpy()
    assert ((top // 6) == (np.arange(n_u) % 5)[:, None]).mean() > 0.8  # each customer's own group
    save_checkpoint(model, tmp_path / "ck", cfg, {})
    loaded, meta = load_checkpoint(tmp_path / "ck")  # no graph needed to score
    assert meta["model"] == "lightgcn" and isinstance(loaded, LightGCNDDP)
    torch.testing.assert_close(loaded.scores(torch.arange(n_u)), model.scores(torch.arange(n_u)))
    with pytest.raises(ValueError, match="adjacency is"):
        LightGCNDDP(n_u, n_i + 1, 8).attach(adj)


@pytest.mark.parametrize("world", [2, 3])
def test_shards_split_each_node_type_and_reassemble_in_node_order(world):
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 30, 400), rng.zipf(1.5, 400) % 50  # skewed product degrees
    adj = normalized_adjacency(users, items, 30, 50)
    shards = [_Shard(adj, r, world, "cpu", (30,)) for r in range(world)]
    for seg, (a, b) in zip(shards[0].pieces, [(0, 30), (30, 80)]):
        assert seg[0][0] == a and seg[-1][1] == b and all(p[1] == q[0] for p, q in zip(seg, seg[1:]))
        assert all(hi > lo for lo, hi in seg)  # every rank gets rows of both types
    x = torch.randn(80, 8)
    pad = shards[0].pad
    parts = [torch.cat([y, torch.zeros(pad - len(y), 8)]) for y in (s.block @ x for s in shards)]
    torch.testing.assert_close(shards[0].assemble(parts), torch.from_numpy(adj.toarray()) @ x)
