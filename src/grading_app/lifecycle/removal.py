"""A job and batch that have just lost documents: the state they come to.

Deleting a document (`jobs/submissions.py`) corrects the counters; what the job and its
batch then are follows the rules of `lifecycle/service.py`: a running one with nothing
left to run settles, by `processing.progress.finished_status`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from grading_app.lifecycle import service as lifecycle
from grading_app.models import FINISHED, RUNNABLE, GradingJob, JobBatch, JobStatus
from grading_app.processing.progress import batch_finished_status, finished_status


def settle_after_removal(
    session: Session, job: GradingJob, batch: JobBatch | None, *, now: datetime
) -> None:
    """A job (and its batch; both locked, counters corrected) that has just lost a
    document: running, it finishes if nothing is left to run; finished, it is judged
    again on what is left (deleting the one failed document of a job that completed
    with errors leaves it completed). Paused and cancelled ones keep their status."""
    done = job.completed_items + job.failed_items >= job.total_items
    if (job.status in RUNNABLE and done) or job.status in FINISHED:
        status = finished_status(
            job.completed_items, job.failed_items, unreadable=bool(job.failed_submissions)
        )
        if status != job.status:
            if batch is not None:
                if job.status in FINISHED:  # take back the tally of its first finish
                    _tally(batch, job.status, -1)
                _tally(batch, status, +1)
            lifecycle.settle(job, status, now=now)
            job.updated_at = now
    if batch is None:
        return
    session.flush()  # the job's status counts in what follows
    if batch.status in RUNNABLE:
        settled = lifecycle.settled_batch_status(session, batch)
        if settled is not None:
            lifecycle.settle(batch, settled, now=now)
            batch.updated_at = now
    elif batch.status in FINISHED and batch.total_items:
        status = batch_finished_status(
            session, batch.id, completed=batch.completed_items, failed=batch.failed_items
        )
        if status in FINISHED and status != batch.status:
            batch.status = status
            batch.updated_at = now


def _tally(batch: JobBatch, job_status: str | None, step: int) -> None:
    if job_status == JobStatus.FAILED:
        batch.failed_jobs += step
    else:
        batch.completed_jobs += step
