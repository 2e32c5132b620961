"""What cancel and retry do to work items and submissions, before the job and batch
rows move (lifecycle/service.py): each step one set-based statement that returns the
rows it changed, so counters move by exactly those.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.models import (
    UNSETTLED_SUBMISSION,
    Submission,
    SubmissionStatus,
    WorkItem,
    WorkItemState,
)
from grading_app.processing.progress import CANCELLED_BEFORE_GRADING

# Submissions with work still to do: the legacy statuses, and no status at all, which
# earlier releases' rows may have (taken as pending, as the upgrade takes a job's).
UNSETTLED = sa.or_(Submission.status.in_(UNSETTLED_SUBMISSION), Submission.status.is_(None))
# In `settle_cancelled_submissions`' tally: documents an earlier release left without
# any work item, which the upgrade counted as one item each (migration 0004).
NEVER_QUEUED = "never_queued"
# Documents some models graded while others failed (their legacy status is completed).
PARTLY_FAILED = "partly_failed_submissions"


class Moved(NamedTuple):
    """A work item an UPDATE ... RETURNING has just moved."""

    job_id: str
    batch_id: str | None
    submission_id: str


def cancel_queued(session: Session, where: sa.ColumnElement[bool], *, now: datetime) -> list[Moved]:
    """Queued items become cancelled; the rows this statement changed, which are all
    that the counters may move by (a claim may take items up to the last moment)."""
    rows = session.execute(
        sa.update(WorkItem)
        .where(where, WorkItem.state == WorkItemState.QUEUED)
        .values(state=WorkItemState.CANCELLED, updated_at=now, completed_at=now)
        .returning(WorkItem.job_id, WorkItem.batch_id, WorkItem.submission_id)
        .execution_options(synchronize_session=False)
    )
    return [Moved(*row) for row in rows]


def settle_cancelled_submissions(
    session: Session, job_ids: sa.Select[Any] | Collection[str], *, now: datetime
) -> Counter[tuple[str, str]]:
    """Settle the jobs' submissions that have nothing left to run: completed if a model
    graded them, else failed. Returns how many settled per (job id, job counter), and
    per (job id, NEVER_QUEUED) how many of them had no work item at all."""

    def has_items(*states: WorkItemState) -> sa.Exists:
        return sa.exists().where(
            WorkItem.submission_id == Submission.id, WorkItem.state.in_(states)
        )

    unsettled = sa.and_(Submission.job_id.in_(job_ids), UNSETTLED)
    if session.get_bind().dialect.name == "postgresql":
        # Lock them first: an item of one of them finishing right now either settles it
        # before us (we wait here, then see its item finished) or after us (it waits,
        # then sees our cancelled items). Without the lock each could see the other's
        # item still open, and the submission would stay open.
        session.execute(
            sa.select(Submission.id).where(unsettled).order_by(Submission.id).with_for_update()
        )
    open_items = has_items(WorkItemState.QUEUED, WorkItemState.RUNNING)
    graded = has_items(WorkItemState.COMPLETED)
    some_failed = has_items(WorkItemState.FAILED)
    settled: Counter[tuple[str, str]] = Counter()
    # Left unfinished by an earlier release: the upgrade counted each as one item.
    never_queued = session.scalars(
        sa.select(Submission.job_id).where(
            unsettled, ~sa.exists().where(WorkItem.submission_id == Submission.id)
        )
    )
    settled.update((job_id, NEVER_QUEUED) for job_id in never_queued)
    for which, columns, values in (
        (
            sa.and_(graded, some_failed),
            ("processed_submissions", PARTLY_FAILED),
            {"status": SubmissionStatus.COMPLETED},
        ),
        (
            sa.and_(graded, ~some_failed),
            ("processed_submissions",),
            {"status": SubmissionStatus.COMPLETED},
        ),
        (
            ~graded,
            ("failed_submissions",),
            {"status": SubmissionStatus.FAILED, "error_message": CANCELLED_BEFORE_GRADING},
        ),
    ):
        rows = session.execute(
            sa.update(Submission)
            .where(unsettled, ~open_items, which)
            .values({**values, "updated_at": now})
            .returning(Submission.job_id)
            .execution_options(synchronize_session=False)
        ).scalars()
        for job_id in rows:
            settled.update((job_id, column) for column in columns)
    return settled


def never_queued(settled: Counter[tuple[str, str]]) -> int:
    return sum(count for (_, what), count in settled.items() if what == NEVER_QUEUED)


def requeue_failed(
    session: Session, where: sa.ColumnElement[bool], *, now: datetime
) -> tuple[list[Moved], Counter[tuple[str, str]]]:
    """Failed items go back to the queue with fresh attempts, and failed submissions
    with an item queued again reopen. Returns the items changed, and per (job id,
    submission counter) how many submissions left it: failed ones that reopened, and
    partly failed ones (completed, so they stay completed) whose failed models are
    graded again; they are counted again when they settle."""
    rows = session.execute(
        sa.update(WorkItem)
        .where(where, WorkItem.state == WorkItemState.FAILED)
        .values(
            state=WorkItemState.QUEUED,
            attempts=0,
            next_attempt_at=None,
            completed_at=None,
            updated_at=now,
        )
        .returning(WorkItem.job_id, WorkItem.batch_id, WorkItem.submission_id)
        .execution_options(synchronize_session=False)
    )
    requeued = [Moved(*row) for row in rows]
    left: Counter[tuple[str, str]] = Counter()
    if not requeued:
        return requeued, left
    jobs = {row.job_id for row in requeued}
    queued_again = sa.exists().where(
        WorkItem.submission_id == Submission.id, WorkItem.state == WorkItemState.QUEUED
    )
    reopened = session.execute(
        sa.update(Submission)
        .where(
            Submission.job_id.in_(jobs), Submission.status == SubmissionStatus.FAILED, queued_again
        )
        .values(status=SubmissionStatus.PROCESSING, error_message=None, updated_at=now)
        .returning(Submission.job_id)
        .execution_options(synchronize_session=False)
    ).scalars()
    left.update((job_id, "failed_submissions") for job_id in reopened)
    # A settled submission has no open item: a completed one with one queued now was
    # partly failed until this retry.
    partly = session.execute(
        sa.select(Submission.job_id, sa.func.count())
        .where(
            Submission.job_id.in_(jobs),
            Submission.status == SubmissionStatus.COMPLETED,
            queued_again,
        )
        .group_by(Submission.job_id)
    ).all()
    left.update({(job_id, PARTLY_FAILED): count for job_id, count in partly})
    return requeued, left
