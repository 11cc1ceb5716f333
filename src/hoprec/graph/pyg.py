"""The :class:`NeighborSampler` behind PyG's sampler interface (needs ``torch_geometric``).

>>> data = graph.to_pyg()                                              # doctest: +SKIP
>>> sampler = PyGNeighborSampler(graph, [10, 5], seed=0)               # doctest: +SKIP
>>> loader = NodeLoader(data, sampler, input_nodes=("customers", ids),
...                     input_time=times, batch_size=256)              # doctest: +SKIP

Edge ids are positions in the :class:`EdgeStore` order, the order :meth:`HeteroGraph.to_pyg`
writes ``edge_index`` in, so PyG's ``filter_hetero_data`` picks the right edge attributes.
"""

from __future__ import annotations

from hoprec.compat import require
from hoprec.graph.sampler import NeighborSampler
from hoprec.graph.store import EdgeType, HeteroGraph

_sampler = require("torch_geometric.sampler", "pyg")


class PyGNeighborSampler(_sampler.BaseSampler):
    """``torch_geometric.sampler.BaseSampler`` over :class:`NeighborSampler` (node seeds only).

    With seed times the output is disjoint: ``batch`` names each node's seed, as PyG's own
    temporal sampling does.
    """

    def __init__(self, graph: HeteroGraph, fanouts: list[int] | dict[EdgeType, list[int]],
                 seed: int = 0) -> None:
        super().__init__()
        self.sampler = NeighborSampler(graph, fanouts, seed=seed)

    def sample_from_nodes(self, index, **kwargs):  # NodeSamplerInput -> HeteroSamplerOutput
        if index.input_type is None:
            raise ValueError("PyGNeighborSampler samples heterogeneous graphs: give input_nodes "
                             "as (node_type, ids)")
        t = index.input_type
        times = None if index.time is None else {t: index.time}
        sub = self.sampler.sample({t: index.node}, times)
        return _sampler.HeteroSamplerOutput(
            node=sub.node,
            row={e: ei[0] for e, ei in sub.edge_index.items()},
            col={e: ei[1] for e, ei in sub.edge_index.items()},
            edge=dict(sub.edge_id),
            batch=dict(sub.batch) if index.time is not None else None,
            num_sampled_nodes=sub.num_sampled_nodes,
            num_sampled_edges=sub.num_sampled_edges,
            metadata=(index.input_id, index.time),
        )

    def sample_from_edges(self, index, neg_sampling=None):
        raise NotImplementedError(
            "PyGNeighborSampler samples from nodes only: sample both endpoints as node seeds"
        )
