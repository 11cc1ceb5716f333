"""The graph on disk as memory-mapped arrays: worker processes share one copy.

An :class:`~hoprec.graph.store.EdgeStore` is four ``.npy`` files (``rowptr``, ``col``, ``time``,
``weight``) and a ``store.json``; a whole :class:`~hoprec.graph.store.HeteroGraph` is a folder::

    graph/
      graph.json                      node counts, edge types, entity/item type, cutoff, features
      edges/<src>__<rel>__<dst>/      one EdgeStore (rowptr.npy col.npy time.npy weight.npy store.json)
      nodes/<type>/                   x_num.npy x_cat.npy node_time.npy id_map.parquet encoder.pkl

:func:`open_edge_store` / :func:`open_graph` map the arrays with ``numpy.load(mmap_mode="r")``
and wrap them as (read-only) tensors without copying: the operating system's page cache holds
one copy for every process that opens the folder, and pages not touched are never read, so a
graph larger than a process's memory can still be sampled.  Never write into those tensors.

Writes are atomic: everything goes to a temporary sibling folder that is renamed into place
when complete, so a reader never sees a mix of old and new files (while an existing folder is
replaced there is an instant between its two renames when the path is absent).

:class:`CSRWriter` builds an edge store on disk from chunks of COO edges in two passes
(count destinations, then place each edge at its slot), holding only ``O(num_dst)`` counters
and one chunk in memory; :mod:`hoprec.graph.ooc` feeds it from DuckDB.

``encoder.pkl`` files are pickles: open only graph folders you wrote yourself.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hoprec.data.idmap import IdMap
from hoprec.graph.store import EdgeStore, EdgeType, HeteroGraph

FORMAT = "hoprec-graph-1"
_ARRAYS = {"rowptr": np.int64, "col": np.int64, "time": np.int64, "weight": np.float32}


# ------------------------------------------------------------------------------- atomic folders
class _AtomicFolder:
    """``with _AtomicFolder(path) as tmp:`` write into ``tmp``; renamed to ``path`` on success."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}")

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir()
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = None
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(self.path, old)
        os.replace(self.tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _tensor(a: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():  # a read-only memory map: torch warns it is not writable
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(a)


def _load(path: Path, mmap: bool) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


# ------------------------------------------------------------------------------- one edge store
def _write_store_files(store: EdgeStore, folder: Path) -> None:
    for name, dtype in _ARRAYS.items():
        np.save(folder / f"{name}.npy", getattr(store, name).numpy().astype(dtype, copy=False))
    (folder / "store.json").write_text(json.dumps(
        {"format": FORMAT, "num_src": store.num_src, "num_dst": store.num_dst, "num_edges": len(store)}))


def save_edge_store(store: EdgeStore, folder: str | Path) -> Path:
    """Write ``store`` to ``folder`` (atomically) and return the folder."""
    with _AtomicFolder(folder) as tmp:
        _write_store_files(store, tmp)
    return Path(folder)


def open_edge_store(folder: str | Path, mmap: bool = True) -> EdgeStore:
    """The edge store in ``folder``, memory-mapped (``mmap=True``) or read into memory."""
    folder = Path(folder)
    meta_path = folder / "store.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{folder} is not an edge store folder (no store.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    arrays = {name: _load(folder / f"{name}.npy", mmap) for name in _ARRAYS}
    for name, dtype in _ARRAYS.items():
        if arrays[name].dtype != dtype or arrays[name].ndim != 1:
            raise ValueError(f"{folder / name}.npy: expected a 1-d {np.dtype(dtype)} array, "
                             f"found {arrays[name].ndim}-d {arrays[name].dtype}")
    n = meta["num_edges"]
    if len(arrays["rowptr"]) != meta["num_dst"] + 1 or any(len(arrays[k]) != n for k in ("col", "time", "weight")):
        raise ValueError(f"{folder}: array lengths do not match store.json ({meta})")
    return EdgeStore(**{k: _tensor(v) for k, v in arrays.items()}, num_src=int(meta["num_src"]))


# ------------------------------------------------------------------------------- a whole graph
def _edge_dir(et: EdgeType) -> str:
    return "__".join(et)


def save_graph(graph: HeteroGraph, folder: str | Path) -> Path:
    """Write every array of ``graph`` (and its id maps and encoders) to ``folder``, atomically."""
    with _AtomicFolder(folder) as tmp:
        for et, store in graph.edges.items():
            d = tmp / "edges" / _edge_dir(et)
            d.mkdir(parents=True)
            _write_store_files(store, d)
        for t in graph.num_nodes:
            d = tmp / "nodes" / t
            d.mkdir(parents=True)
            for name, feats in (("x_num", graph.x_num), ("x_cat", graph.x_cat), ("node_time", graph.node_time)):
                if t in feats:
                    np.save(d / f"{name}.npy", feats[t].numpy())
            if t in graph.id_maps:
                graph.id_maps[t].save(d / "id_map.parquet")
            if t in graph.encoders:
                (d / "encoder.pkl").write_bytes(pickle.dumps(graph.encoders[t]))
        meta = {
            "format": FORMAT,
            "num_nodes": graph.num_nodes,
            "edge_types": [list(et) for et in graph.edges],
            "cat_cardinalities": graph.cat_cardinalities,
            "entity_type": graph.entity_type,
            "item_type": graph.item_type,
            "cutoff": None if graph.cutoff is None else str(pd.Timestamp(graph.cutoff)),
        }
        (tmp / "graph.json").write_text(json.dumps(meta, indent=1))
    return Path(folder)


def open_graph(folder: str | Path, mmap: bool = True) -> HeteroGraph:
    """The graph saved in ``folder``; arrays memory-mapped unless ``mmap=False``."""
    folder = Path(folder)
    meta_path = folder / "graph.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{folder} is not a saved graph (no graph.json); write one with save_graph")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    g = HeteroGraph(dict(meta["num_nodes"]), {}, entity_type=meta["entity_type"],
                    item_type=meta["item_type"],
                    cutoff=None if meta["cutoff"] is None else pd.Timestamp(meta["cutoff"]))
    g.cat_cardinalities = {k: list(v) for k, v in meta["cat_cardinalities"].items()}
    for et in meta["edge_types"]:
        g.edges[tuple(et)] = open_edge_store(folder / "edges" / _edge_dir(tuple(et)), mmap=mmap)
    for t in g.num_nodes:
        d = folder / "nodes" / t
        for name, feats in (("x_num", g.x_num), ("x_cat", g.x_cat), ("node_time", g.node_time)):
            if (d / f"{name}.npy").is_file():
                feats[t] = _tensor(_load(d / f"{name}.npy", mmap))
        if (d / "id_map.parquet").is_file():
            g.id_maps[t] = IdMap.load(d / "id_map.parquet")
        if (d / "encoder.pkl").is_file():
            g.encoders[t] = pickle.loads((d / "encoder.pkl").read_bytes())
    return g


# ------------------------------------------------------------------------------- out-of-core build
class CSRWriter:
    """Build an :class:`EdgeStore` on disk from COO chunks without holding all edges in memory.

    ``chunks()`` must return a fresh iterable of ``(src, dst, time, weight)`` array tuples each
    call (it is read twice) and yield edges **in non-decreasing time order** (e.g. a DuckDB query
    ``ORDER BY time``): pass 1 counts edges per destination, pass 2 writes each edge at the next
    free slot of its destination in memory-mapped ``.npy`` files, so within a destination edges
    stay in time order (ties in the given order), as :meth:`EdgeStore.from_coo` orders them.
    Memory: ``O(num_dst)`` plus one chunk.
    """

    def __init__(self, folder: str | Path, num_src: int, num_dst: int) -> None:
        self.folder, self.num_src, self.num_dst = Path(folder), int(num_src), int(num_dst)

    def _check(self, src: np.ndarray, dst: np.ndarray, time: np.ndarray, last: int, i: int) -> int:
        if not (len(src) == len(dst) == len(time)):
            raise ValueError(f"CSRWriter: chunk {i} has arrays of different lengths")
        if len(src) == 0:
            return last
        if src.min() < 0 or src.max() >= self.num_src or dst.min() < 0 or dst.max() >= self.num_dst:
            raise ValueError(f"CSRWriter: chunk {i} has node ids outside [0, num_src={self.num_src}) "
                             f"x [0, num_dst={self.num_dst})")
        if time[0] < last or (len(time) > 1 and (np.diff(time) < 0).any()):
            raise ValueError(f"CSRWriter: chunk {i} is not in time order; feed edges ORDER BY time")
        return int(time[-1])

    def write(self, chunks: Callable[[], Iterable[tuple[np.ndarray, ...]]],
              progress: Callable[[int], None] | None = None) -> EdgeStore:
        counts = np.zeros(self.num_dst, np.int64)
        last, n = np.iinfo(np.int64).min, 0
        for i, (src, dst, time, _w) in enumerate(chunks()):
            last = self._check(np.asarray(src), np.asarray(dst), np.asarray(time), last, i)
            counts += np.bincount(np.asarray(dst, np.int64), minlength=self.num_dst)
            n += len(dst)
        rowptr = np.zeros(self.num_dst + 1, np.int64)
        np.cumsum(counts, out=rowptr[1:])
        with _AtomicFolder(self.folder) as tmp:
            np.save(tmp / "rowptr.npy", rowptr)
            out = {name: np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=(n,))
                   for name, dtype in _ARRAYS.items() if name != "rowptr"}
            nxt = rowptr[:-1].copy()
            written = 0
            for src, dst, time, w in chunks():
                dst = np.asarray(dst, np.int64)
                if not len(dst):
                    continue
                order = np.argsort(dst, kind="stable")  # group by destination, keep time order
                d = dst[order]
                first = np.r_[0, np.flatnonzero(np.diff(d)) + 1]
                rank = np.arange(len(d)) - np.repeat(first, np.diff(np.r_[first, len(d)]))
                pos = nxt[d] + rank
                out["col"][pos] = np.asarray(src, np.int64)[order]
                out["time"][pos] = np.asarray(time, np.int64)[order]
                out["weight"][pos] = np.asarray(w, np.float32)[order]
                np.add.at(nxt, d[first], np.diff(np.r_[first, len(d)]))
                written += len(d)
                if progress:
                    progress(written)
            if written != n:
                raise ValueError(f"CSRWriter: chunks() gave {n} edges on the first pass and {written} on the second")
            for a in out.values():
                a.flush()
            del out
            (tmp / "store.json").write_text(json.dumps(
                {"format": FORMAT, "num_src": self.num_src, "num_dst": self.num_dst, "num_edges": n}))
        return open_edge_store(self.folder)
