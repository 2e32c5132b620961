"""Create batches, jobs and submissions, and queue their work items."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from grading_app.errors import BadRequest
from grading_app.models import GradingJob, JobBatch, MarkingScheme, Submission, utcnow
from grading_app.processing.service import enqueue_job


@dataclass(frozen=True)
class Target:
    provider: str
    model: str

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.model}"


def parse_targets(values: list[Any], *, default_provider: str | None) -> list[Target]:
    """Models as `provider:model`, `{"provider": .., "model": ..}`, or a bare model name
    for the default provider; duplicates removed, order kept."""
    targets: list[Target] = []
    for value in values:
        if isinstance(value, dict):
            provider, model = value.get("provider") or default_provider, value.get("model")
        elif isinstance(value, str) and ":" in value and not value.startswith("http"):
            provider, model = value.split(":", 1)
        else:
            provider, model = default_provider, value
        if not provider or not model:
            raise BadRequest(
                f"Model {value!r} needs a provider: write it as provider:model "
                "(for example openrouter:openai/gpt-4o) or pass --provider"
            )
        target = Target(str(provider), str(model))
        if target not in targets:
            targets.append(target)
    return targets


def job_targets(job: GradingJob) -> list[Target]:
    compare = job.models_to_compare if isinstance(job.models_to_compare, list) else []
    if compare:
        return parse_targets(compare, default_provider=job.provider)
    if not job.model:
        raise BadRequest(f"Job '{job.job_name}' names no model to grade with")
    return [Target(job.provider, job.model)]


def create_batch(
    session: Session,
    *,
    name: str,
    description: str | None = None,
    priority: int = 5,
    deadline: datetime | None = None,
    tags: list[str] | None = None,
    settings: dict[str, Any] | None = None,
    template_id: str | None = None,
    created_by: str | None = None,
) -> JobBatch:
    if not 1 <= priority <= 10:
        raise BadRequest(f"Priority must be between 1 and 10, not {priority}")
    now = utcnow()
    batch = JobBatch(
        batch_name=name,
        description=description,
        status="draft",
        priority=priority,
        deadline=deadline,
        tags=tags or [],
        batch_settings=settings or {},
        template_id=template_id,
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    session.add(batch)
    session.flush()
    return batch


def create_job(
    session: Session,
    *,
    name: str,
    prompt: str,
    targets: list[Target],
    batch: JobBatch | None = None,
    marking_scheme: MarkingScheme | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> GradingJob:
    if not prompt.strip():
        raise BadRequest("The grading prompt is empty")
    if not targets:
        raise BadRequest("Choose at least one model to grade with")
    first = targets[0]
    job = GradingJob(
        job_name=name,
        prompt=prompt,
        provider=first.provider,
        model=first.model,
        models_to_compare=[t.label for t in targets] if len(targets) > 1 else None,
        batch_id=batch.id if batch else None,
        marking_scheme_id=marking_scheme.id if marking_scheme else None,
        status="pending",
        priority=batch.priority if batch else 5,
        temperature=temperature,
        max_tokens=max_tokens,
        total_submissions=0,
        processed_submissions=0,
        failed_submissions=0,
    )
    session.add(job)
    session.flush()
    if batch is not None:
        batch.total_jobs = (batch.total_jobs or 0) + 1
    return job


def add_submission(
    session: Session,
    *,
    job: GradingJob,
    original_filename: str,
    stored_filename: str,
    file_type: str | None,
    file_size: int | None,
    extracted_text: str | None,
    error: str | None = None,
) -> Submission:
    """A document of the job; one that could not be read is kept, failed, with why."""
    submission = Submission(
        job_id=job.id,
        original_filename=original_filename,
        filename=stored_filename,
        file_type=file_type,
        file_size=file_size,
        extracted_text=extracted_text,
        status="failed" if error else "pending",
        error_message=error,
        retry_count=0,
    )
    session.add(submission)
    job.total_submissions = (job.total_submissions or 0) + 1
    if error:
        job.failed_submissions = (job.failed_submissions or 0) + 1
    session.flush()
    return submission


def queue_job(session: Session, *, job: GradingJob) -> int:
    """Create the job's work items, one per readable submission and model."""
    targets = job_targets(job)
    return enqueue_job(session, job=job, models=[(t.provider, t.model) for t in targets])
