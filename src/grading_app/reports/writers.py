"""The text exports of a batch or job: the gradebook as CSV, everything as JSON (XLSX
and ZIP have their own modules). Each is a generator of chunks that reads its rows in
chunks, so memory stays flat whatever the size.

Text a spreadsheet would run as a formula (starting with =, +, -, @, tab or CR) is
neutralised in CSV and XLSX by a leading apostrophe: file names and model feedback are
other people's text (https://owasp.org/www-community/attacks/CSV_Injection).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.jobs.schemas import JobOut
from grading_app.models import GradeResult, GradingJob, JobBatch, Submission, utcnow
from grading_app.reports.documents import Document, documents
from grading_app.reports.gradebook import Cell, gradebook_rows, student_id
from grading_app.reports.scope import Scope

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 200


def safe_text(text: str) -> str:
    """Text a spreadsheet shows as text, never runs."""
    return "'" + text if text.startswith(FORMULA_START) else text


# --- CSV --------------------------------------------------------------------------------


def csv_chunks(
    rows: Iterable[list[Cell]], *, rows_per_chunk: int = ROWS_PER_CHUNK
) -> Iterator[str]:
    """Rows as CSV text, a few hundred rows per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for index, row in enumerate(rows, start=1):
        # csv writes None as empty, a float by repr and an int by str: only text needs
        # a look.
        writer.writerow(
            [
                ("'" + cell if cell.startswith(FORMULA_START) else cell)  # safe_text, inline
                if isinstance(cell, str)
                else cell
                for cell in row
            ]
        )
        if index % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def write_csv(
    session: Session, scope: Scope, *, out: TextIO, id_pattern: re.Pattern[str] | None = None
) -> int:
    """Write the gradebook to `out`; returns the number of document rows."""
    count = -1  # the header is not a document
    rows = gradebook_rows(session, scope, id_pattern=id_pattern)

    def counted() -> Iterator[list[Cell]]:
        nonlocal count
        for row in rows:
            count += 1
            yield row

    for chunk in csv_chunks(counted()):
        out.write(chunk)
    return count


# --- JSON -------------------------------------------------------------------------------


def json_chunks(
    session: Session, scope: Scope, *, id_pattern: re.Pattern[str] | None = None
) -> Iterator[str]:
    """Everything as one JSON object, written as it is read: the batch (for a batch
    export), the cost stored with its answers, its jobs with their settings and
    progress, and each job's documents with every grade, per-criterion scores, tokens,
    cost and latency."""
    batch = session.get(JobBatch, scope.id) if scope.kind == "batch" else None
    head = {
        "exported_at": _utc(utcnow()),
        "scope": scope.kind,
        "batch": _batch_json(batch) if batch is not None else None,
        "cost_usd": _stored_cost(session, scope),
    }
    yield _dumps(head)[:-1] + ', "jobs": ['
    job_ids = session.scalars(
        sa.select(GradingJob.id).where(scope.jobs()).order_by(GradingJob.created_at, GradingJob.id)
    ).all()
    for index, job_id in enumerate(job_ids):
        job = session.get(GradingJob, job_id)
        assert job is not None
        described = {
            **JobOut.of(job).model_dump(mode="json"),
            "description": job.description,
            "prompt": job.prompt,
            "temperature": job.temperature,
            "max_tokens": job.max_tokens,
        }
        yield ("," if index else "") + _dumps(described)[:-1] + ', "documents": ['
        job_scope = Scope(
            kind="job",
            id=job.id,
            name=job.job_name,
            status=job.status,
            deadline=scope.deadline,
            started_at=job.started_at,
            completed_at=job.completed_at,
        )
        session.expunge(job)  # a long export holds no more than one job at a time
        buffer: list[str] = []
        for count, document in enumerate(documents(session, job_scope, details=True)):
            buffer.append(("," if count else "") + _dumps(_document_json(document, id_pattern)))
            if len(buffer) >= ROWS_PER_CHUNK:
                yield "".join(buffer)
                buffer.clear()
        yield "".join(buffer) + "]}"
    yield "]}\n"


def _document_json(document: Document, pattern: re.Pattern[str] | None) -> dict[str, Any]:
    return {
        "id": document.id,
        "student_id": student_id(document.original_filename, pattern),
        "original_filename": document.original_filename,
        "file_type": document.file_type,
        "file_size": document.file_size,
        "status": document.status,
        "error": document.error,
        "created_at": _utc(document.created_at),
        "grades": [
            {
                "provider": grade.provider,
                "model": grade.model,
                "score": grade.score,
                "max_score": grade.max_score,
                "percent": grade.percent,
                "criteria": grade.criteria,
                "feedback": grade.feedback,
                "legacy": grade.legacy,
                "prompt_tokens": grade.prompt_tokens,
                "completion_tokens": grade.completion_tokens,
                "latency_ms": grade.latency_ms,
                "cached_tokens": grade.cached_tokens,
                "cost_usd": grade.cost_usd,
                "graded_at": _utc(grade.graded_at),
                "evidence": grade.evidence or [],
            }
            for grade in document.grades.values()
        ],
        **_review_json(document),
    }


def _review_json(document: Document) -> dict[str, Any]:
    """The grade that counts (a reviewer's wins), the review, and why it needs a look."""
    final_score, final_max = document.final_grade()
    review = document.review
    return {
        "final_score": final_score,
        "final_max_score": final_max,
        "review": {
            "state": document.review_state,
            "score": review.score if review else None,
            "max_score": review.max_score if review else None,
            "comment": review.comment if review else None,
            "needs_review": document.needs_review,
            "doubt": review.doubt if review else None,
            "reasons": (review.reasons or []) if review else [],
            "findings": (review.findings or []) if review else [],
        },
    }


def _batch_json(batch: JobBatch) -> dict[str, Any]:
    columns = (
        "id",
        "batch_name",
        "description",
        "status",
        "priority",
        "tags",
        "models_to_compare",
        "batch_settings",
        "template_id",
        "total_jobs",
        "completed_jobs",
        "failed_jobs",
        "total_items",
        "completed_items",
        "failed_items",
        "spent_usd",
    )
    described: dict[str, Any] = {name: getattr(batch, name) for name in columns}
    for name in ("created_at", "deadline", "started_at", "completed_at", "estimated_completion"):
        described[name] = _utc(getattr(batch, name))
    return described


def _stored_cost(session: Session, scope: Scope) -> float:
    """The costs stored with every answer of the scope (a failed grading's too: it was
    paid for); answers without a stored cost count nothing here (analytics estimates
    them)."""
    total = session.scalar(
        sa.select(sa.func.sum(GradeResult.cost_usd))
        .join(Submission, Submission.id == GradeResult.submission_id)
        .where(scope.submissions())
    )
    return float(total or 0.0)


def _utc(value: datetime | None) -> str | None:
    """Stored naive UTC, written as the API writes it (with Z)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _dumps(value: Any) -> str:
    # Legacy JSON columns may hold anything JSON can: written as it is.
    return json.dumps(value, ensure_ascii=False, default=str)
