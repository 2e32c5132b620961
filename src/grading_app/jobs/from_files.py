"""Grade files from the command line: gather documents, make (or find) their batch.

A batch made by `grading-app grade` remembers a fingerprint of what was asked (files,
prompt, marking scheme, models), so running the same command again resumes that batch
instead of starting over.

Files are read, validated, extracted and stored first (`prepare_files`, the same code the
HTTP upload uses); the rows then go in with one short transaction, so the database is
never held while a file is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.documents.validate import SUPPORTED_TYPES
from grading_app.errors import BadRequest
from grading_app.jobs.service import (
    Target,
    add_documents,
    add_marking_scheme,
    create_batch,
    create_job,
    queue_job,
)
from grading_app.jobs.uploads import PreparedDocument, discard, prepare_path
from grading_app.models import GradingJob, JobBatch, WorkItem

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


@dataclass(frozen=True)
class GradingPlan:
    files: list[Path]
    instructions: str
    marking_scheme: str | None
    targets: list[Target]
    name: str
    priority: int = 5

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
    Returns the problems found, one per file."""
    batch = create_batch(
        session,
        name=plan.name,
        priority=plan.priority,
        settings={"cli_fingerprint": plan.fingerprint(), "max_retries": 3},
        created_by=CLI_CREATOR,
    )
    scheme = None
    if plan.marking_scheme:
        scheme = add_marking_scheme(session, job_name=plan.name, text=plan.marking_scheme)
    job = create_job(
        session,
        name=plan.name,
        prompt=plan.instructions,
        targets=plan.targets,
        batch=batch,
        marking_scheme=scheme,
    )
    add_documents(session, job=job, documents=documents)
    problems = [f"{d.original_filename}: {d.error}" for d in documents if not d.readable]
    queued = queue_job(session, job=job)
    batch.status = "pending" if queued else "failed"
    if not queued:
        job.status = "failed"
    session.flush()
    return batch, job, problems


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
