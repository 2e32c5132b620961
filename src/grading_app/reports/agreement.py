"""Agreement between models over the documents they both graded: mean absolute
difference and share within 10 points per pair, Pearson correlation from sums, and the
spread (highest minus lowest) per document. All of it aggregated in SQL."""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.models import GradeResult, WorkItem
from grading_app.reports.aggregates import percent
from grading_app.reports.schemas import Agreement, PairAgreement
from grading_app.reports.scope import Scope

WITHIN_POINTS = 10.0


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


def agreement(session: Session, scope: Scope) -> Agreement:
    """How far models' grades of the same documents lie apart, across the scope."""
    percents = graded_percents(scope).cte("percents")
    spreads = (
        sa.select((sa.func.max(percents.c.value) - sa.func.min(percents.c.value)).label("spread"))
        .where(percents.c.value.is_not(None))
        .group_by(percents.c.submission_id)
        .having(sa.func.count() >= 2)
        .subquery("spreads")
    )
    compared, mean_spread, max_spread = session.execute(
        sa.select(sa.func.count(), sa.func.avg(spreads.c.spread), sa.func.max(spreads.c.spread))
    ).one()
    graded = percents.alias("a")
    other = percents.alias("b")
    x, y = graded.c.value, other.c.value
    difference = sa.func.abs(x - y)
    pairs = []
    for row in session.execute(
        sa.select(
            graded.c.provider,
            graded.c.model,
            other.c.provider.label("other_provider"),
            other.c.model.label("other_model"),
            sa.func.count().label("n"),
            sa.func.avg(difference).label("mad"),
            sa.func.count().filter(difference <= WITHIN_POINTS).label("within"),
            sa.func.sum(x).label("sx"),
            sa.func.sum(y).label("sy"),
            sa.func.sum(x * x).label("sxx"),
            sa.func.sum(y * y).label("syy"),
            sa.func.sum(x * y).label("sxy"),
        )
        .join(
            other,
            sa.and_(
                other.c.submission_id == graded.c.submission_id,
                sa.or_(
                    graded.c.provider < other.c.provider,
                    sa.and_(graded.c.provider == other.c.provider, graded.c.model < other.c.model),
                ),
            ),
        )
        .where(x.is_not(None), y.is_not(None))
        .group_by(graded.c.provider, graded.c.model, other.c.provider, other.c.model)
        .order_by(graded.c.provider, graded.c.model, other.c.provider, other.c.model)
    ):
        pairs.append(
            PairAgreement(
                models=[f"{row.provider}:{row.model}", f"{row.other_provider}:{row.other_model}"],
                documents=row.n,
                mean_absolute_difference=_float(row.mad),
                correlation=_pearson(row),
                share_within_10_points=row.within / row.n,
            )
        )
    compared_pairs = sum(p.documents for p in pairs)
    correlations = [p.correlation for p in pairs if p.correlation is not None]
    return Agreement(
        documents_compared=compared,
        mean_spread_points=_float(mean_spread),
        max_spread_points=_float(max_spread),
        mean_absolute_difference_points=_float(
            sum((p.mean_absolute_difference or 0) * p.documents for p in pairs) / compared_pairs
        )
        if compared_pairs
        else None,
        mean_pairwise_correlation=sum(correlations) / len(correlations) if correlations else None,
        share_within_10_points=sum((p.share_within_10_points or 0) * p.documents for p in pairs)
        / compared_pairs
        if compared_pairs
        else None,
        pairs=pairs,
    )


def _pearson(row: Any) -> float | None:
    """Pearson r from the sums; None below 3 documents or when a model gave every
    document the same grade (no variance to correlate)."""
    n = row.n
    if n < 3:
        return None
    sx, sy, sxx, syy, sxy = (float(v) for v in (row.sx, row.sy, row.sxx, row.syy, row.sxy))
    covariance = n * sxy - sx * sy
    variance_x, variance_y = n * sxx - sx * sx, n * syy - sy * sy
    # Sums of squares of equal values cancel to rounding noise, not exactly 0.
    tolerance = 1e-9 * max(n * sxx, n * syy, 1.0)
    if variance_x <= tolerance or variance_y <= tolerance:
        return None
    return max(-1.0, min(1.0, covariance / math.sqrt(variance_x * variance_y)))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
