"""Data-parallel training with PyTorch DistributedDataParallel: one machine or several.

Launch with torchrun (every rank runs the same command)::

    # one machine, 2 processes (gloo on CPU; NCCL and one GPU per process when CUDA is present)
    torchrun --nproc-per-node 2 -m hoprec.train.distributed --graph GRAPH_DIR --out RUN_DIR
    # two machines, 4 processes each: run on both, --node-rank 0 on the one at MASTER
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 4 --master-addr MASTER --master-port 29500 \
        -m hoprec.train.distributed --graph GRAPH_DIR --out RUN_DIR

``GRAPH_DIR`` is a memory-mapped interaction graph (:func:`hoprec.graph.ooc.build_interaction_graph`
or :func:`hoprec.graph.mmap_store.save_graph`); every rank maps the same files, so the processes
of one machine share one copy of the graph in the page cache (on several machines, each needs
the folder: a shared file system or a copy).

How work is split (:func:`fit`): every epoch all ranks draw the same seeded permutation of the
training examples and walk it in global batches of ``batch_size``; rank ``r`` of ``W`` takes
positions ``r, r + W, ...`` of each batch (``batch_size / W`` examples), computes the mean loss of
its share, and DDP averages the gradients, so one step equals a single-process step on the whole
batch (up to float summation order), and ``W`` processes take ``1 / W`` of the examples each.
Negatives are drawn for the whole batch from a generator seeded by (seed, epoch, step), then
split the same way.  The last partial batch of an epoch is dropped so every rank runs the same
number of steps.

Rank 0 alone writes the checkpoint (``model.safetensors`` + ``model.json``: config, node counts,
id maps' folder), atomically; :func:`load_checkpoint` rebuilds the model on any machine and
device.

The model trained here is :class:`BPRMF` (a two-tower id-embedding model with the BPR loss over
the graph's customer->product edges): the lead's LightGCN/GraphSAGE build their training step
inside ``_fit`` and expose no hook to wrap their module in DDP or hand them a rank's share
(see the issue 7 report); :func:`fit` takes any module with a ``loss(batch, negatives)`` method.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from hoprec.atomic import atomic_dir


class DistConfig(BaseModel):
    """Training settings (same on every rank); every default is stated here."""

    model_config = ConfigDict(extra="forbid")

    dim: int = Field(default=64, ge=1)
    epochs: int = Field(default=5, ge=1)
    batch_size: int = Field(default=4096, ge=2)  # global: split over the ranks
    lr: float = Field(default=0.01, gt=0)
    reg: float = Field(default=1e-5, ge=0)
    holdout: float = Field(default=0.1, ge=0, lt=1)  # share of customers whose last pair is held out
    k: int = Field(default=10, ge=1)
    seed: int = 0


@dataclass
class Context:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    backend: str | None  # None: no process group (a plain single process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup() -> Context:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ...), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    backend = None
    if "RANK" in os.environ and "MASTER_ADDR" in os.environ:
        backend = "nccl" if cuda else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
    return Context(rank, world, local, device, backend)


def teardown(ctx: Context) -> None:
    if ctx.backend and dist.is_initialized():
        dist.destroy_process_group()


class BPRMF(nn.Module):
    """``score(u, i) = <U[u], V[i]> + b[i]``, trained with BPR:
    ``loss = mean(softplus(score(u, j) - score(u, i))) + reg * (|U[u]|^2 + |V[i]|^2 + |V[j]|^2)``
    for positive pairs ``(u, i)`` and uniform negatives ``j``.  Init: normal, std 0.1."""

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


def split_holdout(users: np.ndarray, items: np.ndarray, times: np.ndarray, share: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training pairs and, for ``share`` of the customers with 2+ pairs, their latest pair held out.

    Returns ``(train_idx, held_users, held_items)``.
    """
    rng = np.random.default_rng(seed)
    order = np.lexsort((items, times, users))
    last = np.r_[users[order][1:] != users[order][:-1], True]
    counts = np.bincount(users, minlength=int(users.max()) + 1 if len(users) else 0)
    cand = order[last & (counts[users[order]] >= 2)]
    held = cand[rng.random(len(cand)) < share]
    mask = np.ones(len(users), bool)
    mask[held] = False
    return np.flatnonzero(mask), users[held], items[held]


def hit_rate(model: BPRMF, users: np.ndarray, items: np.ndarray, k: int, seen=None) -> float:
    """Share of held-out pairs whose item is in the customer's top k (training items excluded)."""
    if len(users) == 0:
        return float("nan")
    dev = next(model.parameters()).device
    s = model.scores(torch.as_tensor(users, device=dev)).cpu().numpy()
    if seen is not None:
        rows = seen[users]
        s[np.repeat(np.arange(len(users)), np.diff(rows.indptr)), rows.indices] = -np.inf
    top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
    return float((top == items[:, None]).any(1).mean())


def fit(model: nn.Module, examples: torch.Tensor, n_items: int, cfg: DistConfig, ctx: Context,
        progress: Callable[[str], None] | None = None) -> list[dict[str, float]]:
    """Train ``model`` on ``examples`` (``(n, 2)`` int64 pairs) over the ranks; see the module doc."""
    if cfg.batch_size % ctx.world:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of processes {ctx.world}")
    objective = _Objective(model.to(ctx.device))
    net = objective if not ctx.backend else nn.parallel.DistributedDataParallel(
        objective, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    n = len(examples)
    steps = n // cfg.batch_size
    if steps == 0:
        raise ValueError(f"{n} training examples are fewer than one batch of {cfg.batch_size}")
    log = []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        total = 0.0
        for s in range(steps):
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 100_019 + s)
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            neg = torch.randint(0, n_items, (cfg.batch_size,), generator=g)
            mine = slice(ctx.rank, None, ctx.world)  # this rank's share of the global batch
            loss = net(examples[idx[mine]].to(ctx.device), neg[mine].to(ctx.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        sec = time.perf_counter() - t0
        mean = total / steps
        if ctx.backend:  # the mean loss over ranks, for the log
            t = torch.tensor([mean], device=ctx.device)
            dist.all_reduce(t)
            mean = float(t) / ctx.world
        rec = {"epoch": epoch + 1, "loss": mean, "seconds": sec,
               "examples_per_s": steps * cfg.batch_size / sec}
        log.append(rec)
        if progress and ctx.is_main:
            progress(f"epoch {epoch + 1}/{cfg.epochs}: loss {mean:.4f}, "
                     f"{rec['examples_per_s']:,.0f} examples/s over {ctx.world} process(es)")
    return log


class _Objective(nn.Module):
    """``forward(batch, negatives) = model.loss(batch, negatives)``: DDP must see the loss computed
    inside its wrapped module's forward to synchronise the gradients."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        return self.model.loss(batch, negatives)


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(model: BPRMF, folder: str | Path, cfg: DistConfig, extra: dict) -> Path:
    """Write ``model.safetensors`` + ``model.json`` to ``folder`` atomically (call on rank 0)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"))
        meta = {"model": "bprmf", "n_users": model.n_users, "n_items": model.n_items,
                "config": cfg.model_dump(), **extra}
        (tmp / "model.json").write_text(json.dumps(meta, indent=1))
    return folder


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu") -> tuple[BPRMF, dict]:
    """The model saved by :func:`save_checkpoint`, on ``device``, and its ``model.json``."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "model.json").is_file():
        raise FileNotFoundError(f"{folder} holds no checkpoint (model.json missing)")
    meta = json.loads((folder / "model.json").read_text())
    cfg = DistConfig(**meta["config"])
    model = BPRMF(meta["n_users"], meta["n_items"], cfg.dim, cfg.reg)
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)))
    return model.to(device), meta


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> None:
    import scipy.sparse as sp

    from hoprec.graph.mmap_store import open_graph

    ap = argparse.ArgumentParser(
        prog="torchrun --nproc-per-node N -m hoprec.train.distributed",
        description="Train BPR-MF over a memory-mapped interaction graph with DDP (see the module doc).")
    ap.add_argument("--graph", required=True, help="graph folder (hoprec.graph.ooc / mmap_store)")
    ap.add_argument("--out", required=True, help="run folder: checkpoint/ and run.json (rank 0)")
    for name, f in DistConfig.model_fields.items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=type(f.default), default=f.default)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per process (0: leave)")
    args = ap.parse_args(argv)
    cfg = DistConfig(**{k: getattr(args, k) for k in DistConfig.model_fields})
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = setup()
    try:
        g = open_graph(args.graph)  # every rank maps the same files
        (et,) = [e for e in g.edges if e[0] == g.entity_type and e[2] == g.item_type]
        s = g.edges[et]
        users, items = s.col.numpy(), s.dst.numpy()
        train_idx, hu, hi = split_holdout(users, items, s.time.numpy(), cfg.holdout, cfg.seed)
        examples = torch.from_numpy(np.stack([users[train_idx], items[train_idx]], 1))
        n_u, n_i = g.num_nodes[g.entity_type], g.num_nodes[g.item_type]
        torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts)
        model = BPRMF(n_u, n_i, cfg.dim, cfg.reg)
        def say(message: str) -> None:
            print(f"[rank {ctx.rank}] {message}", flush=True)

        log = fit(model, examples, n_i, cfg, ctx, progress=say)
        if ctx.is_main:
            seen = sp.csr_matrix((np.ones(len(train_idx)), (users[train_idx], items[train_idx])), shape=(n_u, n_i))
            model.eval()
            hr = hit_rate(model, hu, hi, cfg.k, seen)
            ckpt = save_checkpoint(model, Path(args.out) / "checkpoint", cfg, {"graph": str(args.graph)})
            run = {"world_size": ctx.world, "backend": ctx.backend or "none", "device": str(ctx.device),
                   "examples": len(examples), "held_out": len(hu), f"hit_rate_at_{cfg.k}": hr,
                   "log": log, "checkpoint": str(ckpt)}
            (Path(args.out) / "run.json").write_text(json.dumps(run, indent=1))
            say(f"held-out HitRate@{cfg.k} {hr:.4f}; checkpoint {ckpt}")
        if ctx.backend:
            dist.barrier()
    finally:
        teardown(ctx)


if __name__ == "__main__":
    main()
