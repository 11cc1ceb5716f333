"""graph stage of the hoprec pipeline: tables -> heterogeneous graph, features, sampling.

Needs ``torch`` (``pip install 'hoprec[graph]'``); PyG is optional (:meth:`HeteroGraph.to_pyg`,
:mod:`hoprec.graph.pyg`).
"""

from hoprec.compat import require

require("torch", "graph")

from hoprec.graph.hetero import GraphConfig, build_graph  # noqa: E402
from hoprec.graph.sampler import NeighborSampler, SampledSubgraph  # noqa: E402
from hoprec.graph.store import STATIC_TIME, EdgeStore, EdgeType, HeteroGraph  # noqa: E402

__all__ = [
    "STATIC_TIME", "EdgeStore", "EdgeType", "GraphConfig", "HeteroGraph", "NeighborSampler",
    "SampledSubgraph", "build_graph",
]
