"""Grade files from the command line: gather documents, make (or find) their batch.

A batch made by `grading-app grade` remembers a fingerprint of what was asked (files,
prompt, marking scheme, models), so running the same command again resumes that batch
instead of starting over.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.documents.extract import extract_file
from grading_app.documents.storage import store_upload
from grading_app.documents.validate import SUPPORTED_TYPES, DocumentError
from grading_app.errors import BadRequest
from grading_app.jobs.service import (
    Target,
    add_submission,
    create_batch,
    create_job,
    queue_job,
)
from grading_app.models import BatchTemplate, GradingJob, JobBatch, MarkingScheme, WorkItem

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


def template_instructions(session: Session, *, name: str) -> tuple[str, str | None]:
    """A template's prompt and its criteria as a marking scheme."""
    template = session.execute(
        sa.select(BatchTemplate).where(sa.func.lower(BatchTemplate.name) == name.lower())
    ).scalar_one_or_none()
    if template is None:
        names = session.execute(sa.select(BatchTemplate.name).order_by(BatchTemplate.name))
        raise BadRequest(
            f"No template named '{name}'. Templates: {', '.join(names.scalars()) or 'none'}"
        )
    structure = template.job_structure if isinstance(template.job_structure, dict) else {}
    prompt = structure.get("prompt") or template.description or ""
    criteria = structure.get("criteria") or []
    scheme = None
    if criteria:
        scheme = "\n".join(f"- {c.get('name')}: up to {c.get('max_score')} marks" for c in criteria)
    return prompt, scheme


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


def create_batch_from_files(
    session: Session, *, plan: GradingPlan, upload_dir: Path, max_bytes: int
) -> tuple[JobBatch, GradingJob, list[str]]:
    """The batch, its job and submissions (unreadable files kept as failed submissions
    with the reason), and its queued items. Returns the problems found, one per file."""
    batch = create_batch(
        session,
        name=plan.name,
        priority=plan.priority,
        settings={"cli_fingerprint": plan.fingerprint(), "max_retries": 3},
        created_by=CLI_CREATOR,
    )
    scheme = None
    if plan.marking_scheme:
        scheme = MarkingScheme(
            name=f"{plan.name} marking scheme",
            filename="",
            original_filename="",
            content=plan.marking_scheme,
        )
        session.add(scheme)
        session.flush()
    job = create_job(
        session,
        name=plan.name,
        prompt=plan.instructions,
        targets=plan.targets,
        batch=batch,
        marking_scheme=scheme,
    )
    problems = []
    for path in plan.files:
        try:
            document = extract_file(path, max_bytes=max_bytes)
            stored = store_upload(
                path.read_bytes(), upload_dir=upload_dir, file_type=document.file_type
            )
        except DocumentError as exc:
            problems.append(f"{path.name}: {exc.message}")
            add_submission(
                session,
                job=job,
                original_filename=path.name,
                stored_filename="",
                file_type=path.suffix.lstrip(".").lower()[:10] or None,
                file_size=path.stat().st_size if path.exists() else None,
                extracted_text=None,
                error=exc.message,
            )
            continue
        add_submission(
            session,
            job=job,
            original_filename=path.name,
            stored_filename=stored.filename,
            file_type=document.file_type,
            file_size=stored.size_bytes,
            extracted_text=document.text,
        )
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
