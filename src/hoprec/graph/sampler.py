"""Time-respecting multi-hop neighbour sampling on a :class:`HeteroGraph`, in plain torch.

For hop ``h`` and every edge type ``(src, rel, dst)`` with a fan-out, each node of type ``dst``
added at hop ``h - 1`` (the seeds at hop 0) draws up to ``fanouts[(src, rel, dst)][h]`` of its
incoming edges, uniformly without replacement, among those **strictly older than its seed's
time**.  Messages then flow along the sampled edges from neighbour to seed.

With ``seed_time`` the sampling is *disjoint*: every sampled node belongs to one seed
(``batch``), inherits that seed's time, and is kept once per seed; the same global node reached
from two seeds appears twice.  Without ``seed_time`` nothing is filtered by time and a node is
kept once per batch (``batch`` then names the smallest seed index that reached it).

Everything is vectorised over nodes: the time cut is a batched binary search in each node's
time-sorted edge list, and ``k`` of ``n`` edges are drawn with Floyd's algorithm, one column of
``k`` at a time across all nodes.  Seeds take the first local positions of their type, in the
order given.  A call is a few hundred small tensor operations: on a busy machine, or in data
loader workers, ``torch.set_num_threads(1)`` is faster than intra-op threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from hoprec.graph.store import EdgeStore, EdgeType, HeteroGraph

_NO_TIME = torch.iinfo(torch.int64).max


@dataclass
class SampledSubgraph:
    """A sampled subgraph in local ids.

    ``node[t]``: global id of each local node of type ``t`` (local id = position);
    ``batch[t]``: the seed (position in the concatenated seeds) each node was reached from;
    ``time[t]``: the time the node inherits from that seed (int64 ns; int64 max without times);
    ``edge_index[e]``: ``2 x E`` local ``(src, dst)``; ``edge_id[e]``: positions in the graph's
    :class:`EdgeStore`; ``edge_weight[e]``, ``edge_time[e]``; ``num_sampled_nodes[t]`` and
    ``num_sampled_edges[e]`` per hop (index 0 of nodes = the seeds); ``seed_local[t]``: local ids
    of the seeds of type ``t`` (``arange``), ``seed_time``: per seed, in batch order.
    """

    node: dict[str, Tensor]
    batch: dict[str, Tensor]
    time: dict[str, Tensor]
    edge_index: dict[EdgeType, Tensor]
    edge_id: dict[EdgeType, Tensor]
    edge_weight: dict[EdgeType, Tensor]
    edge_time: dict[EdgeType, Tensor]
    num_sampled_nodes: dict[str, list[int]] = field(default_factory=dict)
    num_sampled_edges: dict[EdgeType, list[int]] = field(default_factory=dict)
    seed_local: dict[str, Tensor] = field(default_factory=dict)
    seed_time: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return sum(int(v.numel()) for v in self.seed_local.values())


def _time_cut(store: EdgeStore, start: Tensor, end: Tensor, before: Tensor) -> Tensor:
    """For each row ``[start, end)`` (sorted by time), the first position with time >= before."""
    lo, hi = start.clone(), end.clone()
    if store.time.numel() == 0:
        return lo
    last = store.time.numel() - 1
    steps = int((end - start).max().item()).bit_length() + 1 if len(start) else 0
    for _ in range(steps):
        active = lo < hi
        mid = (lo + hi) // 2
        older = store.time[mid.clamp(max=last)] < before
        lo = torch.where(active & older, mid + 1, lo)
        hi = torch.where(active & ~older, mid, hi)
    return lo


def _draw(start: Tensor, count: Tensor, k: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Uniformly ``min(k, count)`` distinct offsets per row: ``(row index, edge position)``."""
    rows = torch.arange(len(count))
    few = count <= k
    r_all = torch.repeat_interleave(rows[few], count[few])
    first = torch.repeat_interleave(torch.cumsum(count[few], 0) - count[few], count[few])
    p_all = start[r_all] + torch.arange(len(r_all)) - first
    many = rows[~few]
    n = count[many]
    picked = torch.empty((len(many), k), dtype=torch.int64)
    for i in range(k):  # Floyd: for j in n-k .. n-1, take t ~ U[0, j], or j if t was taken
        j = n - k + i
        t = torch.minimum((torch.rand(len(many), generator=gen, dtype=torch.float64)
                           * (j + 1)).long(), j)
        taken = (picked[:, :i] == t[:, None]).any(dim=1)
        picked[:, i] = torch.where(taken, j, t)
    r_many = many.repeat_interleave(k)
    p_many = start[r_many] + picked.reshape(-1)
    return torch.cat([r_all, r_many]), torch.cat([p_all, p_many])


class _Nodes:
    """The local nodes of one type; a node is found by its key (see :func:`_key`)."""

    def __init__(self, num_nodes: int) -> None:
        self.num_nodes = num_nodes
        self.gid: list[Tensor] = []
        self.batch: list[Tensor] = []
        self.keys = torch.zeros(0, dtype=torch.int64)  # sorted
        self.local = torch.zeros(0, dtype=torch.int64)  # local id of each sorted key
        self.size = 0
        self.per_hop: list[int] = []

    def add(self, key: Tensor, batch: Tensor, disjoint: bool) -> tuple[Tensor, _Front]:
        """Local ids of the candidate nodes ``key``, appending those not seen yet (in key order).

        Returns the local ids and the new nodes (the next hop's frontier of this type).
        """
        out = torch.empty_like(key)
        if len(self.keys):
            pos = torch.searchsorted(self.keys, key).clamp(max=len(self.keys) - 1)
            found = self.keys[pos] == key
            out[found] = self.local[pos[found]]
            fresh = torch.nonzero(~found).flatten()
        else:
            fresh = torch.arange(len(key))
        new_keys, inv = torch.unique(key[fresh], return_inverse=True)
        new_local = torch.arange(self.size, self.size + len(new_keys))
        out[fresh] = new_local[inv]
        gid = new_keys % self.num_nodes
        if disjoint:
            new_batch = new_keys // self.num_nodes
        else:  # the smallest seed index that reached the node
            new_batch = torch.full((len(new_keys),), torch.iinfo(torch.int64).max)
            new_batch = new_batch.scatter_reduce(0, inv, batch[fresh], reduce="amin")
        self.gid.append(gid)
        self.batch.append(new_batch)
        # merge the two sorted key lists without sorting again
        at = torch.searchsorted(self.keys, new_keys) + torch.arange(len(new_keys))
        old = torch.ones(len(self.keys) + len(new_keys), dtype=torch.bool)
        old[at] = False
        keys, local = torch.empty(len(old), dtype=torch.int64), torch.empty(len(old), dtype=torch.int64)
        keys[at], local[at] = new_keys, new_local
        keys[old], local[old] = self.keys, self.local
        self.keys, self.local = keys, local
        self.size += len(new_keys)
        return out, _Front(new_local, gid, new_batch)


@dataclass
class _Front:
    """Nodes of one type added at the previous hop: local ids, global ids, seeds."""

    local: Tensor
    gid: Tensor
    batch: Tensor


class NeighborSampler:
    """Samples time-respecting multi-hop neighbourhoods of seed nodes (see the module docstring).

    ``fanouts``: one list of per-hop fan-outs for every edge type, or a dict per edge type (edge
    types left out are not followed); ``seed`` fixes the random stream, so a new sampler with the
    same seed draws the same samples for the same calls.

    >>> sampler = NeighborSampler(graph, [10, 5], seed=0)            # doctest: +SKIP
    >>> sub = sampler.sample({"customers": ids}, {"customers": t})   # doctest: +SKIP
    """

    def __init__(self, graph: HeteroGraph, fanouts: list[int] | dict[EdgeType, list[int]],
                 seed: int = 0) -> None:
        self.graph = graph
        if isinstance(fanouts, dict):
            unknown = [e for e in fanouts if e not in graph.edges]
            if unknown:
                raise KeyError(f"fanouts: edge types not in the graph: {unknown}")
            self.fanouts = {e: list(f) for e, f in fanouts.items()}
        else:
            self.fanouts = {e: list(fanouts) for e in graph.edges}
        hops = {len(f) for f in self.fanouts.values()}
        if len(hops) > 1:
            raise ValueError(f"fanouts: every edge type needs the same number of hops, got {hops}")
        self.num_hops = hops.pop() if hops else 0
        self.generator = torch.Generator().manual_seed(int(seed))

    def __repr__(self) -> str:
        return f"NeighborSampler(hops={self.num_hops}, edge_types={len(self.fanouts)})"

    def sample(self, seeds: dict[str, Tensor],
               seed_time: dict[str, Tensor] | None = None) -> SampledSubgraph:
        """Sample around ``seeds`` (global ids per node type), before ``seed_time`` (ns) if given."""
        g, disjoint = self.graph, seed_time is not None
        nodes = {t: _Nodes(n) for t, n in g.num_nodes.items()}
        times, frontier, seed_local = [], {}, {}
        offset = 0
        for t, ids in seeds.items():
            ids = torch.as_tensor(ids, dtype=torch.int64).flatten()
            if len(ids) and (ids.min() < 0 or ids.max() >= g.num_nodes[t]):
                raise IndexError(f"seeds[{t!r}]: node id out of range 0..{g.num_nodes[t] - 1}")
            b = torch.arange(offset, offset + len(ids))
            offset += len(ids)
            times.append(torch.as_tensor(seed_time[t], dtype=torch.int64).flatten() if disjoint
                         else torch.full((len(ids),), _NO_TIME, dtype=torch.int64))
            # every seed is its own node, even when two seeds name the same global node
            node = nodes[t]
            node.gid, node.batch, node.size = [ids], [b], len(ids)
            keys, first = _first_unique(_key(ids, b, node.num_nodes, disjoint))
            node.keys, node.local = keys, first
            seed_local[t] = torch.arange(len(ids))
            frontier[t] = _Front(seed_local[t], ids, b)
        all_time = torch.cat(times) if times else torch.zeros(0, dtype=torch.int64)
        min_time = int(all_time.min()) if len(all_time) else _NO_TIME
        for node in nodes.values():
            node.per_hop.append(node.size)
        edges: dict[EdgeType, list[tuple[Tensor, Tensor]]] = {e: [] for e in self.fanouts}
        for hop in range(self.num_hops):
            drawn: dict[str, list[tuple[EdgeType, Tensor, Tensor, Tensor]]] = {}
            for et, fan in self.fanouts.items():
                src_t, _, dst_t = et
                f = frontier.get(dst_t)
                if fan[hop] <= 0 or f is None or len(f.gid) == 0:
                    continue
                store = g.edges[et]
                start, end = store.rowptr[f.gid], store.rowptr[f.gid + 1]
                if disjoint and store.time.numel() and int(store.time.max()) >= min_time:
                    end = _time_cut(store, start, end, all_time[f.batch])
                row, pos = _draw(start, end - start, fan[hop], self.generator)
                drawn.setdefault(src_t, []).append((et, f.local[row], f.batch[row], pos))
            frontier = {}
            got: dict[EdgeType, tuple[Tensor, Tensor]] = {}
            for src_t, parts in drawn.items():
                node, store_of = nodes[src_t], g.edges
                gid = torch.cat([store_of[et].col[pos] for et, _, _, pos in parts])
                batch = torch.cat([b for _, _, b, _ in parts])
                local, frontier[src_t] = node.add(_key(gid, batch, node.num_nodes, disjoint),
                                                  batch, disjoint)
                for (et, dst_local, _, pos), src_local in zip(
                        parts, torch.split(local, [len(p[3]) for p in parts])):
                    got[et] = (torch.stack([src_local, dst_local]), pos)
            for et in self.fanouts:
                edges[et].append(got.get(et, _empty_edges()))
            for t, n in nodes.items():
                n.per_hop.append(len(frontier[t].gid) if t in frontier else 0)
        return _assemble(g, nodes, edges, all_time, seed_local, disjoint)


def _key(gid: Tensor, batch: Tensor, num_nodes: int, disjoint: bool) -> Tensor:
    """``batch * num_nodes + gid`` (disjoint: one node per seed) or ``gid``."""
    return batch * num_nodes + gid if disjoint else gid.clone()


def _first_unique(key: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct keys (sorted) and, for each, the position of its first occurrence."""
    uniq, inv = torch.unique(key, return_inverse=True)
    first = torch.full((len(uniq),), len(key), dtype=torch.int64)
    first = first.scatter_reduce(0, inv, torch.arange(len(key)), reduce="amin")
    return uniq, first


def _empty_edges() -> tuple[Tensor, Tensor]:
    return torch.zeros((2, 0), dtype=torch.int64), torch.zeros(0, dtype=torch.int64)


def _assemble(g: HeteroGraph, nodes: dict[str, _Nodes], edges: dict, all_time: Tensor,
              seed_local: dict[str, Tensor], disjoint: bool) -> SampledSubgraph:
    out = SampledSubgraph({}, {}, {}, {}, {}, {}, {}, seed_local=seed_local,
                          seed_time=all_time if disjoint else None)
    empty = torch.zeros(0, dtype=torch.int64)
    for t, n in nodes.items():
        out.node[t] = torch.cat(n.gid) if n.gid else empty
        out.batch[t] = torch.cat(n.batch) if n.batch else empty
        out.time[t] = (all_time[out.batch[t]] if disjoint
                       else torch.full((n.size,), _NO_TIME, dtype=torch.int64))
        out.num_sampled_nodes[t] = n.per_hop
    for et, parts in edges.items():
        store = g.edges[et]
        parts = parts or [_empty_edges()]
        pos = torch.cat([p[1] for p in parts])
        out.edge_index[et] = torch.cat([p[0] for p in parts], dim=1)
        out.edge_id[et] = pos
        out.edge_weight[et] = store.weight[pos]
        out.edge_time[et] = store.time[pos]
        out.num_sampled_edges[et] = [int(p[1].numel()) for p in parts]
    return out
