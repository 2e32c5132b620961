"""Grading the work an earlier release left unfinished.

The upgrade keeps an earlier release's `pending` and `processing` jobs as they were and
queues nothing for them: grading spends provider credit, so it waits until the user
asks. Resuming such a job (`POST /api/jobs/{id}/resume`), or its batch, queues its
documents that no model has graded yet. Each is graded from the text the earlier
release extracted; where it had not got that far, the file it stored is read again
from UPLOAD_DIR, as an upload would be. A document whose file is unreadable fails with
the reason and the others go on; if none of the files is there, UPLOAD_DIR is most
likely not the earlier release's folder, and the resume is refused, changing nothing.

A job without a model of its own (the first releases allowed that) is graded with its
provider's default model, the one the earlier release would have used.

Files are read before the write transaction opens (DESIGN "One unit of work"); the
transaction then checks again what it queues.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from grading_app.batches import service as control
from grading_app.db import unit_of_work
from grading_app.documents.extract import extract_file
from grading_app.documents.validate import DocumentError
from grading_app.errors import BadRequest, Conflict
from grading_app.jobs.service import Target, check_targets, job_targets
from grading_app.models import GradingJob, JobBatch, Submission, WorkItem, utcnow
from grading_app.processing.service import enqueue_job, finished_status
from grading_app.providers.registry import (
    ProviderNotConfigured,
    UnknownProvider,
    load_provider_configs,
    resolve_config,
)

# Statuses of an earlier release's submissions that were never graded.
UNGRADED = ("pending", "processing")
# A job's statuses in which its ungraded documents may be queued.
RESUMABLE_JOB = ("pending", "processing", "paused")
# Batch statuses whose jobs' items are claimed, now or once resumed. A finished batch
# reopens; draft, cancelled and archived ones are refused.
TAKING_WORK = ("pending", "processing", "paused")


@dataclass(frozen=True)
class LegacyDocument:
    """An ungraded document of an earlier release: the text read from its stored file,
    or why it could not be read. `text` None and `error` None: the row has its text."""

    submission_id: str
    text: str | None = None
    error: str | None = None


def _unqueued(job_ids: sa.Select[Any] | Collection[str]) -> sa.ColumnElement[bool]:
    """Submissions of these jobs left ungraded by an earlier release: no work item."""
    return sa.and_(
        Submission.job_id.in_(job_ids),
        Submission.status.in_(UNGRADED),
        ~sa.exists().where(WorkItem.submission_id == Submission.id),
    )


def _jobs_with_unqueued(session: Session, where: sa.ColumnElement[bool]) -> list[str]:
    jobs = sa.select(GradingJob.id).where(where, GradingJob.status.in_(RESUMABLE_JOB))
    return list(
        session.scalars(sa.select(Submission.job_id).where(_unqueued(jobs)).distinct()).all()
    )


def read_documents(
    session: Session, *, job_ids: Collection[str], upload_dir: Path, max_bytes: int
) -> dict[str, LegacyDocument]:
    """Every unqueued document of the jobs, its text read from disk where the row has
    none. Raises `Conflict` when no file needed could be found in `upload_dir`."""
    rows = session.execute(
        sa.select(
            Submission.id,
            Submission.filename,
            Submission.original_filename,
            sa.func.length(sa.func.trim(sa.func.coalesce(Submission.extracted_text, ""))) > 0,
        ).where(_unqueued(job_ids))
    ).all()
    documents: dict[str, LegacyDocument] = {}
    missing = 0
    for submission_id, filename, original_filename, has_text in rows:
        if has_text:
            documents[submission_id] = LegacyDocument(submission_id)
            continue
        document = _read_stored_file(
            submission_id, filename, original_filename, upload_dir, max_bytes
        )
        missing += document.error is not None and document.error.startswith(_MISSING)
        documents[submission_id] = document
    needing_files = sum(1 for document in documents.values() if document.text or document.error)
    if needing_files and missing == needing_files:
        raise Conflict(
            f"None of the {needing_files} files an earlier release stored for these "
            f"documents is in {upload_dir.resolve()}. Set UPLOAD_DIR to the folder the "
            "earlier release kept its uploads in, then resume again; nothing was changed"
        )
    return documents


_MISSING = "The file an earlier release stored for this document"


def _read_stored_file(
    submission_id: str,
    filename: str | None,
    original_filename: str | None,
    upload_dir: Path,
    max_bytes: int,
) -> LegacyDocument:
    name = filename or ""
    # The row names a file in the upload folder, never a path elsewhere.
    if not name or PurePosixPath(name).name != name or PureWindowsPath(name).name != name:
        return LegacyDocument(
            submission_id, error=f"The stored file name {name!r} is not a file in UPLOAD_DIR"
        )
    path = upload_dir / name
    if not path.is_file():
        return LegacyDocument(
            submission_id,
            error=f"{_MISSING} ({name}) is not in {upload_dir.resolve()}; upload it again",
        )
    try:
        extracted = extract_file(path, max_bytes=max_bytes, name=original_filename or name)
        return LegacyDocument(submission_id, text=extracted.text)
    except DocumentError as exc:
        return LegacyDocument(submission_id, error=exc.message)
    except OSError as exc:
        return LegacyDocument(submission_id, error=f"{_MISSING} ({name}) cannot be read: {exc}")


def _targets(job: GradingJob) -> list[Target]:
    """The job's models; a job without one is graded with its provider's default."""
    try:
        targets = job_targets(job)
    except BadRequest:
        try:
            default = resolve_config(job.provider, load_provider_configs()).default_model
        except (UnknownProvider, ProviderNotConfigured):
            default = None
        if not default:
            raise BadRequest(
                f"Job '{job.job_name}' names no model, and its provider '{job.provider}' "
                "has no default model. Set that provider's default model (see the README's "
                "providers), then resume again"
            ) from None
        targets = [Target(job.provider, default)]
    return check_targets(targets)


def queue_unfinished(
    session: Session, *, job: GradingJob, documents: Mapping[str, LegacyDocument]
) -> int:
    """Queue the job's unqueued documents (locked job row, in the caller's transaction);
    returns how many work items were added."""
    models = [(target.provider, target.model) for target in _targets(job)]
    now = utcnow()
    ids = session.scalars(
        sa.select(Submission.id)
        .where(_unqueued([job.id]))
        .order_by(Submission.created_at, Submission.id)
    ).all()
    readable: list[str] = []
    unreadable = 0
    for submission_id in ids:
        document = documents.get(submission_id)
        if document is None:
            continue  # not read before this transaction: left for the next resume
        if document.error is not None:
            session.execute(
                sa.update(Submission)
                .where(Submission.id == submission_id)
                .values(status="failed", error_message=document.error, updated_at=now)
            )
            unreadable += 1
            continue
        if document.text is not None:
            session.execute(
                sa.update(Submission)
                .where(Submission.id == submission_id)
                .values(extracted_text=document.text, updated_at=now)
            )
        readable.append(submission_id)
    job.failed_submissions = (job.failed_submissions or 0) + unreadable
    session.flush()
    # The upgrade counted each of these documents as one item still to run (0004); they
    # now become real items, or unreadable documents, which are not items.
    _withdraw_counted_items(session, job, len(readable) + unreadable)
    queued = enqueue_job(session, job=job, models=models, submission_ids=readable)
    session.refresh(job)  # both moved the counters in SQL
    if job.status != "paused":
        job.status = "processing" if job.started_at or job.processed_submissions else "pending"
        if not queued and job.completed_items + job.failed_items >= job.total_items:
            _settle_without_items(job, now=now)
    job.updated_at = now
    session.flush()
    return queued


def _withdraw_counted_items(session: Session, job: GradingJob, count: int) -> None:
    # Batch row before job row, the order every writer locks them in.
    if job.batch_id:
        session.execute(
            sa.update(JobBatch)
            .where(JobBatch.id == job.batch_id)
            .values(total_items=JobBatch.total_items - count)
            .execution_options(synchronize_session=False)
        )
    session.execute(
        sa.update(GradingJob)
        .where(GradingJob.id == job.id)
        .values(total_items=GradingJob.total_items - count)
        .execution_options(synchronize_session=False)
    )


def _settle_without_items(job: GradingJob, *, now: datetime) -> None:
    """A job all of whose documents turned out unreadable has nothing left to run."""
    graded = job.processed_submissions or 0
    job.status = finished_status(graded, job.failed_submissions or 0)
    job.completed_at = now
    job.estimated_completion = None


# --- the resume actions -------------------------------------------------------------------


def resume_job(
    sessions: sessionmaker[Session], *, job_id: str, upload_dir: Path, max_bytes: int
) -> None:
    """Resume a paused job; for a job an earlier release left unfinished, queue its
    ungraded documents first."""
    with unit_of_work(sessions, read_only=True) as session:
        control.get_job(session, job_id=job_id)  # a 404 before any file is read
        job_ids = _jobs_with_unqueued(session, GradingJob.id == job_id)
        documents = read_documents(
            session, job_ids=job_ids, upload_dir=upload_dir, max_bytes=max_bytes
        )
    with unit_of_work(sessions) as session:
        if not documents:
            control.resume_job(session, job_id=job_id)
            return
        job = control.get_job(session, job_id=job_id)
        batch = _lock_batch_taking_work(session, job)
        [job] = control.lock_jobs(session, GradingJob.id == job_id)
        if job.status not in RESUMABLE_JOB:
            raise Conflict(
                f"Cannot resume job '{job.job_name}': it is {job.status or 'without a status'}"
            )
        queue_unfinished(session, job=job, documents=documents)
        if job.status == "paused":
            control.resume_job(session, job_id=job_id)
        _settle_finished_job_in(batch, job)


def resume_batch(
    sessions: sessionmaker[Session], *, batch_id: str, upload_dir: Path, max_bytes: int
) -> JobBatch:
    """Resume a paused batch; queue first the ungraded documents of every job in it that
    an earlier release left unfinished. A running batch with no such jobs is refused as
    before (it is not paused)."""
    with unit_of_work(sessions, read_only=True) as session:
        control.get_batch(session, batch_id=batch_id)
        job_ids = _jobs_with_unqueued(session, GradingJob.batch_id == batch_id)
        documents = read_documents(
            session, job_ids=job_ids, upload_dir=upload_dir, max_bytes=max_bytes
        )
    with unit_of_work(sessions) as session:
        batch = control.lock_batch(session, batch_id)
        if not documents or batch.status not in (*TAKING_WORK, *control.FINISHED):
            return control.resume_batch(session, batch_id=batch_id)  # or says why not
        _reopen_if_finished(batch)
        jobs = control.lock_jobs(
            session, sa.and_(GradingJob.id.in_(job_ids), GradingJob.status.in_(RESUMABLE_JOB))
        )
        for job in jobs:
            queue_unfinished(session, job=job, documents=documents)
            _settle_finished_job_in(batch, job)
        if batch.status == "paused":
            return control.resume_batch(session, batch_id=batch_id)
        session.flush()
        return batch


def _lock_batch_taking_work(session: Session, job: GradingJob) -> JobBatch | None:
    """The job's batch, locked; refused when it takes no work."""
    if not job.batch_id:
        return None
    batch = control.lock_batch(session, job.batch_id)
    if batch.status not in (*TAKING_WORK, *control.FINISHED):
        raise Conflict(
            f"Cannot resume job '{job.job_name}': its batch '{batch.batch_name}' is "
            f"{batch.status or 'without a status'}"
        )
    _reopen_if_finished(batch)
    return batch


def _reopen_if_finished(batch: JobBatch) -> None:
    """A batch that finished (its other jobs done, or another legacy job resumed and
    graded first) reopens for the work now queued, as a retry reopens it."""
    if batch.status in control.FINISHED:
        batch.status = "processing"
        batch.completed_at = None
        batch.updated_at = utcnow()


def _settle_finished_job_in(batch: JobBatch | None, job: GradingJob) -> None:
    """A job that settled without items counts in its batch's tally of finished jobs."""
    if batch is None or job.status not in control.FINISHED:
        return
    if job.status == "failed":
        batch.failed_jobs = (batch.failed_jobs or 0) + 1
    else:
        batch.completed_jobs = (batch.completed_jobs or 0) + 1
