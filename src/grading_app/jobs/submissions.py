"""One document: read it whole, delete it.

Reading gives its text, every model's grade with the raw answer, tokens and latency,
and the models that failed it with their errors. Retrying its failed items is a
lifecycle action (`lifecycle.retry_failed_submission`).

Deleting takes the document's work items and grades with it, corrects its job's and
batch's counters, and lets them settle on what is left
(`lifecycle/removal.py`). Its stored file is removed by the caller once the
transaction has committed, so a failed commit loses no file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.errors import Conflict
from grading_app.jobs.grades import UNRECORDED_MODEL, shown_results
from grading_app.jobs.schemas import (
    FailedItemOut,
    GradeDetailOut,
    QuoteCheckOut,
    SubmissionDetailOut,
)
from grading_app.lifecycle import service as lifecycle
from grading_app.lifecycle.removal import settle_after_removal
from grading_app.models import (
    GradeResult,
    GradingJob,
    MarkingScheme,
    SavedMarkingScheme,
    Submission,
    SubmissionStatus,
    WorkItem,
    WorkItemState,
    utcnow,
)
from grading_app.trust.review import review_view

_CHUNK = 500
# Work items that count in their job's and batch's totals (cancelled ones left them).
_COUNTED = (
    WorkItemState.QUEUED,
    WorkItemState.RUNNING,
    WorkItemState.COMPLETED,
    WorkItemState.FAILED,
)


# --- reading ------------------------------------------------------------------------------


def submission_detail(session: Session, *, submission_id: str) -> SubmissionDetailOut:
    submission = lifecycle.get_submission(session, submission_id=submission_id)
    job = lifecycle.get_job(session, job_id=submission.job_id)
    return SubmissionDetailOut(
        id=submission.id,
        job_id=job.id,
        batch_id=job.batch_id,
        original_filename=submission.original_filename,
        file_type=submission.file_type,
        file_size=submission.file_size,
        status=submission.status,
        error=submission.error_message,
        retry_count=submission.retry_count,
        created_at=submission.created_at,
        updated_at=submission.updated_at,
        extracted_text=submission.extracted_text,
        grades=_grades(session, submission, job),
        failed_items=_failed_items(session, submission.id),
        review=review_view(session, submission.id),
    )


def _grades(session: Session, submission: Submission, job: GradingJob) -> list[GradeDetailOut]:
    """Completed results (ours and an earlier release's), else the legacy single grade."""
    results = session.scalars(
        sa.select(GradeResult)
        .where(GradeResult.submission_id == submission.id, shown_results())
        .order_by(GradeResult.created_at, GradeResult.id)
    ).all()
    grades = [
        GradeDetailOut(
            provider=result.provider,
            model=result.model,
            score=result.score,
            max_score=result.max_score,
            criteria=result.criteria if isinstance(result.criteria, list) else None,
            feedback=result.feedback if result.feedback is not None else result.grade,
            raw_response=result.raw_response,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            latency_ms=result.latency_ms,
            cost_usd=result.cost_usd,
            cached_tokens=result.cached_tokens,
            cache_write_tokens=result.cache_write_tokens,
            legacy=result.work_item_id is None,
            created_at=result.created_at,
            evidence=_evidence(result),
        )
        for result in results
    ]
    if not grades and (submission.grade or "").strip():
        grades.append(
            GradeDetailOut(
                provider=job.provider,
                model=job.model or UNRECORDED_MODEL,
                score=None,
                max_score=None,
                criteria=None,
                feedback=submission.grade,
                raw_response=None,
                prompt_tokens=None,
                completion_tokens=None,
                latency_ms=None,
                legacy=True,
                created_at=submission.updated_at,
            )
        )
    return grades


def _failed_items(session: Session, submission_id: str) -> list[FailedItemOut]:
    """Our failed work items, each with its last attempt's answer and usage if the model
    answered; and an earlier release's failed results (no work item of that model)."""
    attempts: dict[tuple[str, str], GradeResult] = {}
    for result in session.scalars(
        sa.select(GradeResult)
        .where(
            GradeResult.submission_id == submission_id,
            GradeResult.work_item_id.is_(None),
            GradeResult.status == "failed",
        )
        .order_by(GradeResult.created_at, GradeResult.id)
    ):
        attempts[(result.provider, result.model)] = result  # the last one wins
    items = session.scalars(
        sa.select(WorkItem)
        .where(WorkItem.submission_id == submission_id)
        .order_by(WorkItem.provider, WorkItem.model)
    ).all()
    queued_models = {(item.provider, item.model) for item in items}
    failed = []
    for item in items:
        if item.state != WorkItemState.FAILED:
            continue
        last = attempts.get((item.provider, item.model))
        failed.append(
            _failed(
                item.provider, item.model, item.attempts, item.last_error, item.completed_at, last
            )
        )
    for (provider, model), result in attempts.items():
        if (provider, model) not in queued_models:
            failed.append(
                _failed(provider, model, None, result.error_message, result.created_at, result)
            )
    return failed


def _failed(
    provider: str,
    model: str,
    attempts: int | None,
    error: str | None,
    when: Any,
    result: GradeResult | None,
) -> FailedItemOut:
    return FailedItemOut(
        provider=provider,
        model=model,
        attempts=attempts,
        error=error,
        failed_at=when,
        raw_response=result.raw_response if result else None,
        prompt_tokens=result.prompt_tokens if result else None,
        completion_tokens=result.completion_tokens if result else None,
        latency_ms=result.latency_ms if result else None,
        cost_usd=result.cost_usd if result else None,
        cached_tokens=result.cached_tokens if result else None,
        cache_write_tokens=result.cache_write_tokens if result else None,
    )


# --- deleting -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletedSubmission:
    id: str
    job_id: str
    original_filename: str
    # The stored file, if no other row names it: to remove once committed.
    files: list[str]


def delete_submission(session: Session, *, submission_id: str) -> DeletedSubmission:
    submission = lifecycle.get_submission(session, submission_id=submission_id)
    name = submission.original_filename
    # Rows locked in the order every writer takes them: work items, the submission,
    # the batch, the job (lifecycle/service.py).
    states = Counter(
        session.scalars(
            sa.select(WorkItem.state)
            .where(WorkItem.submission_id == submission_id)
            .order_by(WorkItem.id)
            .with_for_update()
        )
    )
    if states[WorkItemState.RUNNING]:
        raise Conflict(
            f"Cannot delete document '{name}': it is being graded right now; try again once "
            "that has finished"
        )
    # Read afresh and locked: its status decides the counters.
    session.refresh(submission, with_for_update=True)
    job = lifecycle.get_job(session, job_id=submission.job_id)
    batch = lifecycle.lock_batch(session, job.batch_id) if job.batch_id else None
    [job] = lifecycle.lock_jobs(session, GradingJob.id == job.id)
    if states:
        counted = sum(states[state] for state in _COUNTED)
        completed, failed = states[WorkItemState.COMPLETED], states[WorkItemState.FAILED]
    else:
        counted, completed, failed = _legacy_count(session, job, submission.status)
    for row in (job, batch):
        if row is not None:
            row.total_items -= counted
            row.completed_items -= completed
            row.failed_items -= failed
    job.total_submissions = max(0, (job.total_submissions or 0) - 1)
    if submission.status == SubmissionStatus.COMPLETED:
        job.processed_submissions = max(0, (job.processed_submissions or 0) - 1)
    elif submission.status == SubmissionStatus.FAILED:
        job.failed_submissions = max(0, (job.failed_submissions or 0) - 1)
    filename = submission.filename
    for table, where in (
        (GradeResult, GradeResult.submission_id == submission_id),
        (WorkItem, WorkItem.submission_id == submission_id),
        (Submission, Submission.id == submission_id),
    ):
        session.execute(sa.delete(table).where(where).execution_options(synchronize_session=False))
    session.expunge(submission)
    settle_after_removal(session, job, batch, now=utcnow())
    session.flush()
    return DeletedSubmission(
        id=submission_id,
        job_id=job.id,
        original_filename=name,
        files=unreferenced_files(session, [filename] if filename else []),
    )


def _legacy_count(session: Session, job: GradingJob, status: str | None) -> tuple[int, int, int]:
    """(total, completed, failed) items a document without work items counts for. The
    upgrade counted each document of an earlier release as one item by its status
    (migration 0004); a document that could not be read was never one. The two are told
    apart by what the job's counters hold beyond its work items."""
    counts = Counter(
        dict(
            session.execute(
                sa.select(WorkItem.state, sa.func.count())
                .where(WorkItem.job_id == job.id)
                .group_by(WorkItem.state)
            ).all()
        )
    )
    beyond_completed = job.completed_items - counts[WorkItemState.COMPLETED]
    beyond_failed = job.failed_items - counts[WorkItemState.FAILED]
    beyond_open = (
        job.total_items
        - sum(counts[state] for state in _COUNTED)
        - beyond_completed
        - beyond_failed
    )
    if status == SubmissionStatus.COMPLETED and beyond_completed > 0:
        return 1, 1, 0
    if status == SubmissionStatus.FAILED and beyond_failed > 0:
        return 1, 0, 1
    if status not in (SubmissionStatus.COMPLETED, SubmissionStatus.FAILED) and beyond_open > 0:
        return 1, 0, 0
    return 0, 0, 0


def unreferenced_files(session: Session, names: Iterable[str]) -> list[str]:
    """The stored file names no remaining row names (rows of earlier releases may share
    a file): the ones that may be removed."""
    wanted = list(dict.fromkeys(names))
    free: list[str] = []
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        used: set[str] = set()
        for column in (Submission.filename, MarkingScheme.filename, SavedMarkingScheme.filename):
            used.update(session.scalars(sa.select(column).where(column.in_(chunk))))
        free += [name for name in chunk if name not in used]
    return free


def _evidence(result: GradeResult) -> list[QuoteCheckOut]:
    """The quote checks stored with the grade (trust.evidence), as the API shows them."""
    metadata = result.grade_metadata if isinstance(result.grade_metadata, dict) else {}
    checks = metadata.get("evidence")
    shown = []
    for check in checks if isinstance(checks, list) else []:
        try:
            shown.append(QuoteCheckOut.model_validate(check))
        except ValueError:  # a row edited by hand: left out rather than failing the read
            continue
    return shown
