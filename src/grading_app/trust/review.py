"""A person's review of a document's grades, the review queue, and releasing a batch's
grades. A reviewer accepts the models' grade or overrides it (overall score, any
criterion, a comment); the override wins everywhere grades are read, and the AI grades
stay beside it. Every review and release is in the audit trail."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.accounts import audit
from grading_app.accounts.principal import Principal
from grading_app.deps import Page
from grading_app.errors import BadRequest, Conflict, NotFound
from grading_app.grading.rubric import name_key
from grading_app.models import (
    OPEN_BATCH,
    DocumentReview,
    GradeResult,
    GradingJob,
    JobBatch,
    ReviewState,
    Submission,
    SubmissionStatus,
    utcnow,
)
from grading_app.trust.doubt import save_assessment
from grading_app.trust.schemas import (
    ModelVsHumanOut,
    QueueItemOut,
    ReasonOut,
    ReleaseIn,
    ReleaseOut,
    ReviewFiguresOut,
    ReviewIn,
    ReviewOut,
)


def completed_grades(session: Session, submission_ids: list[str]) -> dict[str, list[GradeResult]]:
    rows = session.scalars(
        sa.select(GradeResult)
        .where(GradeResult.submission_id.in_(submission_ids), GradeResult.status == "completed")
        .order_by(GradeResult.created_at, GradeResult.id)
    ).all()
    grouped: dict[str, list[GradeResult]] = defaultdict(list)
    for row in rows:
        grouped[row.submission_id].append(row)
    return grouped


def review_document(
    session: Session, principal: Principal, submission_id: str, body: ReviewIn
) -> ReviewOut:
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise NotFound(f"No document with id {submission_id}")
    grades = [g for g in completed_grades(session, [submission_id]).get(submission_id, [])]
    scored = [g for g in grades if g.score is not None and g.max_score]
    if not scored:
        raise Conflict(
            f"This document has no grade to review yet (it is {submission.status}); "
            "review it once a model has graded it"
        )
    maximum = float(scored[0].max_score or 0)
    if body.action == "accept":
        if body.score is not None or body.criteria:
            raise BadRequest(
                "Accepting keeps the models' grade: send score and criteria only to override"
            )
        percents = [100 * (g.score or 0) / (g.max_score or 1) for g in scored]
        score = round(sum(percents) / len(percents) * maximum / 100, 2)
        criteria = None
    else:
        if body.score is None:
            raise BadRequest("score is required to override the grade")
        if body.score > maximum:
            raise BadRequest(f"score {body.score:g} is above the grade's maximum {maximum:g}")
        score = body.score
        criteria = _checked_criteria(body.criteria or {}, scored)
    previous = session.get(DocumentReview, submission_id)
    job = session.get(GradingJob, submission.job_id)
    if previous is None:
        save_assessment(
            session,
            submission_id=submission_id,
            job_id=submission.job_id,
            batch_id=job.batch_id if job else None,
        )
        previous = session.get(DocumentReview, submission_id)
    assert previous is not None
    before = previous.state
    previous.state = ReviewState.ACCEPTED if body.action == "accept" else ReviewState.OVERRIDDEN
    previous.score = score
    previous.max_score = maximum
    previous.criteria = criteria
    previous.comment = body.comment
    previous.reviewed_by = principal.user_id
    previous.reviewed_at = utcnow()
    audit.record(
        session,
        principal,
        f"review_{body.action}",
        "document",
        submission_id,
        score=score,
        max_score=maximum,
        criteria=criteria,
        previous_state=before,
    )
    session.flush()
    return review_view(session, submission_id)


def _checked_criteria(
    given: dict[str, float], grades: list[GradeResult]
) -> dict[str, float] | None:
    """The override's criterion scores, named as the grade names them and within their
    maxima; an unknown name or a score above its maximum is refused, naming it."""
    if not given:
        return None
    known: dict[str, tuple[str, float]] = {}
    for grade in grades:
        for criterion in grade.criteria if isinstance(grade.criteria, list) else []:
            if isinstance(criterion, dict) and isinstance(criterion.get("name"), str):
                known.setdefault(
                    name_key(criterion["name"]),
                    (criterion["name"], float(criterion.get("max_score") or 0)),
                )
    checked: dict[str, float] = {}
    for name, score in given.items():
        match = known.get(name_key(name))
        if match is None:
            names = ", ".join(sorted(n for n, _ in known.values())) or "none"
            raise BadRequest(f"The grade has no criterion '{name}' (it has: {names})")
        canonical, maximum = match
        if maximum and score > maximum:
            raise BadRequest(
                f"criterion '{canonical}' scores {score:g} above its maximum {maximum:g}"
            )
        checked[canonical] = score
    return checked


def review_view(session: Session, submission_id: str) -> ReviewOut:
    review = session.get(DocumentReview, submission_id)
    if review is None:
        return ReviewOut(submission_id=submission_id, state="unreviewed")
    return ReviewOut(
        submission_id=submission_id,
        state=review.state,  # type: ignore[arg-type]
        score=review.score,
        max_score=review.max_score,
        criteria=review.criteria if isinstance(review.criteria, dict) else None,
        comment=review.comment,
        reviewed_by=_username(session, review.reviewed_by),
        reviewed_at=review.reviewed_at,
        doubt=review.doubt,
        reasons=[ReasonOut(**r) for r in review.reasons or [] if isinstance(r, dict)],
        findings=[f for f in review.findings or [] if isinstance(f, dict)],
    )


def _username(session: Session, user_id: str | None) -> str | None:
    if user_id is None:
        return None
    from grading_app.models import User

    user = session.get(User, user_id)
    return user.username if user is not None else None


def review_queue(session: Session, *, batch_id: str, limit: int, offset: int) -> Page[QueueItemOut]:
    """The batch's unreviewed documents that need a look, most doubtful first."""
    where = (
        DocumentReview.batch_id == batch_id,
        DocumentReview.state == ReviewState.UNREVIEWED,
        DocumentReview.doubt.is_not(None),
    )
    total = (
        session.scalar(sa.select(sa.func.count()).select_from(DocumentReview).where(*where)) or 0
    )
    rows = session.execute(
        sa.select(DocumentReview, Submission.original_filename)
        .join(Submission, Submission.id == DocumentReview.submission_id)
        .where(*where)
        .order_by(DocumentReview.doubt.desc(), DocumentReview.submission_id)
        .limit(limit)
        .offset(offset)
    ).all()
    grades = completed_grades(session, [review.submission_id for review, _ in rows])
    items = [
        QueueItemOut(
            submission_id=review.submission_id,
            job_id=review.job_id,
            original_filename=filename,
            doubt=review.doubt or 0,
            reasons=[ReasonOut(**r) for r in review.reasons or [] if isinstance(r, dict)],
            scores={
                f"{g.provider}:{g.model}": (
                    round(100 * g.score / g.max_score, 1)
                    if g.score is not None and g.max_score
                    else None
                )
                for g in grades.get(review.submission_id, [])
            },
        )
        for review, filename in rows
    ]
    return Page[QueueItemOut](total=total, limit=limit, offset=offset, items=items)


def waiting_per_batch(
    session: Session, *, visible: sa.ColumnElement[bool] | None, limit: int = 50
) -> list[tuple[str, str, int]]:
    """(batch id, name, documents waiting) of the batches `visible` selects that have
    documents in their review queue, most waiting first (one grouped count on the
    document_reviews(batch_id, state, doubt) index)."""
    statement = (
        sa.select(JobBatch.id, JobBatch.batch_name, sa.func.count())
        .select_from(DocumentReview)
        .join(JobBatch, JobBatch.id == DocumentReview.batch_id)
        .where(DocumentReview.state == ReviewState.UNREVIEWED, DocumentReview.doubt.is_not(None))
        .group_by(JobBatch.id, JobBatch.batch_name)
        .order_by(sa.func.count().desc(), JobBatch.batch_name)
        .limit(limit)
    )
    if visible is not None:
        statement = statement.where(visible)
    return [(row[0], row[1], row[2]) for row in session.execute(statement)]


def release_grades(
    session: Session, principal: Principal, batch_id: str, body: ReleaseIn
) -> ReleaseOut:
    batch = session.get(JobBatch, batch_id)
    if batch is None:
        raise NotFound(f"No batch with id {batch_id}")
    if batch.status in OPEN_BATCH:
        raise Conflict(
            f"The batch is {batch.status}: its grades can be released once it has finished"
        )
    graded, reviewed = graded_and_reviewed(session, batch_id)
    unreviewed = graded - reviewed
    if unreviewed and not body.release_unreviewed:
        raise Conflict(
            f"{unreviewed} of {graded} graded documents are not reviewed: review them, or "
            "release with release_unreviewed=true to release them as the models graded them"
        )
    now = utcnow()
    batch.grades_released_at = now
    batch.grades_released_by = principal.user_id
    batch.grades_released_unreviewed = unreviewed
    audit.record(
        session,
        principal,
        "release_grades",
        "batch",
        batch_id,
        documents=graded,
        unreviewed=unreviewed,
    )
    session.flush()
    return ReleaseOut(
        batch_id=batch_id,
        released_at=now,
        released_by=principal.username,
        documents=graded,
        reviewed=reviewed,
        released_unreviewed=unreviewed,
    )


_WAITING = (DocumentReview.state == ReviewState.UNREVIEWED, DocumentReview.doubt.is_not(None))


def review_figures(session: Session, *, kind: str, scope_id: str) -> ReviewFiguresOut:
    """A batch's or job's reviews: how many wait, are accepted or overridden, and each
    model's agreement with the reviewers' grades (overall and per overridden
    criterion). Read fresh each time: a review moves no analytics change stamp."""
    in_scope = (
        DocumentReview.batch_id == scope_id
        if kind == "batch"
        else (DocumentReview.job_id == scope_id)
    )
    states = dict(
        session.execute(
            sa.select(DocumentReview.state, sa.func.count())
            .where(
                in_scope,
                sa.or_(
                    DocumentReview.state != ReviewState.UNREVIEWED,
                    DocumentReview.doubt.is_not(None),
                ),
            )
            .group_by(DocumentReview.state)
        ).all()
    )
    reviewed = (
        session.execute(
            sa.select(DocumentReview).where(
                in_scope,
                DocumentReview.state != ReviewState.UNREVIEWED,
                DocumentReview.score.is_not(None),
                DocumentReview.max_score > 0,
            )
        )
        .scalars()
        .all()
    )
    grades = completed_grades(session, [r.submission_id for r in reviewed])
    differences: dict[str, list[float]] = defaultdict(list)
    by_criterion: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for review in reviewed:
        human = 100 * (review.score or 0) / (review.max_score or 1)
        for grade in grades.get(review.submission_id, []):
            if grade.score is None or not grade.max_score:
                continue
            label = f"{grade.provider}:{grade.model}"
            differences[label].append(abs(100 * grade.score / grade.max_score - human))
            if not isinstance(review.criteria, dict):
                continue
            for criterion in grade.criteria if isinstance(grade.criteria, list) else []:
                if not isinstance(criterion, dict):
                    continue
                name, maximum = criterion.get("name"), criterion.get("max_score")
                if name in review.criteria and maximum and criterion.get("score") is not None:
                    gap = abs(float(criterion["score"]) - float(review.criteria[name]))
                    by_criterion[label][name].append(100 * gap / float(maximum))
    released_at = None
    if kind == "batch":
        batch = session.get(JobBatch, scope_id)
        released_at = batch.grades_released_at if batch is not None else None
    return ReviewFiguresOut(
        waiting=session.scalar(
            sa.select(sa.func.count())
            .select_from(DocumentReview)
            .where(
                in_scope,
                DocumentReview.state == ReviewState.UNREVIEWED,
                DocumentReview.doubt.is_not(None),
            )
        )
        or 0,
        accepted=states.get(ReviewState.ACCEPTED, 0),
        overridden=states.get(ReviewState.OVERRIDDEN, 0),
        released_at=released_at,
        model_vs_human=[
            ModelVsHumanOut(
                label=label,
                documents=len(gaps),
                mean_absolute_difference=round(sum(gaps) / len(gaps), 2),
                share_within_5_points=round(sum(g <= 5 for g in gaps) / len(gaps), 4),
                share_within_10_points=round(sum(g <= 10 for g in gaps) / len(gaps), 4),
                criteria={
                    name: round(sum(values) / len(values), 2)
                    for name, values in sorted(by_criterion[label].items())
                },
            )
            for label, gaps in sorted(differences.items())
        ],
    )


def graded_and_reviewed(session: Session, batch_id: str) -> tuple[int, int]:
    """How many of the batch's documents are graded, and how many of those reviewed."""
    graded = (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Submission)
            .join(GradingJob, GradingJob.id == Submission.job_id)
            .where(GradingJob.batch_id == batch_id, Submission.status == SubmissionStatus.COMPLETED)
        )
        or 0
    )
    reviewed = (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(DocumentReview)
            .join(Submission, Submission.id == DocumentReview.submission_id)
            .where(
                DocumentReview.batch_id == batch_id,
                DocumentReview.state != ReviewState.UNREVIEWED,
                Submission.status == SubmissionStatus.COMPLETED,
            )
        )
        or 0
    )
    return graded, reviewed


@dataclass(frozen=True)
class ReleaseState:
    """Where a batch stands on release, as its page shows it."""

    released_at: datetime | None
    released_by: str | None
    released_unreviewed: int | None
    graded: int
    unreviewed: int
    waiting: int  # documents in the review queue


def release_state(session: Session, batch: JobBatch) -> ReleaseState:
    graded, reviewed = graded_and_reviewed(session, batch.id)
    waiting = waiting_per_batch(session, visible=JobBatch.id == batch.id)
    return ReleaseState(
        released_at=batch.grades_released_at,
        released_by=_username(session, batch.grades_released_by),
        released_unreviewed=batch.grades_released_unreviewed,
        graded=graded,
        unreviewed=graded - reviewed,
        waiting=waiting[0][2] if waiting else 0,
    )
