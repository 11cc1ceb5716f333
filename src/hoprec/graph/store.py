"""The heterogeneous graph as plain tensors: node counts, CSR edges, node features.

Edges of one type are held **by destination** (CSC of the adjacency, as PyG's samplers use it):
the edges arriving at destination node ``v`` are the positions ``rowptr[v] : rowptr[v + 1]``;
``col`` holds their source nodes, ``time`` and ``weight`` their attributes.  Within each
destination the edges are sorted by time (ties keep the order they were given in), so "the
edges of ``v`` before ``t``" is a prefix found by binary search.  A position in this order is the edge's id everywhere
(``edge_index``, the sampler's ``edge_id``, :meth:`HeteroGraph.to_pyg`).

Times are int64 nanoseconds since the epoch; rows of static tables carry :data:`STATIC_TIME`
(``pd.Timestamp.min``), older than any seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from hoprec.compat import require
from hoprec.data.idmap import IdMap
from hoprec.graph.features import TableEncoder

EdgeType = tuple[str, str, str]

#: The time of edges and nodes that come from static tables: ``pd.Timestamp.min`` in ns.
STATIC_TIME: int = int(pd.Timestamp.min.value)


@dataclass
class EdgeStore:
    """One edge type, CSR by destination (see the module docstring).

    ``rowptr``: int64 ``(num_dst + 1,)``; ``col``: int64 ``(E,)`` source node ids;
    ``time``: int64 ``(E,)`` ns since the epoch; ``weight``: float32 ``(E,)``.
    """

    rowptr: Tensor
    col: Tensor
    time: Tensor
    weight: Tensor
    num_src: int

    @classmethod
    def from_coo(
        cls, src: np.ndarray, dst: np.ndarray, time: np.ndarray, weight: np.ndarray,
        num_src: int, num_dst: int,
    ) -> EdgeStore:
        """Build from parallel arrays of ``(source, destination, time, weight)``."""
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        time = np.asarray(time, dtype=np.int64)
        if len(src) and (src.min() < 0 or src.max() >= num_src or dst.min() < 0 or dst.max() >= num_dst):
            raise ValueError("EdgeStore.from_coo: node id out of range")
        # by destination, then time (ties keep the given order): two stable passes
        order = np.argsort(time, kind="stable") if len(time) and time.min() < time.max() else None
        order = (np.argsort(dst, kind="stable") if order is None
                 else order[np.argsort(dst[order], kind="stable")])
        counts = np.bincount(dst, minlength=num_dst)
        rowptr = np.zeros(num_dst + 1, dtype=np.int64)
        np.cumsum(counts, out=rowptr[1:])
        return cls(
            rowptr=torch.from_numpy(rowptr),
            col=torch.from_numpy(src[order]),
            time=torch.from_numpy(time[order]),
            weight=torch.from_numpy(np.asarray(weight, dtype=np.float32)[order]),
            num_src=int(num_src),
        )

    def __len__(self) -> int:
        return int(self.col.numel())

    @property
    def num_dst(self) -> int:
        return int(self.rowptr.numel() - 1)

    @property
    def dst(self) -> Tensor:
        """The destination of each edge, in edge-id order."""
        deg = self.rowptr[1:] - self.rowptr[:-1]
        return torch.repeat_interleave(torch.arange(self.num_dst, dtype=torch.int64), deg)

    @property
    def edge_index(self) -> Tensor:
        """``2 x E`` int64: row 0 the sources, row 1 the destinations (PyG's convention)."""
        return torch.stack([self.col, self.dst])

    def degree(self) -> Tensor:
        """Number of incoming edges of each destination node."""
        return self.rowptr[1:] - self.rowptr[:-1]


@dataclass
class HeteroGraph:
    """A typed, time-stamped graph built from one dataset snapshot.

    ``x_num[t]`` is float32 ``(num_nodes[t], d)`` (z-scored numbers, missing flags, hashed text);
    ``x_cat[t]`` is int64 ``(num_nodes[t], c)`` category codes, 0 = unknown, column ``j`` below
    ``cat_cardinalities[t][j]``; ``node_time[t]`` is when each node's row became known
    (:data:`STATIC_TIME` for static tables); ``id_maps[t]`` turns node ids into external keys;
    ``encoders[t]`` names the feature columns and can encode later rows the same way.
    """

    num_nodes: dict[str, int]
    edges: dict[EdgeType, EdgeStore]
    x_num: dict[str, Tensor] = field(default_factory=dict)
    x_cat: dict[str, Tensor] = field(default_factory=dict)
    cat_cardinalities: dict[str, list[int]] = field(default_factory=dict)
    encoders: dict[str, TableEncoder] = field(default_factory=dict)
    node_time: dict[str, Tensor] = field(default_factory=dict)
    id_maps: dict[str, IdMap] = field(default_factory=dict)
    entity_type: str = ""
    item_type: str = ""
    cutoff: pd.Timestamp | None = None

    @property
    def node_types(self) -> list[str]:
        return list(self.num_nodes)

    @property
    def edge_types(self) -> list[EdgeType]:
        return list(self.edges)

    def metadata(self) -> tuple[list[str], list[EdgeType]]:
        """``(node_types, edge_types)``, as PyG's ``HeteroData.metadata()``."""
        return self.node_types, self.edge_types

    def num_edges(self) -> int:
        return sum(len(s) for s in self.edges.values())

    def summary(self) -> str:
        """A printable table of node and edge counts and feature sizes."""
        lines = [f"HeteroGraph (cutoff {self.cutoff}): {sum(self.num_nodes.values()):,} nodes, "
                 f"{self.num_edges():,} edges"]
        w = max([len(t) for t in self.num_nodes] + [9])
        lines.append(f"  {'node type':<{w}} {'nodes':>10} {'x_num':>6} {'x_cat':>6}")
        for t, n in self.num_nodes.items():
            dn = self.x_num[t].shape[1] if t in self.x_num else 0
            dc = self.x_cat[t].shape[1] if t in self.x_cat else 0
            lines.append(f"  {t:<{w}} {n:>10,} {dn:>6} {dc:>6}")
        names = [" -> ".join(e) for e in self.edges]
        w = max([len(s) for s in names] + [9])
        lines.append(f"  {'edge type':<{w}} {'edges':>10} {'static':>7}")
        for name, s in zip(names, self.edges.values()):
            static = bool(len(s)) and bool((s.time == STATIC_TIME).all())
            lines.append(f"  {name:<{w}} {len(s):>10,} {'yes' if static else '':>7}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"HeteroGraph(node_types={len(self.num_nodes)}, edge_types={len(self.edges)}, "
                f"nodes={sum(self.num_nodes.values())}, edges={self.num_edges()})")

    def to_pyg(self):  # -> torch_geometric.data.HeteroData
        """The graph as a PyG ``HeteroData`` (needs ``torch_geometric``).

        Node stores get ``num_nodes``, ``x`` (= ``x_num``), ``x_cat`` and ``node_time``; edge
        stores get ``edge_index`` (in edge-id order), ``edge_weight`` and ``time``.
        """
        pyg_data = require("torch_geometric.data", "pyg")
        data = pyg_data.HeteroData()
        for t, n in self.num_nodes.items():
            data[t].num_nodes = n
            if t in self.x_num:
                data[t].x = self.x_num[t]
            if t in self.x_cat:
                data[t].x_cat = self.x_cat[t]
            if t in self.node_time:
                data[t].node_time = self.node_time[t]
        for et, s in self.edges.items():
            data[et].edge_index = s.edge_index
            data[et].edge_weight = s.weight
            data[et].time = s.time
        return data
