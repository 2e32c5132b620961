"""How a batch or a job comes to rest once nothing is left to run in it.

Items landing settle their job and batch as they go (processing/service.py); what is
here settles the rest: a resumed job whose items all landed while it was paused, a
batch whose jobs were all cancelled, and jobs with nothing to grade at all (every
document unreadable), which no landing item would ever settle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.models import (
    FINISHED,
    RUNNABLE,
    UNFINISHED,
    BatchStatus,
    GradingJob,
    JobBatch,
    JobStatus,
)
from grading_app.processing.progress import batch_finished_status, finished_status


def lock_jobs(session: Session, where: sa.ColumnElement[bool]) -> Sequence[GradingJob]:
    """Job rows, locked in id order (the order claiming locks them) and read afresh."""
    return session.scalars(
        sa.select(GradingJob)
        .where(where)
        .order_by(GradingJob.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()


def settle(row: JobBatch | GradingJob, status: str, *, now: datetime) -> None:
    row.status = status
    row.estimated_completion = None
    if status in FINISHED:
        row.completed_at = now


def settled_batch_status(session: Session, batch: JobBatch) -> str | None:
    """What a batch with nothing left to run has come to; None while work remains."""
    done = batch.completed_items + batch.failed_items
    if batch.total_items:
        if done < batch.total_items:
            return None
        return batch_finished_status(
            session, batch.id, completed=batch.completed_items, failed=batch.failed_items
        )
    statuses = set(
        session.scalars(
            sa.select(GradingJob.status).where(GradingJob.batch_id == batch.id).distinct()
        )
    )
    if statuses == {JobStatus.CANCELLED}:
        return BatchStatus.CANCELLED
    if statuses and not statuses & UNFINISHED:
        # No items, and every job is over: jobs whose documents were all unreadable.
        return batch_finished_status(session, batch.id, completed=0, failed=0)
    return None


def finish_job(job: GradingJob, batch: JobBatch | None, *, now: datetime) -> None:
    """Settle a job whose items have all landed (or that has none), and add it to its
    (locked) batch's tally."""
    status = finished_status(
        job.completed_items, job.failed_items, unreadable=bool(job.failed_submissions)
    )
    settle(job, status, now=now)
    if batch is not None:
        if status == JobStatus.FAILED:
            batch.failed_jobs += 1
        else:
            batch.completed_jobs += 1


def finish_jobs_without_work(session: Session, batch: JobBatch, *, now: datetime) -> None:
    """The (locked) batch's runnable jobs that have documents but not a single item
    (every document unreadable) finish now, failed. A job without documents yet waits
    for some."""
    jobs = lock_jobs(
        session,
        sa.and_(
            GradingJob.batch_id == batch.id,
            GradingJob.status.in_(RUNNABLE),
            GradingJob.total_items == 0,
            GradingJob.total_submissions > 0,
        ),
    )
    for job in jobs:
        finish_job(job, batch, now=now)
        job.updated_at = now
    session.flush()
