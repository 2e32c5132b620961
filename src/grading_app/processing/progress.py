"""What a landed work item changes: its submission's status, the job's and batch's
counters, their status when the last item lands, and the estimate of when they finish.

The finishing path runs once per graded item, so it speaks Core to the tables: a few
statements, built once, each changing and returning what the next needs. Row lock
order, the same in every writer: work item, submission, batch, job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.models import (
    RUNNABLE,
    GradingJob,
    JobBatch,
    JobStatus,
    Submission,
    SubmissionStatus,
    WorkItem,
    WorkItemState,
)
from grading_app.trust.doubt import assess

ITEMS = cast(sa.Table, WorkItem.__table__)
SUBMISSIONS = cast(sa.Table, Submission.__table__)
JOBS = cast(sa.Table, GradingJob.__table__)
BATCHES = cast(sa.Table, JobBatch.__table__)
CANCELLED_BEFORE_GRADING = "cancelled before grading"


def statement(sql: str, columns: dict[str, Any] | None = None, **types: Any) -> sa.Executable:
    """A statement built once: per-item SQLAlchemy construction and cache-key work
    cost more than SQLite's own execution (profiled in benchmarks/throughput.py).
    `types` type the parameters, `columns` the result columns that need it."""
    statement = sa.text(sql).bindparams(
        *(sa.bindparam(name, type_=kind) for name, kind in types.items())
    )
    return statement.columns(**columns) if columns else statement


_SUBMISSION_STATUS = "SELECT status FROM submissions WHERE id = :id"
_LOCK_SUBMISSION = {
    "postgresql": statement(_SUBMISSION_STATUS + " FOR NO KEY UPDATE"),
    "sqlite": statement(_SUBMISSION_STATUS),  # BEGIN IMMEDIATE: one writer already
}
_ITEM_STATES = statement(
    "SELECT state, COUNT(*) FROM work_items WHERE submission_id = :id GROUP BY state"
)
_SETTLE = "UPDATE submissions SET status = :status, error_message = :error, updated_at = :now"
_SETTLE_SUBMISSION = {
    False: statement(_SETTLE + " WHERE id = :id", now=sa.DateTime()),
    # With the legacy single-model grade.
    True: statement(
        _SETTLE + ", grade = :grade, grade_metadata = :grade_metadata WHERE id = :id",
        now=sa.DateTime(),
        grade_metadata=sa.JSON(),
    ),
}
_PROGRESS = (
    "RETURNING status, total_items, completed_items, failed_items, started_at, estimated_completion"
)
# What the item's calls cost goes on the batch's spending in the same statement.
_COUNT_BATCH_ITEM = statement(
    "UPDATE job_batches SET completed_items = completed_items + :completed, "
    "failed_items = failed_items + :failed, total_items = total_items - :withdrawn, "
    f"spent_usd = spent_usd + :spent WHERE id = :id {_PROGRESS}",
    columns={"started_at": sa.DateTime(), "estimated_completion": sa.DateTime()},
)
# The job's submission counters that settling a submission adds one to.
_PROCESSED = ("processed_submissions",)
_FAILED = ("failed_submissions",)
# Graded by some models while others failed: processed, and partly failed too.
_PARTLY_FAILED = ("processed_submissions", "partly_failed_submissions")
# Settled again after a retry of its failed models, still partly failed (the retry took
# it out of that count; see lifecycle's _requeue_failed).
_STILL_PARTLY_FAILED = ("partly_failed_submissions",)
_COUNT_JOB_ITEM: dict[tuple[str, ...], sa.Executable] = {
    # One variant per set of submission counters that the item may settle.
    counters: statement(
        "UPDATE grading_jobs SET completed_items = completed_items + :completed, "
        "failed_items = failed_items + :failed, total_items = total_items - :withdrawn"
        + "".join(f", {counter} = COALESCE({counter}, 0) + 1" for counter in counters)
        + f" WHERE id = :id {_PROGRESS}, failed_submissions",
        columns={"started_at": sa.DateTime(), "estimated_completion": sa.DateTime()},
    )
    for counters in ((), _PROCESSED, _FAILED, _PARTLY_FAILED, _STILL_PARTLY_FAILED)
}


@dataclass(frozen=True)
class Ended:
    """A work item whose lease this worker has just ended."""

    id: str
    submission_id: str
    job_id: str
    batch_id: str | None
    provider: str
    model: str


def add_counts(
    session: Session,
    *,
    job_id: str,
    batch_id: str | None,
    total: int = 0,
    completed: int = 0,
    failed: int = 0,
) -> None:
    # Batch row before job row, the order every writer locks them in.
    if batch_id:
        session.execute(
            sa.update(BATCHES)
            .where(BATCHES.c.id == batch_id)
            .values(
                total_items=BATCHES.c.total_items + total,
                completed_items=BATCHES.c.completed_items + completed,
                failed_items=BATCHES.c.failed_items + failed,
            )
        )
    session.execute(
        sa.update(JOBS)
        .where(JOBS.c.id == job_id)
        .values(
            total_items=JOBS.c.total_items + total,
            completed_items=JOBS.c.completed_items + completed,
            failed_items=JOBS.c.failed_items + failed,
        )
    )


def after_item(
    session: Session,
    ended: Ended,
    *,
    completed: int = 0,
    failed: int = 0,
    withdrawn: int = 0,
    now: datetime,
    submission_status: str | None,
    submission_values: dict[str, Any],
    assess_document: bool = True,
    spent: float = 0.0,
) -> None:
    """Counters, the submission's status, and the job's and batch's status and ETA, for
    an item that completed, failed, or was withdrawn from the totals (cancelled).
    `assess_document`: False when the caller knows a settling document has nothing to
    look at (saves the assessment's reads on the one writer). `spent`: USD its calls
    cost, added to the batch's spending."""
    settled_as = _settle_submission(
        session, ended, previous=submission_status, now=now, values=submission_values
    )
    counts = {"completed": completed, "failed": failed, "withdrawn": withdrawn}
    batch = None
    if ended.batch_id:
        batch = session.execute(
            _COUNT_BATCH_ITEM, {**counts, "spent": spent, "id": ended.batch_id}
        ).one()
    job = session.execute(_COUNT_JOB_ITEM[settled_as], {**counts, "id": ended.job_id}).one()
    job_done = job.completed_items + job.failed_items >= job.total_items
    if job_done and job.status in RUNNABLE:
        # Only a running job finishes here: a paused or cancelled one keeps its status
        # (resume settles a paused job whose items are all done).
        # Documents that could not be read never became items, but count as errors.
        status = finished_status(
            job.completed_items, job.failed_items, unreadable=bool(job.failed_submissions)
        )
        session.execute(
            sa.update(JOBS)
            .where(JOBS.c.id == ended.job_id)
            .values(status=status, completed_at=now, estimated_completion=None, updated_at=now)
        )
        if ended.batch_id:
            tally = (
                BATCHES.c.failed_jobs if status == JobStatus.FAILED else BATCHES.c.completed_jobs
            )
            session.execute(
                sa.update(BATCHES)
                .where(BATCHES.c.id == ended.batch_id)
                .values({tally.key: tally + 1})
            )
    elif not job_done and job.status in RUNNABLE:
        _refresh_eta(session, JOBS, ended.job_id, job, now=now)
    if ended.batch_id and batch is not None:
        _settle_batch(session, ended.batch_id, batch, now=now)
    if settled_as and assess_document:
        # Why the settled document may need a person's look (the review queue). Last:
        # the review row's foreign keys lock the job and batch rows in share mode, which
        # this transaction has already locked for its counters, so workers settling
        # documents of one batch cannot wait on each other in opposite orders.
        assess(session, ended.submission_id)


def lock_submission(session: Session, submission_id: str) -> str | None:
    """Lock the submission row and return its status.

    Finishers of one submission's items (one per model) take turns here, so each reads
    the others' states after they committed; otherwise two finishing at once on
    PostgreSQL would each see the other still running, and neither would settle it.
    FOR NO KEY UPDATE, since a result's foreign key holds a KEY SHARE lock on the row
    that FOR UPDATE would wait for (https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-ROWS).
    """
    dialect = session.get_bind().dialect.name
    return session.execute(_LOCK_SUBMISSION[dialect], {"id": submission_id}).scalar_one()


def _settle_submission(
    session: Session,
    ended: Ended,
    *,
    previous: str | None,
    now: datetime,
    values: dict[str, Any],
) -> tuple[str, ...]:
    """Update the (locked) submission's status from its items; returns the job's
    submission counters to add one to as it settles (none while items are open)."""
    states: dict[str, int] = dict(
        session.execute(_ITEM_STATES, {"id": ended.submission_id}).all()  # type: ignore[arg-type]
    )
    update = sa.update(SUBMISSIONS).where(SUBMISSIONS.c.id == ended.submission_id)
    if states.get(WorkItemState.QUEUED) or states.get(WorkItemState.RUNNING):
        if values or previous == SubmissionStatus.PENDING:
            session.execute(
                update.values(
                    **values,
                    status=SubmissionStatus.PROCESSING
                    if previous == SubmissionStatus.PENDING
                    else previous,
                    updated_at=now,
                )
            )
        return ()
    completed = states.get(WorkItemState.COMPLETED, 0)
    failed = states.get(WorkItemState.FAILED, 0)
    status = SubmissionStatus.COMPLETED if completed else SubmissionStatus.FAILED
    error = None if completed or failed else CANCELLED_BEFORE_GRADING
    if failed:
        errors = session.execute(
            sa.select(ITEMS.c.model, ITEMS.c.last_error).where(
                ITEMS.c.submission_id == ended.submission_id,
                ITEMS.c.state == WorkItemState.FAILED,
            )
        ).all()
        error = "; ".join(f"{model}: {message}" for model, message in errors)[:2000]
    session.execute(
        _SETTLE_SUBMISSION["grade" in values],
        {**values, "id": ended.submission_id, "status": status, "error": error, "now": now},
    )
    if previous in (SubmissionStatus.COMPLETED, SubmissionStatus.FAILED):
        still_partly = previous == SubmissionStatus.COMPLETED and completed and failed
        return _STILL_PARTLY_FAILED if still_partly else ()
    if status == SubmissionStatus.FAILED:
        return _FAILED
    return _PARTLY_FAILED if failed else _PROCESSED


def _settle_batch(session: Session, batch_id: str, batch: Any, *, now: datetime) -> None:
    done = batch.completed_items + batch.failed_items
    if batch.total_items and done >= batch.total_items and batch.status == JobStatus.PROCESSING:
        status = batch_finished_status(
            session, batch_id, completed=batch.completed_items, failed=batch.failed_items
        )
        session.execute(
            sa.update(BATCHES)
            .where(BATCHES.c.id == batch_id)
            .values(
                status=status,
                # As a cancel leaves it: cancelled work did not complete.
                completed_at=None if status == JobStatus.CANCELLED else now,
                estimated_completion=None,
                updated_at=now,
            )
        )
    elif batch.total_items and done < batch.total_items and batch.status in RUNNABLE:
        # (A paused or cancelled batch has no estimate: its calls in flight still land.)
        _refresh_eta(session, BATCHES, batch_id, batch, now=now)


def _refresh_eta(
    session: Session, table: sa.Table, row_id: str, progress: Any, *, now: datetime
) -> None:
    """Store a new estimate at each whole percent of progress (every item of a small
    job), and whenever the stored one has gone by: the estimate stays fresh without a
    write per item of a large one."""
    done, total = progress.completed_items + progress.failed_items, progress.total_items
    same_percent = total > 100 and (done * 100) // total == ((done - 1) * 100) // total
    stored = progress.estimated_completion
    if same_percent and stored is not None and stored > now:
        return
    session.execute(
        sa.update(table)
        .where(table.c.id == row_id)
        .values(estimated_completion=_eta(progress.started_at, done, total, now))
    )


def finished_status(completed: int, failed: int, *, unreadable: bool = False) -> str:
    """What finished work comes to; `unreadable`: some documents could not be read (they
    never became items), so all being graded is still not a clean "completed"."""
    if failed == 0 and not unreadable:
        return JobStatus.COMPLETED
    if completed == 0:
        return JobStatus.FAILED
    return JobStatus.COMPLETED_WITH_ERRORS


def batch_finished_status(session: Session, batch_id: str, *, completed: int, failed: int) -> str:
    """What a batch whose items are all done comes to: cancelled when every job in it
    was cancelled (what was graded before the cancel stays, but the work was given up),
    else what its items and unreadable documents say."""
    statuses = set(
        session.execute(
            sa.select(JOBS.c.status).where(JOBS.c.batch_id == batch_id).distinct()
        ).scalars()
    )
    if statuses == {JobStatus.CANCELLED}:
        return JobStatus.CANCELLED
    return finished_status(
        completed, failed, unreadable=has_unreadable_documents(session, batch_id)
    )


def has_unreadable_documents(session: Session, batch_id: str) -> bool:
    """Whether a job of the batch has failed submissions (asked once, as it finishes);
    a cancelled job's documents were given up on purpose, not errors."""
    return (
        session.execute(
            sa.select(JOBS.c.id)
            .where(
                JOBS.c.batch_id == batch_id,
                JOBS.c.failed_submissions > 0,
                JOBS.c.status != JobStatus.CANCELLED,
            )
            .limit(1)
        ).first()
        is not None
    )


def _eta(started_at: datetime | None, done: int, total: int, now: datetime) -> datetime | None:
    """From the observed rate since the work started."""
    if started_at is None or done <= 0:
        return None
    elapsed = (now - started_at).total_seconds()
    if elapsed <= 0:
        return None
    rate = done / elapsed
    return now + timedelta(seconds=(total - done) / rate)
