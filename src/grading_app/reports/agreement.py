"""Agreement between models over the documents they both graded: mean absolute
difference and share within 10 points per pair, Pearson correlation from sums, and the
spread (highest minus lowest) per document. All of it aggregated in SQL."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.models import DocumentReview, GradeResult, ReviewState, WorkItem
from grading_app.reports.aggregates import percent
from grading_app.reports.schemas import Agreement, PairAgreement
from grading_app.reports.scope import Scope

WITHIN_POINTS = 10.0
# Models compared pairwise in one report (their pairs grow as the square).
MAX_MODELS = 16


def graded_percents(scope: Scope) -> sa.Select[Any]:
    """Each completed grade of ours in the scope as a percentage (earlier releases'
    grades are text, without a score)."""
    return (
        sa.select(
            GradeResult.submission_id,
            GradeResult.provider,
            GradeResult.model,
            percent(GradeResult.score, GradeResult.max_score).label("value"),
        )
        .join(WorkItem, WorkItem.id == GradeResult.work_item_id)
        .where(scope.items(), GradeResult.score.is_not(None))
    )


def agreement(
    session: Session, scope: Scope, *, models: list[tuple[str, str]] | None = None
) -> Agreement:
    """How far models' grades of the same documents lie apart, across the scope.
    `models`: those with a graded percentage in the scope, when the caller knows them
    (else a pass over the grades finds them).

    One pass groups the grades by document into one column per model (a pivot), and one
    aggregate over that gives every pair's figures: no self-join, whose cost would grow
    with the square of a batch's documents where the database has no index to join on.
    """
    percents = graded_percents(scope).subquery("percents")
    if models is None:
        models = [
            (provider, model)
            for provider, model in session.execute(
                sa.select(percents.c.provider, percents.c.model)
                .where(percents.c.value.is_not(None))
                .distinct()
            )
        ]
    models = sorted(models)[:MAX_MODELS]
    if len(models) < 2:  # nothing to compare: each document has one grade of ours at most
        return Agreement(
            documents_compared=0,
            mean_spread_points=None,
            max_spread_points=None,
            mean_absolute_difference_points=None,
            mean_pairwise_correlation=None,
            share_within_10_points=None,
            pairs=[],
        )
    value = percents.c.value
    per_document = (
        sa.select(
            sa.func.count(value).label("graded"),
            (sa.func.max(value) - sa.func.min(value)).label("spread"),
            *(
                sa.func.max(
                    sa.case(
                        (sa.and_(percents.c.provider == provider, percents.c.model == model), value)
                    )
                ).label(f"m{index}")
                for index, (provider, model) in enumerate(models)
            ),
        )
        .where(value.is_not(None))
        .group_by(percents.c.submission_id)
        .subquery("per_document")
    )
    compared = per_document.c.graded >= 2
    figures: list[Any] = [
        sa.func.count().filter(compared),
        sa.func.avg(per_document.c.spread).filter(compared),
        sa.func.max(per_document.c.spread).filter(compared),
    ]
    pairs = list(combinations(range(len(models)), 2))
    for i, j in pairs:
        x, y = per_document.c[f"m{i}"], per_document.c[f"m{j}"]
        both = sa.and_(x.is_not(None), y.is_not(None))
        difference = sa.func.abs(x - y)
        figures += [
            sa.func.count().filter(both),
            sa.func.avg(difference),  # NULL unless both graded
            sa.func.count().filter(difference <= WITHIN_POINTS),
            *(sa.func.sum(term).filter(both) for term in (x, y, x * x, y * y, x * y)),
        ]
    row = session.execute(sa.select(*figures)).one()
    documents_compared, mean_spread, max_spread = row[:3]
    found = []
    for index, (i, j) in enumerate(pairs):
        n, mad, within, *sums = row[3 + 8 * index : 11 + 8 * index]
        if not n:
            continue
        found.append(
            PairAgreement(
                models=[":".join(models[i]), ":".join(models[j])],
                documents=n,
                mean_absolute_difference=_float(mad),
                correlation=_pearson(n, *sums),
                share_within_10_points=within / n,
            )
        )
    compared_pairs = sum(p.documents for p in found)
    correlations = [p.correlation for p in found if p.correlation is not None]

    def weighted(values: list[tuple[float | None, int]]) -> float | None:
        return sum((v or 0) * n for v, n in values) / compared_pairs if compared_pairs else None

    return Agreement(
        documents_compared=documents_compared,
        mean_spread_points=_float(mean_spread),
        max_spread_points=_float(max_spread),
        mean_absolute_difference_points=weighted(
            [(p.mean_absolute_difference, p.documents) for p in found]
        ),
        mean_pairwise_correlation=sum(correlations) / len(correlations) if correlations else None,
        share_within_10_points=weighted([(p.share_within_10_points, p.documents) for p in found]),
        pairs=found,
    )


def _pearson(n: int, *sums: Any) -> float | None:
    """Pearson r from the sums of x, y, x², y² and xy; None below 3 documents or when a
    model gave every document the same grade (no variance to correlate)."""
    if n < 3:
        return None
    sx, sy, sxx, syy, sxy = (float(v) for v in sums)
    covariance = n * sxy - sx * sy
    variance_x, variance_y = n * sxx - sx * sx, n * syy - sy * sy
    # Sums of squares of equal values cancel to rounding noise, not exactly 0.
    tolerance = 1e-9 * max(n * sxx, n * syy, 1.0)
    if variance_x <= tolerance or variance_y <= tolerance:
        return None
    return max(-1.0, min(1.0, covariance / math.sqrt(variance_x * variance_y)))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def final_percents(scope: Scope) -> sa.Select[Any]:
    """Each graded document's grade that counts, as a percentage: a reviewer's
    (accepted or overridden) where there is one, else the mean of its models' grades
    (rounded to a tenth, so the distribution counts few distinct values)."""
    grades = graded_percents(scope).subquery("grades")
    means = (
        sa.select(grades.c.submission_id, sa.func.avg(grades.c.value).label("mean"))
        .group_by(grades.c.submission_id)
        .subquery("means")
    )
    reviewed = sa.and_(
        DocumentReview.state != ReviewState.UNREVIEWED,
        DocumentReview.score.is_not(None),
        DocumentReview.max_score > 0,
    )
    value = sa.case(
        (reviewed, percent(DocumentReview.score, DocumentReview.max_score)), else_=means.c.mean
    )
    return (
        sa.select(
            sa.literal("final").label("key"),
            sa.func.round(sa.cast(value, sa.Numeric), 1).label("value"),
        )
        .select_from(means)
        .outerjoin(DocumentReview, DocumentReview.submission_id == means.c.submission_id)
    )
