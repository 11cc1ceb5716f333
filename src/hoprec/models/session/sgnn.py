"""A session graph network (SR-GNN style, Wu et al. 2019) with positions, attributes and a
normalised full softmax (NISER, Gupta et al. 2019).

For a session ``s = [x_1 .. x_L]`` (its last ``max_length`` items):

1. item vectors: ``v_i = E_id[i] + Σ_a E_a[attr_a(i)]`` — an item's category (and any other
   attribute) is part of its vector, so a rarely clicked item starts near its category;
2. the session graph: nodes are the session's distinct items, edges ``x_t -> x_{t+1}``;
   ``A_out`` / ``A_in`` are the edge counts normalised by out- / in-degree;
3. ``steps`` gated graph steps: ``a = [A_in h W_in, A_out h W_out]``, ``h <- GRUCell(a, h)``;
4. each click takes its node's state plus a position embedding counted from the end,
   ``u_t = h[x_t] + P[L - t]``; attention readout ``α_t = q^T σ(W_1 u_L + W_2 u_t)``,
   ``s_g = Σ_t α_t u_t``, ``s = W_3 [u_L; s_g]``;
5. scores over all items: ``scale * cos(s, v_i)`` (``scale = 0``: plain dot products), trained
   with full-softmax cross-entropy on every prefix of every training session.

Defaults: dim 100, 1 step, max_length 20, Adam lr 0.003 times 0.85 per epoch (weight decay 1e-5),
batch 512, embedding dropout 0.1, scale 12, at most 12 epochs with early stopping on validation
MRR@20 (patience 2) — chosen on YOOCHOOSE validation among batch 128/256/512, lr 0.001-0.003,
dim 64/100, max_length 10/20, 0/1 steps, scale 0/12 (all within 0.003 MRR@20 but scale 0);
the refit uses the epoch count chosen there (:meth:`chosen_params`).  Weights are saved with the
model's ``state.safetensors`` (no pickle).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from hoprec.compat import require
from hoprec.graph.sessions import Sessions, prefixes
from hoprec.models.base import ModelConfig
from hoprec.models.session.base import SessionData, SessionRecommender


class SessionGNNConfig(ModelConfig):
    dim: int = Field(100, ge=4)
    steps: int = Field(1, ge=0)
    max_length: int = Field(20, ge=2)
    lr: float = Field(3e-3, gt=0)
    lr_decay: float = Field(0.85, gt=0, le=1)  #: learning rate multiplied by this after each epoch
    weight_decay: float = Field(1e-5, ge=0)
    batch_size: int = Field(512, ge=1)
    epochs: int = Field(12, ge=1)  #: the most epochs (with validation: early stopping)
    patience: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    scale: float = Field(12.0, ge=0)  #: NISER scale; 0 = unnormalised dot products
    #: 0: full softmax over all items; n > 0: sampled softmax, the batch's targets plus n shared
    #: negatives drawn by count^0.75, with the log-q correction (for catalogues of 50k+ items)
    negatives: int = Field(0, ge=0)
    #: train on the prefixes of at most this many most recent sessions (0: all)
    max_sessions: int = Field(0, ge=0)
    use_attributes: bool = True
    max_seconds: float = Field(540.0, gt=0)  #: training time budget (checked after each batch)
    seed: int = 0
    device: str = "cpu"  #: torch device for training and scoring, e.g. "cuda"


def collate(seqs: Sequence[np.ndarray], max_length: int) -> dict[str, np.ndarray]:
    """Pad a batch of sessions (right-aligned) and build each one's item graph (vectorised).

    ``nodes[b]``: the session's distinct items (sorted); ``alias[b, t]``: the node of click t;
    ``a_out[b, i, j]``: the share of node i's outgoing transitions that go to node j.
    """
    b = len(seqs)
    lens = np.array([min(len(x), max_length) for x in seqs], dtype=np.int64)
    L = int(lens.max())
    x = np.full((b, L), -1, dtype=np.int64)
    flat = np.concatenate([np.asarray(s[len(s) - n :], dtype=np.int64) for s, n in zip(seqs, lens)])
    rows = np.repeat(np.arange(b), lens)
    cols = L - np.repeat(lens, lens) + (np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens))
    x[rows, cols] = flat
    seq_mask = x >= 0
    big = int(flat.max()) + 1
    uniq, inv = np.unique(rows * big + flat, return_inverse=True)
    urow = uniq // big
    first = np.searchsorted(urow, np.arange(b))
    n_nodes = np.bincount(urow, minlength=b)
    N = int(n_nodes.max())
    nodes = np.zeros((b, N), np.int64)
    node_mask = np.zeros((b, N), bool)
    ucol = np.arange(len(uniq)) - first[urow]
    nodes[urow, ucol] = uniq - urow * big
    node_mask[urow, ucol] = True
    alias = np.zeros((b, L), np.int64)
    alias[rows, cols] = inv - first[rows]
    a_out = np.zeros((b, N, N), np.float32)
    pair = seq_mask[:, :-1] & seq_mask[:, 1:]
    pb = np.nonzero(pair)
    np.add.at(a_out, (pb[0], alias[:, :-1][pair], alias[:, 1:][pair]), 1.0)
    a_in = a_out.transpose(0, 2, 1).copy()
    a_out /= np.maximum(a_out.sum(axis=2, keepdims=True), 1.0)
    a_in /= np.maximum(a_in.sum(axis=2, keepdims=True), 1.0)
    return {"nodes": nodes, "node_mask": node_mask, "alias": alias, "seq_mask": seq_mask,
            "a_in": a_in, "a_out": a_out}


def _build_net(n_items: int, attr_sizes: list[int], cfg: SessionGNNConfig):
    torch = require("torch", "graph")
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = cfg.dim
            self.item = nn.Embedding(n_items, d)
            self.attrs = nn.ModuleList(nn.Embedding(n + 1, d) for n in attr_sizes)  # last = unknown
            self.pos = nn.Embedding(cfg.max_length, d)
            self.w_in, self.w_out = nn.Linear(d, d), nn.Linear(d, d)
            self.gru = nn.GRUCell(2 * d, d)
            self.w1, self.w2 = nn.Linear(d, d, bias=False), nn.Linear(d, d)
            self.q = nn.Linear(d, 1, bias=False)
            self.w3 = nn.Linear(2 * d, d, bias=False)
            self.drop = nn.Dropout(cfg.dropout)
            self.reset_parameters()

        def reset_parameters(self) -> None:
            std = 1.0 / cfg.dim ** 0.5
            for p in self.parameters():
                nn.init.uniform_(p, -std, std)

        def item_table(self, codes):
            e = self.item.weight
            for a, emb in enumerate(self.attrs):
                e = e + emb(codes[:, a])
            return e

        def forward(self, table, batch):
            nodes, alias = batch["nodes"], batch["alias"]
            h = self.drop(table[nodes])  # (B, N, d)
            for _ in range(cfg.steps):
                a = torch.cat([batch["a_in"] @ self.w_in(h), batch["a_out"] @ self.w_out(h)], dim=-1)
                bsz, n, d = h.shape
                h = self.gru(a.reshape(-1, 2 * d), h.reshape(-1, d)).reshape(bsz, n, d)
            u = torch.gather(h, 1, alias.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
            L = u.shape[1]
            u = u + self.pos(torch.arange(L - 1, -1, -1, device=u.device)).unsqueeze(0)
            mask = batch["seq_mask"].unsqueeze(-1).to(u.dtype)
            last = u[:, -1]
            alpha = self.q(torch.sigmoid(self.w1(last).unsqueeze(1) + self.w2(u)))
            s_g = (alpha * u * mask).sum(dim=1)
            return self.w3(torch.cat([last, s_g], dim=-1))

        def scores(self, s, table):
            if cfg.scale > 0:
                nnf = torch.nn.functional
                return cfg.scale * nnf.normalize(s, dim=-1) @ nnf.normalize(table, dim=-1).T
            return s @ table.T

    return Net()


class SessionGNN(SessionRecommender):
    """Gated graph network over the session's item graph, attention readout, all-item softmax."""

    name = "sgnn"
    config_class = SessionGNNConfig
    param_grid: ClassVar[list[dict[str, Any]]] = [{}]

    # --------------------------------------------------------------- training
    def _tensors(self, batch: dict[str, np.ndarray]):
        torch = self._torch
        return {k: torch.from_numpy(v).to(self.config.device) for k, v in batch.items()}

    def _codes(self, data: SessionData) -> np.ndarray:
        if not self.config.use_attributes or data.item_attributes is None:
            return np.zeros((data.n_items, 0), np.int64)
        return np.asarray(data.item_attributes, dtype=np.int64).reshape(data.n_items, -1)

    def _fit(self, data: SessionData) -> None:
        torch = self._torch = require("torch", "graph")
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        codes = self._codes(data)
        self.attr_sizes = [int(codes[:, a].max()) + 1 if len(codes) else 0 for a in range(codes.shape[1])]
        codes = np.where(codes < 0, np.array(self.attr_sizes, np.int64)[None, :], codes)
        self.codes = codes
        self.net = _build_net(self.n_items, self.attr_sizes, cfg).to(cfg.device)
        codes_t = torch.from_numpy(codes).to(cfg.device)
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
        s = data.sessions
        if cfg.max_sessions and len(s) > cfg.max_sessions:
            s = s.select(np.argsort(np.argsort(s.ends, kind="stable")) >= len(s) - cfg.max_sessions)
        pre = prefixes(s)
        q = s.item_counts(self.n_items).astype(np.float64) ** 0.75
        q /= q.sum()
        logq = torch.from_numpy(np.log(np.maximum(q, 1e-12)).astype(np.float32)).to(cfg.device)
        targets = torch.from_numpy(pre.target).to(cfg.device)
        val = self._validation_set(data.validation, rng)
        self.history: list[dict[str, float]] = []
        best, best_state, bad = -1.0, None, 0
        t0 = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            self.net.train()
            order = rng.permutation(len(pre))
            total = 0.0
            for b in range(0, len(order), cfg.batch_size):
                idx = order[b : b + cfg.batch_size]
                seqs = [s.items[max(pre.start[i], pre.stop[i] - cfg.max_length) : pre.stop[i]] for i in idx]
                batch = self._tensors(collate(seqs, cfg.max_length))
                table = self.net.item_table(codes_t)
                tgt = targets[torch.from_numpy(idx).to(cfg.device)]
                if cfg.negatives:
                    neg = torch.from_numpy(rng.choice(self.n_items, cfg.negatives, p=q)).to(cfg.device)
                    cand = torch.cat([tgt, neg])
                    logits = self.net.scores(self.net(table, batch), table[cand]) - logq[cand]
                    hit = cand.unsqueeze(0) == tgt.unsqueeze(1)  # accidental hits other than the own
                    hit[torch.arange(len(idx)), torch.arange(len(idx))] = False
                    logits = logits.masked_fill(hit, float("-inf"))
                    tgt = torch.arange(len(idx), device=cfg.device)
                else:
                    logits = self.net.scores(self.net(table, batch), table)
                loss = torch.nn.functional.cross_entropy(logits, tgt)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                if time.perf_counter() - t0 > cfg.max_seconds:  # the budget ends mid-epoch too
                    break
            sched.step()
            rec = {"epoch": epoch, "loss": total / max(len(pre), 1), "seconds": time.perf_counter() - t0}
            if val is not None:
                self._cache_table()
                rec["val_mrr20"] = self._mrr(val)
                if rec["val_mrr20"] > best:
                    best, bad = rec["val_mrr20"], 0
                    best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
                    self.best_epoch = epoch
                else:
                    bad += 1
            self.history.append(rec)
            if rec["seconds"] > cfg.max_seconds:
                rec["budget_exhausted"] = True  # said in the log and aloud, never silent
                warnings.warn(
                    f"sgnn: the training budget max_seconds={cfg.max_seconds:g} ran out in epoch "
                    f"{epoch} of {cfg.epochs}; raise max_seconds for a full run", stacklevel=2,
                )
                break
            if val is not None and bad >= cfg.patience:
                break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        else:
            self.best_epoch = len(self.history)
        self._cache_table()

    def _validation_set(self, v: Sessions | None, rng) -> tuple[list[np.ndarray], np.ndarray] | None:
        if v is None or len(v) == 0:
            return None
        p = prefixes(v)
        keep = rng.permutation(len(p))[:5000]
        keep = keep[self.known[p.target[keep]]] if len(keep) else keep
        seqs = [v.items[p.start[i] : p.stop[i]] for i in keep]
        return [x[self.known[x]] for x in seqs], p.target[keep]

    def _mrr(self, val) -> float:
        seqs, targets = val
        ok = [i for i, x in enumerate(seqs) if len(x)]
        total = 0.0
        for b in range(0, len(ok), 512):  # chunks: a catalogue of 100k items stays small
            part = ok[b : b + 512]
            sc = self._score_many([seqs[i] for i in part])
            sc[:, ~self.known] = -np.inf
            tgt = sc[np.arange(len(part)), targets[part]]
            rank = (sc >= tgt[:, None]).sum(axis=1)  # ties count against the target
            total += float(np.where(rank <= 20, 1.0 / rank, 0.0).sum())
        return total / max(len(targets), 1)

    def chosen_params(self) -> dict[str, Any]:
        return {"epochs": int(getattr(self, "best_epoch", self.config.epochs))}

    def training_log(self) -> list[dict[str, float]]:
        return list(getattr(self, "history", []))

    # --------------------------------------------------------------- scoring
    def _cache_table(self) -> None:
        torch = self._torch
        self.net.eval()
        with torch.no_grad():
            table = self.net.item_table(torch.from_numpy(self.codes).to(self.config.device))
            self._table = table
            nnf = torch.nn.functional
            self._table_scored = nnf.normalize(table, dim=-1) if self.config.scale > 0 else table

    def _score(self, items: np.ndarray) -> np.ndarray:
        return self._score_many([items])[0]

    def _score_many(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        torch = self._torch
        out = np.empty((len(sessions), self.n_items), dtype=np.float32)
        with torch.no_grad():
            for b in range(0, len(sessions), 512):
                part = sessions[b : b + 512]
                batch = self._tensors(collate(part, self.config.max_length))
                s = self.net(self._table, batch)
                if self.config.scale > 0:
                    s = self.config.scale * torch.nn.functional.normalize(s, dim=-1)
                out[b : b + len(part)] = (s @ self._table_scored.T).cpu().numpy()
        return out

    # --------------------------------------------------------------- persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        state = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        return {**state, "codes": self.codes, "attr_sizes": np.array(self.attr_sizes, np.int64)}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        torch = self._torch = require("torch", "graph")
        self.codes = state["codes"]
        self.attr_sizes = [int(x) for x in state["attr_sizes"]]
        self.net = _build_net(self.n_items, self.attr_sizes, self.config).to(self.config.device)
        self.net.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in state.items() if k.startswith("net.")})
        self._cache_table()
