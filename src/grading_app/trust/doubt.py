"""Why a graded document needs a person's look, and how much: the review queue's
reasons and order.

A document is doubtful when its models disagree beyond the batch's threshold, when an
answer needed its repair attempt, when a quote given as evidence is not in the text,
when the hidden-instruction scan found something, or when a score sits within a margin
of a grade boundary. Each reason carries a weight; their sum orders the queue (a
finding first, then large disagreements, then the rest).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from grading_app.models import DocumentReview, GradeResult, GradingJob, JobBatch, Submission, utcnow
from grading_app.trust.settings import TrustSettings, trust_settings

FINDING_WEIGHT = 5.0
REPAIR_WEIGHT = 1.0
UNVERIFIED_WEIGHT = 1.5
BOUNDARY_WEIGHT = 0.5


@dataclass(frozen=True)
class Reason:
    code: str  # disagreement | repaired | unverified_evidence | hidden_instructions | boundary
    detail: str
    weight: float


@dataclass(frozen=True)
class GradeFacts:
    """What the checks read of one model's completed grade."""

    label: str
    percent: float | None
    repaired: bool
    unverified_quotes: int


def reasons_for(
    grades: list[GradeFacts], findings: list[dict[str, Any]], settings: TrustSettings
) -> list[Reason]:
    reasons: list[Reason] = []
    if findings:
        kinds = sorted({str(f.get("kind", "finding")) for f in findings})
        reasons.append(
            Reason(
                "hidden_instructions",
                f"{len(findings)} hidden-instruction finding(s): {', '.join(kinds)}",
                FINDING_WEIGHT,
            )
        )
    scored = [g for g in grades if g.percent is not None]
    if len(scored) >= 2:
        high = max(scored, key=lambda g: g.percent or 0)
        low = min(scored, key=lambda g: g.percent or 0)
        spread = (high.percent or 0) - (low.percent or 0)
        if spread > settings.disagreement_threshold:
            reasons.append(
                Reason(
                    "disagreement",
                    f"models disagree by {spread:.1f} points of 100 ({high.label} "
                    f"{high.percent:.1f}, {low.label} {low.percent:.1f}; threshold "
                    f"{settings.disagreement_threshold:g})",
                    1.0 + spread / max(settings.disagreement_threshold, 1.0),
                )
            )
    for grade in grades:
        if grade.repaired:
            reasons.append(
                Reason(
                    "repaired",
                    f"{grade.label}'s first answer was unusable; its repair attempt was used",
                    REPAIR_WEIGHT,
                )
            )
        if grade.unverified_quotes:
            reasons.append(
                Reason(
                    "unverified_evidence",
                    f"{grade.unverified_quotes} quote(s) from {grade.label} not found in the "
                    "document",
                    UNVERIFIED_WEIGHT,
                )
            )
    for grade in scored:
        near = _near_boundary(grade.percent or 0, settings)
        if near is not None:
            reasons.append(
                Reason(
                    "boundary",
                    f"{grade.label} gives {grade.percent:.1f}, within "
                    f"{settings.boundary_margin:g} of the grade boundary {near:g}",
                    BOUNDARY_WEIGHT,
                )
            )
    return reasons


def _near_boundary(percent: float, settings: TrustSettings) -> float | None:
    for boundary in settings.grade_boundaries:
        if abs(percent - boundary) <= settings.boundary_margin:
            return boundary
    return None


def grade_facts(result: GradeResult) -> GradeFacts:
    metadata = result.grade_metadata if isinstance(result.grade_metadata, dict) else {}
    evidence = metadata.get("evidence")
    unverified = sum(
        1
        for check in (evidence if isinstance(evidence, list) else [])
        if isinstance(check, dict) and check.get("status") == "unverified"
    )
    percent = (
        100.0 * result.score / result.max_score
        if result.score is not None and result.max_score
        else None
    )
    return GradeFacts(
        label=f"{result.provider}:{result.model}",
        percent=percent,
        repaired=metadata.get("repaired") is True,
        unverified_quotes=unverified,
    )


def assess(session: Session, submission_id: str) -> None:
    """Record why the document needs a look (or that it does not), from its completed
    grades and the findings of its scan. Run when the document settles; the review
    itself, if any, is kept."""
    row = session.execute(
        sa.select(Submission.job_id, GradingJob.batch_id, JobBatch.batch_settings)
        .join(GradingJob, GradingJob.id == Submission.job_id)
        .outerjoin(JobBatch, JobBatch.id == GradingJob.batch_id)
        .where(Submission.id == submission_id)
    ).one_or_none()
    if row is None:
        return
    results = session.scalars(
        sa.select(GradeResult).where(
            GradeResult.submission_id == submission_id, GradeResult.status == "completed"
        )
    ).all()
    review = session.get(DocumentReview, submission_id)
    findings = review.findings if review is not None and isinstance(review.findings, list) else []
    reasons = reasons_for(
        [grade_facts(r) for r in results], findings, trust_settings(row.batch_settings)
    )
    if not reasons and review is None:
        return  # nothing to look at: most documents get no row at all
    save_assessment(
        session,
        submission_id=submission_id,
        job_id=row.job_id,
        batch_id=row.batch_id,
        reasons=[asdict(r) for r in reasons],
        doubt=round(sum(r.weight for r in reasons), 3) if reasons else None,
    )


def record_findings(
    session: Session,
    *,
    submission_id: str,
    job_id: str,
    batch_id: str | None,
    findings: list[dict[str, Any]],
    settings: TrustSettings,
) -> None:
    """The scan's findings of a new document, and the review reason they are: the
    document is in its batch's review queue from upload on (graded or held)."""
    reasons = reasons_for([], findings, settings)
    save_assessment(
        session,
        submission_id=submission_id,
        job_id=job_id,
        batch_id=batch_id,
        findings=findings,
        reasons=[asdict(r) for r in reasons],
        doubt=round(sum(r.weight for r in reasons), 3) if reasons else None,
    )


def save_assessment(
    session: Session,
    *,
    submission_id: str,
    job_id: str,
    batch_id: str | None,
    reasons: list[dict[str, Any]] | None = None,
    doubt: float | None = None,
    findings: list[dict[str, Any]] | None = None,
) -> None:
    """Insert or update the document's review row (one statement, safe against a
    concurrent writer of the same row)."""
    values: dict[str, Any] = {"updated_at": utcnow(), "reasons": reasons or None, "doubt": doubt}
    if findings is not None:
        values["findings"] = findings
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(DocumentReview)
    statement = insert.values(
        submission_id=submission_id, job_id=job_id, batch_id=batch_id, **values
    ).on_conflict_do_update(index_elements=["submission_id"], set_=values)
    session.execute(statement)
