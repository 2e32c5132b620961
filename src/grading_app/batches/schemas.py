"""Batch API shapes."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    with_config,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from grading_app.fields import UtcDateTime
from grading_app.migrations.default_templates import COMMON_RULES
from grading_app.providers.targets import ModelLabel

MAX_RETRIES = 10


@with_config(ConfigDict(strict=True))
class BatchSettings(TypedDict, total=False):
    """The processing settings a request may send, with their ranges. These are the keys
    the default templates' processing rules set; the workers act on `max_retries` and
    `timeout_seconds`, and the others are kept with the batch as it describes itself.
    Rows already stored may hold other keys (legacy databases do): they are read as they
    are, never refused."""

    max_retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)]
    retry_backoff_seconds: Annotated[float, Field(ge=0, le=3600)]
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)]
    concurrency: Annotated[int, Field(ge=1, le=64)]
    on_failure: Literal["continue"]
    require_structured_output: bool


# What every batch starts from, under a template's processing rules and the request's
# own settings: the values the default templates share.
DEFAULT_SETTINGS = cast(BatchSettings, dict(COMMON_RULES))


def _known_settings_only(value: Any) -> Any:
    """An unknown key (a typo, most often) is refused by name, with the keys there are."""
    if not isinstance(value, dict):
        return value
    known = list(BatchSettings.__annotations__)
    for key in value:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            raise PydanticCustomError(
                "unknown_setting",
                "Unknown setting '{key}'{hint}; the settings are {known}",
                {
                    "key": key,
                    "hint": f" (did you mean '{close[0]}'?)" if close else "",
                    "known": ", ".join(known),
                },
            )
    return value


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
    deadline: UtcDateTime | None = Field(
        default=None,
        description="Batches with the soonest deadline are graded first; with an offset "
        "(Z, +02:00), else taken as UTC",
    )
    tags: list[str] | None = None
    settings: Annotated[BatchSettings, BeforeValidator(_known_settings_only)] | None = Field(
        default=None,
        description='Processing settings, e.g. {"max_retries": 3}; a template\'s processing '
        "rules, else the defaults, fill in the rest",
    )
    template_id: str | None = Field(default=None, description="A batch template's id")
    template: str | None = Field(
        default=None, description="A batch template's name (any case), instead of its id"
    )
    prompt: str | None = Field(
        default=None, description="Default grading instructions for the batch's jobs"
    )
    models: list[ModelLabel] | None = Field(
        default=None,
        description="Default models for the batch's jobs, as provider:model "
        "(e.g. openrouter:openai/gpt-4o); several to compare them",
    )
    temperature: float | None = None
    max_tokens: int | None = None
    saved_prompt_id: str | None = Field(
        default=None, description="A saved prompt (GET /api/prompts) as the prompt, not `prompt`"
    )
    saved_marking_scheme_id: str | None = Field(
        default=None,
        description="A saved marking scheme (GET /api/marking-schemes) for the batch's jobs",
    )


class BatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    batch_name: str
    description: str | None
    status: str | None
    priority: int
    tags: list[str] | None = None
    deadline: UtcDateTime | None
    created_at: UtcDateTime | None
    started_at: UtcDateTime | None
    completed_at: UtcDateTime | None
    estimated_completion: UtcDateTime | None
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
    saved_prompt_id: str | None = None
    saved_marking_scheme_id: str | None = None

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
