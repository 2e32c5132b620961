"""Reading grades back: ours, and those an earlier release left in the database.

Ours are the `grade_results` rows of completed work items (`work_item_id` set); a failed
attempt's row (kept for its usage) has none and status "failed". Earlier releases
(legacy-schema.md) kept per-model grades in `grade_results` rows without a work item,
and a single-model job's grade only in `submissions.grade`. Both stay readable after the
upgrade: their text is shown as the feedback, with no score, since a legacy grade is
free text and guessing a number out of it would invent one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from grading_app.models import GradeResult, GradingJob, Submission, WorkItem, WorkItemState

# A legacy job that did not record its model (LM Studio serves whatever is loaded).
UNRECORDED_MODEL = "(model not recorded)"


@dataclass(frozen=True)
class Grade:
    """One model's grade of one document."""

    submission_id: str
    provider: str
    model: str
    score: float | None
    max_score: float | None
    criteria: list[dict[str, Any]] | None
    feedback: str | None
    legacy: bool  # made by an earlier release: text only

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.model}"


def shown_results() -> sa.ColumnElement[bool]:
    """Ours that completed, and every legacy row that was not a failure."""
    return sa.or_(
        GradeResult.work_item_id.is_not(None),
        sa.and_(
            GradeResult.status.is_distinct_from("failed"),
            sa.func.coalesce(GradeResult.grade, "") != "",
        ),
    )


def legacy_graded_models(session: Session, submission_ids: Collection[str]) -> dict[str, set[str]]:
    """The models an earlier release's `grade_results` rows show as having graded each of
    these submissions (by model name: a legacy comparison named its models without their
    provider)."""
    graded: dict[str, set[str]] = {}
    if not submission_ids:
        return graded
    rows = session.execute(
        sa.select(
            GradeResult.submission_id, GradeResult.model, GradeResult.work_item_id.is_(None)
        ).where(GradeResult.submission_id.in_(submission_ids), shown_results())
    )
    for submission_id, model, legacy in rows:
        if legacy:  # tested here, not in SQL: see `failed_models`
            graded.setdefault(submission_id, set()).add(model)
    return graded


def shown_results_of_submission() -> sa.ColumnElement[bool]:
    """Joins the shown `grade_results` rows (see `shown_results`) to their Submission."""
    return sa.and_(GradeResult.submission_id == Submission.id, shown_results())


def legacy_single_grade(
    grade_text: str | None, *, job_provider: str, job_model: str | None
) -> tuple[str, str] | None:
    """The (provider, model) of a document's own grade text (`submissions.grade`), when
    it has one; shown only for a document without a result row to show, as in
    `grades_subquery`."""
    if not grade_text:
        return None
    return job_provider, UNRECORDED_MODEL if job_model is None else job_model


def shown_grade_model() -> tuple[sa.ColumnElement[str], sa.ColumnElement[str]]:
    """The provider and model of a document's shown grade, in a query of Submission
    joined to its GradingJob and left-joined to GradeResult on
    `shown_results_of_submission`: the result's, or for a document without one, its
    legacy single grade's (`legacy_single_grade`)."""
    no_result = GradeResult.id.is_(None)
    return (
        sa.case((no_result, GradingJob.provider), else_=GradeResult.provider),
        sa.case(
            (no_result, sa.func.coalesce(GradingJob.model, UNRECORDED_MODEL)),
            else_=GradeResult.model,
        ),
    )


def has_shown_grade() -> sa.ColumnElement[bool]:
    """In the same query: the row is a shown result, or a legacy single grade."""
    return sa.or_(GradeResult.id.is_not(None), sa.func.coalesce(Submission.grade, "") != "")


def grades_subquery(*where: sa.ColumnElement[bool], usage: bool = False) -> sa.Subquery:
    """Every shown grade of the submissions `where` selects (conditions on Submission),
    with the columns of `Grade` and `created_at`: result rows, and the legacy
    single-model grades of submissions that have no result row to show. With `usage`,
    also prompt_tokens, completion_tokens, latency_ms, cached_tokens and
    cache_write_tokens (NULL for legacy grades)."""
    usage_columns = (
        ("prompt_tokens", "completion_tokens", "latency_ms", "cached_tokens", "cache_write_tokens")
        if usage
        else ()
    )
    results = (
        sa.select(
            GradeResult.submission_id,
            GradeResult.provider,
            GradeResult.model,
            GradeResult.score,
            GradeResult.max_score,
            GradeResult.criteria,
            sa.func.coalesce(GradeResult.feedback, GradeResult.grade).label("feedback"),
            GradeResult.work_item_id.is_(None).label("legacy"),
            GradeResult.created_at,
            *(getattr(GradeResult, name) for name in usage_columns),
        )
        .join(Submission, Submission.id == GradeResult.submission_id)
        .where(shown_results(), *where)
    )
    has_result = (
        sa.select(GradeResult.id)
        .where(GradeResult.submission_id == Submission.id, shown_results())
        .exists()
    )
    legacy_single = (
        sa.select(
            Submission.id.label("submission_id"),
            GradingJob.provider,
            sa.func.coalesce(GradingJob.model, UNRECORDED_MODEL).label("model"),
            sa.cast(sa.null(), GradeResult.score.type).label("score"),
            sa.cast(sa.null(), GradeResult.max_score.type).label("max_score"),
            sa.cast(sa.null(), GradeResult.criteria.type).label("criteria"),
            Submission.grade.label("feedback"),
            sa.true().label("legacy"),
            Submission.updated_at.label("created_at"),
            *(
                sa.cast(sa.null(), sa.Integer).label(name)  # not recorded by earlier releases
                for name in usage_columns
            ),
        )
        .join(GradingJob, GradingJob.id == Submission.job_id)
        .where(sa.func.coalesce(Submission.grade, "") != "", ~has_result, *where)
    )
    return sa.union_all(results, legacy_single).subquery("grades")


def grade_of(row: Any) -> Grade:
    return Grade(
        submission_id=row.submission_id,
        provider=row.provider,
        model=row.model,
        score=row.score,
        max_score=row.max_score,
        criteria=row.criteria if isinstance(row.criteria, list) else None,
        feedback=row.feedback,
        legacy=bool(row.legacy),
    )


@dataclass(frozen=True)
class FailedModel:
    """A model that failed to grade a document, and why."""

    submission_id: str
    provider: str
    model: str
    error: str | None


def failed_models(
    session: Session, submission_ids: Collection[str]
) -> dict[str, list[FailedModel]]:
    """The models that failed each of these submissions: our failed work items, and for
    documents an earlier release graded (no work items) its failed per-model results
    whose model has no other result that did not fail."""
    failed: dict[str, list[FailedModel]] = {}
    if not submission_ids:
        return failed
    # Every item and result of these documents (a few per document) is read, and which
    # failed is tested here: given `state = 'failed'` or `work_item_id IS NULL`, SQLite,
    # which has no statistics on the data, reads through the index of that column (every
    # failed item, every legacy result of the database) rather than by document.
    ours = sa.select(
        WorkItem.submission_id,
        WorkItem.provider,
        WorkItem.model,
        WorkItem.last_error.label("error"),
        (WorkItem.state == WorkItemState.FAILED).label("failed"),
    ).where(WorkItem.submission_id.in_(submission_ids))
    other = aliased(GradeResult)
    legacy = sa.select(
        GradeResult.submission_id,
        GradeResult.provider,
        GradeResult.model,
        GradeResult.error_message.label("error"),
        GradeResult.work_item_id.is_(None).label("failed"),
    ).where(
        GradeResult.submission_id.in_(submission_ids),
        GradeResult.status == "failed",
        ~sa.exists().where(WorkItem.submission_id == GradeResult.submission_id),
        ~sa.exists().where(
            other.submission_id == GradeResult.submission_id,
            other.model == GradeResult.model,
            sa.func.coalesce(other.status, "") != "failed",
        ),
    )
    both = sa.union_all(ours, legacy).subquery()
    seen: set[tuple[str, str, str]] = set()
    for row in session.execute(
        sa.select(both).order_by(both.c.submission_id, both.c.provider, both.c.model)
    ):
        key = (row.submission_id, row.provider, row.model)
        if row.failed and key not in seen:  # a legacy failure may be kept twice
            seen.add(key)
            failed.setdefault(row.submission_id, []).append(FailedModel(*row[:4]))
    return failed
