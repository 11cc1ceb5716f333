"""Request and response bodies of the HTTP API (unknown fields are rejected everywhere)."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field

Id = Union[str, int]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FiltersIn(_Strict):
    categories: list[str] | None = Field(None, max_length=1000, description="Allowed categories.")
    brands: list[str] | None = Field(None, max_length=1000, description="Allowed brands.")
    price_min: float | None = Field(None, ge=0)
    price_max: float | None = Field(None, ge=0)
    available_only: bool = Field(False, description="Only items the availability column marks in stock.")
    exclude_item_ids: list[Id] = Field(default_factory=list, max_length=10_000)
    allow_item_ids: list[Id] | None = Field(None, max_length=10_000)


class DiversityIn(_Strict):
    lambda_: float = Field(0.7, alias="lambda", ge=0, le=1, description="MMR: 1 = relevance only.")
    max_per_category: int | None = Field(None, ge=1)


class _Options(_Strict):
    k: int = Field(12, ge=1, le=1000)
    filters: FiltersIn | None = None
    exclude_purchased: bool | None = Field(None, description="Default: the schema's setting.")
    diversity: bool | DiversityIn = False
    explain: bool = False
    discovery_positions: list[int] | None = Field(
        None, max_length=1000,
        description="0-based places of the list for the best-scored products the customer has never "
                    "bought, e.g. [10, 11]; [] turns them off. Default: the model's setting.")


class RecommendIn(_Options):
    user_id: Id
    item_ids: list[Id] | None = Field(None, max_length=200, description="Recent items (cold users).")


class SessionIn(_Options):
    item_ids: list[Id] = Field(..., min_length=1, max_length=200)


class BatchIn(_Options):
    user_ids: list[Id] = Field(..., min_length=1, max_length=1000)


class EventIn(_Strict):
    user_id: Id
    item_id: Id
    kind: Literal["view", "click", "add_to_cart", "purchase", "return", "rating"] = "purchase"
    time: str | None = Field(None, description="ISO 8601; default: when the server receives it.")
    quantity: float = Field(1.0, ge=0)


class EventsIn(_Strict):
    events: list[EventIn] = Field(..., min_length=1, max_length=1000)


class ReloadIn(_Strict):
    model_dir: str | None = Field(None, description="Default: reload the current model directory.")


class Reason(BaseModel):
    kind: str
    via_item: Id | None = None
    attribution: float
    text: str


class RecItem(BaseModel):
    item_id: Id
    score: float
    reasons: list[Reason] | None = None


class RecommendOut(BaseModel):
    user_id: Id | None = None
    items: list[RecItem]
    source: Literal["model", "model+events", "session", "segment", "popular", "bought_after",
                    "co_purchase", "similar", "complementary"]
    user_known: bool = True
    message: str | None = None
    folded_events: int = 0
    model_version: str
