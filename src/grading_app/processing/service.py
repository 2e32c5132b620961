"""Work-item lifecycle: enqueue, finish, fail, retry, release; counters and status.

Each function runs inside the caller's transaction and only flushes. Counters on jobs
and batches move with atomic `SET n = n + 1` updates as items finish, so progress reads
are O(1) and concurrent workers never lose an increment.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from grading_app.grading.service import GradingOutcome
from grading_app.models import (
    GradeResult,
    GradingJob,
    JobBatch,
    Submission,
    WorkItem,
    WorkItemState,
    utcnow,
)

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0


def enqueue_job(session: Session, *, job: GradingJob, models: list[tuple[str, str]]) -> int:
    """One work item per (submission, model) of the job; returns how many were added."""
    submissions = session.execute(
        sa.select(Submission.id)
        .where(Submission.job_id == job.id, Submission.status != "failed")
        .order_by(Submission.created_at, Submission.id)
    ).scalars()
    start = 0
    if job.batch_id:
        start = session.execute(
            sa.select(sa.func.count())
            .select_from(WorkItem)
            .where(WorkItem.batch_id == job.batch_id)
        ).scalar_one()
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for index, submission_id in enumerate(submissions):
        for provider, model in models:
            rows.append(
                {
                    "id": _new_id(),
                    "submission_id": submission_id,
                    "job_id": job.id,
                    "batch_id": job.batch_id,
                    "provider": provider,
                    "model": model,
                    "state": WorkItemState.QUEUED.value,
                    "attempts": 0,
                    "sequence": start + index,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if rows:
        session.execute(sa.insert(WorkItem), rows)
    _add_counts(session, job_id=job.id, batch_id=job.batch_id, total=len(rows))
    session.flush()
    return len(rows)


def _new_id() -> str:
    from grading_app.models import new_id

    return new_id()


@dataclass(frozen=True)
class ItemContext:
    """What a worker needs to grade an item, loaded in one short read."""

    item_id: str
    attempts: int
    provider: str
    model: str
    submission_id: str
    document_name: str
    document_text: str
    job_id: str
    batch_id: str | None
    instructions: str
    marking_scheme: str | None
    temperature: float | None
    max_tokens: int | None
    max_retries: int
    runnable: bool


def load_context(session: Session, *, item_id: str) -> ItemContext | None:
    row = session.execute(
        sa.select(
            WorkItem.id,
            WorkItem.attempts,
            WorkItem.provider,
            WorkItem.model,
            WorkItem.state,
            Submission.id.label("submission_id"),
            Submission.original_filename,
            Submission.extracted_text,
            GradingJob.id.label("job_id"),
            GradingJob.batch_id,
            GradingJob.prompt,
            GradingJob.status.label("job_status"),
            GradingJob.temperature,
            GradingJob.max_tokens,
            GradingJob.marking_scheme_id,
            GradingJob.saved_marking_scheme_id,
            JobBatch.status.label("batch_status"),
            JobBatch.batch_settings,
        )
        .join(Submission, Submission.id == WorkItem.submission_id)
        .join(GradingJob, GradingJob.id == WorkItem.job_id)
        .outerjoin(JobBatch, JobBatch.id == WorkItem.batch_id)
        .where(WorkItem.id == item_id)
    ).one_or_none()
    if row is None:
        return None
    settings = row.batch_settings if isinstance(row.batch_settings, dict) else {}
    return ItemContext(
        item_id=row.id,
        attempts=row.attempts,
        provider=row.provider,
        model=row.model,
        submission_id=row.submission_id,
        document_name=row.original_filename,
        document_text=row.extracted_text or "",
        job_id=row.job_id,
        batch_id=row.batch_id,
        instructions=row.prompt,
        marking_scheme=_marking_scheme_text(session, row),
        temperature=row.temperature,
        max_tokens=row.max_tokens,
        max_retries=int(settings.get("max_retries", 3)),
        runnable=row.state == WorkItemState.RUNNING
        and row.job_status in ("pending", "processing")
        and (row.batch_id is None or row.batch_status in ("pending", "processing")),
    )


def _marking_scheme_text(session: Session, row: Any) -> str | None:
    from grading_app.models import MarkingScheme, SavedMarkingScheme

    if row.marking_scheme_id:
        return session.get(MarkingScheme, row.marking_scheme_id).content  # type: ignore[union-attr]
    if row.saved_marking_scheme_id:
        scheme = session.get(SavedMarkingScheme, row.saved_marking_scheme_id)
        return scheme.content if scheme else None
    return None


def is_runnable(session: Session, *, item_id: str) -> bool:
    """Checked right before the provider call, so a pause takes effect at once."""
    row = session.execute(
        sa.select(WorkItem.state, GradingJob.status, JobBatch.status)
        .join(GradingJob, GradingJob.id == WorkItem.job_id)
        .outerjoin(JobBatch, JobBatch.id == WorkItem.batch_id)
        .where(WorkItem.id == item_id)
    ).one_or_none()
    if row is None:
        return False
    state, job_status, batch_status = row
    return (
        state == WorkItemState.RUNNING
        and job_status in ("pending", "processing")
        and (batch_status is None or batch_status in ("pending", "processing"))
    )


def _still_ours(session: Session, item_id: str, owner: str) -> WorkItem | None:
    """The item, if this worker still holds its lease (a reaper may have taken it)."""
    statement = sa.select(WorkItem).where(
        WorkItem.id == item_id,
        WorkItem.state == WorkItemState.RUNNING,
        WorkItem.lease_owner == owner,
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return session.execute(statement).scalar_one_or_none()


def complete_item(
    session: Session, *, item_id: str, owner: str, outcome: GradingOutcome, single_model: bool
) -> bool:
    """Store the result and mark the item completed; False if the lease was lost."""
    item = _still_ours(session, item_id, owner)
    if item is None:
        return False
    now = utcnow()
    grade = outcome.grade
    metadata = {
        "overall_score": grade.overall_score,
        "max_score": grade.max_score,
        "criteria": [c.model_dump() for c in grade.criteria],
        "feedback": grade.feedback,
        "provider": item.provider,
        "model": item.model,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "latency_ms": outcome.latency_ms,
        "repaired": outcome.repaired,
    }
    session.add(
        GradeResult(
            submission_id=item.submission_id,
            work_item_id=item.id,
            provider=item.provider,
            model=item.model,
            status="completed",
            grade=grade.summary(),
            grade_metadata=metadata,
            score=grade.overall_score,
            max_score=grade.max_score,
            criteria=[c.model_dump() for c in grade.criteria],
            feedback=grade.feedback,
            raw_response=outcome.raw_text,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            latency_ms=outcome.latency_ms,
            created_at=now,
        )
    )
    _finish(session, item, WorkItemState.COMPLETED, now=now, error=None)
    if single_model:
        # Legacy readers look at submissions.grade / grade_metadata.
        session.execute(
            sa.update(Submission)
            .where(Submission.id == item.submission_id)
            .values(grade=grade.summary(), grade_metadata=metadata, updated_at=now)
        )
    _after_item(session, item, succeeded=True, now=now)
    session.flush()
    return True


def fail_item(
    session: Session, *, item_id: str, owner: str, error: str, raw_text: str | None = None
) -> bool:
    """A permanent failure (or retries exhausted): the item fails with `error`."""
    item = _still_ours(session, item_id, owner)
    if item is None:
        return False
    now = utcnow()
    if raw_text is not None:
        session.add(
            GradeResult(
                submission_id=item.submission_id,
                # Not linked: the unique link is for the one completed result, and a
                # retried item may still get it.
                provider=item.provider,
                model=item.model,
                status="failed",
                grade="",
                error_message=error,
                raw_response=raw_text,
                created_at=now,
            )
        )
    _finish(session, item, WorkItemState.FAILED, now=now, error=error)
    _after_item(session, item, succeeded=False, now=now)
    session.flush()
    return True


def retry_later(
    session: Session,
    *,
    item_id: str,
    owner: str,
    error: str,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> datetime | None:
    """Put a transiently failed item back with backoff: full jitter, or Retry-After when
    the provider sent one (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/)."""
    item = _still_ours(session, item_id, owner)
    if item is None:
        return None
    delay = backoff_delay(item.attempts, retry_after=retry_after, rng=rng)
    now = utcnow()
    when = now + timedelta(seconds=delay)
    item.state = WorkItemState.QUEUED
    item.lease_owner = None
    item.lease_expires_at = None
    item.next_attempt_at = when
    item.last_error = error
    item.updated_at = now
    session.flush()
    return when


def backoff_delay(
    attempts: int, *, retry_after: float | None, rng: random.Random | None = None
) -> float:
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, BACKOFF_CAP_SECONDS)
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return (rng or random).uniform(0, ceiling)


def release_item(session: Session, *, item_id: str, owner: str) -> bool:
    """Give a claimed item back untouched (its batch was paused before the call)."""
    result = session.execute(
        sa.update(WorkItem)
        .where(
            WorkItem.id == item_id,
            WorkItem.lease_owner == owner,
            WorkItem.state == WorkItemState.RUNNING,
        )
        .values(
            state=WorkItemState.QUEUED,
            lease_owner=None,
            lease_expires_at=None,
            attempts=WorkItem.attempts - 1,
            updated_at=utcnow(),
        )
    )
    return bool(cast("CursorResult[Any]", result).rowcount)


def release_owned(session: Session, *, owner: str) -> int:
    """On a clean shutdown (Ctrl-C): every item this worker holds goes back to the queue."""
    result = session.execute(
        sa.update(WorkItem)
        .where(WorkItem.lease_owner == owner, WorkItem.state == WorkItemState.RUNNING)
        .values(
            state=WorkItemState.QUEUED,
            lease_owner=None,
            lease_expires_at=None,
            attempts=sa.case((WorkItem.attempts > 0, WorkItem.attempts - 1), else_=0),
            updated_at=utcnow(),
        )
    )
    return cast("CursorResult[Any]", result).rowcount or 0


def _finish(
    session: Session, item: WorkItem, state: WorkItemState, *, now: datetime, error: str | None
) -> None:
    item.state = state
    item.lease_owner = None
    item.lease_expires_at = None
    item.completed_at = now
    item.updated_at = now
    item.last_error = error


def _add_counts(
    session: Session,
    *,
    job_id: str,
    batch_id: str | None,
    total: int = 0,
    completed: int = 0,
    failed: int = 0,
) -> None:
    # Lock order everywhere: batch row, then job row (claiming does the same), so
    # concurrent workers cannot deadlock on PostgreSQL.
    if batch_id:
        session.execute(
            sa.update(JobBatch)
            .where(JobBatch.id == batch_id)
            .values(
                total_items=JobBatch.total_items + total,
                completed_items=JobBatch.completed_items + completed,
                failed_items=JobBatch.failed_items + failed,
            )
        )
    session.execute(
        sa.update(GradingJob)
        .where(GradingJob.id == job_id)
        .values(
            total_items=GradingJob.total_items + total,
            completed_items=GradingJob.completed_items + completed,
            failed_items=GradingJob.failed_items + failed,
        )
    )


def _after_item(session: Session, item: WorkItem, *, succeeded: bool, now: datetime) -> None:
    _add_counts(
        session,
        job_id=item.job_id,
        batch_id=item.batch_id,
        completed=1 if succeeded else 0,
        failed=0 if succeeded else 1,
    )
    _settle_submission(session, item.submission_id, now=now)
    job = session.execute(
        sa.select(
            GradingJob.total_items,
            GradingJob.completed_items,
            GradingJob.failed_items,
            GradingJob.started_at,
        ).where(GradingJob.id == item.job_id)
    ).one()
    done = job.completed_items + job.failed_items
    if done >= job.total_items:
        status = _finished_status(job.completed_items, job.failed_items)
        session.execute(
            sa.update(GradingJob)
            .where(GradingJob.id == item.job_id)
            .values(status=status, completed_at=now, estimated_completion=None, updated_at=now)
        )
        if item.batch_id:
            session.execute(
                sa.update(JobBatch)
                .where(JobBatch.id == item.batch_id)
                .values(
                    completed_jobs=JobBatch.completed_jobs + (1 if status != "failed" else 0),
                    failed_jobs=JobBatch.failed_jobs + (1 if status == "failed" else 0),
                )
            )
    else:
        session.execute(
            sa.update(GradingJob)
            .where(GradingJob.id == item.job_id)
            .values(estimated_completion=_eta(job.started_at, done, job.total_items, now))
        )
    if item.batch_id:
        _settle_batch(session, item.batch_id, now=now)


def _settle_submission(session: Session, submission_id: str, *, now: datetime) -> None:
    states = dict(
        session.execute(
            sa.select(WorkItem.state, sa.func.count())
            .where(WorkItem.submission_id == submission_id)
            .group_by(WorkItem.state)
        ).all()
    )
    if states.get("queued") or states.get("running"):
        if states.get("completed") or states.get("failed"):
            session.execute(
                sa.update(Submission)
                .where(Submission.id == submission_id, Submission.status == "pending")
                .values(status="processing", updated_at=now)
            )
        return
    completed, failed = states.get("completed", 0), states.get("failed", 0)
    status = "completed" if completed else "failed"
    error = None
    if failed:
        errors = session.execute(
            sa.select(WorkItem.model, WorkItem.last_error).where(
                WorkItem.submission_id == submission_id, WorkItem.state == "failed"
            )
        ).all()
        error = "; ".join(f"{model}: {message}" for model, message in errors)[:2000]
    submission = session.get(Submission, submission_id)
    assert submission is not None
    previous = submission.status
    submission.status = status
    submission.error_message = error
    submission.updated_at = now
    if previous not in ("completed", "failed"):
        column = "processed_submissions" if status == "completed" else "failed_submissions"
        session.execute(
            sa.update(GradingJob)
            .where(GradingJob.id == submission.job_id)
            .values({column: sa.func.coalesce(getattr(GradingJob, column), 0) + 1})
        )


def _settle_batch(session: Session, batch_id: str, *, now: datetime) -> None:
    batch = session.execute(
        sa.select(
            JobBatch.status,
            JobBatch.total_items,
            JobBatch.completed_items,
            JobBatch.failed_items,
            JobBatch.started_at,
        ).where(JobBatch.id == batch_id)
    ).one()
    done = batch.completed_items + batch.failed_items
    if batch.total_items and done >= batch.total_items and batch.status == "processing":
        session.execute(
            sa.update(JobBatch)
            .where(JobBatch.id == batch_id)
            .values(
                status=_finished_status(batch.completed_items, batch.failed_items),
                completed_at=now,
                estimated_completion=None,
                updated_at=now,
            )
        )
    elif batch.total_items:
        session.execute(
            sa.update(JobBatch)
            .where(JobBatch.id == batch_id)
            .values(estimated_completion=_eta(batch.started_at, done, batch.total_items, now))
        )


def _finished_status(completed: int, failed: int) -> str:
    if failed == 0:
        return "completed"
    if completed == 0:
        return "failed"
    return "completed_with_errors"


def _eta(started_at: datetime | None, done: int, total: int, now: datetime) -> datetime | None:
    """From the observed rate since the work started."""
    if started_at is None or done <= 0:
        return None
    elapsed = (now - started_at).total_seconds()
    if elapsed <= 0:
        return None
    rate = done / elapsed
    return now + timedelta(seconds=(total - done) / rate)
