"""The model directory: everything a later command needs to answer without the training run.

Layout (written to a temporary folder, then renamed into place, so a crash leaves the old one)::

    MODEL_DIR/
      manifest.json    model name and config, query, schema name and digest, as_of, versions
      model/           the model's own save() output (config.json, state.safetensors, state.json)
      users.parquet    internal -> external entity ids
      items.parquet    internal -> external item ids
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from hoprec import __version__
from hoprec.atomic import atomic_dir
from hoprec.data.dataset import Dataset
from hoprec.data.idmap import IdMap
from hoprec.models.base import Recommender

MANIFEST = "manifest.json"


@dataclass
class ModelArtifact:
    model: Recommender
    users: IdMap
    items: IdMap
    manifest: dict[str, Any]

    @property
    def as_of(self) -> pd.Timestamp:
        return pd.Timestamp(self.manifest["as_of"])


def save_model_dir(
    path: str | Path, model: Recommender, dataset: Dataset, query: str, schema_name: str,
    schema_digest: str, extra: dict[str, Any] | None = None,
) -> Path:
    path = Path(path)
    with atomic_dir(path) as tmp:
        model.save(tmp / "model")
        dataset.users.save(tmp / "users.parquet")
        dataset.items.save(tmp / "items.parquet")
        manifest = {
            "format": 1, "hoprec_version": __version__, "model": model.get_config(),
            "query": query, "schema": schema_name, "schema_digest": schema_digest,
            "as_of": str(dataset.cutoff), "n_users": dataset.n_users, "n_items": dataset.n_items,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **(extra or {}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return path


def load_model_dir(path: str | Path) -> ModelArtifact:
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise FileNotFoundError(f"{path} is not a hoprec model directory (no {MANIFEST})")
    manifest = json.loads((path / MANIFEST).read_text())
    model = Recommender.load(path / "model")
    return ModelArtifact(
        model, IdMap.load(path / "users.parquet"), IdMap.load(path / "items.parquet"), manifest
    )
