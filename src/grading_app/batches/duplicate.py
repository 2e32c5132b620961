"""Duplicating a batch: the same configuration as a new draft, and on request the same
documents, so that a class set can be graded again (with other models, say).

Three steps, so that no transaction waits on the disk (DESIGN "One unit of work"):
`plan_duplicate` reads what to copy, `copy_files` gives every stored file a copy of its
own (a hard link, else a copy: deleting either batch then leaves the other's files),
and `create_duplicate` writes the rows; `duplicate_batch` runs the three for the API and
the batch page alike. The copied documents keep their extracted text and upload time,
and are queued for the copy's models; the copy is a draft, so nothing is graded until
it is started.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from grading_app.accounts import access, audit
from grading_app.accounts.principal import Principal
from grading_app.batches.schemas import BatchDuplicate
from grading_app.batches.service import batch_providers, create_batch
from grading_app.db import unit_of_work
from grading_app.documents.storage import copy_stored_file, remove_stored_files
from grading_app.errors import BadRequest
from grading_app.fields import NAME_LENGTH, check_name, split_models
from grading_app.jobs import service as jobs
from grading_app.lifecycle import service as lifecycle
from grading_app.models import (
    GradingJob,
    JobBatch,
    MarkingScheme,
    Submission,
    SubmissionStatus,
    new_id,
    utcnow,
)
from grading_app.processing.settings import check_delivery
from grading_app.providers.targets import Target, check_targets, job_targets, parse_targets
from grading_app.templates.service import mapping

_CHUNK = 500
NO_TEXT = "its text was never extracted, so the copy cannot grade it; upload it again"


@dataclass(frozen=True)
class _Document:
    id: str
    filename: str | None


@dataclass(frozen=True)
class _Job:
    id: str
    scheme_file: str | None
    documents: list[_Document] = field(default_factory=list)


@dataclass(frozen=True)
class DuplicatePlan:
    batch_id: str
    name: str
    targets: list[Target] | None  # None: each job keeps its own models
    jobs: list[_Job]

    def stored_files(self) -> list[str]:
        names = [job.scheme_file for job in self.jobs]
        names += [document.filename for job in self.jobs for document in job.documents]
        return list(dict.fromkeys(name for name in names if name))


def duplicate_batch(
    sessions: sessionmaker[Session],
    *,
    batch_id: str,
    request: BatchDuplicate,
    principal: Principal,
    upload_dir: Path,
) -> JobBatch:
    """The copy, made and audited: planned in a read-only transaction, files copied
    outside any, rows written in a last one. The copied files are removed again if the
    rows are not written, so a refused copy leaves nothing behind."""
    with unit_of_work(sessions, read_only=True) as session:
        plan = plan_duplicate(session, batch_id=batch_id, request=request)
    files = copy_files(plan, upload_dir=upload_dir)
    try:
        with unit_of_work(sessions) as session:
            batch = create_duplicate(session, plan=plan, files=files, owner=principal)
            audit.record(session, principal, "duplicate", "batch", batch.id, source=batch_id)
    except BaseException:
        remove_stored_files(files.values(), upload_dir=upload_dir)
        raise
    return batch


def plan_duplicate(session: Session, *, batch_id: str, request: BatchDuplicate) -> DuplicatePlan:
    """What the copy will hold, checked before any file is touched."""
    source = lifecycle.get_batch(session, batch_id=batch_id)
    name = check_name(request.name or _copy_name(source.batch_name), what="batch")
    targets = None
    if request.models is not None:
        models = split_models(request.models)
        targets = check_targets(parse_targets(models, default_provider=None, or_else=""))
        if not targets:
            raise BadRequest("`models` is empty: name at least one provider:model, or leave it out")
    copies: list[_Job] = []
    if request.include_documents:
        rows = session.execute(
            sa.select(GradingJob, MarkingScheme.filename)
            .outerjoin(MarkingScheme, MarkingScheme.id == GradingJob.marking_scheme_id)
            .where(GradingJob.batch_id == batch_id)
            .order_by(GradingJob.created_at, GradingJob.id)
        ).all()
        for job, scheme_file in rows:
            if targets is None:
                _own_targets(job)  # a legacy job that names no model: say so now
            copies.append(_Job(job.id, scheme_file, _documents(session, job.id)))
    return DuplicatePlan(batch_id=batch_id, name=name, targets=targets, jobs=copies)


def copy_files(plan: DuplicatePlan, *, upload_dir: Path) -> dict[str, str]:
    """A copy of each stored file the copy's rows will name: old name -> new name.
    Files that are not there are left out (the documents keep their text)."""
    copies: dict[str, str] = {}
    try:
        for name in plan.stored_files():
            copy = copy_stored_file(name, upload_dir=upload_dir)
            if copy is not None:
                copies[name] = copy
    except BaseException:
        for copy in copies.values():
            (upload_dir / copy).unlink(missing_ok=True)
        raise
    return copies


def create_duplicate(
    session: Session, *, plan: DuplicatePlan, files: Mapping[str, str], owner: Principal
) -> JobBatch:
    """The copy, owned by whoever duplicated it (who may only view the original)."""
    source = lifecycle.get_batch(session, batch_id=plan.batch_id)
    batch = create_batch(
        session,
        name=plan.name,
        description=source.description,
        priority=source.priority if source.priority is not None else 5,
        deadline=source.deadline,
        tags=_tags_of(source),
        settings=dict(source.batch_settings) if isinstance(source.batch_settings, dict) else {},
        template_id=source.template_id,
        created_by=owner.username,
        owner_id=access.owner_id_for(session, owner),
    )
    for column in (
        "prompt",
        "temperature",
        "max_tokens",
        "saved_prompt_id",
        "saved_marking_scheme_id",
        "provider",
        "model",
        "models_to_compare",
    ):
        setattr(batch, column, getattr(source, column))
    if plan.targets is not None:
        batch.provider, batch.model = plan.targets[0].provider, plan.targets[0].model
        batch.models_to_compare = [t.label for t in plan.targets]
    for copy in plan.jobs:
        job = session.get(GradingJob, copy.id)
        if job is not None and job.batch_id == source.id:  # not deleted or moved since
            _copy_job(session, job, copy, batch=batch, targets=plan.targets, files=files)
    session.flush()
    session.refresh(batch)  # enqueueing counted the items in SQL
    check_delivery(mapping(batch.batch_settings), batch_providers(session, batch))
    return batch


def _tags_of(batch: JobBatch) -> list[str]:
    # Legacy rows may hold anything in the JSON column.
    tags = batch.tags if isinstance(batch.tags, list) else []
    return [tag for tag in tags if isinstance(tag, str)]


def _copy_name(name: str) -> str:
    suffix = " (copy)"
    return name[: NAME_LENGTH - len(suffix)] + suffix


def _own_targets(job: GradingJob) -> list[Target]:
    try:
        return job_targets(job)
    except BadRequest as exc:
        raise BadRequest(f"{exc.message}; give `models` to grade the copy with") from exc


def _documents(session: Session, job_id: str) -> list[_Document]:
    rows = session.execute(
        sa.select(Submission.id, Submission.filename)
        .where(Submission.job_id == job_id)
        .order_by(Submission.created_at, Submission.id)
    )
    return [_Document(row.id, row.filename) for row in rows]


def _copy_job(
    session: Session,
    job: GradingJob,
    copy: _Job,
    *,
    batch: JobBatch,
    targets: list[Target] | None,
    files: Mapping[str, str],
) -> None:
    scheme = None
    if job.marking_scheme_id is not None:
        original = session.get(MarkingScheme, job.marking_scheme_id)
        if original is not None:
            scheme = MarkingScheme(
                name=original.name,
                description=original.description,
                filename=files.get(original.filename, ""),
                original_filename=original.original_filename,
                file_size=original.file_size,
                file_type=original.file_type,
                content=original.content,
            )
            session.add(scheme)
            session.flush()
    new_job = jobs.create_job(
        session,
        name=job.job_name,
        prompt=job.prompt or batch.prompt or "",
        targets=targets or _own_targets(job),
        batch=batch,
        marking_scheme=scheme,
        temperature=job.temperature,
        max_tokens=job.max_tokens,
    )
    new_job.description = job.description
    new_job.saved_prompt_id = job.saved_prompt_id
    new_job.saved_marking_scheme_id = job.saved_marking_scheme_id
    _copy_documents(session, copy.documents, new_job, files)
    jobs.queue_job(session, job=new_job)


def _copy_documents(
    session: Session, documents: list[_Document], job: GradingJob, files: Mapping[str, str]
) -> None:
    """The documents as new pending submissions of `job` (a chunk at a time: a class set
    may be large); one without text is copied failed, saying why."""
    now = utcnow()
    copied = failed = 0
    for start in range(0, len(documents), _CHUNK):
        ids = [document.id for document in documents[start : start + _CHUNK]]
        rows: list[dict[str, Any]] = []
        for source in session.execute(
            sa.select(
                Submission.filename,
                Submission.original_filename,
                Submission.file_size,
                Submission.file_type,
                Submission.extracted_text,
                Submission.error_message,
                Submission.created_at,
            )
            .where(Submission.id.in_(ids))
            .order_by(Submission.created_at, Submission.id)
        ):
            readable = bool((source.extracted_text or "").strip())
            failed += not readable
            rows.append(
                {
                    "id": new_id(),
                    "job_id": job.id,
                    "filename": files.get(source.filename or "", ""),
                    "original_filename": source.original_filename,
                    "file_size": source.file_size,
                    "file_type": source.file_type,
                    "extracted_text": source.extracted_text,
                    "status": SubmissionStatus.PENDING if readable else SubmissionStatus.FAILED,
                    "error_message": None if readable else source.error_message or NO_TEXT,
                    "retry_count": 0,
                    "created_at": source.created_at or now,
                    "updated_at": now,
                }
            )
        if rows:
            session.execute(sa.insert(Submission), rows)
        copied += len(rows)
    job.total_submissions = copied
    job.failed_submissions = failed
    session.flush()
