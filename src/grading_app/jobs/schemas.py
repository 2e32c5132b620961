"""Job, submission and upload API shapes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from grading_app.errors import AppError
from grading_app.fields import Name, Prompt, UtcDateTime
from grading_app.models import GradingJob
from grading_app.providers.targets import ModelLabel, job_targets
from grading_app.trust.schemas import ReviewOut


class JobCreate(BaseModel):
    """A new job's settings (the multipart form's text fields); what is left out comes
    from the batch, then from the batch's template."""

    name: Name | None = None
    prompt: Prompt | None = None
    models: list[ModelLabel] = []
    temperature: float | None = None
    max_tokens: int | None = None
    # Library items by id: the saved prompt instead of `prompt`, the saved marking scheme
    # instead of a file (default the batch's).
    saved_prompt_id: str | None = None
    saved_marking_scheme_id: str | None = None


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
    partly_failed_submissions: int = Field(
        description="Documents graded by some models while others failed: counted in "
        "processed_submissions too (their status is completed)"
    )
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
        try:
            models = [t.label for t in job_targets(job)]
        except AppError:  # a legacy job that names no model still lists
            models = []
        return cls.model_validate({**_columns(job), "models": models})


def _columns(job: GradingJob, shape: type[JobOut] = JobOut) -> dict[str, Any]:
    return {name: getattr(job, name) for name in shape.model_fields if name != "models"}


class JobDetailOut(JobOut):
    """A job with its settings. Every figure is a stored column or counter, so reading it
    costs the same for ten documents or a million (analytics: /api/jobs/{id}/analytics)."""

    description: str | None
    prompt: str
    priority: int | None
    temperature: float | None
    max_tokens: int | None
    marking_scheme_id: str | None
    saved_prompt_id: str | None
    saved_marking_scheme_id: str | None

    @classmethod
    def of(cls, job: GradingJob) -> JobDetailOut:
        summary = JobOut.of(job)
        return cls.model_validate({**_columns(job, cls), "models": summary.models})


class JobRetryOut(JobDetailOut):
    requeued: int


class GradeOut(BaseModel):
    """One model's grade of one document."""

    model_config = ConfigDict(from_attributes=True)

    provider: str
    model: str
    score: float | None
    max_score: float | None
    criteria: list[dict[str, Any]] | None
    feedback: str | None


class FailedModelOut(BaseModel):
    """A model that failed to grade the document."""

    model_config = ConfigDict(from_attributes=True)

    provider: str
    model: str
    error: str | None


class SubmissionOut(BaseModel):
    id: str
    original_filename: str
    file_type: str | None
    file_size: int | None
    status: str | None = Field(
        description="pending, processing, completed (at least one model graded it) or "
        "failed; the statuses earlier releases wrote, kept for their readers"
    )
    error: str | None
    created_at: UtcDateTime | None
    # The grade when the job has one model; with several, see `grades`.
    score: float | None
    max_score: float | None
    grades: list[GradeOut]
    failed_models: list[FailedModelOut] = Field(
        description="Models that failed to grade it, each with the reason"
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="Completed, but some models failed: see failed_models"
    )
    @property
    def partly_failed(self) -> bool:
        return self.status == "completed" and bool(self.failed_models)


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


class QuoteCheckOut(BaseModel):
    criterion: str
    quote: str
    status: Literal["verified", "near", "unverified"]
    start: int | None = None
    end: int | None = None
    similarity: float | None = None


class GradeDetailOut(GradeOut):
    """One model's grade with what it cost: the answer as the model gave it, tokens and
    latency (none for a grade made by an earlier release, which kept only its text)."""

    raw_response: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int | None
    cost_usd: float | None = Field(
        default=None, description="What its calls cost (USD, as priced then); None: unknown"
    )
    cached_tokens: int | None = Field(
        default=None,
        description="Of prompt_tokens: read from the vendor's prompt cache (billed at "
        "its cached-input price); none when the vendor did not say",
    )
    cache_write_tokens: int | None = Field(
        default=None, description="Of prompt_tokens: written to the vendor's prompt cache"
    )
    legacy: bool
    created_at: UtcDateTime | None
    evidence: list[QuoteCheckOut] = Field(
        default=[],
        description="Each criterion's quotes, checked against the document's text: "
        "verified, near (a close match, said so) or unverified; start/end locate the "
        "match in extracted_text",
    )


class FailedItemOut(BaseModel):
    """A model that failed to grade the document, with why; the last attempt's answer
    and usage when the model answered at all."""

    provider: str
    model: str
    attempts: int | None
    error: str | None
    failed_at: UtcDateTime | None
    raw_response: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int | None
    cost_usd: float | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class SubmissionDetailOut(BaseModel):
    id: str
    job_id: str
    batch_id: str | None
    original_filename: str
    file_type: str | None
    file_size: int | None
    status: str | None
    error: str | None
    retry_count: int | None
    created_at: UtcDateTime | None
    updated_at: UtcDateTime | None
    extracted_text: str | None
    grades: list[GradeDetailOut]
    failed_items: list[FailedItemOut]
    review: ReviewOut = Field(
        description="Review state, a reviewer's grade (which wins), and why the document "
        "may need a look: reasons and hidden-instruction findings"
    )


class SubmissionRetryOut(BaseModel):
    submission: SubmissionDetailOut
    requeued: int


class SubmissionDeletedOut(BaseModel):
    id: str
    job_id: str
    original_filename: str
    files_removed: int
