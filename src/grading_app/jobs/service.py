"""Create jobs and their submissions, queue their work items; list them.

Everything here runs inside the caller's unit of work and only flushes. Reading and
storing files happens before, in `jobs/uploads.py`: a transaction here never waits on a
file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, defer

from grading_app.errors import BadRequest, Conflict, NotFound
from grading_app.fields import NAME_LENGTH, check_generation, check_name, split_models
from grading_app.grading.rubric import Rubric
from grading_app.jobs.grades import FailedModel, Grade, failed_models, grade_of, grades_subquery
from grading_app.jobs.schemas import JobCreate
from grading_app.library import service as library
from grading_app.lifecycle import service as lifecycle
from grading_app.models import (
    OPEN_BATCH,
    UNFINISHED,
    BatchStatus,
    BatchTemplate,
    GradingJob,
    JobBatch,
    JobStatus,
    MarkingScheme,
    Submission,
    SubmissionStatus,
    WorkItem,
    WorkItemState,
    utcnow,
)
from grading_app.processing.progress import add_counts
from grading_app.processing.service import enqueue_job
from grading_app.processing.settings import check_delivery
from grading_app.providers.targets import Target, check_targets, job_targets, parse_targets
from grading_app.templates.service import template_instructions, template_rubric
from grading_app.trust.doubt import record_findings
from grading_app.trust.settings import HELD_FOR_REVIEW, trust_settings

if TYPE_CHECKING:
    from grading_app.jobs.uploads import PreparedDocument

# Statuses in which a batch takes new jobs and a job takes new documents.
OPEN_JOB = UNFINISHED
SUBMISSION_STATUSES = tuple(SubmissionStatus)


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
        status=JobStatus.PENDING,
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


def held_reason(findings: Sequence[dict[str, Any]]) -> str:
    kinds = ", ".join(sorted({str(f.get("kind")) for f in findings}))
    return (
        f"{HELD_FOR_REVIEW} ({len(findings)} hidden-instruction finding(s): {kinds}); "
        "retry it to grade it anyway"
    )


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
        status=SubmissionStatus.FAILED if error else SubmissionStatus.PENDING,
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


def queue_submissions(session: Session, *, job: GradingJob, submission_ids: Sequence[str]) -> int:
    """Work items for documents added to a job that already has some."""
    if not submission_ids:
        return 0
    models = [(t.provider, t.model) for t in job_targets(job)]
    return enqueue_job(session, job=job, models=models, submission_ids=submission_ids)


def add_documents(
    session: Session, *, job: GradingJob, documents: Sequence[PreparedDocument]
) -> list[Submission]:
    """A submission per prepared document, in order; unreadable ones failed, with why.
    A hidden-instruction finding is recorded for the review queue, and under the batch's
    `hidden_instructions: hold` the document waits for a person (failed with why, never
    sent) until they grade it anyway (retry)."""
    batch = session.get(JobBatch, job.batch_id) if job.batch_id else None
    trust = trust_settings(batch.batch_settings if batch is not None else None)
    submissions = []
    held_ids: list[str] = []
    for document in documents:
        held = trust.holds(document.findings)
        submission = add_submission(
            session,
            job=job,
            original_filename=document.original_filename,
            stored_filename=document.stored_filename,
            file_type=document.file_type,
            file_size=document.size_bytes,
            extracted_text=document.full_text(),
            error=held_reason(document.findings) if held else document.error,
        )
        if held:
            held_ids.append(submission.id)
        if document.findings:
            record_findings(
                session,
                submission_id=submission.id,
                job_id=job.id,
                batch_id=job.batch_id,
                findings=list(document.findings),
                settings=trust,
            )
        if document.text_path is not None:
            # Written (add_submission flushes) and let go: a request of long texts
            # holds one of them in memory at a time, not all.
            session.expire(submission, ["extracted_text"])
        submissions.append(submission)
    _hold(session, job=job, submission_ids=held_ids)
    return submissions


def _hold(session: Session, *, job: GradingJob, submission_ids: list[str]) -> None:
    """Held documents get their items at once, failed with the reason: they count as
    failures needing attention, and retrying them (the document's or the job's retry)
    grades them anyway, reopening a finished job as any retry does."""
    if not submission_ids:
        return
    models = [(t.provider, t.model) for t in job_targets(job)]
    added = enqueue_job(session, job=job, models=models, submission_ids=submission_ids)
    now = utcnow()
    session.execute(
        sa.update(WorkItem)
        .where(WorkItem.submission_id.in_(submission_ids))
        .values(
            state=WorkItemState.FAILED,
            last_error=HELD_FOR_REVIEW + "; retry to grade it anyway",
            completed_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    add_counts(session, job_id=job.id, batch_id=job.batch_id, failed=added)


# --- jobs with documents ----------------------------------------------------------------


@dataclass(frozen=True)
class JobPlan:
    """A new job's settings once the batch's and its template's defaults are applied."""

    batch_id: str
    name: str
    prompt: str
    targets: list[Target]
    temperature: float | None
    max_tokens: int | None
    template_scheme: str | None
    template_rubric: Rubric | None = None
    # Library items the job is made with; `*_named` when the request named them (a use
    # to count), not when they come from the batch.
    saved_prompt_id: str | None = None
    saved_prompt_named: bool = False
    saved_marking_scheme_id: str | None = None
    saved_marking_scheme_named: bool = False


def _open_batch(batch: JobBatch) -> JobBatch:
    if batch.status not in OPEN_BATCH:
        raise Conflict(
            f"Batch '{batch.batch_name}' is {batch.status or 'without a status'}: it takes no "
            "new work. Create a new batch for these documents."
        )
    return batch


def _batch_models(batch: JobBatch) -> list[str]:
    if isinstance(batch.models_to_compare, list) and batch.models_to_compare:
        return [str(m) for m in batch.models_to_compare]
    if batch.provider and batch.model:
        return [f"{batch.provider}:{batch.model}"]
    return []


def plan_job(session: Session, *, batch_id: str, request: JobCreate) -> JobPlan:
    """Check a new job against its batch before any file is read."""
    batch = _open_batch(lifecycle.get_batch(session, batch_id=batch_id))
    template = session.get(BatchTemplate, batch.template_id) if batch.template_id else None
    template_prompt, template_scheme = template_instructions(template) if template else ("", None)
    saved_prompt_text = None
    if request.saved_prompt_id is not None:
        if request.prompt and request.prompt.strip():
            raise BadRequest("Give `prompt` or `saved_prompt_id`, not both")
        saved_prompt_text = library.get_prompt(
            session, prompt_id=request.saved_prompt_id
        ).prompt_text
    if request.saved_marking_scheme_id is not None:
        library.get_marking_scheme(session, scheme_id=request.saved_marking_scheme_id)
    prompt = next(
        (
            p.strip()
            for p in (saved_prompt_text, request.prompt, batch.prompt, template_prompt)
            if p and p.strip()
        ),
        "",
    )
    # The batch's saved prompt stays the job's source while the job takes the batch's text.
    prompt_from_batch = not (saved_prompt_text or (request.prompt and request.prompt.strip()))
    if not prompt:
        where = f"its template '{template.name}' has none" if template else "it has none"
        raise BadRequest(
            f"The grading prompt is empty: give the job a `prompt` (the batch has none, and "
            f"{where})"
        )
    models = split_models(request.models) or _batch_models(batch)
    if not models:
        raise BadRequest(
            "Choose at least one model to grade with: `models` as provider:model, for "
            "example openai:gpt-4o-mini (repeat it to compare models)"
        )
    targets = check_targets(parse_targets(models, default_provider=batch.provider, or_else=""))
    batch_settings = batch.batch_settings if isinstance(batch.batch_settings, dict) else {}
    check_delivery(batch_settings, [t.provider for t in targets])
    temperature = request.temperature if request.temperature is not None else batch.temperature
    max_tokens = request.max_tokens if request.max_tokens is not None else batch.max_tokens
    check_generation(temperature, max_tokens)
    return JobPlan(
        batch_id=batch.id,
        name=check_name(request.name or batch.batch_name, what="job"),
        prompt=prompt,
        targets=targets,
        temperature=temperature,
        max_tokens=max_tokens,
        template_scheme=template_scheme,
        template_rubric=template_rubric(template) if template else None,
        saved_prompt_id=request.saved_prompt_id
        or (batch.saved_prompt_id if prompt_from_batch else None),
        saved_prompt_named=request.saved_prompt_id is not None,
        saved_marking_scheme_id=request.saved_marking_scheme_id or batch.saved_marking_scheme_id,
        saved_marking_scheme_named=request.saved_marking_scheme_id is not None,
    )


def _locked_batch(session: Session, batch_id: str) -> JobBatch:
    """The batch row, locked on PostgreSQL until commit (SQLite's writer already holds
    the database), re-read so a status changed since the plan is seen."""
    batch = session.execute(
        sa.select(JobBatch)
        .where(JobBatch.id == batch_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if batch is None:
        raise NotFound(f"No batch with id {batch_id}")
    return batch


def add_marking_scheme(
    session: Session,
    *,
    job_name: str,
    document: PreparedDocument | None = None,
    text: str | None = None,
    rubric: Rubric | None = None,
) -> MarkingScheme:
    """The job's marking scheme: an uploaded file (stored, its text extracted, a rubric
    read from its tables) or text (from a template, or a file the CLI read)."""
    if document is not None:
        rubric = document.rubric
    scheme = MarkingScheme(
        rubric=rubric.stored() if rubric is not None else None,
        name=f"{job_name} marking scheme"[:NAME_LENGTH],
        filename=document.stored_filename if document else "",
        original_filename=document.original_filename if document else "",
        file_size=document.size_bytes if document else None,
        file_type=document.file_type if document else None,
        content=document.text if document else text,
    )
    session.add(scheme)
    session.flush()
    return scheme


def create_job_with_documents(
    session: Session,
    *,
    plan: JobPlan,
    scheme: PreparedDocument | None,
    documents: Sequence[PreparedDocument],
    start: bool = False,
) -> tuple[GradingJob, list[Submission], int]:
    """The job, its marking scheme and submissions, its queued items; the batch starts
    now if asked and still a draft. Returns the job, submissions and items queued."""
    batch = _open_batch(_locked_batch(session, plan.batch_id))
    marking_scheme = None
    saved_scheme_id = None
    if scheme is not None:
        marking_scheme = add_marking_scheme(session, job_name=plan.name, document=scheme)
    elif plan.saved_marking_scheme_id is not None:
        # The job grades with a copy: editing the library later changes no queued work.
        saved_scheme_id = plan.saved_marking_scheme_id
        saved = (
            library.use_marking_scheme(session, scheme_id=saved_scheme_id)
            if plan.saved_marking_scheme_named
            else library.get_marking_scheme(session, scheme_id=saved_scheme_id)
        )
        marking_scheme = library.copy_for_job(session, scheme=saved)
    elif plan.template_scheme:
        marking_scheme = add_marking_scheme(
            session, job_name=plan.name, text=plan.template_scheme, rubric=plan.template_rubric
        )
    if plan.saved_prompt_named and plan.saved_prompt_id is not None:
        library.use_prompt(session, prompt_id=plan.saved_prompt_id)
    job = create_job(
        session,
        name=plan.name,
        prompt=plan.prompt,
        targets=plan.targets,
        batch=batch,
        marking_scheme=marking_scheme,
        temperature=plan.temperature,
        max_tokens=plan.max_tokens,
    )
    job.saved_prompt_id = plan.saved_prompt_id
    job.saved_marking_scheme_id = saved_scheme_id
    submissions = add_documents(session, job=job, documents=documents)
    queued = queue_job(session, job=job)
    if start and batch.status == BatchStatus.DRAFT:
        lifecycle.start_batch(session, batch_id=batch.id)
    elif not queued:
        # Every document unreadable: in a running batch the job ends now (else when the
        # batch starts or resumes), as no item of it will ever land.
        lifecycle.settle_jobs_without_work(session, batch_id=batch.id)
    return job, submissions, queued


def job_accepting_documents(
    session: Session, *, job_id: str, lock: bool = False
) -> tuple[GradingJob, JobBatch | None]:
    """The job and its batch, if both still take documents (else a 409 saying why)."""
    job_batch = session.execute(
        sa.select(GradingJob.batch_id).where(GradingJob.id == job_id)
    ).one_or_none()
    if job_batch is None:
        raise NotFound(f"No grading job with id {job_id}")
    batch = None
    if job_batch.batch_id:
        batch = (
            _locked_batch(session, job_batch.batch_id)
            if lock
            else lifecycle.get_batch(session, batch_id=job_batch.batch_id)
        )
    statement = sa.select(GradingJob).where(GradingJob.id == job_id)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    job = session.execute(statement).scalar_one()
    if job.status not in OPEN_JOB:
        where = f" (POST /api/batches/{job.batch_id}/jobs)" if job.batch_id else ""
        raise Conflict(
            f"Job '{job.job_name}' is {job.status or 'without a status'}: it takes no more "
            f"documents. Grade them in a new job{where}."
        )
    if batch is not None:
        _open_batch(batch)
    return job, batch


def add_documents_to_job(
    session: Session, *, job_id: str, documents: Sequence[PreparedDocument]
) -> tuple[list[Submission], int]:
    job, _ = job_accepting_documents(session, job_id=job_id, lock=True)
    submissions = add_documents(session, job=job, documents=documents)
    readable = [s.id for s in submissions if s.status != SubmissionStatus.FAILED]
    return submissions, queue_submissions(session, job=job, submission_ids=readable)


# --- listings ---------------------------------------------------------------------------


def list_jobs(
    session: Session, *, batch_id: str, limit: int, offset: int
) -> tuple[int, list[GradingJob]]:
    """One page of a batch's jobs, oldest first, and how many there are."""
    lifecycle.get_batch(session, batch_id=batch_id)
    total = session.execute(
        sa.select(sa.func.count()).select_from(GradingJob).where(GradingJob.batch_id == batch_id)
    ).scalar_one()
    jobs = session.scalars(
        sa.select(GradingJob)
        .where(GradingJob.batch_id == batch_id)
        .options(defer(GradingJob.prompt), defer(GradingJob.description))
        .order_by(GradingJob.created_at, GradingJob.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return total, list(jobs)


@dataclass(frozen=True)
class SubmissionRow:
    id: str
    original_filename: str
    file_type: str | None
    file_size: int | None
    status: str | None
    error: str | None
    created_at: datetime | None
    grades: list[Grade]
    failed_models: list[FailedModel]


def list_submissions(
    session: Session, *, job_id: str, limit: int, offset: int, status: str | None = None
) -> tuple[int, list[SubmissionRow]]:
    """One page of a job's documents (without their text) with their completed grades:
    two queries, whatever the page size."""
    lifecycle.get_job(session, job_id=job_id)
    where = [Submission.job_id == job_id]
    if status is not None:
        if status not in SUBMISSION_STATUSES:
            raise BadRequest(f"Unknown status '{status}'; one of: {', '.join(SUBMISSION_STATUSES)}")
        where.append(Submission.status == status)
    total = session.execute(
        sa.select(sa.func.count()).select_from(Submission).where(*where)
    ).scalar_one()
    rows = session.execute(
        sa.select(
            Submission.id,
            Submission.original_filename,
            Submission.file_type,
            Submission.file_size,
            Submission.status,
            Submission.error_message,
            Submission.created_at,
        )
        .where(*where)
        .order_by(Submission.created_at, Submission.id)
        .limit(limit)
        .offset(offset)
    ).all()
    grades: dict[str, list[Grade]] = {row.id: [] for row in rows}
    if rows:
        # Ours that completed (not failed attempts) and those of earlier releases.
        shown = grades_subquery(Submission.id.in_(list(grades)))
        for row in session.execute(shown.select().order_by(shown.c.created_at)):
            grades[row.submission_id].append(grade_of(row))
    failures = failed_models(session, list(grades))
    return total, [
        SubmissionRow(
            id=row.id,
            original_filename=row.original_filename,
            file_type=row.file_type,
            file_size=row.file_size,
            status=row.status,
            error=row.error_message,
            created_at=row.created_at,
            grades=grades[row.id],
            failed_models=failures.get(row.id, []),
        )
        for row in rows
    ]
