"""The modules :mod:`hoprec.train.distributed` trains: BPR-MF and LightGCN over the mapped graph.

Both take the graph's customer->product pairs (internal ids) and expose what
:func:`hoprec.train.distributed.fit` needs, ``loss(batch, negatives)``, plus ``scores(users)``
for evaluation and ``embeddings()`` for export: ``(users, items)`` float32 arrays whose inner
products are the model's scores, ready for :func:`hoprec.serve.index.build_index` (FAISS) or
:func:`hoprec.serve.pgvector_index.build_pgvector_index`.

**LightGCN** (He et al., 2020) on the bipartite customer/product graph: nodes are the customers
``0 .. U-1`` then the products ``U .. U+I-1``; ``A`` has a 1 for each training pair in both
directions (held-out pairs are left out so evaluation does not leak), ``D`` its degrees,
``Â = D^-1/2 A D^-1/2`` and

    E(l+1) = Â E(l),    E = (E(0) + ... + E(L)) / (L + 1),    score(u, i) = <E_u, E_i>

trained with BPR on the propagated ``E`` plus ``reg`` times the mean squared norm of the batch's
``E(0)`` rows.  The propagation is :class:`hoprec.models.lightgcn.LightGCNNet`'s (reused as is).

Over ``W`` ranks there are two ways to propagate (``shard=True`` is the default):

- **sharded**: rank ``r`` holds only its rows of ``Â`` (``1 / W`` of the customers' rows and
  ``1 / W`` of the products', cut by non-zeros) and computes those rows of ``Â E(l)``; an all-gather gives every
  rank the whole ``E(l+1)``.  Because ``Â`` is symmetric the backward pass is the same operation
  on the gradient, provided the gradient is the same on every rank: :class:`_SyncGrad` all-reduces
  (and averages) the gradient of the ranks' losses at the propagated embeddings, so the
  propagation's work is split ``W`` ways.  The ``E(0)`` regulariser is per rank; DDP averages it.
- **replicated**: every rank propagates over the whole ``Â``; only the loss is split.  Simpler, but
  the propagation, most of the work, is repeated on every rank.

Either way one step over ``W`` ranks equals a single-process step on the whole batch (up to float
summation order).  Every rank must call :meth:`LightGCNDDP.propagate` / :meth:`~LightGCNDDP.freeze`
together when sharded (they are collective).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist
from torch import nn

from hoprec.models.lightgcn import LightGCNNet


class BPRMF(nn.Module):
    """``score(u, i) = <U[u], V[i]> + b[i]``, trained with BPR:
    ``loss = mean(softplus(score(u, j) - score(u, i))) + reg * (|U[u]|^2 + |V[i]|^2 + |V[j]|^2)``
    for positive pairs ``(u, i)`` and uniform negatives ``j``.  Init: normal, std 0.1."""

    name = "bprmf"

    def __init__(self, n_users: int, n_items: int, dim: int, reg: float = 1e-5) -> None:
        super().__init__()
        self.n_users, self.n_items, self.dim, self.reg = n_users, n_items, dim, reg
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.bias = nn.Embedding(n_items, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        nn.init.zeros_(self.bias.weight)

    def __repr__(self) -> str:
        return f"BPRMF(n_users={self.n_users}, n_items={self.n_items}, dim={self.dim})"

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user(users) * self.item(items)).sum(-1) + self.bias(items).squeeze(-1)

    def loss(self, batch: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        u, i = batch[:, 0], batch[:, 1]
        diff = self(u, negatives) - self(u, i)
        reg = (self.user(u).pow(2).sum(-1) + self.item(i).pow(2).sum(-1)
               + self.item(negatives).pow(2).sum(-1)).mean()
        return nn.functional.softplus(diff).mean() + self.reg * reg

    @torch.no_grad()
    def scores(self, users: torch.Tensor) -> torch.Tensor:
        return self.user(users) @ self.item.weight.T + self.bias.weight.T

    @torch.no_grad()
    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """``[U, 1]`` and ``[V, b]``: their inner products are the scores, bias included."""
        u, v, b = (t.detach().float().cpu().numpy() for t in (self.user.weight, self.item.weight, self.bias.weight))
        return (np.ascontiguousarray(np.hstack([u, np.ones((len(u), 1), np.float32)])),
                np.ascontiguousarray(np.hstack([v, b])))


# ------------------------------------------------------------------------------- LightGCN
def normalized_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """``Â = D^-1/2 A D^-1/2`` (float32 CSR, ``(U+I) x (U+I)``, symmetric) of the pairs ``(u, i)``;
    duplicate pairs count once."""
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    if len(users) and (users.max() >= n_users or items.max() >= n_items or min(users.min(), items.min()) < 0):
        raise ValueError(f"pairs must have customers in [0, {n_users}) and products in [0, {n_items})")
    n = n_users + n_items
    rows, cols = np.r_[users, items + n_users], np.r_[items + n_users, users]
    a = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))
    a.data[:] = 1.0  # duplicates were summed
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0).astype(np.float32)
    d = sp.diags(inv)
    out = (d @ a @ d).tocsr().astype(np.float32)
    out.sort_indices()
    return out


def _torch_csr(m: sp.csr_matrix, device) -> torch.Tensor:
    import warnings

    with warnings.catch_warnings():  # sparse CSR support is flagged beta
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                       torch.from_numpy(m.indices.astype(np.int64)),
                                       torch.from_numpy(m.data), size=m.shape, device=device)


class _Shard:
    """This rank's rows of ``Â`` and the all-gather that rebuilds a whole ``Â @ x``.

    Each node type (the ``segments``: customers, then products) is cut into ``world`` runs of
    rows with about equal non-zeros, and rank ``r`` takes run ``r`` of every type: a customer row
    and a product row cost differently (they gather from tables of different sizes), so each rank
    gets the same mix, and equal row counts keep the all-gather's padding small."""

    def __init__(self, adj: sp.csr_matrix, rank: int, world: int, device, segments: tuple[int, ...] = ()) -> None:
        edges = [0, *segments, adj.shape[0]]
        self.pieces = []  # per segment: the (lo, hi) row range of each rank
        for a, b in zip(edges[:-1], edges[1:]):
            ptr = adj.indptr[a : b + 1]
            cuts = np.searchsorted(ptr, np.linspace(ptr[0], ptr[-1], world + 1)[1:-1], side="left") + a
            bounds = np.r_[a, cuts, b].astype(np.int64)
            self.pieces.append(list(zip(bounds[:-1].tolist(), bounds[1:].tolist())))
        self.rows = [sum(seg[r][1] - seg[r][0] for seg in self.pieces) for r in range(world)]
        self.pad = max(self.rows)
        self.world = world
        mine = np.concatenate([np.arange(*seg[rank]) for seg in self.pieces])
        self.block = _torch_csr(adj[mine], device)

    def gather(self, y: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return y
        padded = torch.zeros(self.pad, y.shape[1], dtype=y.dtype, device=y.device)
        padded[: len(y)] = y
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return self.assemble(parts)

    def assemble(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """The ranks' (padded) row blocks back in node order: segment by segment, rank by rank."""
        out, offset = [], [0] * self.world
        for seg in self.pieces:
            for r, (lo, hi) in enumerate(seg):
                out.append(parts[r][offset[r] : offset[r] + hi - lo])
                offset[r] += hi - lo
        return torch.cat(out)

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        return self.gather(self.block @ x)


class _ShardedSpMM(torch.autograd.Function):
    """``Â @ x`` with ``Â``'s rows split over the ranks; backward ``Â @ g`` the same way (``Â`` is
    symmetric), for a gradient ``g`` equal on every rank (see :class:`_SyncGrad`)."""

    @staticmethod
    def forward(ctx, x, shard: _Shard):
        ctx.shard = shard
        return shard.matmul(x)

    @staticmethod
    def backward(ctx, g):
        return ctx.shard.matmul(g.contiguous()), None


class _SyncGrad(torch.autograd.Function):
    """Identity forward; backward: the mean over ranks of the incoming gradient."""

    @staticmethod
    def forward(ctx, x, world: int):
        ctx.world = world
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        g = g.contiguous().clone()
        dist.all_reduce(g)
        return g / ctx.world, None


class LightGCNDDP(nn.Module):
    """LightGCN over the customer/product graph, trainable under DDP (see the module doc).

    ``attach(adj, rank, world, shard, device)`` must be called before training or scoring (the
    adjacency is not a parameter and is not saved); after :meth:`freeze` (or a checkpoint load)
    scoring uses the stored final embeddings and needs no graph.  Defaults: ``layers=2``,
    ``reg=1e-5``; init normal, std 0.1 (``LightGCNNet``'s).
    """

    name = "lightgcn"

    def __init__(self, n_users: int, n_items: int, dim: int, layers: int = 2, reg: float = 1e-5) -> None:
        super().__init__()
        self.n_users, self.n_items, self.dim, self.layers, self.reg = n_users, n_items, dim, layers, reg
        self.net = LightGCNNet(n_users + n_items, dim, layers)
        self._adj = self._shard = None
        self._world = 1
        self.final: tuple[torch.Tensor, torch.Tensor] | None = None

    def __repr__(self) -> str:
        return (f"LightGCNDDP(n_users={self.n_users}, n_items={self.n_items}, dim={self.dim}, "
                f"layers={self.layers})")

    def attach(self, adj: sp.csr_matrix, rank: int = 0, world: int = 1, shard: bool = True,
               device: str | torch.device = "cpu") -> LightGCNDDP:
        n = self.n_users + self.n_items
        if adj.shape != (n, n):
            raise ValueError(f"adjacency is {adj.shape}, expected {(n, n)} (customers + products)")
        self._world = world
        if shard and world > 1:
            self._shard, self._adj = _Shard(adj, rank, world, device, (self.n_users,)), None
        else:
            self._shard, self._adj = None, _torch_csr(adj, device)
        self._keep = torch.ones(n, device=device)
        return self

    def propagate(self) -> torch.Tensor:
        """``E`` for every node, ``(U + I, dim)``; collective when sharded."""
        if self._shard is None and self._adj is None:
            raise RuntimeError("LightGCNDDP: attach() an adjacency before propagating")
        if self._shard is None:
            return self.net.get_embedding(self._adj, self._adj, self._keep)  # Â is symmetric
        x = self.net.emb.weight
        out = x
        for _ in range(self.layers):
            x = _ShardedSpMM.apply(x, self._shard)
            out = out + x
        return _SyncGrad.apply(out / (self.layers + 1), self._world)

    def loss(self, batch: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        e = self.propagate()
        u, i, j = batch[:, 0], batch[:, 1] + self.n_users, negatives + self.n_users
        eu = e[u]
        diff = (eu * e[j]).sum(-1) - (eu * e[i]).sum(-1)
        w = self.net.emb.weight
        reg = (w[u].pow(2).sum(-1) + w[i].pow(2).sum(-1) + w[j].pow(2).sum(-1)).mean()
        return nn.functional.softplus(diff).mean() + self.reg * reg

    @torch.no_grad()
    def freeze(self) -> None:
        """Store the final embeddings for scoring and export (collective when sharded)."""
        e = self.propagate().detach()
        self.final = (e[: self.n_users].clone(), e[self.n_users :].clone())

    @torch.no_grad()
    def scores(self, users: torch.Tensor) -> torch.Tensor:
        if self.final is None:
            raise RuntimeError("LightGCNDDP: call freeze() (on every rank) before scoring")
        u, v = self.final
        return u[users] @ v.T

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        if self.final is None:
            raise RuntimeError("LightGCNDDP: call freeze() (on every rank) before exporting")
        return tuple(np.ascontiguousarray(t.float().cpu().numpy()) for t in self.final)  # type: ignore[return-value]
