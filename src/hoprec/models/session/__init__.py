"""Session models: next-item recommendation from an anonymous session's clicks.

Their own contract (:class:`~hoprec.models.session.base.SessionRecommender`): fitted on training
sessions, asked with ``recommend_session(item_ids, k, items=None)``.  Names -> classes, imported
lazily so torch loads only for the graph model.
"""

from __future__ import annotations

import importlib

from hoprec.models.session.base import (
    SessionData,
    SessionRecommendation,
    SessionRecommender,
)

_MODELS: dict[str, str] = {
    "session_pop": "hoprec.models.session.baselines:SessionPop",
    "transitions": "hoprec.models.session.baselines:Transitions",
    "sknn": "hoprec.models.session.baselines:SKNN",
    "vsknn": "hoprec.models.session.baselines:VSKNN",
    "sgnn": "hoprec.models.session.sgnn:SessionGNN",
    "sgnn_vsknn": "hoprec.models.session.blend:SessionBlend",
}

#: what `hoprec evaluate` runs for a session query when no --models are given
SESSION_DEFAULT: tuple[str, ...] = ("session_pop", "transitions", "sknn", "vsknn", "sgnn", "sgnn_vsknn")

__all__ = ["SESSION_DEFAULT", "SessionData", "SessionRecommendation", "SessionRecommender",
           "available_session_models", "get_session_model_class"]


def available_session_models() -> list[str]:
    return list(_MODELS)


def get_session_model_class(name: str) -> type[SessionRecommender]:
    if name not in _MODELS:
        raise ValueError(f"unknown session model {name!r}; available: {', '.join(_MODELS)}")
    module, _, attr = _MODELS[name].partition(":")
    return getattr(importlib.import_module(module), attr)
