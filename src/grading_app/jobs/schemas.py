"""Job, submission and upload API shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, computed_field
from pydantic_core import PydanticCustomError

from grading_app.errors import AppError, BadRequest
from grading_app.models import GradingJob
from grading_app.providers.registry import ProviderConfigError, load_provider_configs


def _in_utc(value: datetime) -> datetime:
    """Stored timestamps are naive UTC (as in legacy databases), and so is a client's
    value without an offset; one with an offset is converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Every timestamp the API takes or gives: aware UTC, which pydantic writes with "Z".
UtcDateTime = Annotated[datetime, AfterValidator(_in_utc)]


def _known_providers() -> str:
    try:
        return ", ".join(load_provider_configs())
    except ProviderConfigError as exc:  # the environment's own mistake, said elsewhere
        return f"none readable ({exc.message})"


def _provider_and_model(value: str) -> str:
    """A model as `provider:model` (a form may also send several, comma-separated): the
    same parser as every other path, and with no default provider, so `gpt-4o` alone is
    refused rather than quietly given one."""
    from grading_app.jobs.service import parse_targets  # the service imports this module

    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            parse_targets([part], default_provider=None, or_else="")
        except BadRequest as exc:
            raise PydanticCustomError(
                "model_label",
                "{reason}; known providers: {providers}",
                {"reason": exc.message, "providers": _known_providers()},
            ) from None
    return value


ModelLabel = Annotated[str, AfterValidator(_provider_and_model)]


class JobCreate(BaseModel):
    """A new job's settings (the multipart form's text fields); what is left out comes
    from the batch, then from the batch's template."""

    name: str | None = None
    prompt: str | None = None
    models: list[ModelLabel] = []
    temperature: float | None = None
    max_tokens: int | None = None


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    job_name: str
    status: str | None
    batch_id: str | None
    models: list[str]
    total_submissions: int | None
    processed_submissions: int | None
    failed_submissions: int | None
    total_items: int
    completed_items: int
    failed_items: int
    created_at: UtcDateTime | None
    started_at: UtcDateTime | None
    completed_at: UtcDateTime | None
    estimated_completion: UtcDateTime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def progress(self) -> float:
        done = self.completed_items + self.failed_items
        return done / self.total_items if self.total_items else 0.0

    @classmethod
    def of(cls, job: GradingJob) -> JobOut:
        from grading_app.jobs.service import job_targets

        try:
            models = [t.label for t in job_targets(job)]
        except AppError:  # a legacy job that names no model still lists
            models = []
        return cls.model_validate({**_columns(job), "models": models})


def _columns(job: GradingJob) -> dict[str, Any]:
    return {name: getattr(job, name) for name in JobOut.model_fields if name != "models"}


class Page(BaseModel):
    total: int
    limit: int
    offset: int


class JobPage(Page):
    items: list[JobOut]


class GradeOut(BaseModel):
    """One model's grade of one document."""

    model_config = ConfigDict(from_attributes=True)

    provider: str
    model: str
    score: float | None
    max_score: float | None
    criteria: list[dict[str, Any]] | None
    feedback: str | None


class SubmissionOut(BaseModel):
    id: str
    original_filename: str
    file_type: str | None
    file_size: int | None
    status: str | None
    error: str | None
    created_at: UtcDateTime | None
    # The grade when the job has one model; with several, see `grades`.
    score: float | None
    max_score: float | None
    grades: list[GradeOut]


class SubmissionPage(Page):
    items: list[SubmissionOut]


class FileOutcome(BaseModel):
    """What became of one uploaded file (or of one document in an uploaded .zip)."""

    filename: str
    status: Literal["queued", "failed"]
    submission_id: str | None
    file_type: str | None
    size_bytes: int | None
    warnings: list[str]
    error: str | None
    error_code: str | None


class UploadOut(BaseModel):
    job: JobOut
    batch_status: str | None
    queued_items: int
    files: list[FileOutcome]
