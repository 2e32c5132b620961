"""Grading the work an earlier release left unfinished.

The upgrade keeps an earlier release's `pending` and `processing` jobs as they were and
queues nothing for them: grading spends provider credit, so it waits until the user
asks. Resuming such a job (`POST /api/jobs/{id}/resume`), or its batch, queues its
documents for the models that have not graded them yet. Each is graded from the text
the earlier release extracted; where it had not got that far, the file it stored is
read again from UPLOAD_DIR, as an upload would be. A document whose file is unreadable
fails with the reason and the others go on; if none of the files is there, UPLOAD_DIR
is most likely not the earlier release's folder, and the resume is refused, changing
nothing.

A job without a model of its own (the first releases allowed that) is graded with its
provider's default model, the one the earlier release would have used.

Counting: the upgrade counted each such document as one item still to run (migration
0004). Queueing withdraws that count as the real items (one per model still to grade)
replace it; an unreadable document is a failed submission, not an item, as an upload's
is. A job or batch that is left with nothing to run settles at once.

The files are read between two short transactions, never inside one (DESIGN "One unit
of work"); the second checks again what it queues.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from grading_app.db import unit_of_work
from grading_app.documents.extract import extract_file
from grading_app.documents.validate import DocumentError
from grading_app.errors import BadRequest, Conflict
from grading_app.jobs.grades import legacy_graded_models
from grading_app.lifecycle import service as lifecycle
from grading_app.lifecycle.items import UNSETTLED
from grading_app.models import (
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
from grading_app.processing.progress import batch_finished_status, finished_status
from grading_app.processing.service import enqueue_job
from grading_app.providers.registry import (
    ProviderNotConfigured,
    UnknownProvider,
    load_provider_configs,
    resolve_config,
)
from grading_app.providers.targets import Target, check_targets, job_targets

# A job's statuses in which its ungraded documents may be queued.
RESUMABLE_JOB = UNFINISHED
# A batch's statuses whose jobs' items are claimed, now or once it is resumed.
TAKING_WORK = UNFINISHED


@dataclass(frozen=True)
class LegacyDocument:
    """An ungraded document of an earlier release: the text read from its stored file,
    or why it could not be read. `text` None and `error` None: the row has its text."""

    submission_id: str
    text: str | None = None
    error: str | None = None
    file_missing: bool = False


class _StoredFile(NamedTuple):
    submission_id: str
    filename: str | None
    original_filename: str | None


def _unqueued(job_ids: sa.Select[Any] | Collection[str]) -> sa.ColumnElement[bool]:
    """Submissions of these jobs that an earlier release left ungraded: no work item."""
    return sa.and_(
        Submission.job_id.in_(job_ids),
        UNSETTLED,
        ~sa.exists().where(WorkItem.submission_id == Submission.id),
    )


# --- reading ------------------------------------------------------------------------------


def _find_unqueued(
    session: Session, where: sa.ColumnElement[bool]
) -> tuple[list[str], list[str], list[_StoredFile]]:
    """The resumable jobs `where` selects that have unqueued documents; the documents
    whose text is in the row; those whose file must be read."""
    jobs = sa.select(GradingJob.id).where(where, GradingJob.status.in_(RESUMABLE_JOB))
    has_text = sa.func.length(sa.func.trim(sa.func.coalesce(Submission.extracted_text, ""))) > 0
    rows = session.execute(
        sa.select(
            Submission.job_id,
            Submission.id,
            Submission.filename,
            Submission.original_filename,
            has_text,
        ).where(_unqueued(jobs))
    ).all()
    job_ids = sorted({row[0] for row in rows})
    with_text = [row[1] for row in rows if row[4]]
    to_read = [_StoredFile(row[1], row[2], row[3]) for row in rows if not row[4]]
    return job_ids, with_text, to_read


def _read_documents(
    with_text: Collection[str],
    to_read: Collection[_StoredFile],
    *,
    upload_dir: Path,
    max_bytes: int,
) -> dict[str, LegacyDocument]:
    """Every unqueued document, its text read from disk where the row has none. Raises
    `Conflict` when none of the files needed could be found in `upload_dir`."""
    documents = {submission_id: LegacyDocument(submission_id) for submission_id in with_text}
    read = [_read_stored_file(stored, upload_dir, max_bytes) for stored in to_read]
    if read and all(document.file_missing for document in read):
        raise Conflict(
            f"None of the {len(read)} files an earlier release stored for these documents "
            f"is in UPLOAD_DIR ({upload_dir.resolve()}). Set UPLOAD_DIR to the folder the "
            "earlier release kept its uploads in, then resume again; nothing was changed"
        )
    documents.update((document.submission_id, document) for document in read)
    return documents


def _read_stored_file(stored: _StoredFile, upload_dir: Path, max_bytes: int) -> LegacyDocument:
    name = stored.filename or ""
    shown = stored.original_filename or name
    # The row names a file in the upload folder, never a path elsewhere.
    if not name or PurePosixPath(name).name != name or PureWindowsPath(name).name != name:
        return LegacyDocument(
            stored.submission_id,
            error=f"{shown}: the stored file name {name!r} is not a file name; upload it again",
        )
    path = upload_dir / name
    try:
        if not path.is_file():
            return LegacyDocument(
                stored.submission_id,
                error=f"{shown}: the file an earlier release stored for it ({name}) is not "
                "in UPLOAD_DIR; upload it again",
                file_missing=True,
            )
        extracted = extract_file(path, max_bytes=max_bytes, name=shown)
    except DocumentError as exc:
        return LegacyDocument(stored.submission_id, error=exc.message)
    except (OSError, ValueError) as exc:  # a name too long, no permission, a NUL byte
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        return LegacyDocument(
            stored.submission_id,
            error=f"{shown}: the file an earlier release stored for it ({name}) cannot be "
            f"read ({reason}); upload it again",
        )
    return LegacyDocument(stored.submission_id, text=extracted.text)


# --- queueing -----------------------------------------------------------------------------


def _targets(job: GradingJob) -> list[Target]:
    """The job's models; a job that names none is graded with its provider's default."""
    names_models = bool(job.model) or (
        isinstance(job.models_to_compare, list) and bool(job.models_to_compare)
    )
    if names_models:
        return check_targets(job_targets(job))
    try:
        default = resolve_config(job.provider, load_provider_configs()).default_model
    except (UnknownProvider, ProviderNotConfigured):
        default = None
    if not default:
        raise BadRequest(
            f"Job '{job.job_name}' names no model, and its provider '{job.provider}' has no "
            "default model. Set that provider's default model (see the README's providers), "
            "then resume again"
        )
    return check_targets([Target(job.provider, default)])


def _lock_unqueued(session: Session, job_ids: Collection[str]) -> None:
    """On PostgreSQL, lock the documents first, in the order cancelling locks them
    (submissions, batch, jobs); SQLite's writer holds the whole database already."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa.select(Submission.id)
            .where(_unqueued(job_ids))
            .order_by(Submission.id)
            .with_for_update()
        )


def _queue_documents(
    session: Session, *, job: GradingJob, documents: Mapping[str, LegacyDocument], now: datetime
) -> None:
    """Queue the job's unqueued documents for the models that have not graded them
    (locked job row, in the caller's transaction); counters follow."""
    targets = _targets(job)
    ids = [
        submission_id
        for submission_id in session.scalars(
            sa.select(Submission.id)
            .where(_unqueued([job.id]))
            .order_by(Submission.created_at, Submission.id)
        )
        if submission_id in documents  # one not read before is left for the next resume
    ]
    graded_before = legacy_graded_models(session, ids)
    by_models: dict[tuple[tuple[str, str], ...], list[str]] = defaultdict(list)
    unreadable = graded = 0
    for submission_id in ids:
        document = documents[submission_id]
        values: dict[str, Any] = {"updated_at": now}
        if document.error is not None:
            values |= {"status": SubmissionStatus.FAILED, "error_message": document.error}
            unreadable += 1
        elif document.text is not None:
            values["extracted_text"] = document.text
        models = tuple(
            (target.provider, target.model)
            for target in targets
            if target.model not in graded_before.get(submission_id, set())
        )
        if document.error is None and not models:  # every model graded it already
            values["status"] = SubmissionStatus.COMPLETED
            graded += 1
        elif document.error is None:
            by_models[models].append(submission_id)
        session.execute(sa.update(Submission).where(Submission.id == submission_id).values(values))
    job.failed_submissions = (job.failed_submissions or 0) + unreadable
    job.processed_submissions = (job.processed_submissions or 0) + graded
    session.flush()
    _withdraw_counted_items(session, job, len(ids))
    for models, submission_ids in by_models.items():
        enqueue_job(session, job=job, models=list(models), submission_ids=submission_ids)
    session.refresh(job)  # both moved the counters in SQL


def _withdraw_counted_items(session: Session, job: GradingJob, count: int) -> None:
    # Batch row before job row, the order every writer takes them in.
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


def _restart(job: GradingJob, batch: JobBatch | None, *, unpause: bool, now: datetime) -> None:
    """After its documents were queued: a job with nothing left to run settles (and
    counts in its batch's tally); another runs again, a paused one only if `unpause`."""
    if job.status == JobStatus.PAUSED and not unpause:
        return
    if job.completed_items + job.failed_items >= job.total_items:
        status = finished_status(
            job.completed_items, job.failed_items, unreadable=bool(job.failed_submissions)
        )
        lifecycle.settle(job, status, now=now)
        if batch is not None:
            if status == JobStatus.FAILED:
                batch.failed_jobs = (batch.failed_jobs or 0) + 1
            else:
                batch.completed_jobs = (batch.completed_jobs or 0) + 1
    else:
        started = job.started_at or job.completed_items or job.failed_items
        job.status = JobStatus.PROCESSING if started else JobStatus.PENDING
    job.updated_at = now


def _settle_batch_if_done(session: Session, batch: JobBatch | None, *, now: datetime) -> None:
    """A running batch whose jobs have all finished settles (a finishing item settles
    one otherwise, and here none may be left to finish)."""
    if batch is None or batch.status not in RUNNABLE:
        return
    session.flush()
    session.refresh(batch)
    if batch.completed_items + batch.failed_items < batch.total_items:
        return
    unfinished = session.scalar(
        sa.select(sa.func.count())
        .select_from(GradingJob)
        .where(GradingJob.batch_id == batch.id, GradingJob.status.in_(UNFINISHED))
    )
    if not unfinished:
        status = batch_finished_status(
            session, batch.id, completed=batch.completed_items, failed=batch.failed_items
        )
        lifecycle.settle(batch, status, now=now)
        batch.updated_at = now


def _lock_batch_taking_work(session: Session, job: GradingJob) -> JobBatch | None:
    """The job's batch, locked; refused when it takes no work (claiming skips draft,
    finished, cancelled and archived batches)."""
    if not job.batch_id:
        return None
    batch = lifecycle.lock_batch(session, job.batch_id)
    if batch.status not in TAKING_WORK:
        raise Conflict(
            f"Cannot resume job '{job.job_name}': its batch '{batch.batch_name}' is "
            f"{batch.status or 'without a status'}"
        )
    return batch


# --- the resume actions -------------------------------------------------------------------


def resume_job(
    sessions: sessionmaker[Session], *, job_id: str, upload_dir: Path, max_bytes: int
) -> None:
    """Resume a paused job; for a job an earlier release left unfinished, queue its
    ungraded documents first."""
    with unit_of_work(sessions, read_only=True) as session:
        lifecycle.get_job(session, job_id=job_id)  # a 404 before any file is read
        _, with_text, to_read = _find_unqueued(session, GradingJob.id == job_id)
    documents = _read_documents(with_text, to_read, upload_dir=upload_dir, max_bytes=max_bytes)
    with unit_of_work(sessions) as session:
        if not documents:
            lifecycle.resume_job(session, job_id=job_id)  # or says why not
            return
        job = lifecycle.get_job(session, job_id=job_id)
        _lock_unqueued(session, [job_id])
        batch = _lock_batch_taking_work(session, job)
        [job] = lifecycle.lock_jobs(session, GradingJob.id == job_id)
        if job.status not in RESUMABLE_JOB:
            raise Conflict(
                f"Cannot resume job '{job.job_name}': it is {job.status or 'without a status'}"
            )
        now = utcnow()
        _queue_documents(session, job=job, documents=documents, now=now)
        _restart(job, batch, unpause=True, now=now)
        _settle_batch_if_done(session, batch, now=now)


def resume_batch(
    sessions: sessionmaker[Session], *, batch_id: str, upload_dir: Path, max_bytes: int
) -> None:
    """Resume a paused batch, queueing first the ungraded documents of every job in it
    that an earlier release left unfinished (a job paused on its own stays paused). A
    running batch with no such jobs is refused as before: it is not paused."""
    with unit_of_work(sessions, read_only=True) as session:
        lifecycle.get_batch(session, batch_id=batch_id)
        job_ids, with_text, to_read = _find_unqueued(session, GradingJob.batch_id == batch_id)
    documents = _read_documents(with_text, to_read, upload_dir=upload_dir, max_bytes=max_bytes)
    with unit_of_work(sessions) as session:
        if documents:
            _lock_unqueued(session, job_ids)
        batch = lifecycle.lock_batch(session, batch_id)
        if not documents or batch.status not in TAKING_WORK:
            lifecycle.resume_batch(session, batch_id=batch_id)  # or says why not
            return
        now = utcnow()
        jobs = lifecycle.lock_jobs(
            session, sa.and_(GradingJob.id.in_(job_ids), GradingJob.status.in_(RESUMABLE_JOB))
        )
        for job in jobs:
            _queue_documents(session, job=job, documents=documents, now=now)
            _restart(job, batch, unpause=False, now=now)
        if batch.status == BatchStatus.PAUSED:
            session.flush()
            lifecycle.resume_batch(session, batch_id=batch_id)
        else:
            _settle_batch_if_done(session, batch, now=now)
