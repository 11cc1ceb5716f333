"""A session model's probabilities blended with V-SKNN's votes, the weight chosen on validation.

``score(i) = (1 - w) * softmax(gnn)(i) + w * knn(i) / Σ_j knn(j)``.  The two parts are the
protocol's chosen ``sgnn`` and ``vsknn`` fits of the same step when it has them
(:attr:`SessionData.cache`), else fitted here with their defaults.  With validation sessions and
no ``knn_weight``, ``w`` is the grid value with the best validation MRR@20; the refit reuses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from hoprec.graph.sessions import prefixes
from hoprec.models.base import ModelConfig
from hoprec.models.session.base import SessionData, SessionRecommender
from hoprec.models.session.baselines import VSKNN
from hoprec.models.session.sgnn import SessionGNN

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)


class BlendConfig(ModelConfig):
    knn_weight: float | None = Field(None, ge=0, le=1)  #: None: chosen on validation
    epochs: int | None = Field(None, ge=1)  #: the GNN's epochs when fitted here


class SessionBlend(SessionRecommender):
    """``sgnn`` and ``vsknn`` scores mixed with one weight."""

    name = "sgnn_vsknn"
    config_class = BlendConfig

    def _fit(self, data: SessionData) -> None:
        gnn = data.cache.get("sgnn")
        if gnn is None:
            params = {"epochs": self.config.epochs} if self.config.epochs else {}
            gnn = SessionGNN(**params).fit(data)
        knn = data.cache.get("vsknn") or VSKNN().fit(data)
        self.gnn, self.knn = gnn, knn
        self.weight = self.config.knn_weight
        self.validation_mrr: dict[float, float] = {}
        if self.weight is None:
            self.weight = self._choose(data) if data.validation is not None else 0.5

    def _parts(self, sessions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        g = self.gnn._score_many(sessions)
        g -= g.max(axis=1, keepdims=True)
        p = np.exp(g, out=g)
        p /= p.sum(axis=1, keepdims=True)
        k = self.knn._score_many(sessions)
        k /= np.maximum(k.sum(axis=1, keepdims=True), 1e-12)
        return p, k

    def _choose(self, data: SessionData) -> float:
        v = data.validation
        pre = prefixes(v)
        rng = np.random.default_rng(0)
        keep = rng.permutation(len(pre))[:5000]
        seqs = [v.items[pre.start[i] : pre.stop[i]] for i in keep]
        seqs = [x[self.known[x]] for x in seqs]
        ok = [i for i, x in enumerate(seqs) if len(x)]
        targets = pre.target[keep]
        rr = dict.fromkeys(WEIGHTS, 0.0)
        for b in range(0, len(ok), 512):  # chunks: a catalogue of 100k items stays small
            part = ok[b : b + 512]
            p, k = self._parts([seqs[i] for i in part])
            for w in WEIGHTS:
                sc = (1 - w) * p + w * k
                sc[:, ~self.known] = -np.inf
                tgt = sc[np.arange(len(part)), targets[part]]
                rank = (sc >= tgt[:, None]).sum(axis=1)  # ties count against the target
                rr[w] += float(np.where(rank <= 20, 1.0 / rank, 0.0).sum())
        self.validation_mrr = {w: v / max(len(keep), 1) for w, v in rr.items()}
        return max(WEIGHTS, key=lambda w: (self.validation_mrr[w], -w))

    def chosen_params(self) -> dict[str, Any]:
        return {"knn_weight": float(self.weight), **self.gnn.chosen_params()}

    def _score(self, items: np.ndarray) -> np.ndarray:
        return self._score_many([items])[0]

    def _score_many(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        p, k = self._parts(sessions)
        return ((1 - self.weight) * p + self.weight * k).astype(np.float32)

    def save(self, path) -> None:  # noqa: ANN001
        raise NotImplementedError("save the sgnn and vsknn parts; a blend is rebuilt from them")
