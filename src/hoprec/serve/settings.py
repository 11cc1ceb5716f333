"""Service settings: one pydantic-settings object, read from ``HOPREC_*`` environment variables.

``get_settings()`` is the FastAPI dependency; tests pass their own :class:`Settings` to
``create_app`` instead of setting environment variables.  Every field can be set as
``HOPREC_<FIELD>`` (e.g. ``HOPREC_API_KEY``, ``HOPREC_MODEL_DIR``, ``HOPREC_EVENTS_PATH``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from hoprec.compat import require

require("pydantic_settings", "serve")

from pydantic import Field  # noqa: E402
from pydantic_settings import BaseSettings, SettingsConfigDict  # noqa: E402


class Settings(BaseSettings):
    """What the service reads at start; unknown ``HOPREC_*`` variables are ignored."""

    model_config = SettingsConfigDict(env_prefix="HOPREC_", extra="ignore")

    #: the model directory written by ``hoprec train``
    model_dir: Path | None = None
    #: schema file, to build the serving data (history, item attributes, item edges) when the model
    #: directory has none yet; it is then cached in ``MODEL_DIR/serving``
    schema_path: Path | None = None
    #: key for the admin routes (``X-API-Key`` header); admin routes answer 401 without it
    api_key: str | None = None
    #: SQLite event store (default: ``events.sqlite`` beside the model directory)
    events_path: Path | None = None
    #: PostgreSQL event store shared by several instances (``postgresql://...``; issue 7's
    #: :class:`~hoprec.serve.pg_events.PostgresEventStore`); replaces ``events_path`` when set
    events_url: str | None = None
    #: largest request body accepted, in bytes (413 above)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    #: most users per ``/recommend/batch`` call
    max_batch: int = Field(default=1000, ge=1)
    #: catalogues above this many items use an HNSW index instead of an exact scan
    exact_max_items: int = Field(default=200_000, ge=1)
    #: candidates fetched from the index per requested item (before filters and re-ranking)
    overfetch: int = Field(default=20, ge=1)
    #: MMR trade-off when diversity is on and the request gives none (1 = pure relevance)
    mmr_lambda: float = Field(default=0.7, ge=0, le=1)
    #: per-user score vectors kept in memory (LRU), at most this many ...
    cache_size: int = Field(default=4096, ge=0)
    #: ... and at most this many MiB (an entry holds up to one float32 per item)
    cache_mb: int = Field(default=256, ge=0)
    #: slow dense models (hybrid): precompute each known user's top items at load ("auto": when
    #: one scoring call takes over precompute_above_ms), "always" or "never"
    precompute: Literal["auto", "always", "never"] = "auto"
    precompute_items: int = Field(default=5000, ge=1)
    precompute_mb: int = Field(default=512, ge=1)
    precompute_above_ms: float = Field(default=20.0, ge=0)
    #: item attribute columns (default: guessed from the item table: see ServingData.columns)
    category_column: str | None = None
    brand_column: str | None = None
    price_column: str | None = None
    available_column: str | None = None
    title_column: str | None = None
    #: user column whose values segment cold users (default: the first categorical column)
    segment_column: str | None = None
    #: BLAS / OpenMP threads per worker: one request is one small scan, so 1 avoids threads
    #: spinning against each other on a busy machine (0: leave the libraries' defaults)
    threads: int = Field(default=1, ge=0)
    #: how often (seconds) a worker looks for a reload requested through another worker
    reload_poll_s: float = Field(default=1.0, gt=0)

    def resolved_events_path(self) -> Path:
        if self.events_path is not None:
            return self.events_path
        if self.model_dir is None:
            raise ValueError("set HOPREC_EVENTS_PATH or HOPREC_MODEL_DIR")
        return Path(self.model_dir).resolve().parent / "events.sqlite"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
