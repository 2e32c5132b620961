"""Grade files from the command line: gather documents, make (or find) their batch.

A batch made by `grading-app grade` remembers a fingerprint of what was asked (files,
prompt, marking scheme, models), so running the same command again resumes that batch
instead of starting over.

Files are read, validated, extracted and stored first (`prepare_files`, the same code the
HTTP upload uses); the rows then go in with one short transaction, so the database is
never held while a file is read. The batch and its job are made by the services the API
uses, so a template gives the command what it gives POST /api/batches: its prompt,
criteria, temperature, settings and priority.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.accounts.principal import OPERATOR
from grading_app.batches import service as batches
from grading_app.batches.schemas import BatchCreate
from grading_app.documents.validate import SUPPORTED_TYPES
from grading_app.errors import BadRequest
from grading_app.jobs import service
from grading_app.jobs.schemas import JobCreate
from grading_app.jobs.uploads import PreparedDocument, discard, prepare_path
from grading_app.models import (
    GradingJob,
    JobBatch,
    Submission,
    SubmissionStatus,
    WorkItem,
    WorkItemState,
)
from grading_app.providers.targets import Target

CLI_CREATOR = "grading-app grade"
EXTENSIONS = {f".{kind}" for kind in SUPPORTED_TYPES}


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """Files given directly, and supported files found under folders (hidden ones
    skipped), without duplicates, in a stable order."""
    found: dict[Path, None] = {}
    for path in paths:
        if not path.exists():
            raise BadRequest(f"No such file or folder: {path}")
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path)
                if any(part.startswith(".") for part in relative.parts):
                    continue
                if child.is_file() and child.suffix.lower() in EXTENSIONS:
                    found[child.resolve()] = None
        else:
            found[path.resolve()] = None
    if not found:
        raise BadRequest(
            "No documents to grade: give .docx, .pdf, .txt or .md files, or folders holding them"
        )
    return list(found)


def batch_name(paths: Sequence[Path], files: Sequence[Path]) -> str:
    """One file given: its name; else the folder's name and how many documents."""
    if len(paths) == 1 and paths[0].is_file():
        return files[0].name
    folder = paths[0] if len(paths) == 1 else files[0].parent
    count = f"{len(files)} file{'' if len(files) == 1 else 's'}"
    return f"{(folder.resolve().name or 'documents')[:200]} ({count})"


@dataclass(frozen=True)
class GradingPlan:
    files: list[Path]
    instructions: str
    marking_scheme: str | None
    targets: list[Target]
    name: str
    template_id: str | None = None

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        payload = {
            "files": [str(p) for p in self.files],
            "instructions": self.instructions,
            "scheme": self.marking_scheme,
            "targets": [t.label for t in self.targets],
        }
        digest.update(json.dumps(payload, sort_keys=True).encode())
        return digest.hexdigest()


def find_resumable(session: Session, *, fingerprint: str) -> JobBatch | None:
    batches = session.execute(
        sa.select(JobBatch)
        .where(JobBatch.created_by == CLI_CREATOR)
        .order_by(JobBatch.created_at.desc())
    ).scalars()
    for batch in batches:
        settings = batch.batch_settings if isinstance(batch.batch_settings, dict) else {}
        if settings.get("cli_fingerprint") == fingerprint and batch.status != "cancelled":
            return batch
    return None


def prepare_files(
    files: Iterable[Path], *, upload_dir: Path, max_bytes: int
) -> list[PreparedDocument]:
    """Read, validate, extract and store each file once, before any transaction opens."""
    documents: list[PreparedDocument] = []
    try:
        for path in files:
            documents.append(prepare_path(path, upload_dir=upload_dir, max_bytes=max_bytes))
    except BaseException:
        discard(documents, upload_dir=upload_dir)
        raise
    return documents


def create_batch_from_files(
    session: Session, *, plan: GradingPlan, documents: Sequence[PreparedDocument]
) -> tuple[JobBatch, GradingJob, list[str]]:
    """The batch, its job and submissions (unreadable files kept as failed submissions
    with the reason), and its queued items; only inserts, the files are read already.
    Made as POST /api/batches and POST /api/batches/{id}/jobs make them, so a template's
    temperature, max_tokens, settings, priority and tags apply. Returns the problems
    found, one per file."""
    batch = batches.create_draft_batch(
        session,
        data=BatchCreate(
            name=plan.name,
            template_id=plan.template_id,
            prompt=plan.instructions,
            models=[target.label for target in plan.targets],
        ),
        owner=OPERATOR,
    )
    batch.created_by = CLI_CREATOR
    # Not a processing setting a request may send: the command's own note, kept beside them.
    batch.batch_settings = {**(batch.batch_settings or {}), "cli_fingerprint": plan.fingerprint()}
    session.flush()  # before the batch is locked and read afresh below
    job_plan = service.plan_job(session, batch_id=batch.id, request=JobCreate())
    # The scheme the command read: its --scheme file (free text), else the template's
    # criteria, which stay its rubric.
    if plan.marking_scheme != job_plan.template_scheme:
        job_plan = replace(job_plan, template_scheme=plan.marking_scheme, template_rubric=None)
    job, _, _ = service.create_job_with_documents(
        session, plan=job_plan, scheme=None, documents=documents, start=True
    )
    problems = [f"{d.original_filename}: {d.error}" for d in documents if not d.readable]
    # Nothing readable: starting the batch has settled it and its job already (failed).
    session.flush()
    return batch, job, problems


def unreadable_documents(session: Session, *, job_id: str) -> int:
    """The job's documents that could not be read: failed, and never given to a model."""
    graded = sa.select(WorkItem.id).where(WorkItem.submission_id == Submission.id).exists()
    return session.execute(
        sa.select(sa.func.count())
        .select_from(Submission)
        .where(Submission.job_id == job_id, Submission.status == "failed", ~graded)
    ).scalar_one()


@dataclass(frozen=True)
class Failure:
    """Why one document, or one model's grading of it, failed."""

    document: str
    model: str | None  # None: the document itself could not be read
    reason: str


def failures(session: Session, *, job_id: str, limit: int) -> tuple[list[Failure], int]:
    """The job's failed gradings and unreadable documents (at most `limit`, by document
    name), and how many there are in all."""
    graded = sa.select(WorkItem.id).where(WorkItem.submission_id == Submission.id).exists()
    unreadable = sa.select(
        Submission.original_filename.label("document"),
        sa.null().label("provider"),
        sa.null().label("model"),
        Submission.error_message.label("reason"),
    ).where(Submission.job_id == job_id, Submission.status == SubmissionStatus.FAILED, ~graded)
    failed_items = (
        sa.select(
            Submission.original_filename,
            WorkItem.provider,
            WorkItem.model,
            WorkItem.last_error,
        )
        .join(Submission, Submission.id == WorkItem.submission_id)
        .where(WorkItem.job_id == job_id, WorkItem.state == WorkItemState.FAILED)
    )
    both = sa.union_all(unreadable, failed_items).subquery()
    total = session.execute(sa.select(sa.func.count()).select_from(both)).scalar_one()
    rows = session.execute(
        sa.select(both).order_by(both.c.document, both.c.provider, both.c.model).limit(limit)
    ).all()
    return [
        Failure(
            document=row.document,
            model=f"{row.provider}:{row.model}" if row.model else None,
            reason=row.reason or "no reason recorded",
        )
        for row in rows
    ], total


def requeue_abandoned(session: Session, *, batch_id: str) -> int:
    """Items a killed `grading-app grade` on this machine left running go back at once,
    rather than after their lease runs out."""
    host = socket.gethostname()
    rows = session.execute(
        sa.select(WorkItem.id, WorkItem.lease_owner).where(
            WorkItem.batch_id == batch_id, WorkItem.state == "running"
        )
    ).all()
    abandoned = [item_id for item_id, owner in rows if _dead_local_owner(owner, host)]
    if abandoned:
        session.execute(
            sa.update(WorkItem)
            .where(WorkItem.id.in_(abandoned))
            .values(state="queued", lease_owner=None, lease_expires_at=None)
        )
    return len(abandoned)


def _dead_local_owner(owner: str | None, host: str) -> bool:
    parts = (owner or "").split(":")
    if len(parts) < 3 or parts[1] != host:
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError):
        return False
    return False
