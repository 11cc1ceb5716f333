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

Models (``--model``, :mod:`hoprec.train.dist_models`): ``bprmf`` (:class:`BPRMF`, a two-tower
id-embedding model with the BPR loss over the graph's customer->product edges) and ``lightgcn``
(:class:`LightGCNDDP`: ``--layers`` rounds of propagation over the symmetric-normalised
customer/product adjacency of the training pairs, BPR on the propagated embeddings; with
``--shard-propagation``, the default, each rank also computes only its share of the propagation).
:func:`fit` takes any module with a ``loss(batch, negatives)`` method.  The checkpoint also holds
``embeddings.safetensors`` (``users``, ``items``: inner products = scores) for FAISS or pgvector
(:func:`load_embeddings`).
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
from hoprec.train.dist_models import BPRMF, LightGCNDDP, normalized_adjacency

__all__ = ["BPRMF", "LightGCNDDP", "DistConfig", "Context", "fit", "hit_rate", "split_holdout",
           "save_checkpoint", "load_checkpoint", "load_embeddings", "build_model", "main"]
MODELS = ("bprmf", "lightgcn")


class DistConfig(BaseModel):
    """Training settings (same on every rank); every default is stated here."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="bprmf", pattern="^(bprmf|lightgcn)$")
    dim: int = Field(default=64, ge=1)
    layers: int = Field(default=2, ge=0, le=4)  # lightgcn: propagation rounds
    shard_propagation: bool = True  # lightgcn over several ranks: split the propagation too
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


def hit_rate(model: BPRMF | LightGCNDDP, users: np.ndarray, items: np.ndarray, k: int, seen=None) -> float:
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
def build_model(cfg: DistConfig, n_users: int, n_items: int) -> BPRMF | LightGCNDDP:
    """The untrained module ``cfg.model`` names (a LightGCN still needs ``attach``)."""
    if cfg.model == "lightgcn":
        return LightGCNDDP(n_users, n_items, cfg.dim, cfg.layers, cfg.reg)
    return BPRMF(n_users, n_items, cfg.dim, cfg.reg)


def save_checkpoint(model: BPRMF | LightGCNDDP, folder: str | Path, cfg: DistConfig, extra: dict) -> Path:
    """Write ``model.safetensors``, ``embeddings.safetensors`` (``users``, ``items``) and
    ``model.json`` to ``folder`` atomically (call on rank 0; a LightGCN must be frozen)."""
    from safetensors.numpy import save_file as save_np
    from safetensors.torch import save_file

    folder = Path(folder)
    users, items = model.embeddings()
    with atomic_dir(folder) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"))
        save_np({"users": users, "items": items}, str(tmp / "embeddings.safetensors"))
        meta = {"model": model.name, "n_users": model.n_users, "n_items": model.n_items,
                "config": cfg.model_dump(), **extra}
        (tmp / "model.json").write_text(json.dumps(meta, indent=1))
    return folder


def _meta(folder: Path) -> dict:
    if not (folder / "model.json").is_file():
        raise FileNotFoundError(f"{folder} holds no checkpoint (model.json missing)")
    return json.loads((folder / "model.json").read_text())


def load_embeddings(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(users, items)`` float32 vectors of a checkpoint (rows = the graph's internal ids; inner
    products = the model's scores): ``build_index(items)`` or ``build_pgvector_index(items, url)``."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    _meta(folder)
    path = folder / "embeddings.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (checkpoints written before embeddings were exported)")
    arrays = load_file(str(path))
    return arrays["users"], arrays["items"]


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu") -> tuple[BPRMF | LightGCNDDP, dict]:
    """The model saved by :func:`save_checkpoint`, on ``device``, and its ``model.json``.

    A LightGCN comes back frozen (scores from its saved final embeddings; no graph needed)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = _meta(folder)
    cfg = DistConfig(**{"model": meta.get("model", "bprmf"), **meta["config"]})
    model = build_model(cfg, meta["n_users"], meta["n_items"])
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)))
    model = model.to(device)
    if isinstance(model, LightGCNDDP):
        users, items = load_embeddings(folder)
        model.final = (torch.from_numpy(users).to(device), torch.from_numpy(items).to(device))
    return model, meta


# --------------------------------------------------------------------------- command line
HELP = {
    "model": "bprmf (id embeddings) or lightgcn (propagation over the customer/product graph)",
    "dim": "embedding size", "epochs": "passes over the training pairs",
    "batch_size": "global batch (split over the processes; must divide by their number)",
    "lr": "Adam learning rate", "reg": "L2 weight on the batch's embeddings",
    "holdout": "share of customers whose latest pair is held out for HitRate@k",
    "k": "HitRate cut-off", "seed": "seed of the split, init, batches and negatives",
    "layers": "lightgcn: propagation rounds",
    "shard_propagation": "lightgcn over several processes: each computes a share of the propagation "
                         "(--no-shard-propagation: every process propagates over the whole graph)",
}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="torchrun --nproc-per-node N -m hoprec.train.distributed",
        description="Train BPR-MF or LightGCN over a memory-mapped interaction graph with DDP "
                    "(python -m hoprec.train.distributed runs one process; see the module doc).")
    ap.add_argument("--graph", required=True, help="graph folder (hoprec graph build / mmap_store)")
    ap.add_argument("--out", required=True, help="run folder: checkpoint/ and run.json (rank 0)")
    for name, f in DistConfig.model_fields.items():
        flag, h = f"--{name.replace('_', '-')}", f"{HELP.get(name, '')} (default: {f.default})"
        if isinstance(f.default, bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=h)
        elif name == "model":
            ap.add_argument(flag, choices=MODELS, default=f.default, help=h)
        else:
            ap.add_argument(flag, type=type(f.default), default=f.default, help=h)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per process (0: leave)")
    return ap


def main(argv: list[str] | None = None) -> None:
    import scipy.sparse as sp

    from hoprec.graph.mmap_store import open_graph

    args = _parser().parse_args(argv)
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
        tu, ti = users[train_idx], items[train_idx]
        examples = torch.from_numpy(np.stack([tu, ti], 1))
        n_u, n_i = g.num_nodes[g.entity_type], g.num_nodes[g.item_type]
        torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts)
        model = build_model(cfg, n_u, n_i)
        if isinstance(model, LightGCNDDP):  # the training pairs only: held-out pairs must not leak
            model.attach(normalized_adjacency(tu, ti, n_u, n_i), ctx.rank, ctx.world,
                         cfg.shard_propagation, ctx.device)

        def say(message: str) -> None:
            print(f"[rank {ctx.rank}] {message}", flush=True)

        log = fit(model, examples, n_i, cfg, ctx, progress=say)
        model.eval()
        if isinstance(model, LightGCNDDP):
            model.freeze()  # collective when the propagation is sharded
        if ctx.is_main:
            seen = sp.csr_matrix((np.ones(len(train_idx)), (tu, ti)), shape=(n_u, n_i))
            hr = hit_rate(model, hu, hi, cfg.k, seen)
            ckpt = save_checkpoint(model, Path(args.out) / "checkpoint", cfg, {"graph": str(args.graph)})
            run = {"model": cfg.model, "world_size": ctx.world, "backend": ctx.backend or "none",
                   "device": str(ctx.device), "examples": len(examples), "held_out": len(hu),
                   f"hit_rate_at_{cfg.k}": hr, "log": log, "checkpoint": str(ckpt)}
            if cfg.model == "lightgcn":
                run["propagation"] = "sharded" if cfg.shard_propagation and ctx.world > 1 else "whole graph"
            (Path(args.out) / "run.json").write_text(json.dumps(run, indent=1))
            say(f"held-out HitRate@{cfg.k} {hr:.4f}; checkpoint {ckpt}")
        if ctx.backend:
            dist.barrier()
    finally:
        teardown(ctx)

if __name__ == "__main__":
    main()
