"""Batch API shapes."""

from __future__ import annotations

import difflib
import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from grading_app.fields import (
    MAX_TOKENS_SCHEMA,
    TEMPERATURE_SCHEMA,
    Description,
    Identifier,
    Name,
    Prompt,
    Tag,
    UtcDateTime,
)
from grading_app.models import BatchStatus
from grading_app.processing.schemas import ProviderBatchTotalsOut
from grading_app.processing.settings import BatchSettings
from grading_app.providers.targets import ModelLabel


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

    name: Name = Field(description="Shown in lists and exports (at most 255 characters)")
    description: Description | None = None
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
    tags: list[Tag] | None = None
    settings: Annotated[BatchSettings, BeforeValidator(_known_settings_only)] | None = Field(
        default=None,
        description='Processing settings, e.g. {"max_retries": 3}; a template\'s processing '
        "rules, else the defaults, fill in the rest",
    )
    template_id: Identifier | None = Field(default=None, description="A batch template's id")
    template: Name | None = Field(
        default=None, description="A batch template's name (any case), instead of its id"
    )
    prompt: Prompt | None = Field(
        default=None, description="Default grading instructions for the batch's jobs"
    )
    models: list[ModelLabel] | None = Field(
        default=None,
        description="Default models for the batch's jobs, as provider:model "
        "(e.g. openrouter:openai/gpt-4o); several to compare them",
    )
    temperature: float | None = Field(default=None, json_schema_extra=TEMPERATURE_SCHEMA)
    max_tokens: int | None = Field(default=None, json_schema_extra=MAX_TOKENS_SCHEMA)
    saved_prompt_id: Identifier | None = Field(
        default=None, description="A saved prompt (GET /api/prompts) as the prompt, not `prompt`"
    )
    saved_marking_scheme_id: Identifier | None = Field(
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
    updated_at: UtcDateTime | None = None
    created_by: str | None = None
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
    # Calls sent through a vendor's batch API (`delivery`): provider batches still open,
    # and calls already answered there (paid for, kept by a pause or cancel). In the
    # answers about one batch (read, pause, cancel) once it has sent work to a batch API;
    # null otherwise.
    provider_batches: ProviderBatchTotalsOut | None = None
    pause_reason: str | None = Field(
        default=None, description="Why the batch paused when no person paused it (its budget)"
    )

    @field_validator("tags", mode="before")
    @classmethod
    def _tag_list(cls, value: Any) -> Any:
        # Legacy rows may hold NULL, 'null', a JSON string or text that is not JSON.
        if not isinstance(value, list):
            return None
        return [tag if isinstance(tag, str) else json.dumps(tag) for tag in value]

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


class BatchDetailOut(BatchOut):
    """One batch, with the grading prompt its new jobs take."""

    prompt: str | None = None
    spent_usd: float = Field(
        default=0.0,
        description="What its calls have cost so far (USD, as priced when each was stored)",
    )
    # Usernames the batch is shared with (GET .../shares has their permissions).
    shared_with: list[str] | None = None

    @field_validator("shared_with", mode="before")
    @classmethod
    def _usernames(cls, value: Any) -> Any:
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else None


class ShareCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=64, description="The username to share with")
    permission: Literal["view", "edit"] = "view"


class ShareOut(BaseModel):
    user: str
    display_name: str | None
    permission: Literal["view", "edit"]
    created_at: UtcDateTime


class RetryOut(BaseModel):
    batch: BatchOut
    requeued: int


class BatchUpdate(BaseModel):
    """Changes to a batch: only the fields sent change (null clears one that may be
    empty). Which fields may change in which status: `batches/service.py`."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    priority: int | None = Field(default=None, json_schema_extra={"minimum": 1, "maximum": 10})
    deadline: UtcDateTime | None = None
    tags: list[Tag] | None = Field(default=None, description="Replaces the batch's tags")
    settings: Annotated[BatchSettings, BeforeValidator(_known_settings_only)] | None = Field(
        default=None, description="Merged into the batch's processing settings"
    )
    prompt: Prompt | None = None
    models: list[ModelLabel] | None = Field(
        default=None, description="provider:model; the batch's jobs switch to them"
    )
    temperature: float | None = Field(default=None, json_schema_extra=TEMPERATURE_SCHEMA)
    max_tokens: int | None = Field(default=None, json_schema_extra=MAX_TOKENS_SCHEMA)
    saved_prompt_id: Identifier | None = Field(
        default=None, description="A saved prompt: its text becomes the batch's prompt"
    )
    saved_marking_scheme_id: Identifier | None = Field(
        default=None, description="A saved marking scheme for the batch's jobs"
    )


class BatchDuplicate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(default=None, description='Default "<name> (copy)"')
    include_documents: bool = Field(
        default=False,
        description="Copy the jobs and their documents too (text and stored files), queued "
        "for grading once the new batch starts",
    )
    models: list[ModelLabel] | None = Field(
        default=None,
        description="Grade the copy with these models (provider:model) instead of the original's",
    )


class BatchDeletedOut(BaseModel):
    id: str
    batch_name: str
    jobs: int
    submissions: int
    files_removed: int


# --- the list's filters, shared by GET /api/batches and bulk operations ----------------

BatchSortKey = Literal[
    "priority",
    "created_at",
    "deadline",
    "started_at",
    "completed_at",
    "name",
    "status",
    "updated_at",
]
QUERY_TEXT_LENGTH = 200


def _listed(value: Any) -> Any:
    """A single value as a list of one (a JSON filter may send `"tag": "english"`)."""
    return [value] if isinstance(value, str) else value


def _comma_separated(value: Any) -> Any:
    """`status=failed&status=cancelled`, `status=failed,cancelled`, or a JSON list."""
    values = _listed(value)
    if not isinstance(values, list):
        return values
    return [
        part.strip()
        for item in values
        for part in (item.split(",") if isinstance(item, str) else [item])
        if not isinstance(part, str) or part.strip()
    ] or None


def _statuses(value: Any) -> Any:
    """Several statuses; one that is not a batch status is named, with those there are."""
    values = _comma_separated(value)
    known = [status.value for status in BatchStatus]
    for item in values if isinstance(values, list) else []:
        if item not in known:
            raise PydanticCustomError(
                "unknown_status",
                "Unknown status '{status}'; one of: {known}",
                {"status": str(item), "known": ", ".join(known)},
            )
    return values


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


QueryText = Annotated[str, AfterValidator(_no_nul), Field(max_length=QUERY_TEXT_LENGTH)]


class BatchQuery(BaseModel):
    """Which batches: every condition given must hold. Without `status`, archived
    batches are left out; `status=archived` lists them."""

    model_config = ConfigDict(extra="forbid")

    status: Annotated[list[BatchStatus] | None, BeforeValidator(_statuses)] = Field(
        default=None, description="One or more statuses: repeat it, or separate with commas"
    )
    priority_min: int | None = Field(default=None, ge=1, le=10)
    priority_max: int | None = Field(default=None, ge=1, le=10)
    tag: Annotated[list[QueryText] | None, BeforeValidator(_listed)] = Field(
        default=None, description="A tag (exact match); repeat it for several"
    )
    tags_match: Literal["any", "all"] = Field(
        default="any", description="With several tags: batches with any of them, or all"
    )
    created_from: UtcDateTime | None = Field(
        default=None, description="ISO timestamps, with an offset or taken as UTC; inclusive"
    )
    created_to: UtcDateTime | None = None
    deadline_from: UtcDateTime | None = None
    deadline_to: UtcDateTime | None = None
    started_from: UtcDateTime | None = None
    started_to: UtcDateTime | None = None
    completed_from: UtcDateTime | None = None
    completed_to: UtcDateTime | None = None
    template_id: QueryText | None = None
    created_by: QueryText | None = None
    q: QueryText | None = Field(
        default=None, description="Words in the name, description or tags (any case)"
    )
    sort: BatchSortKey | None = Field(
        default=None,
        description="Default: priority (highest first), then newest first. Ties are broken "
        "by id, so pages neither overlap nor skip",
    )
    order: Literal["asc", "desc"] | None = Field(
        default=None,
        description="Default desc, but asc for name and status; batches without the date "
        "sorted on come last either way",
    )

    @model_validator(mode="after")
    def _ranges_in_order(self) -> BatchQuery:
        for low, high in (
            ("priority_min", "priority_max"),
            ("created_from", "created_to"),
            ("deadline_from", "deadline_to"),
            ("started_from", "started_to"),
            ("completed_from", "completed_to"),
        ):
            start, end = getattr(self, low), getattr(self, high)
            if start is not None and end is not None and start > end:
                relation = "more than" if isinstance(start, int) else "after"
                raise ValueError(f"{low} ({start}) is {relation} {high} ({end})")
        return self


class BatchListQuery(BatchQuery):
    # The query string also carries limit and offset (paging); unknown names are refused
    # for every route at once (deps.reject_unknown_query_parameters).
    model_config = ConfigDict(extra="ignore")


# --- bulk operations --------------------------------------------------------------------

BulkAction = Literal[
    "start",
    "pause",
    "resume",
    "cancel",
    "retry-failed",
    "archive",
    "delete",
    "add_tags",
    "remove_tags",
    "set_priority",
]


class BulkRequest(BaseModel):
    """One action on many batches, named by `ids` or selected by `filter` (the keys of
    the list's query)."""

    model_config = ConfigDict(extra="forbid")

    action: BulkAction
    ids: list[str] | None = None
    filter: BatchQuery | None = None
    dry_run: bool = Field(default=False, description="Say what would happen; change nothing")
    tags: list[str] | None = Field(default=None, description="For add_tags and remove_tags")
    priority: int | None = Field(
        default=None,
        description="For set_priority",
        json_schema_extra={"minimum": 1, "maximum": 10},
    )


class BulkItemOut(BaseModel):
    id: str
    batch_name: str | None
    outcome: Literal["done", "skipped"]
    reason: str | None = Field(description="Why it was skipped")
    status: str | None = Field(description="The batch's status after the action")


class BulkOut(BaseModel):
    action: BulkAction
    dry_run: bool
    matched: int
    done: int
    skipped: int
    results: list[BulkItemOut]


# --- estimate -----------------------------------------------------------------------------


HELD_DESCRIPTION = (
    "Of the documents, held for review (hidden instructions found, and the batch's "
    "`hidden_instructions` is hold): never sent, so not in `to_grade` nor in the costs, "
    "until a person grades them anyway"
)


class ModelEstimateOut(BaseModel):
    model: str = Field(description="provider:model")
    documents: int = Field(description="Documents this model grades in the batch")
    to_grade: int = Field(description="Of them, not yet graded: what the figures cover")
    graded: int = Field(description="Graded, with the tokens they used (calibration)")
    held: int = Field(description=HELD_DESCRIPTION)
    input_tokens: int = Field(description="Input tokens of the calls still to make")
    cached_input_tokens: int = Field(
        description="Of the input, the shared prompt prefix the vendor should read from its "
        "cache: on every call after a job's first, when the prefix is 1,024 tokens or more"
    )
    output_tokens: int
    input_basis: str = Field(description="How the input was estimated")
    output_basis: str = Field(description="Guessed from the rubric, or observed in grades")
    cost_live_usd: float | None = Field(description="None: no price known for the model")
    cost_batch_api_usd: float | None = Field(
        description="Through the vendor's batch API; None without a price or a batch API"
    )
    price_source: str | None
    note: str | None


class EstimateTotalsOut(BaseModel):
    documents: int
    to_grade: int
    held: int = Field(description=HELD_DESCRIPTION)
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_live_usd: float | None = Field(description="Of the models with a price")
    cost_batch_api_usd: float | None = Field(
        description="Of the models with a price: batch API where the vendor has one, else live"
    )
    expected_cost_usd: float | None = Field(description="The cost the batch's delivery implies")
    complete: bool = Field(description="Whether every model has a price (else costs are partial)")


class CostEstimateOut(BaseModel):
    """Per model and in total: what an existing batch or one described (not yet made)
    will use and cost."""

    delivery: str
    budget_usd: float | None
    within_budget: bool | None = Field(
        description="Whether spent plus the expected cost stays within the budget"
    )
    models: list[ModelEstimateOut]
    totals: EstimateTotalsOut


class EstimateOut(CostEstimateOut):
    batch_id: str
    status: str | None
    spent_usd: float
    remaining_budget_usd: float | None = Field(description="Budget less what was spent")


class EstimatedFileOut(BaseModel):
    filename: str
    counted: bool = Field(description="False: the file cannot be graded and is left out")
    held: bool = Field(
        description="Hidden instructions found and the batch holds such documents: counted "
        "among the documents, but not graded (nor paid for) until a person decides"
    )
    characters: int = Field(description="Of its extracted text (0 when refused)")
    error: str | None = Field(description="Why it cannot be graded, as an upload would say")
    error_code: str | None
    warnings: list[str]


class DraftEstimateOut(CostEstimateOut):
    """The estimate of a batch not yet made, from its choices and files; nothing stored."""

    files: list[EstimatedFileOut] = Field(
        description="Each document (a zip's one by one), counted or refused with the reason"
    )
    marking_scheme: str | None = Field(
        description="Where the marking scheme comes from: upload, text, library, template"
    )
