"""What a report covers: one batch or one job, as SQL conditions on each table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.lifecycle import service as lifecycle
from grading_app.models import GradingJob, JobBatch, Submission, WorkItem

ScopeKind = Literal["batch", "job"]


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    id: str
    name: str
    status: str | None
    deadline: datetime | None
    started_at: datetime | None
    completed_at: datetime | None

    def jobs(self) -> sa.ColumnElement[bool]:
        """Its jobs (a condition on GradingJob)."""
        return GradingJob.batch_id == self.id if self.kind == "batch" else GradingJob.id == self.id

    def submissions(self) -> sa.ColumnElement[bool]:
        """Its documents (a condition on Submission)."""
        if self.kind == "job":
            return Submission.job_id == self.id
        return Submission.job_id.in_(sa.select(GradingJob.id).where(self.jobs()))

    def items(self) -> sa.ColumnElement[bool]:
        """Its work items (a condition on WorkItem, on an indexed column)."""
        return WorkItem.batch_id == self.id if self.kind == "batch" else WorkItem.job_id == self.id


def batch_scope(session: Session, *, batch_id: str) -> Scope:
    batch = lifecycle.get_batch(session, batch_id=batch_id)  # NotFound: a 404
    return Scope(
        kind="batch",
        id=batch.id,
        name=batch.batch_name,
        status=batch.status,
        deadline=batch.deadline,
        started_at=batch.started_at,
        completed_at=batch.completed_at,
    )


def job_scope(session: Session, *, job_id: str) -> Scope:
    job = lifecycle.get_job(session, job_id=job_id)
    # A job is due when its batch is.
    deadline = session.scalar(sa.select(JobBatch.deadline).where(JobBatch.id == job.batch_id))
    return Scope(
        kind="job",
        id=job.id,
        name=job.job_name,
        status=job.status,
        deadline=deadline,
        started_at=job.started_at,
        completed_at=job.completed_at,
    )


def load_scope(session: Session, *, kind: ScopeKind, scope_id: str) -> Scope:
    if kind == "batch":
        return batch_scope(session, batch_id=scope_id)
    return job_scope(session, job_id=scope_id)
