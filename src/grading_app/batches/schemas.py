"""Batch API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator


class BatchCreate(BaseModel):
    """A new batch; it starts as a draft. Fields left out come from the template, if one
    is named, and then from the defaults. Ranges are checked by the service, so a value
    out of range gets a message saying what is allowed."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Shown in lists and exports (at most 255 characters)")
    description: str | None = None
    priority: int | None = Field(
        default=None,
        description="1 (lowest) to 10 (highest); default the template's, else 5",
        json_schema_extra={"minimum": 1, "maximum": 10},
    )
    deadline: datetime | None = Field(
        default=None, description="Batches with the soonest deadline are graded first"
    )
    tags: list[str] | None = None
    settings: dict[str, Any] | None = Field(
        default=None,
        description='Processing settings, e.g. {"max_retries": 3}; a template\'s processing '
        "rules fill in the rest",
    )
    template_id: str | None = Field(default=None, description="A batch template's id")
    template: str | None = Field(
        default=None, description="A batch template's name (any case), instead of its id"
    )
    prompt: str | None = Field(
        default=None, description="Default grading instructions for the batch's jobs"
    )
    models: list[str] | None = Field(
        default=None,
        description="Default models for the batch's jobs, as provider:model "
        "(e.g. openrouter:openai/gpt-4o); several to compare them",
    )
    temperature: float | None = None
    max_tokens: int | None = None


class BatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    batch_name: str
    description: str | None
    status: str | None
    priority: int
    tags: list[str] | None = None
    deadline: datetime | None
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    estimated_completion: datetime | None
    total_jobs: int
    completed_jobs: int
    failed_jobs: int
    total_items: int
    completed_items: int
    failed_items: int
    template_id: str | None = None
    batch_settings: dict[str, Any] | None = None
    provider: str | None = None
    model: str | None = None
    models_to_compare: list[str] | None = None
    temperature: float | None = None
    max_tokens: int | None = None

    @field_validator("batch_settings", mode="before")
    @classmethod
    def _settings_or_none(cls, value: Any) -> Any:
        # Legacy rows may hold text that is not a JSON object.
        return value if isinstance(value, dict) else None

    @field_validator("models_to_compare", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return None
        return [
            f"{m.get('provider')}:{m.get('model')}" if isinstance(m, dict) else str(m)
            for m in value
        ]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def progress(self) -> float:
        done = self.completed_items + self.failed_items
        return done / self.total_items if self.total_items else 0.0


class RetryOut(BaseModel):
    batch: BatchOut
    requeued: int
