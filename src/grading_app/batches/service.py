"""Batch and job control: start, pause, resume, cancel, retry failed.

Pause stops new claims at once (claiming only takes items of pending/processing
batches, and workers re-check right before each provider call); calls already in
flight finish. Cancel turns queued items into cancelled. Resume lets claims go on.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.errors import Conflict, NotFound
from grading_app.models import GradingJob, JobBatch, Submission, WorkItem, WorkItemState, utcnow

ACTIVE = ("pending", "processing")
FINISHED = ("completed", "completed_with_errors", "failed")


def get_batch(session: Session, *, batch_id: str) -> JobBatch:
    batch = session.get(JobBatch, batch_id)
    if batch is None:
        raise NotFound(f"No batch with id {batch_id}")
    return batch


def get_job(session: Session, *, job_id: str) -> GradingJob:
    job = session.get(GradingJob, job_id)
    if job is None:
        raise NotFound(f"No grading job with id {job_id}")
    return job


def _refuse(what: str, name: str, status: str | None, action: str) -> Conflict:
    return Conflict(f"Cannot {action} {what} '{name}': it is {status or 'without a status'}")


def start_batch(session: Session, *, batch_id: str) -> JobBatch:
    batch = get_batch(session, batch_id=batch_id)
    if batch.status not in ("draft", "pending"):
        raise _refuse("batch", batch.batch_name, batch.status, "start")
    batch.status = "pending"
    batch.updated_at = utcnow()
    session.flush()
    return batch


def pause_batch(session: Session, *, batch_id: str) -> JobBatch:
    batch = get_batch(session, batch_id=batch_id)
    if batch.status not in ACTIVE:
        raise _refuse("batch", batch.batch_name, batch.status, "pause")
    batch.status = "paused"
    batch.updated_at = utcnow()
    session.flush()
    return batch


def resume_batch(session: Session, *, batch_id: str) -> JobBatch:
    batch = get_batch(session, batch_id=batch_id)
    if batch.status != "paused":
        raise _refuse("batch", batch.batch_name, batch.status, "resume")
    batch.status = "processing" if batch.started_at else "pending"
    batch.updated_at = utcnow()
    session.flush()
    return batch


def cancel_batch(session: Session, *, batch_id: str) -> JobBatch:
    batch = get_batch(session, batch_id=batch_id)
    if batch.status in (*FINISHED, "cancelled", "archived"):
        raise _refuse("batch", batch.batch_name, batch.status, "cancel")
    _cancel_queued(session, WorkItem.batch_id == batch_id)
    batch.status = "cancelled"
    batch.updated_at = utcnow()
    session.flush()
    return batch


def retry_failed_batch(session: Session, *, batch_id: str) -> int:
    batch = get_batch(session, batch_id=batch_id)
    if batch.status in ("draft", "archived"):
        raise _refuse("batch", batch.batch_name, batch.status, "retry the failed items of")
    count = _requeue_failed(session, WorkItem.batch_id == batch_id)
    if count == 0:
        raise Conflict(f"Batch '{batch.batch_name}' has no failed items to retry")
    batch.status = "processing"
    batch.completed_at = None
    batch.updated_at = utcnow()
    session.flush()
    return count


def pause_job(session: Session, *, job_id: str) -> GradingJob:
    job = get_job(session, job_id=job_id)
    if job.status not in ACTIVE:
        raise _refuse("job", job.job_name, job.status, "pause")
    job.status = "paused"
    session.flush()
    return job


def resume_job(session: Session, *, job_id: str) -> GradingJob:
    job = get_job(session, job_id=job_id)
    if job.status != "paused":
        raise _refuse("job", job.job_name, job.status, "resume")
    job.status = "processing" if job.started_at else "pending"
    session.flush()
    return job


def cancel_job(session: Session, *, job_id: str) -> GradingJob:
    job = get_job(session, job_id=job_id)
    if job.status in (*FINISHED, "cancelled"):
        raise _refuse("job", job.job_name, job.status, "cancel")
    _cancel_queued(session, WorkItem.job_id == job_id)
    job.status = "cancelled"
    session.flush()
    return job


def retry_failed_job(session: Session, *, job_id: str) -> int:
    job = get_job(session, job_id=job_id)
    count = _requeue_failed(session, WorkItem.job_id == job_id)
    if count == 0:
        raise Conflict(f"Job '{job.job_name}' has no failed items to retry")
    session.flush()
    return count


def _cancel_queued(session: Session, where: sa.ColumnElement[bool]) -> int:
    """Queued items become cancelled and leave the totals, so progress can finish."""
    now = utcnow()
    per_job = session.execute(
        sa.select(WorkItem.job_id, WorkItem.batch_id, sa.func.count())
        .where(where, WorkItem.state == WorkItemState.QUEUED)
        .group_by(WorkItem.job_id, WorkItem.batch_id)
    ).all()
    session.execute(
        sa.update(WorkItem)
        .where(where, WorkItem.state == WorkItemState.QUEUED)
        .values(state=WorkItemState.CANCELLED, updated_at=now, completed_at=now)
    )
    for job_id, batch_id, count in sorted(per_job, key=lambda row: (row[1] or "", row[0])):
        if batch_id:  # batch row before job row, the lock order claiming uses
            session.execute(
                sa.update(JobBatch)
                .where(JobBatch.id == batch_id)
                .values(total_items=JobBatch.total_items - count, estimated_completion=None)
            )
        session.execute(
            sa.update(GradingJob)
            .where(GradingJob.id == job_id)
            .values(total_items=GradingJob.total_items - count, estimated_completion=None)
        )
    return sum(count for *_, count in per_job)


def _requeue_failed(session: Session, where: sa.ColumnElement[bool]) -> int:
    now = utcnow()
    failed = session.execute(
        sa.select(WorkItem.job_id, WorkItem.batch_id, WorkItem.submission_id).where(
            where, WorkItem.state == WorkItemState.FAILED
        )
    ).all()
    if not failed:
        return 0
    session.execute(
        sa.update(WorkItem)
        .where(where, WorkItem.state == WorkItemState.FAILED)
        .values(
            state=WorkItemState.QUEUED,
            attempts=0,
            next_attempt_at=None,
            completed_at=None,
            updated_at=now,
        )
    )
    per_job: dict[tuple[str, str | None], int] = {}
    for job_id, batch_id, _ in failed:
        per_job[(job_id, batch_id)] = per_job.get((job_id, batch_id), 0) + 1
    finished_jobs = dict(
        session.execute(
            sa.select(GradingJob.id, GradingJob.status).where(
                GradingJob.id.in_([job_id for job_id, _ in per_job]),
                GradingJob.status.in_(FINISHED),
            )
        ).all()
    )
    for (job_id, batch_id), count in sorted(
        per_job.items(), key=lambda kv: (kv[0][1] or "", kv[0][0])
    ):
        if batch_id:  # batch row before job row, the lock order claiming uses
            values: dict[str, Any] = {"failed_items": JobBatch.failed_items - count}
            if job_id in finished_jobs:
                # The job will finish again; take back the tally its first finish made.
                column = "failed_jobs" if finished_jobs[job_id] == "failed" else "completed_jobs"
                values[column] = getattr(JobBatch, column) - 1
            session.execute(sa.update(JobBatch).where(JobBatch.id == batch_id).values(values))
        session.execute(
            sa.update(GradingJob)
            .where(GradingJob.id == job_id)
            .values(
                failed_items=GradingJob.failed_items - count,
                status="processing",
                completed_at=None,
            )
        )
    submission_ids = sorted({s for *_, s in failed})
    reopened = session.execute(
        sa.select(Submission.job_id, sa.func.count())
        .where(Submission.id.in_(submission_ids), Submission.status == "failed")
        .group_by(Submission.job_id)
    ).all()
    for job_id, count in reopened:
        session.execute(
            sa.update(GradingJob)
            .where(GradingJob.id == job_id)
            .values(failed_submissions=GradingJob.failed_submissions - count)
        )
    session.execute(
        sa.update(Submission)
        .where(Submission.id.in_(submission_ids), Submission.status == "failed")
        .values(status="processing", error_message=None, updated_at=now)
    )
    return len(failed)
