"""Library API shapes: saved prompts and saved marking schemes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from grading_app.fields import Category, Description, Name, Prompt, SchemeText, UtcDateTime
from grading_app.grading.rubric import Rubric, stored_rubric


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptCreate(_Input):
    name: Name = Field(description="Shown in lists (at most 255 characters)")
    description: Description | None = None
    category: Category | None = None
    prompt_text: Prompt = Field(
        description="The grading instructions a batch or job made with it uses"
    )
    is_public: bool = Field(default=False, description="Everyone may see and use it")


class PromptUpdate(_Input):
    """Only the fields sent change; `description` and `category` may be set to null."""

    name: Name | None = None
    description: Description | None = None
    category: Category | None = None
    prompt_text: Prompt | None = None
    is_public: bool = Field(default=False, description="Changed only when sent")


class _Used(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    usage_count: int = Field(description="Batches and jobs created with it")
    last_used: UtcDateTime | None
    owner_id: str | None = None
    is_public: bool = False
    created_at: UtcDateTime | None
    updated_at: UtcDateTime | None

    @field_validator("usage_count", mode="before")
    @classmethod
    def _none_is_zero(cls, value: Any) -> Any:
        return value or 0  # legacy rows may hold NULL


class PromptOut(_Used):
    id: str
    name: str
    description: str | None
    category: str | None
    prompt_text: str
    # The prompt's preferred model, kept from databases created at G4/G5.
    provider: str | None = None
    model: str | None = None


class MarkingSchemeCreate(_Input):
    """A scheme written in the API: its text, its structured rubric, or both. With only a
    rubric, the text is the rubric written out."""

    name: Name
    description: Description | None = None
    category: Category | None = None
    content: SchemeText | None = Field(
        default=None, description="The scheme as text, as the model reads it"
    )
    rubric: Rubric | None = Field(
        default=None,
        description="Criteria with their maximum points and level descriptors; a grade "
        "must then score exactly these criteria out of these maxima",
    )
    is_public: bool = Field(default=False, description="Everyone may see and use it")

    @model_validator(mode="after")
    def _text_or_rubric(self) -> MarkingSchemeCreate:
        if not (self.content and self.content.strip()) and self.rubric is None:
            raise ValueError("give the scheme's `content`, its `rubric`, or both")
        return self


class MarkingSchemeUpdate(_Input):
    """Only the fields sent change; `rubric: null` makes the scheme free text again."""

    name: Name | None = None
    description: Description | None = None
    category: Category | None = None
    content: SchemeText | None = None
    rubric: Rubric | None = None
    is_public: bool = Field(default=False, description="Changed only when sent")


class MarkingSchemeSummary(_Used):
    """A scheme in a list: everything but its text."""

    id: str
    name: str
    description: str | None
    category: str | None
    rubric: Rubric | None = Field(description="null for a free-text scheme")
    original_filename: str | None = Field(description="The uploaded file's name, if any")
    file_type: str | None
    file_size: int | None

    @field_validator("rubric", mode="before")
    @classmethod
    def _stored(cls, value: Any) -> Any:
        return value if isinstance(value, Rubric) else stored_rubric(value)

    @field_validator("original_filename", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return value or None  # schemes written in the API have no file


class MarkingSchemeOut(MarkingSchemeSummary):
    content: str | None


class MarkingSchemeUploadOut(MarkingSchemeOut):
    reused: bool = Field(
        description="The same file was uploaded before: this is that scheme, unchanged"
    )
    warnings: list[str] = Field(
        description="Notes on reading the file (a table not read as a rubric, and why)"
    )
