"""The dashboard: everything at a glance. It reads the stored counters of batches and
jobs (kept up to date as items finish) rather than counting documents or items, so it
costs one pass over batches and jobs, not over their millions of rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.accounts import access
from grading_app.accounts.principal import Principal
from grading_app.models import (
    FINISHED,
    UNFINISHED,
    BatchStatus,
    GradingJob,
    JobBatch,
    Submission,
    SubmissionStatus,
    User,
    WorkItem,
    WorkItemState,
    utcnow,
)
from grading_app.reports.causes import classify
from grading_app.reports.schemas import (
    BatchProgress,
    Dashboard,
    DeadlineRisk,
    FinishedBatch,
    OwnerCost,
    RecentFailure,
    RefusedDocument,
    Totals,
    WaitingForReview,
)
from grading_app.trust.review import waiting_per_batch

LISTED = 20  # rows in each of the dashboard's lists
REFUSED_WINDOW = 500  # refused documents read at a time, newest first
# Batches that make no progress of their own: a deadline ahead of them is at risk.
_STOPPED = frozenset({BatchStatus.PAUSED, BatchStatus.DRAFT})


@dataclass(frozen=True)
class Scope:
    """The batches, jobs and work items a dashboard covers (None: every one)."""

    batches: sa.ColumnElement[bool] | None = None
    jobs: sa.ColumnElement[bool] | None = None
    items: sa.ColumnElement[bool] | None = None
    # The batches' ids, read from indexes: for sums over a few batches of many.
    batch_ids: sa.CompoundSelect | None = None
    # The owner whose spending is listed (a teacher sees their own); None: every owner.
    costs_of: str | None = None

    @classmethod
    def visible_to(cls, principal: Principal) -> Scope:
        return cls(
            batches=access.batch_visible(principal),
            jobs=access.job_visible(principal),
            items=access.item_visible(principal),
            batch_ids=access.batch_ids_visible(principal),
            costs_of=None if principal.is_admin else principal.user_id,
        )

    def of_batch_ids(self, column: Any) -> list[sa.ColumnElement[bool]]:
        """`column` (a batch id) in scope, as a condition list."""
        if self.batch_ids is not None:
            return [column.in_(self.batch_ids)]
        if self.batches is not None:
            return [column.in_(sa.select(JobBatch.id).where(self.batches))]
        return []

    def of_batches(self) -> list[sa.ColumnElement[bool]]:
        return [] if self.batches is None else [self.batches]

    def of_jobs(self) -> list[sa.ColumnElement[bool]]:
        return [] if self.jobs is None else [self.jobs]

    def of_items(self) -> list[sa.ColumnElement[bool]]:
        return [] if self.items is None else [self.items]


def dashboard(session: Session, *, scope: Scope, now: datetime | None = None) -> Dashboard:
    now = now or utcnow()
    return Dashboard(
        generated_at=now,
        totals=_totals(session, scope),
        batches_by_status=_batches_by_status(session, scope),
        in_progress=_in_progress(session, scope),
        recently_finished=_recently_finished(session, scope),
        deadlines_at_risk=_deadlines_at_risk(session, scope, now=now),
        recent_failures=_recent_failures(session, scope),
        refused_documents=_refused_documents(session, scope),
        cost_by_owner=_cost_by_owner(session, scope),
        waiting_for_review=[
            WaitingForReview(batch_id=batch_id, batch_name=name, waiting=count)
            for batch_id, name, count in waiting_per_batch(session, visible=scope.batches)
        ],
    )


def _totals(session: Session, scope: Scope) -> Totals:
    """Summed from the batches' counters (jobs, documents, items) and, for jobs without
    a batch, from the jobs' own: never by reading every job in view."""

    def total(column: Any) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(column), 0)

    in_batches = session.execute(
        sa.select(
            sa.func.count(),
            total(JobBatch.job_count),
            total(JobBatch.total_submissions),
            total(JobBatch.processed_submissions),
            total(JobBatch.failed_submissions),
            total(JobBatch.total_items),
            total(JobBatch.completed_items),
            total(JobBatch.failed_items),
        ).where(*scope.of_batch_ids(JobBatch.id))
    ).one()
    alone = session.execute(
        sa.select(
            sa.func.count(),
            total(GradingJob.total_submissions),
            total(GradingJob.processed_submissions),
            total(GradingJob.failed_submissions),
            total(GradingJob.total_items),
            total(GradingJob.completed_items),
            total(GradingJob.failed_items),
        ).where(GradingJob.batch_id.is_(None), *scope.of_jobs())
    ).one()
    batches, *sums = in_batches
    return Totals(
        batches=batches,
        jobs=int(sums[0] + alone[0]),
        documents=int(sums[1] + alone[1]),
        graded_documents=int(sums[2] + alone[2]),
        failed_documents=int(sums[3] + alone[3]),
        items=int(sums[4] + alone[4]),
        completed_items=int(sums[5] + alone[5]),
        failed_items=int(sums[6] + alone[6]),
    )


def _batches_by_status(session: Session, scope: Scope) -> dict[str, int]:
    counts = {status.value: 0 for status in BatchStatus}
    for status, count in session.execute(
        sa.select(JobBatch.status, sa.func.count())
        .where(*scope.of_batches())
        .group_by(JobBatch.status)
    ):
        key = status or BatchStatus.PENDING.value
        counts[key] = counts.get(key, 0) + count
    return counts


def _listed(
    session: Session, scope: Scope, *conditions: Any, order_by: tuple[Any, ...]
) -> list[JobBatch]:
    """The first LISTED batches in scope that meet `conditions`, in `order_by`."""
    return list(
        session.scalars(
            sa.select(JobBatch)
            .where(*conditions, *scope.of_batches())
            .order_by(*order_by)
            .limit(LISTED)
        )
    )


def _named(batch: JobBatch) -> dict[str, Any]:
    """How every list of the dashboard names a batch."""
    return {"id": batch.id, "name": batch.batch_name, "status": batch.status}


def _counted(batch: JobBatch) -> dict[str, Any]:
    """A batch's items: in all, graded, failed."""
    return {
        "total_items": batch.total_items,
        "completed_items": batch.completed_items,
        "failed_items": batch.failed_items,
    }


def _in_progress(session: Session, scope: Scope) -> list[BatchProgress]:
    """Unfinished batches, the first to be graded first (priority, then deadline)."""
    batches = _listed(
        session,
        scope,
        JobBatch.status.in_(UNFINISHED),
        order_by=(
            JobBatch.priority.desc(),
            JobBatch.deadline.is_(None),
            JobBatch.deadline,
            JobBatch.created_at,
            JobBatch.id,
        ),
    )
    return [
        BatchProgress(
            **_named(batch),
            **_counted(batch),
            priority=batch.priority,
            progress=(batch.completed_items + batch.failed_items) / batch.total_items
            if batch.total_items
            else 0.0,
            started_at=batch.started_at,
            estimated_completion=batch.estimated_completion,
            deadline=batch.deadline,
        )
        for batch in batches
    ]


def _recently_finished(session: Session, scope: Scope) -> list[FinishedBatch]:
    batches = _listed(
        session,
        scope,
        JobBatch.status.in_(FINISHED | {BatchStatus.CANCELLED}),
        JobBatch.completed_at.is_not(None),
        order_by=(JobBatch.completed_at.desc(), JobBatch.id),
    )
    return [
        FinishedBatch(**_named(batch), **_counted(batch), completed_at=batch.completed_at)
        for batch in batches
    ]


def _deadlines_at_risk(session: Session, scope: Scope, *, now: datetime) -> list[DeadlineRisk]:
    """Unfinished batches that will miss their deadline: it has passed, the estimate
    lies beyond it, or the batch is paused or not started."""
    at_risk = sa.or_(
        JobBatch.deadline < now,
        JobBatch.estimated_completion > JobBatch.deadline,
        JobBatch.status.in_(_STOPPED),
    )
    batches = _listed(
        session,
        scope,
        JobBatch.status.in_(UNFINISHED | _STOPPED),
        JobBatch.deadline.is_not(None),
        at_risk,
        order_by=(JobBatch.deadline, JobBatch.id),
    )
    risks = []
    for batch in batches:
        assert batch.deadline is not None
        if batch.deadline < now:
            reason = "the deadline has passed"
        elif batch.estimated_completion is not None and batch.estimated_completion > batch.deadline:
            reason = "estimated to finish after the deadline at the current rate"
        elif batch.status == BatchStatus.PAUSED:
            reason = "paused"
        else:
            reason = "not started"
        risks.append(
            DeadlineRisk(
                **_named(batch),
                deadline=batch.deadline,
                estimated_completion=batch.estimated_completion,
                reason=reason,
            )
        )
    return risks


def _recent_failures(session: Session, scope: Scope) -> list[RecentFailure]:
    """The latest failures in scope, read newest first from
    `ix_work_items_state_completed_at_id` rather than sorting every failure in scope
    (100,000 at the benchmark's scale), each told in or out of scope from the item's
    own batch rather than by reading its job. Those with a time first, in a plain descending
    order either database reads backwards from the index (PostgreSQL puts NULLs first
    in it, SQLite last); the few without one, if any, after them."""
    query = (
        sa.select(
            WorkItem.id,
            WorkItem.batch_id,
            JobBatch.batch_name,
            WorkItem.job_id,
            GradingJob.job_name,
            Submission.original_filename,
            WorkItem.provider,
            WorkItem.model,
            WorkItem.last_error,
            WorkItem.completed_at,
        )
        .join(GradingJob, GradingJob.id == WorkItem.job_id)
        .join(Submission, Submission.id == WorkItem.submission_id)
        .outerjoin(JobBatch, JobBatch.id == WorkItem.batch_id)
        .where(WorkItem.state == WorkItemState.FAILED, *scope.of_items())
    )
    rows = list(
        session.execute(
            query.where(WorkItem.completed_at.is_not(None))
            .order_by(WorkItem.completed_at.desc(), WorkItem.id.desc())
            .limit(LISTED)
        )
    )
    if len(rows) < LISTED:
        rows += session.execute(
            query.where(WorkItem.completed_at.is_(None))
            .order_by(WorkItem.id.desc())
            .limit(LISTED - len(rows))
        ).all()
    return [
        RecentFailure(
            item_id=row.id,
            batch_id=row.batch_id,
            batch_name=row.batch_name,
            job_id=row.job_id,
            job_name=row.job_name,
            document=row.original_filename,
            provider=row.provider,
            model=row.model,
            cause=classify(row.last_error),
            error=row.last_error,
            failed_at=row.completed_at,
        )
        for row in rows
    ]


def _refused_documents(session: Session, scope: Scope) -> list[RefusedDocument]:
    """Documents refused at upload: failed without text and without a work item (one
    that failed in grading has both; one of an earlier release, its text).

    They are read newest first from the partial index
    `ix_submissions_refused_created_at`, which holds only failed documents without text
    (its condition is written out literally, not as bound parameters, so that SQLite
    sees the query is covered by it), and their jobs are then matched to the scope in a
    second query: in one join, SQLite starts from a teacher's 10,000 jobs instead.
    Refused documents are few, so a window of the newest ones holds the latest in any
    scope; only when it is full and still holds too few in scope is the rest read."""
    found: list[RefusedDocument] = []
    offset = 0
    while len(found) < LISTED:
        window = _newest_refused(session, offset=offset, limit=REFUSED_WINDOW)
        jobs = _jobs_in_scope(session, scope, {row.job_id for row in window})
        found += [
            RefusedDocument(
                submission_id=row.id,
                batch_id=jobs[row.job_id].batch_id,
                batch_name=jobs[row.job_id].batch_name,
                job_id=row.job_id,
                job_name=jobs[row.job_id].job_name,
                document=row.original_filename,
                error=row.error_message,
                uploaded_at=row.created_at,
            )
            for row in window
            if row.job_id in jobs
        ]
        if len(window) < REFUSED_WINDOW:
            break
        offset += REFUSED_WINDOW
    return found[:LISTED]


def _newest_refused(session: Session, *, offset: int, limit: int) -> list[Any]:
    graded = sa.select(WorkItem.id).where(WorkItem.submission_id == Submission.id).exists()
    failed: sa.ColumnElement[str] = sa.literal_column(f"'{SubmissionStatus.FAILED.value}'")
    return list(
        session.execute(
            sa.select(
                Submission.id,
                Submission.job_id,
                Submission.original_filename,
                Submission.error_message,
                Submission.created_at,
            )
            .where(Submission.status == failed, Submission.extracted_text.is_(None), ~graded)
            .order_by(Submission.created_at.desc().nulls_last(), Submission.id)
            .offset(offset)
            .limit(limit)
        )
    )


def _jobs_in_scope(session: Session, scope: Scope, ids: set[str]) -> dict[str, Any]:
    if not ids:
        return {}
    rows = session.execute(
        sa.select(GradingJob.id, GradingJob.job_name, GradingJob.batch_id, JobBatch.batch_name)
        .outerjoin(JobBatch, JobBatch.id == GradingJob.batch_id)
        .where(GradingJob.id.in_(ids), *scope.of_jobs())
    )
    return {row.id: row for row in rows}


def _cost_by_owner(session: Session, scope: Scope) -> list[OwnerCost]:
    """Each owner's batches' spending (their stored counter), most first."""
    conditions = scope.of_batches()
    if scope.costs_of is not None:
        conditions.append(JobBatch.owner_id == scope.costs_of)
    rows = session.execute(
        sa.select(
            JobBatch.owner_id,
            User.username,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(JobBatch.spent_usd), 0.0).label("spent"),
        )
        .outerjoin(User, User.id == JobBatch.owner_id)
        .where(*conditions)
        .group_by(JobBatch.owner_id, User.username)
        .order_by(sa.desc("spent"), User.username)
        .limit(LISTED)
    )
    return [
        OwnerCost(owner_id=owner_id, owner=username, batches=count, spent_usd=float(spent))
        for owner_id, username, count, spent in rows
    ]
