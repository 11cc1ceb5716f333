"""What the graph models share: leak-free training graphs, tensors, the hetero SAGE network.

``build_graphs(dataset, t)`` builds the graph of the events before ``t`` (to train on what
happens in ``[t, cutoff)``) and the graph at the cutoff (to embed with the trained weights),
with the same feature encoders so category codes mean the same in both.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from hoprec.compat import require
from hoprec.data.dataset import Dataset

torch = require("torch", "graph")
nn = torch.nn


def start_fit(num_threads: int, seed: int) -> np.random.Generator:
    """Thread count and torch seed for a fit; the numpy generator of the same seed."""
    if num_threads:
        torch.set_num_threads(num_threads)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def restrict(dataset: Dataset, t: pd.Timestamp) -> Dataset:
    """The same dataset (same id maps) as it stood before ``t``."""
    if dataset.db is None:
        raise ValueError("graph models need a Dataset built from a snapshot (dataset.db)")
    inter = dataset.interactions
    return replace(
        dataset, interactions=inter.select(inter.time < np.datetime64(t)),
        db=dataset.db.snapshot(t), cutoff=pd.Timestamp(t),
    )


def build_graphs(dataset: Dataset, t_train: pd.Timestamp, half_life_days: float | None,
                 item_neighbours: int = 10, **graph: object):
    """``graph``: more :class:`~hoprec.graph.hetero.GraphConfig` settings (e.g. for ablations:
    ``exclude_tables``, ``attribute_nodes``, ``context_edges``, ``co_purchase``)."""
    from hoprec.graph.hetero import GraphConfig, build_graph

    if dataset.task is None:
        raise ValueError("graph models need the task: build the Dataset with Task.build_dataset")
    cfg = GraphConfig(half_life_days=half_life_days, max_item_neighbours=item_neighbours, **graph)
    g_train = build_graph(restrict(dataset, t_train), dataset.task, cfg)
    g_full = build_graph(dataset, dataset.task, cfg, encoders=g_train.encoders)
    return g_train, g_full


def warm_nodes(dataset: Dataset, t: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of customers and products with a positive event before ``t``."""
    inter = dataset.interactions
    pos = inter.positive() & (inter.time < np.datetime64(t))
    users = np.zeros(dataset.n_users, dtype=bool)
    items = np.zeros(dataset.n_items, dtype=bool)
    users[inter.user[pos]] = True
    items[inter.item[pos]] = True
    return users, items


def train_pairs(dataset: Dataset, t: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Distinct positive (customer, product) pairs in ``[t, cutoff)`` of customers with history."""
    inter = dataset.interactions
    pos = inter.positive()
    before = np.zeros(dataset.n_users, dtype=bool)
    before[inter.user[pos & (inter.time < np.datetime64(t))]] = True
    win = pos & (inter.time >= np.datetime64(t))
    keys = np.unique(inter.user[win].astype(np.int64) * dataset.n_items + inter.item[win])
    u, i = keys // dataset.n_items, keys % dataset.n_items
    keep = before[u]
    return u[keep], i[keep]


def held_out_map(users: np.ndarray, items: np.ndarray, rng: np.random.Generator, share: float = 0.1):
    """Split training pairs by customer: ``share`` of customers held out for early stopping."""
    uniq = np.unique(users)
    n_val = max(1, int(len(uniq) * share)) if len(uniq) > 10 else 0
    val = rng.choice(uniq, size=n_val, replace=False) if n_val else np.zeros(0, dtype=np.int64)
    is_val = np.isin(users, val)
    val_sorted = np.sort(val)
    truth = [items[users == v] for v in val_sorted]
    return users[~is_val], items[~is_val], val_sorted, truth


def map_at_k(scores: np.ndarray, truth: list[np.ndarray], k: int) -> float:
    """MAP@k of dense ``scores`` (held-out customers x items) against each row's true items:
    the early-stopping score of the graph models."""
    from hoprec.evaluate import metrics as M

    top = np.argsort(-scores, axis=1)[:, :k]
    indptr, indices = M.truth_to_csr(truth)
    return float(np.nanmean(M.ranking_metrics(top, indptr, indices, k)["map"]))


class _SpMM(torch.autograd.Function):
    """``A @ x`` for a fixed sparse ``A`` with a precomputed transpose for the backward pass
    (torch would otherwise transpose the CSR matrix on every backward)."""

    @staticmethod
    def forward(ctx, a, a_t, x):
        ctx.a_t = a_t
        return a @ x

    @staticmethod
    def backward(ctx, grad):
        return None, None, ctx.a_t @ grad


def _key(et: tuple[str, str, str]) -> str:
    return "__".join(et).replace(":", "_")


class HeteroSAGE(nn.Module):
    """Weighted-mean heterogeneous GraphSAGE (see :mod:`hoprec.models.sage` for the formula)."""

    def __init__(self, graph, dim: int, layers: int, max_nodes: int, attention: bool = False) -> None:
        super().__init__()
        self.attention = attention
        keep = {graph.entity_type, graph.item_type}
        self.types = [t for t in graph.node_types if graph.num_nodes[t] <= max_nodes or t in keep]
        self.etypes = [e for e in graph.edge_types if e[0] in self.types and e[2] in self.types]
        self.entity, self.item = graph.entity_type, graph.item_type
        self.num = nn.ModuleDict()
        self.cat = nn.ModuleDict()
        self.ids = nn.ModuleDict()
        for t in self.types:
            k = t.replace(":", "_")
            d_num = graph.x_num[t].shape[1] if t in graph.x_num else 0
            if d_num:
                self.num[k] = nn.Linear(d_num, dim)
            self.cat[k] = nn.ModuleList(nn.Embedding(c, dim) for c in graph.cat_cardinalities.get(t, []))
            self.ids[k] = nn.Embedding(graph.num_nodes[t], dim)
            nn.init.normal_(self.ids[k].weight, std=0.1)
        self.self_lin = nn.ModuleList(
            nn.ModuleDict({t.replace(":", "_"): nn.Linear(dim, dim) for t in self.types}) for _ in range(layers))
        # per relation a learned diagonal gain, per node type one neighbour transform: relation-
        # specific weighting at a tenth of the cost of a full matrix per relation
        self.rel_gain = nn.ModuleList(
            nn.ParameterDict({_key(e): nn.Parameter(torch.ones(dim)) for e in self.etypes}) for _ in range(layers))
        self.nbr_lin = nn.ModuleList(
            nn.ModuleDict({t.replace(":", "_"): nn.Linear(dim, dim, bias=False) for t in self.types}) for _ in range(layers))
        self.norm = nn.ModuleList(
            nn.ModuleDict({t.replace(":", "_"): nn.LayerNorm(dim) for t in self.types}) for _ in range(layers - 1))
        if attention:  # GAT-style: per layer and relation, a source and a destination vector
            self.att_src = nn.ModuleList(
                nn.ParameterDict({_key(e): nn.Parameter(torch.randn(dim) * 0.1) for e in self.etypes})
                for _ in range(layers))
            self.att_dst = nn.ModuleList(
                nn.ParameterDict({_key(e): nn.Parameter(torch.randn(dim) * 0.1) for e in self.etypes})
                for _ in range(layers))

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        kind = "HeteroGAT" if self.attention else "HeteroSAGE"
        return f"{kind}(node_types={len(self.types)}, edge_types={len(self.etypes)}, params={n:,})"

    def cold_masks(self, inputs: dict, id_dropout: float) -> dict:
        """Per entity/item type, which nodes are treated as cold in this pass: those not warm
        and, in training, a random ``id_dropout`` share of the warm ones (simulated cold)."""
        cold = {}
        for t, warm in inputs["warm"].items():
            c = ~warm
            if id_dropout > 0 and self.training and t == self.item:  # products only: a
                # customer's own purchases are what the customer tower reads
                c = c | (torch.rand(len(warm), generator=inputs.get("gen")) < id_dropout)
            cold[t] = c
        return cold

    def encode(self, inputs: dict, cold: dict) -> dict:
        """Initial states; a cold node has no id embedding, only its features."""
        h = {}
        for t in self.types:
            k = t.replace(":", "_")
            x = self.ids[k](inputs["ids"][t])
            if t in cold:
                x = x * (~cold[t]).unsqueeze(-1).to(x.dtype)
            if k in self.num:
                x = x + self.num[k](inputs["x_num"][t])
            for j, emb in enumerate(self.cat[k]):
                x = x + emb(inputs["x_cat"][t][:, j])
            h[t] = x
        return h

    def forward(self, inputs: dict, id_dropout: float = 0.0) -> dict:
        """A cold node (see :meth:`cold_masks`) also loses its incoming edges from customers and
        products (purchases, co-purchase, bought-after): it is seen as a new product or customer
        would be, through its attributes alone."""
        cold = self.cold_masks(inputs, id_dropout)
        h = self.encode(inputs, cold)
        last = len(self.self_lin) - 1
        for layer in range(len(self.self_lin)):
            out = {t: self.self_lin[layer][t.replace(":", "_")](h[t]) for t in self.types}
            nbr: dict = {}
            for e in self.etypes:
                adj = inputs["adj"].get(e)
                if adj is None:
                    continue
                if self.attention:
                    agg = self._attend(layer, e, inputs["edges"][e], h[e[0]], h[e[2]])
                else:
                    agg = _SpMM.apply(adj, inputs["adj_t"][e], h[e[0]])
                if e[2] in cold and e[0] in cold:  # cold nodes hear nothing from customers/products
                    agg = agg * (~cold[e[2]]).unsqueeze(-1).to(agg.dtype)
                msg = agg * self.rel_gain[layer][_key(e)]
                nbr[e[2]] = msg if e[2] not in nbr else nbr[e[2]] + msg
            for t, m in nbr.items():
                out[t] = out[t] + self.nbr_lin[layer][t.replace(":", "_")](m)
            if layer < last:
                out = {t: self.norm[layer][t.replace(":", "_")](torch.relu(x)) for t, x in out.items()}
            h = out
        return h

    def _attend(self, layer: int, e, edges, hs, hd):
        """Attention-weighted mean of the sources: ``alpha = softmax_dst(LeakyReLU(a_s.h_s +
        a_d.h_d) + log w)`` over each destination's incoming edges (w: the edge weight, so a
        recent, repeated purchase starts with more say)."""
        dst, src, logw = edges
        k = _key(e)
        logit = torch.nn.functional.leaky_relu(
            (hs @ self.att_src[layer][k])[src] + (hd @ self.att_dst[layer][k])[dst], 0.2) + logw
        m = torch.full((len(hd),), float("-inf")).scatter_reduce(0, dst, logit, "amax", include_self=True)
        ex = torch.exp(logit - m[dst])
        den = torch.zeros(len(hd)).index_add_(0, dst, ex)
        alpha = ex / den.clamp(min=1e-12)[dst]
        return torch.zeros(len(hd), hs.shape[1]).index_add_(0, dst, alpha.unsqueeze(-1) * hs[src])

    def towers(self, inputs: dict, id_dropout: float = 0.0):
        h = self.forward(inputs, id_dropout)
        f = torch.nn.functional.normalize
        return f(h[self.entity], dim=-1), f(h[self.item], dim=-1)


def graph_tensors(graph, net: HeteroSAGE, index_from, warm: dict | None = None) -> dict:
    """Inputs of ``net`` for ``graph``: features, id-embedding rows (in ``index_from``'s id space),
    each relation's weight-normalised adjacency (destination x source, sparse CSR), and which
    entity/item nodes are warm (had a positive event before the graph's time)."""
    out: dict = {"x_num": {}, "x_cat": {}, "ids": {}, "adj": {}, "adj_t": {}, "edges": {},
                 "warm": {t: torch.as_tensor(m) for t, m in (warm or {}).items()}}
    for t in net.types:
        n = graph.num_nodes[t]
        if graph is index_from:
            ids = np.arange(n)
        else:
            ids = index_from.id_maps[t].to_internal(graph.id_maps[t].external, missing=-1)
            if (ids < 0).any():
                raise ValueError(f"graph node type {t!r}: {int((ids < 0).sum())} nodes unknown later")
        out["ids"][t] = torch.as_tensor(ids, dtype=torch.long)
        out["x_num"][t] = graph.x_num.get(t, torch.zeros(n, 0))
        out["x_cat"][t] = graph.x_cat.get(t, torch.zeros(n, 0, dtype=torch.long))
    for e in net.etypes:
        store = graph.edges.get(e)
        if store is None or len(store) == 0:
            continue
        w = store.weight.clamp(min=0).to(torch.float32)
        deg = torch.zeros(store.num_dst, dtype=torch.float32).index_add_(0, store.dst, w)
        w = w / deg.clamp(min=1e-9)[store.dst]
        with warnings.catch_warnings():  # CSR support is "beta" in torch; its CPU matmul is what we use
            warnings.simplefilter("ignore", UserWarning)
            adj = torch.sparse_csr_tensor(store.rowptr, store.col, w, size=(store.num_dst, graph.num_nodes[e[0]]),
                                          check_invariants=False)
        out["adj"][e] = adj
        out["adj_t"][e] = adj.t().to_sparse_csr()
        if net.attention:
            out["edges"][e] = (store.dst, store.col, torch.log(w.clamp(min=1e-9)))
    return out
