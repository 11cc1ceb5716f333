"""The graph on disk: memory-mapped round trips, atomic writes, shared pages across processes,
the chunked CSR writer, and the DuckDB out-of-core interaction graph against the in-memory one."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hoprec.data.schema import load_schema
from hoprec.graph import NeighborSampler
from hoprec.graph.mmap_store import (
    CSRWriter,
    open_edge_store,
    open_graph,
    save_edge_store,
    save_graph,
)
from hoprec.graph.ooc import build_interaction_graph
from hoprec.graph.store import EdgeStore


def _mapped(path: Path) -> bool:
    """Whether ``path`` is memory-mapped into this process."""
    return str(path.resolve()) in Path("/proc/self/maps").read_text()


def _backed_by(t: torch.Tensor, path: Path) -> bool:
    """Whether tensor ``t``'s memory lies inside a mapping of file ``path`` (no copy was made)."""
    ptr = t.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(str(path.resolve())):
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= ptr < hi:
                return True
    return False


def _same_store(a: EdgeStore, b: EdgeStore) -> None:
    assert a.num_src == b.num_src and a.num_dst == b.num_dst
    for name in ("rowptr", "col", "time", "weight"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_graph_round_trip_is_memory_mapped(fake_graph, tmp_path):
    folder = save_graph(fake_graph, tmp_path / "g")
    g = open_graph(folder)
    assert g.num_nodes == fake_graph.num_nodes and g.edge_types == fake_graph.edge_types
    for et in fake_graph.edges:
        _same_store(g.edges[et], fake_graph.edges[et])
    for t in fake_graph.num_nodes:
        assert torch.equal(g.x_num[t], fake_graph.x_num[t]) and torch.equal(g.x_cat[t], fake_graph.x_cat[t])
        assert torch.equal(g.node_time[t], fake_graph.node_time[t])
        assert list(g.id_maps[t].external) == list(fake_graph.id_maps[t].external)
    assert g.cat_cardinalities == fake_graph.cat_cardinalities and g.cutoff == fake_graph.cutoff
    et = ("customers", "orders", "products")
    col = folder / "edges" / "customers__orders__products" / "col.npy"
    assert _backed_by(g.edges[et].col, col)  # the file's pages, not a copy
    assert _backed_by(g.x_num["products"], folder / "nodes" / "products" / "x_num.npy")
    assert not _backed_by(open_graph(folder, mmap=False).edges[et].col, col)


def test_sampling_a_mapped_graph_equals_sampling_in_memory(fake_graph, fake_dataset, tmp_path):
    g = open_graph(save_graph(fake_graph, tmp_path / "g"))
    seeds = {"customers": torch.arange(10)}
    cutoff = torch.full((10,), int(pd.Timestamp(fake_dataset.cutoff).value), dtype=torch.int64)
    a = NeighborSampler(fake_graph, [4, 3], seed=1).sample(seeds, seed_time={"customers": cutoff})
    b = NeighborSampler(g, [4, 3], seed=1).sample(seeds, seed_time={"customers": cutoff})
    for t in a.node:
        assert torch.equal(a.node[t], b.node[t])
    for et in a.edge_index:
        assert torch.equal(a.edge_index[et], b.edge_index[et])


def test_failed_save_leaves_the_old_graph(fake_graph, tmp_path):
    folder = save_graph(fake_graph, tmp_path / "g")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    broken = type(fake_graph)(**{**fake_graph.__dict__, "encoders": {"customers": lambda x: x}})
    with pytest.raises(Exception, match="pickle|lambda"):
        save_graph(broken, folder)
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["g"]  # no temporary folder left
    open_graph(folder)


def test_bad_folders_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no graph.json"):
        open_graph(tmp_path)
    store = EdgeStore.from_coo(np.array([0, 1]), np.array([1, 0]), np.array([5, 6]), np.ones(2), 2, 2)
    save_edge_store(store, tmp_path / "s")
    np.save(tmp_path / "s" / "col.npy", np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="lengths do not match"):
        open_edge_store(tmp_path / "s")


def _child_sum(folder: str, queue) -> None:
    g = open_graph(folder)
    col = g.edges[("customers", "orders", "products")].col
    queue.put((int(col.sum()), _mapped(Path(folder) / "edges" / "customers__orders__products" / "col.npy")))


def test_worker_processes_map_the_same_files(fake_graph, tmp_path):
    folder = save_graph(fake_graph, tmp_path / "g")
    ctx = mp.get_context("fork")  # as DataLoader workers start on Linux; the parent maps nothing
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child_sum, args=(str(folder), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    expected = int(fake_graph.edges[("customers", "orders", "products")].col.sum())
    assert results == [(expected, True), (expected, True)]


def _random_edges(n: int, n_src: int, n_dst: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    time = np.sort(rng.integers(0, 50, n))  # many ties
    return rng.integers(0, n_src, n), rng.integers(0, n_dst, n), time, rng.random(n).astype(np.float32)


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_csr_writer_equals_from_coo(tmp_path, chunk):
    src, dst, time, w = _random_edges(500, 13, 11)

    def chunks():
        for i in range(0, len(src), chunk):
            yield src[i:i + chunk], dst[i:i + chunk], time[i:i + chunk], w[i:i + chunk]

    built = CSRWriter(tmp_path / "s", 13, 11).write(chunks)
    _same_store(built, EdgeStore.from_coo(src, dst, time, w, 13, 11))


def test_csr_writer_rejects_unordered_or_out_of_range_chunks(tmp_path):
    src, dst, time, w = _random_edges(20, 5, 5)
    with pytest.raises(ValueError, match="not in time order"):
        CSRWriter(tmp_path / "a", 5, 5).write(lambda: [(src, dst, time[::-1], w)])
    with pytest.raises(ValueError, match="outside"):
        CSRWriter(tmp_path / "b", 5, 4).write(lambda: [(src, dst, time, w)])
    assert not any(tmp_path.iterdir())


def test_out_of_core_graph_equals_the_in_memory_interaction_edges(fake_shop, fake_graph, fake_dataset, tmp_path):
    g = build_interaction_graph(load_schema(fake_shop), "orders", tmp_path / "ooc", "customer_id",
                                "product_id", cutoff=fake_dataset.cutoff, chunk_rows=50)

    def edges(graph, et):
        s = graph.edges[et]
        src = graph.id_maps[et[0]].to_external(s.col.numpy())
        dst = graph.id_maps[et[2]].to_external(s.dst.numpy())
        return sorted(zip(src.tolist(), dst.tolist(), s.time.tolist(), np.round(s.weight.numpy(), 5).tolist()))

    for et in [("customers", "orders", "products"), ("products", "rev_orders", "customers")]:
        got = edges(g, et)
        assert got and got == edges(fake_graph, et)
        assert (g.edges[et].time.numpy() < pd.Timestamp(fake_dataset.cutoff).value).all()
    assert _mapped(tmp_path / "ooc" / "edges" / "customers__orders__products" / "col.npy")
    assert os.listdir(tmp_path) == ["ooc"]


def test_out_of_core_graph_errors_name_the_problem(fake_shop, tmp_path):
    schema = load_schema(fake_shop)
    with pytest.raises(ValueError, match="not one of its foreign keys"):
        build_interaction_graph(schema, "orders", tmp_path / "x", "customer", "product_id")
    with pytest.raises(ValueError, match="no table 'order'"):
        build_interaction_graph(schema, "order", tmp_path / "x", "customer_id", "product_id")


def test_cli_graph_build(fake_shop, tmp_path):
    from typer.testing import CliRunner

    from hoprec.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["graph", "build", "-s", str(fake_shop), "--table", "orders", "--entity",
                              "customer_id", "--item", "product_id", "-o", str(tmp_path / "g")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "customers -> orders -> products" in res.output
    assert open_graph(tmp_path / "g").num_nodes == {"customers": 60, "products": 40}
    bad = runner.invoke(app, ["graph", "build", "-s", str(fake_shop), "--table", "orders", "--entity",
                              "customer", "--item", "product_id", "-o", str(tmp_path / "h")])
    assert bad.exit_code == 2 and "not one of its foreign keys" in bad.output
