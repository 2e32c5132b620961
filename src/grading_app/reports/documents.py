"""A batch's or job's documents with their grades, read in one streamed query, and the
models and criteria those grades show (the columns of a gradebook), read in one pass.

Both left-join the documents to their shown results (`jobs.grades`), so a document's
rows arrive together and a legacy single-model grade (a document without a result
row, with its own grade text) is seen in the same pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.jobs.grades import (
    has_shown_grade,
    legacy_single_grade,
    shown_grade_model,
    shown_results_of_submission,
)
from grading_app.models import DocumentReview, GradeResult, GradingJob, Submission
from grading_app.reports.aggregates import criteria_elements
from grading_app.reports.scope import Scope

# Rows read from the database at a time, whatever the size of the export.
CHUNK_ROWS = 1000


# Slotted, not frozen: an export makes one of each per document and grade, and a frozen
# dataclass pays for object.__setattr__ on every field.
@dataclass(slots=True)
class GradeDetail:
    """One model's grade of one document (as `jobs.grades.Grade`), with what it cost
    and when it was made."""

    submission_id: str
    provider: str
    model: str
    score: float | None
    max_score: float | None
    criteria: list[dict[str, Any]] | None
    feedback: str | None
    legacy: bool  # made by an earlier release: text only
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int | None
    graded_at: datetime | None
    # With `details`: each quote checked against the text (trust.evidence).
    evidence: list[dict[str, Any]] | None = None
    cached_tokens: int | None = None  # input read from the provider's prompt cache
    cost_usd: float | None = None  # as stored with the grade (None: no known price)

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.model}"

    @property
    def percent(self) -> float | None:
        if self.score is None or not self.max_score:
            return None
        return 100.0 * self.score / self.max_score


@dataclass(slots=True)
class Review:
    """A person's review of the document, and whether it waits for one."""

    state: str
    score: float | None
    max_score: float | None
    comment: str | None
    doubt: float | None
    # Why it needs a look; with `details`, the hidden-instruction findings too.
    reasons: list[dict[str, Any]] | None = None
    findings: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class Document:
    id: str
    original_filename: str
    file_type: str | None
    file_size: int | None
    status: str | None
    error: str | None
    created_at: datetime | None
    job_id: str
    job_name: str
    grades: dict[str, GradeDetail]  # by target label, oldest first
    review: Review | None = None

    def final_grade(self) -> tuple[float | None, float | None]:
        """The grade that counts: a reviewer's (accepted or overridden) wins; else the
        models' mean, on the first model's maximum."""
        review = self.review
        if review is not None and review.state != "unreviewed" and review.score is not None:
            return review.score, review.max_score
        scored = [g for g in self.grades.values() if g.percent is not None]
        if not scored:
            return None, None
        maximum = scored[0].max_score
        if len(scored) == 1:
            return scored[0].score, maximum
        mean = sum(g.percent or 0 for g in scored) / len(scored)
        return round(mean * (maximum or 0) / 100, 2), maximum

    @property
    def review_state(self) -> str:
        return self.review.state if self.review is not None else "unreviewed"

    @property
    def needs_review(self) -> bool:
        review = self.review
        return review is not None and review.state == "unreviewed" and review.doubt is not None


def documents(session: Session, scope: Scope, *, details: bool = False) -> Iterator[Document]:
    """The scope's documents, job by job (oldest first), by file name within a job, each
    with its grades (oldest first: a later grade by the same model is the one shown).
    With `details`, also each document's file type, size and creation time and each
    grade's usage and time; without, those are None (a gradebook shows none of them,
    and reading timestamps costs more than any other column on SQLite).

    One query, streamed CHUNK_ROWS rows at a time: the documents left-joined to their
    shown results, so a document's rows arrive together and nothing is held but the
    document at hand. (A query per chunk of documents for their grades cost more than
    the rows: on PostgreSQL each planned 1,000 parameters.) Core rows, unpacked: ORM
    row handling would cost more than the query."""

    def detail(column: Any) -> Any:
        return column if details else sa.null()

    statement = (
        sa.select(
            Submission.id,
            Submission.original_filename,
            detail(Submission.file_type),
            detail(Submission.file_size),
            Submission.status,
            Submission.error_message,
            detail(Submission.created_at),
            Submission.job_id,
            GradingJob.job_name,
            # For a legacy single-model grade: the document's own text, its job's model.
            Submission.grade,
            detail(Submission.updated_at),
            GradingJob.provider,
            GradingJob.model,
            GradeResult.id,
            GradeResult.provider,
            GradeResult.model,
            GradeResult.score,
            GradeResult.max_score,
            # As text, parsed here: psycopg's own JSON loading took longer than the rest
            # of the row (3 s at 200,000 grades).
            sa.cast(GradeResult.criteria, sa.Text),
            sa.func.coalesce(GradeResult.feedback, GradeResult.grade),
            GradeResult.work_item_id.is_(None),
            detail(GradeResult.created_at),
            detail(GradeResult.prompt_tokens),
            detail(GradeResult.completion_tokens),
            detail(GradeResult.latency_ms),
            DocumentReview.state,
            DocumentReview.score,
            DocumentReview.max_score,
            DocumentReview.comment,
            DocumentReview.doubt,
            # NULL for most documents (no review row): cheap enough for every export.
            sa.cast(DocumentReview.reasons, sa.Text),
            detail(sa.cast(DocumentReview.findings, sa.Text)),
            # Whole, as text: a legacy row may hold text that is not JSON, on which
            # SQLite's JSON functions would raise.
            detail(sa.cast(GradeResult.grade_metadata, sa.Text)),
            GradeResult.cached_tokens,
            GradeResult.cost_usd,
        )
        .join(GradingJob, GradingJob.id == Submission.job_id)
        .outerjoin(DocumentReview, DocumentReview.submission_id == Submission.id)
        .outerjoin(GradeResult, shown_results_of_submission())
        .where(scope.jobs())
        .order_by(
            GradingJob.created_at,
            GradingJob.id,
            Submission.original_filename,
            Submission.id,
            GradeResult.created_at,
            GradeResult.id,
        )
        .execution_options(yield_per=CHUNK_ROWS)
    )
    document: Document | None = None
    for chunk in session.connection().execute(statement).partitions():
        for (
            document_id,
            original_filename,
            file_type,
            file_size,
            status,
            error,
            created_at,
            job_id,
            job_name,
            own_grade,
            updated_at,
            job_provider,
            job_model,
            result_id,
            provider,
            model,
            score,
            max_score,
            criteria,
            feedback,
            legacy,
            graded_at,
            prompt_tokens,
            completion_tokens,
            latency_ms,
            review_state,
            review_score,
            review_max,
            review_comment,
            doubt,
            reasons,
            findings,
            evidence,
            cached_tokens,
            cost_usd,
        ) in chunk:
            if document is None or document.id != document_id:
                if document is not None:
                    yield document
                document = Document(
                    document_id,
                    original_filename,
                    file_type,
                    file_size,
                    status,
                    error,
                    created_at,
                    job_id,
                    job_name,
                    {},
                    None
                    if review_state is None
                    else Review(
                        review_state,
                        review_score,
                        review_max,
                        review_comment,
                        doubt,
                        _json_list(reasons),
                        _json_list(findings),
                    ),
                )
            if result_id is None:
                own = legacy_single_grade(own_grade, job_provider=job_provider, job_model=job_model)
                if own is not None:
                    grade = GradeDetail(
                        document_id, *own, None, None, None, own_grade, True,
                        None, None, None, updated_at,
                    )  # fmt: skip
                    document.grades[grade.label] = grade
                continue
            grade = GradeDetail(
                document_id,
                provider,
                model,
                score,
                max_score,
                _criteria_list(criteria),
                feedback,
                bool(legacy),
                prompt_tokens,
                completion_tokens,
                latency_ms,
                graded_at,
                _evidence(evidence),
                cached_tokens,
                cost_usd,
            )
            document.grades[grade.label] = grade
    if document is not None:
        yield document


def _json_list(text: str | None) -> list[dict[str, Any]] | None:
    return _criteria_list(text)


def _evidence(metadata_text: str | None) -> list[dict[str, Any]] | None:
    """The quote checks kept in a grade's metadata (text), if any."""
    if not metadata_text:
        return None
    try:
        metadata = orjson.loads(metadata_text)
    except orjson.JSONDecodeError:
        return None
    evidence = metadata.get("evidence") if isinstance(metadata, dict) else None
    return evidence if isinstance(evidence, list) else None


def _criteria_list(text: str | None) -> list[dict[str, Any]] | None:
    """The criteria of a grade, from the column's text; None unless a JSON array."""
    if text is None:
        return None
    try:
        # (orjson reads an integer beyond 64 bits as a float; the grades this release
        # writes hold none: their scores are floats.)
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:  # what orjson refuses and the json module reads (NaN, Infinity)
            value = json.loads(text)
        except ValueError:  # a legacy row's text that is not JSON
            return None
    return value if isinstance(value, list) else None


def graded_columns(session: Session, scope: Scope) -> list[tuple[str, str, str | None, Any]]:
    """Each (provider, model) that the scope's shown grades name, with each criterion
    name our grades of it give and the name's position in a grade (None, None for a
    grade without criteria, and for legacy grades, which are text). One pass, DISTINCT:
    the database keeps the few distinct rows."""
    elements, element, position = criteria_elements(
        session, only_if=GradeResult.work_item_id.is_not(None)
    )
    provider, model = shown_grade_model()
    rows = session.execute(
        sa.select(provider, model, element["name"].as_string(), position)
        .select_from(Submission)
        .join(GradingJob, GradingJob.id == Submission.job_id)
        .outerjoin(GradeResult, shown_results_of_submission())
        .outerjoin(elements, sa.true())
        .where(scope.jobs(), has_shown_grade())
        .distinct()
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]
