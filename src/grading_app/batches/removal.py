"""Deleting a batch with everything in it: jobs, documents, grades, work items, the
jobs' own marking schemes, and the stored files no other row refers to.

Rows go explicitly, children first (grade results, work items, documents, jobs, the
jobs' marking schemes, the batch), so deleting works whatever the foreign keys of a
database cascade. The files go only after the transaction has committed
(`documents.storage.remove_stored_files`), so a failed commit loses none:
`delete_batch_and_files` does both for the API and the batch page; a bulk delete, whose
dry run rolls back, calls `delete_batch` in its own transaction.
Nothing outside the batch changes: library items and templates keep their usage counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, sessionmaker

from grading_app.accounts import audit
from grading_app.accounts.principal import Principal
from grading_app.db import unit_of_work
from grading_app.documents.storage import remove_stored_files
from grading_app.errors import BadRequest, Conflict
from grading_app.jobs.submissions import unreferenced_files
from grading_app.lifecycle import service as lifecycle
from grading_app.models import (
    RUNNABLE,
    GradeResult,
    GradingJob,
    JobBatch,
    MarkingScheme,
    Submission,
    WorkItem,
    WorkItemState,
)

_CHUNK = 500


@dataclass(frozen=True)
class DeletedBatch:
    id: str
    batch_name: str
    jobs: int
    submissions: int
    # Stored files that no row refers to any more, to remove once committed.
    files: list[str]
    # How many of them were removed (`delete_batch_and_files`).
    files_removed: int = 0


def delete_batch_and_files(
    sessions: sessionmaker[Session],
    *,
    batch_id: str,
    principal: Principal,
    upload_dir: Path,
    confirm_name: str | None = None,
) -> DeletedBatch:
    """The batch's rows deleted and audited in one transaction, then its stored files.
    With `confirm_name` (what a person typed to confirm), refused (400) unless it is
    the batch's name exactly."""
    with unit_of_work(sessions) as session:
        if confirm_name is not None:
            name = lifecycle.get_batch(session, batch_id=batch_id).batch_name
            if confirm_name.strip() != name:
                raise BadRequest(f"To delete, type the batch's name exactly: {name}")
        deleted = delete_batch(session, batch_id=batch_id)
        audit.record(session, principal, "delete", "batch", batch_id, name=deleted.batch_name)
    # Only now that the rows are gone for good.
    removed = remove_stored_files(deleted.files, upload_dir=upload_dir)
    return replace(deleted, files_removed=removed)


def delete_batch(session: Session, *, batch_id: str) -> DeletedBatch:
    batch = lifecycle.lock_batch(session, batch_id)
    check_deletable(session, batch)
    name = batch.batch_name
    jobs = sa.select(GradingJob.id).where(GradingJob.batch_id == batch_id)
    documents = sa.select(Submission.id).where(Submission.job_id.in_(jobs))
    files = [
        row
        for row in session.scalars(
            sa.select(Submission.filename).where(Submission.job_id.in_(jobs))
        )
        if row
    ]
    scheme_ids = [
        row
        for row in session.scalars(
            sa.select(GradingJob.marking_scheme_id)
            .where(GradingJob.batch_id == batch_id, GradingJob.marking_scheme_id.is_not(None))
            .distinct()
        )
        if row
    ]
    items = sa.or_(WorkItem.batch_id == batch_id, WorkItem.job_id.in_(jobs))
    _delete(session, GradeResult, GradeResult.submission_id.in_(documents))
    _delete(session, GradeResult, GradeResult.work_item_id.in_(sa.select(WorkItem.id).where(items)))
    _delete(session, WorkItem, items)
    submissions = _delete(session, Submission, Submission.job_id.in_(jobs))
    job_count = _delete(session, GradingJob, GradingJob.batch_id == batch_id)
    files += _delete_own_schemes(session, scheme_ids)
    _delete(session, JobBatch, JobBatch.id == batch_id)
    session.expunge(batch)
    return DeletedBatch(
        id=batch_id,
        batch_name=name,
        jobs=job_count,
        submissions=submissions,
        files=unreferenced_files(session, files),
    )


def check_deletable(session: Session, batch: JobBatch) -> None:
    """Refused while workers may take its items, or are grading some right now."""
    if batch.status in RUNNABLE:
        raise Conflict(
            f"Cannot delete batch '{batch.batch_name}': it is {batch.status}; pause or "
            "cancel it first"
        )
    running = session.execute(
        sa.select(sa.func.count())
        .select_from(WorkItem)
        .where(WorkItem.batch_id == batch.id, WorkItem.state == WorkItemState.RUNNING.value)
    ).scalar_one()
    if running:
        raise Conflict(
            f"Cannot delete batch '{batch.batch_name}': {running} of its documents are being "
            "graded right now; try again once they have finished"
        )


def _delete(session: Session, table: type[Any], where: sa.ColumnElement[bool]) -> int:
    result = session.execute(
        sa.delete(table).where(where).execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", result).rowcount or 0


def _delete_own_schemes(session: Session, scheme_ids: Sequence[str]) -> list[str]:
    """The deleted jobs' marking schemes that no other job uses (a job's uploaded
    scheme is its own; rows of earlier releases may share one); their files."""
    files: list[str] = []
    for start in range(0, len(scheme_ids), _CHUNK):
        unused = sa.and_(
            MarkingScheme.id.in_(scheme_ids[start : start + _CHUNK]),
            ~sa.exists().where(GradingJob.marking_scheme_id == MarkingScheme.id),
        )
        files += [
            name
            for name in session.scalars(sa.select(MarkingScheme.filename).where(unused))
            if name
        ]
        _delete(session, MarkingScheme, unused)
    return files
