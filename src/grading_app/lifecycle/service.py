"""Batch and job control: start, pause, resume, cancel, retry failed, archive.

The state machine. An action moves a batch or a job only from the statuses listed;
from any other it is refused with `Conflict` ("Cannot resume batch 'X': it is
completed"), and nothing changes.

    batch action  from                                        to
    start         draft (with documents)                      pending, or settled (**)
    pause         pending, processing                         paused
    resume        paused                                      pending (nothing claimed yet),
                                                              processing, or settled (*)
    cancel        draft, pending, processing, paused          cancelled
    retry failed  pending, processing, paused, completed,     a finished batch reopens as
                  completed_with_errors, failed               processing; others keep theirs
    archive       completed, completed_with_errors, failed,   archived
                  cancelled

    job action    from                                        to
    pause         pending, processing                         paused
    resume        paused                                      pending, processing, or
                                                              settled (*)
    cancel        pending, processing, paused                 cancelled
    retry failed  any but cancelled, in no draft, cancelled   a finished job reopens as
                  or archived batch                           processing; others keep theirs

    document action  from                                     to
    retry failed     as its job's retry failed                its job and batch as there

Work an earlier release left unfinished (jobs pending or processing, never queued) is
queued when its job or batch is resumed; that happens in `jobs/legacy.py`, which then
applies the actions here.

(*) Calls in flight when a pause lands still finish, and only a running job or batch
settles itself when its last item lands (processing/service.py). So resume settles one
whose items have all finished: completed, completed_with_errors or failed, by the rule
of `finished_status` there.

(**) A job with nothing to grade (every document unreadable) never has an item land
to settle it, so it finishes when its batch starts, resumes, or takes it while
running (lifecycle/settling.py), and a batch left with nothing to run settles.

How the actions compose:
- A worker claims an item only while both its batch and its job are pending/processing
  (processing/claim.py). Pausing a batch leaves its jobs' statuses alone, so a job
  paused on its own stays paused when its batch resumes, until it is resumed itself.
- Cancel turns queued items into cancelled (they leave the totals, so progress can
  finish) and the unfinished jobs into cancelled; items in flight finish and count, and
  their job stays cancelled. Submissions keep the legacy statuses (pending, processing,
  completed, failed; legacy-schema.md): one left with nothing to run is completed if a
  model graded it, else failed "cancelled before grading". A batch that a job's cancel
  leaves with nothing to run settles: cancelled if every job in it was cancelled (the
  grades made before stay), else finished by its items.
- Retry failed requeues failed items with fresh attempts. Finished jobs and batches
  reopen and take back the tally (completed_jobs / failed_jobs) their finish made; a
  paused batch or job stays paused. Cancelled work is not retried: a cancelled job's
  failed items stay failed, and retrying a cancelled job or batch is refused.

Concurrency: rows are locked in the order every writer uses (work items, submissions,
batch, then jobs in id order), and statuses are checked again once locked. Counters
move by exactly the rows each `UPDATE ... RETURNING` changed, so a claim or a finishing
item committing meanwhile cannot make them drift.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.errors import Conflict, NotFound
from grading_app.lifecycle.items import (
    NEVER_QUEUED,
    PARTLY_FAILED,
    Moved,
    cancel_queued,
    never_queued,
    requeue_failed,
    settle_cancelled_submissions,
)
from grading_app.lifecycle.settling import (
    finish_job,
    finish_jobs_without_work,
    lock_jobs,
    settle,
    settled_batch_status,
)
from grading_app.models import (
    FINISHED,
    OPEN_BATCH,
    RUNNABLE,
    UNFINISHED,
    BatchStatus,
    GradingJob,
    JobBatch,
    JobStatus,
    Submission,
    SubmissionStatus,
    WorkItem,
    utcnow,
)

# action -> the statuses it is allowed from (the table above).
BATCH_ACTIONS: dict[str, frozenset[str]] = {
    "start": frozenset({BatchStatus.DRAFT}),
    "pause": RUNNABLE,
    "resume": frozenset({BatchStatus.PAUSED}),
    "cancel": OPEN_BATCH,
    "retry": UNFINISHED | FINISHED,
    "archive": FINISHED | {BatchStatus.CANCELLED},
}
JOB_ACTIONS: dict[str, frozenset[str]] = {
    "pause": RUNNABLE,
    "resume": frozenset({JobStatus.PAUSED}),
    "cancel": UNFINISHED,
    "retry": UNFINISHED | FINISHED,
}
_VERBS = {"retry": "retry the failed items of"}


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


def get_submission(session: Session, *, submission_id: str) -> Submission:
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise NotFound(f"No document with id {submission_id}")
    return submission


def _refuse(what: str, name: str, status: str | None, action: str) -> Conflict:
    return Conflict(f"Cannot {action} {what} '{name}': it is {status or 'without a status'}")


def _check_batch(batch: JobBatch, action: str) -> None:
    if batch.status not in BATCH_ACTIONS[action]:
        raise _refuse("batch", batch.batch_name, batch.status, _VERBS.get(action, action))


def _check_job(job: GradingJob, action: str) -> None:
    if job.status not in JOB_ACTIONS[action]:
        raise _refuse("job", job.job_name, job.status, _VERBS.get(action, action))


def lock_batch(session: Session, batch_id: str) -> JobBatch:
    """The batch row, locked and read afresh (PostgreSQL; SQLite's writer holds the
    whole database already)."""
    batch = session.get(JobBatch, batch_id, with_for_update=True, populate_existing=True)
    if batch is None:
        raise NotFound(f"No batch with id {batch_id}")
    return batch


# --- batch actions ----------------------------------------------------------------------


def start_batch(session: Session, *, batch_id: str) -> JobBatch:
    batch = lock_batch(session, batch_id)
    _check_batch(batch, "start")
    documents = session.scalar(
        sa.select(sa.func.count(Submission.id))
        .join(GradingJob, GradingJob.id == Submission.job_id)
        .where(GradingJob.batch_id == batch_id)
    )
    if not documents:
        raise Conflict(
            f"Cannot start batch '{batch.batch_name}': it has no documents to grade. Add "
            f"them first with POST /api/batches/{batch_id}/jobs (a form with `files` and "
            "`models`; `start=true` there starts the batch in the same request)"
        )
    now = utcnow()
    batch.status = BatchStatus.PENDING
    batch.updated_at = now  # claiming ages a batch from when it became runnable
    finish_jobs_without_work(session, batch, now=now)
    if (settled := settled_batch_status(session, batch)) is not None:
        settle(batch, settled, now=now)  # every document unreadable: nothing will run
    session.flush()
    return batch


def pause_batch(session: Session, *, batch_id: str) -> JobBatch:
    batch = lock_batch(session, batch_id)
    _check_batch(batch, "pause")
    batch.status = BatchStatus.PAUSED
    batch.pause_reason = None  # a person's pause; the budget check sets its own after
    batch.estimated_completion = None  # estimated again as items land after a resume
    batch.updated_at = utcnow()
    session.flush()
    return batch


def resume_batch(session: Session, *, batch_id: str) -> JobBatch:
    batch = lock_batch(session, batch_id)
    _check_batch(batch, "resume")
    now = utcnow()
    finish_jobs_without_work(session, batch, now=now)
    settled = settled_batch_status(session, batch)
    batch.pause_reason = None
    if settled is None:
        batch.status = BatchStatus.PROCESSING if batch.started_at else BatchStatus.PENDING
    else:
        settle(batch, settled, now=now)
    batch.updated_at = now  # claiming ages a batch from when it became runnable
    session.flush()
    return batch


def cancel_batch(session: Session, *, batch_id: str) -> JobBatch:
    _check_batch(get_batch(session, batch_id=batch_id), "cancel")  # before touching items
    now = utcnow()
    cancelled = cancel_queued(session, WorkItem.batch_id == batch_id, now=now)
    unfinished_jobs = sa.select(GradingJob.id).where(
        GradingJob.batch_id == batch_id, GradingJob.status.in_(UNFINISHED)
    )
    settled = settle_cancelled_submissions(session, unfinished_jobs, now=now)
    batch = lock_batch(session, batch_id)
    _check_batch(batch, "cancel")
    per_job = Counter(row.job_id for row in cancelled)
    jobs = lock_jobs(
        session,
        sa.and_(
            GradingJob.batch_id == batch_id,
            sa.or_(GradingJob.status.in_(UNFINISHED), GradingJob.id.in_(list(per_job))),
        ),
    )
    for job in jobs:
        _cancel_job_row(job, removed=per_job[job.id], settled=settled, now=now)
    batch.total_items -= len(cancelled) + never_queued(settled)
    batch.status = BatchStatus.CANCELLED
    batch.pause_reason = None
    batch.estimated_completion = None
    batch.updated_at = now
    session.flush()
    return batch


def retry_failed_batch(session: Session, *, batch_id: str) -> int:
    """Requeue the batch's failed items (not those of cancelled jobs); returns how many."""
    _check_batch(get_batch(session, batch_id=batch_id), "retry")
    live_jobs = sa.select(GradingJob.id).where(
        GradingJob.batch_id == batch_id, GradingJob.status.is_distinct_from(JobStatus.CANCELLED)
    )
    now = utcnow()
    requeued, reopened = requeue_failed(
        session, sa.and_(WorkItem.batch_id == batch_id, WorkItem.job_id.in_(live_jobs)), now=now
    )
    batch = lock_batch(session, batch_id)
    _check_batch(batch, "retry")
    if not requeued:
        raise Conflict(f"Batch '{batch.batch_name}' has no failed items to retry")
    _reopen(session, batch, requeued, reopened, now=now)
    return len(requeued)


def archive_batch(session: Session, *, batch_id: str) -> JobBatch:
    """A finished or cancelled batch leaves the working lists; no action applies to it
    any more."""
    batch = lock_batch(session, batch_id)
    _check_batch(batch, "archive")
    batch.status = BatchStatus.ARCHIVED
    batch.updated_at = utcnow()
    session.flush()
    return batch


# --- job actions ------------------------------------------------------------------------


def pause_job(session: Session, *, job_id: str) -> GradingJob:
    get_job(session, job_id=job_id)
    [job] = lock_jobs(session, GradingJob.id == job_id)
    _check_job(job, "pause")
    job.status = JobStatus.PAUSED
    job.estimated_completion = None
    job.updated_at = utcnow()
    session.flush()
    return job


def resume_job(session: Session, *, job_id: str) -> GradingJob:
    batch_id = get_job(session, job_id=job_id).batch_id
    # Batch row before job row: settling the job adds to the batch's tally.
    batch = lock_batch(session, batch_id) if batch_id else None
    [job] = lock_jobs(session, GradingJob.id == job_id)
    _check_job(job, "resume")
    now = utcnow()
    # Its items all landed, or it has documents and not one could be read: no item will
    # land to settle it later. (A job without documents yet waits for some.)
    landed = job.completed_items + job.failed_items >= job.total_items
    if landed and (job.total_items or job.total_submissions):
        finish_job(job, batch, now=now)
        if batch is not None and batch.status in RUNNABLE:
            session.flush()  # the job's new status counts in what follows
            if (settled := settled_batch_status(session, batch)) is not None:
                settle(batch, settled, now=now)
    else:
        job.status = JobStatus.PROCESSING if job.started_at else JobStatus.PENDING
    job.updated_at = now
    session.flush()
    return job


def cancel_job(session: Session, *, job_id: str) -> GradingJob:
    job = get_job(session, job_id=job_id)
    _check_job(job, "cancel")  # before touching items
    batch_id = job.batch_id
    now = utcnow()
    cancelled = cancel_queued(session, WorkItem.job_id == job_id, now=now)
    settled = settle_cancelled_submissions(session, [job_id], now=now)
    batch = lock_batch(session, batch_id) if batch_id else None
    [job] = lock_jobs(session, GradingJob.id == job_id)
    _check_job(job, "cancel")
    _cancel_job_row(job, removed=len(cancelled), settled=settled, now=now)
    if batch is not None:
        batch.total_items -= len(cancelled) + never_queued(settled)
        batch.estimated_completion = None
        if batch.status in RUNNABLE:
            session.flush()  # the job's new status counts in what follows
            settled_as = settled_batch_status(session, batch)
            if settled_as is not None:
                settle(batch, settled_as, now=now)
    session.flush()
    return job


def retry_failed_job(session: Session, *, job_id: str) -> int:
    """Requeue the job's failed items; returns how many."""
    job = get_job(session, job_id=job_id)
    return _retry_failed(
        session,
        job,
        WorkItem.job_id == job_id,
        nothing=f"Job '{job.job_name}' has no failed items to retry",
    )


def retry_failed_submission(session: Session, *, submission_id: str) -> int:
    """Requeue one document's failed items (one per model that failed it), as retrying
    its job would; returns how many."""
    submission = get_submission(session, submission_id=submission_id)
    nothing = f"Document '{submission.original_filename}' has no failed items to retry"
    if submission.status == SubmissionStatus.FAILED and not session.scalar(
        sa.select(sa.func.count())
        .select_from(WorkItem)
        .where(WorkItem.submission_id == submission_id)
    ):
        # Never graded: it could not be read (or an earlier release left it failed).
        reason = f" ({submission.error_message})" if submission.error_message else ""
        nothing = (
            f"Document '{submission.original_filename}' was never graded{reason}; upload it again"
        )
    return _retry_failed(
        session,
        get_job(session, job_id=submission.job_id),
        WorkItem.submission_id == submission_id,
        nothing=nothing,
    )


def _retry_failed(
    session: Session, job: GradingJob, items: sa.ColumnElement[bool], *, nothing: str
) -> int:
    """Requeue the failed items of `job` that `items` selects; `nothing`: the refusal
    when there are none."""
    _check_job(job, "retry")
    batch_id = job.batch_id
    if batch_id:
        _check_batch_takes_retry(job, get_batch(session, batch_id=batch_id))
    now = utcnow()
    requeued, reopened = requeue_failed(session, sa.and_(WorkItem.job_id == job.id, items), now=now)
    batch = lock_batch(session, batch_id) if batch_id else None
    if batch is not None:
        _check_batch_takes_retry(job, batch)
    if not requeued:
        raise Conflict(nothing)
    _reopen(session, batch, requeued, reopened, now=now)
    return len(requeued)


def _check_batch_takes_retry(job: GradingJob, batch: JobBatch) -> None:
    # Claiming takes no item of a draft, cancelled or archived batch.
    if batch.status not in BATCH_ACTIONS["retry"]:
        raise Conflict(
            f"Cannot retry the failed items of job '{job.job_name}': its batch "
            f"'{batch.batch_name}' is {batch.status or 'without a status'}"
        )


# --- jobs with nothing to grade -------------------------------------------------------


def settle_jobs_without_work(session: Session, *, batch_id: str) -> JobBatch:
    """In a running batch, jobs with nothing to grade finish now, and the batch too if
    that leaves it nothing to run (no item would ever land to settle them)."""
    batch = lock_batch(session, batch_id)
    if batch.status in RUNNABLE:
        now = utcnow()
        finish_jobs_without_work(session, batch, now=now)
        if (settled := settled_batch_status(session, batch)) is not None:
            settle(batch, settled, now=now)
            batch.updated_at = now
    session.flush()
    return batch


# --- shared steps -----------------------------------------------------------------------


def _cancel_job_row(
    job: GradingJob, *, removed: int, settled: Counter[tuple[str, str]], now: datetime
) -> None:
    job.total_items -= removed + settled[(job.id, NEVER_QUEUED)]
    for column in ("processed_submissions", "failed_submissions", PARTLY_FAILED):
        if settled[(job.id, column)]:
            setattr(job, column, (getattr(job, column) or 0) + settled[(job.id, column)])
    if job.status in UNFINISHED:
        job.status = JobStatus.CANCELLED
        job.estimated_completion = None
        job.updated_at = now


def _reopen(
    session: Session,
    batch: JobBatch | None,
    requeued: list[Moved],
    reopened: Counter[tuple[str, str]],
    *,
    now: datetime,
) -> None:
    """Counters and statuses of the jobs and the (locked) batch after `requeued` went
    back to the queue and `reopened` submissions left their counters."""
    per_job = Counter(row.job_id for row in requeued)
    for job in lock_jobs(session, GradingJob.id.in_(list(per_job))):
        _check_job(job, "retry")  # not cancelled meanwhile
        job.failed_items -= per_job[job.id]
        job.failed_submissions = (job.failed_submissions or 0) - reopened[
            (job.id, "failed_submissions")
        ]
        job.partly_failed_submissions -= reopened[(job.id, PARTLY_FAILED)]
        if job.status in FINISHED:
            if batch is not None:
                # The job will finish again; take back the tally its first finish made.
                if job.status == JobStatus.FAILED:
                    batch.failed_jobs -= 1
                else:
                    batch.completed_jobs -= 1
            job.status = JobStatus.PROCESSING
            job.completed_at = None
            job.estimated_completion = None
            job.updated_at = now
    if batch is not None:
        batch.failed_items -= len(requeued)
        if batch.status in FINISHED:  # claiming takes items of running batches only
            batch.status = BatchStatus.PROCESSING
            batch.completed_at = None
            batch.estimated_completion = None
            batch.updated_at = now
    session.flush()
