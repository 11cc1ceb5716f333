"""Model names -> classes, imported lazily so optional dependencies load only when used."""

from __future__ import annotations

import importlib
from typing import Any

from hoprec.models.base import Recommender

_MODELS: dict[str, str] = {
    "popular": "hoprec.models.popular:Popular",
    "repeat": "hoprec.models.repeat:RepeatPurchase",
    "itemknn": "hoprec.models.itemknn:ItemKNN",
    "als": "hoprec.models.mf:ALS",
    "bpr": "hoprec.models.mf:BPR",
    "hybrid": "hoprec.models.hybrid:Hybrid",
    "sage": "hoprec.models.sage:GraphSAGE",
    "gat": "hoprec.models.sage:GraphAttention",
    "lightgcn": "hoprec.models.lightgcn:LightGCN",
}

#: the baselines every learned model must beat, in leaderboard order
BASELINES: tuple[str, ...] = ("popular", "repeat", "itemknn", "als", "bpr")


def available_models() -> list[str]:
    return list(_MODELS)


def get_model_class(name: str) -> type[Recommender]:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(_MODELS)}")
    module, _, attr = _MODELS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def create_model(name: str, **params: Any) -> Recommender:
    return get_model_class(name)(**params)
