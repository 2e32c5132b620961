"""Batch template API shapes.

A template holds what a batch made from it starts with: `default_settings` (priority,
temperature, max_tokens, the overall max_score, tags, models), `job_structure` (the
grading prompt and the criteria, in the library's rubric shape) and `processing_rules`
(the batch's processing settings).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from grading_app.fields import (
    MAX_TAGS,
    MAX_TOKENS_LIMIT,
    TEMPERATURE_RANGE,
    Category,
    Description,
    Identifier,
    Name,
    Prompt,
    Tag,
    UtcDateTime,
)
from grading_app.grading.rubric import MAX_CRITERIA, RubricCriterion, name_key
from grading_app.processing.settings import BatchSettings
from grading_app.providers.targets import ModelLabel
from grading_app.templates.defaults import is_default_template


class TemplateDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int | None = Field(default=None, ge=1, le=10)
    temperature: float | None = Field(
        default=None, ge=TEMPERATURE_RANGE[0], le=TEMPERATURE_RANGE[1]
    )
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    max_score: float | None = Field(
        default=None, gt=0, description="Overall maximum; default the criteria's sum"
    )
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    models: list[ModelLabel] | None = Field(
        default=None, description="provider:model, the batch's models unless it names its own"
    )


class JobStructure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Prompt | None = Field(default=None, description="The grading instructions")
    criteria: list[RubricCriterion] = Field(
        default_factory=list,
        max_length=MAX_CRITERIA,
        description="The rubric: a grade must score exactly these criteria, out of these maxima",
    )
    file_types: list[Literal["docx", "pdf", "txt", "md"]] | None = None

    @field_validator("criteria")
    @classmethod
    def _distinct_names(cls, criteria: list[RubricCriterion]) -> list[RubricCriterion]:
        seen: set[str] = set()
        for criterion in criteria:
            if name_key(criterion.name) in seen:
                raise ValueError(f"criterion '{criterion.name}' appears twice")
            seen.add(name_key(criterion.name))
        return criteria


class _TemplateFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Description | None = None
    category: Category | None = None
    is_public: bool | None = Field(default=None, description="Listed for everyone (default)")
    created_by: Name | None = None
    default_settings: TemplateDefaults | None = None
    job_structure: JobStructure | None = None
    processing_rules: BatchSettings | None = None


class TemplateCreate(_TemplateFields):
    """A new template, or with `from_batch_id` a batch's configuration saved as one
    (its prompt, models, settings, priority, tags and criteria; fields sent here win)."""

    name: Name | None = Field(
        default=None, description="Required, unless from_batch_id names the batch to save"
    )
    from_batch_id: str | None = Field(default=None, max_length=36)


class TemplateUpdate(_TemplateFields):
    """Only the fields sent change; a default template cannot be changed (duplicate it).
    A saved prompt or marking scheme named here is copied in: the template keeps the
    text and criteria, so a later change to the library item does not reach it."""

    name: Name | None = None
    saved_prompt_id: Identifier | None = Field(
        default=None, description="A saved prompt (GET /api/prompts): its text becomes the prompt"
    )
    saved_marking_scheme_id: Identifier | None = Field(
        default=None,
        description="A saved marking scheme with a rubric (GET /api/marking-schemes): its "
        "criteria and overall maximum become the template's",
    )


class TemplateDuplicate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(default=None, description='Default "Copy of <name>"')
    created_by: Name | None = None


def _object_or_none(value: Any) -> Any:
    # Rows of earlier releases may hold JSON that is not an object.
    return value if isinstance(value, dict) else None


class TemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str | None
    category: str | None
    is_public: bool | None
    created_by: str | None
    created_at: UtcDateTime | None
    updated_at: UtcDateTime | None
    usage_count: int = Field(description="Batches made from it")
    last_used: UtcDateTime | None
    default_settings: dict[str, Any] | None
    job_structure: dict[str, Any] | None
    processing_rules: dict[str, Any] | None

    _objects = field_validator(
        "default_settings", "job_structure", "processing_rules", mode="before"
    )(_object_or_none)

    @field_validator("usage_count", mode="before")
    @classmethod
    def _none_is_zero(cls, value: Any) -> Any:
        return value or 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_default(self) -> bool:
        """One of the four default templates: read-only, duplicate it to change it."""
        return is_default_template(self.name, self.created_by)
