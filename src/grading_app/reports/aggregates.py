"""SQL that summarises many rows into a few, the same on SQLite and PostgreSQL:
percentiles (window functions), histograms, per-criterion scores out of the JSON
column, durations. The database does the scanning; Python gets one row per group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.models import GradeResult, WorkItem

# Nearest-rank percentiles reported for every distribution.
PERCENTILES = (25, 50, 75, 95)
BINS = 10  # histograms of percentages: 0-10, 10-20, ..., 90-100 (100 in the last)

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Summary:
    """One group's values: how many, their mean, extremes and percentiles."""

    count: int
    mean: float | None
    minimum: float | None
    maximum: float | None
    percentiles: dict[int, float] = field(default_factory=dict)


def summarise(
    session: Session, values: sa.Subquery, *, keys: Sequence[str], value: str = "value"
) -> dict[Key, Summary]:
    """Per group of `keys`, a Summary of the non-null `value`s of `values`: two queries
    whatever the row count."""
    groups = [values.c[k] for k in keys]
    measured = values.c[value]
    totals = session.execute(
        sa.select(
            *groups,
            sa.func.count(measured),
            sa.func.avg(measured),
            sa.func.min(measured),
            sa.func.max(measured),
        )
        .where(measured.is_not(None))
        .group_by(*groups)
    ).all()
    ranked = (
        sa.select(
            *groups,
            measured.label("measured"),
            sa.func.row_number()
            .over(partition_by=groups or None, order_by=measured)
            .label("position"),
            sa.func.count().over(partition_by=groups or None).label("size"),
        )
        .where(measured.is_not(None))
        .subquery("ranked")
    )
    # Nearest rank: the value at position ceil(p * n / 100), in integer arithmetic.
    wanted = [(ranked.c.size * p + 99) // 100 for p in PERCENTILES]
    picked = session.execute(
        sa.select(
            *(ranked.c[k] for k in keys), ranked.c.measured, ranked.c.position, ranked.c.size
        ).where(sa.or_(*(ranked.c.position == rank for rank in wanted)))
    ).all()
    percentiles: dict[Key, dict[int, float]] = {}
    for row in picked:
        key = tuple(row[: len(keys)])
        size, position = row.size, row.position
        for p in PERCENTILES:
            if position == (size * p + 99) // 100:
                percentiles.setdefault(key, {})[p] = float(row.measured)
    return {
        tuple(row[: len(keys)]): Summary(
            count=row[len(keys)],
            mean=_float(row[len(keys) + 1]),
            minimum=_float(row[len(keys) + 2]),
            maximum=_float(row[len(keys) + 3]),
            percentiles=percentiles.get(tuple(row[: len(keys)]), {}),
        )
        for row in totals
    }


def histogram(
    session: Session, percents: sa.Subquery, *, keys: Sequence[str], value: str = "value"
) -> dict[Key, list[int]]:
    """Per group, how many percentages fall in each tenth (below 0 counts in the first
    bin, 100 and above in the last)."""
    measured = percents.c[value]
    step = 100 // BINS
    binned = (
        sa.select(
            *(percents.c[k] for k in keys),
            sa.case(
                *((measured < step * (i + 1), i) for i in range(BINS - 1)), else_=BINS - 1
            ).label("bin"),
        )
        .where(measured.is_not(None))
        .subquery("binned")
    )
    groups = [binned.c[k] for k in keys]
    counts: dict[Key, list[int]] = {}
    for row in session.execute(
        sa.select(*groups, binned.c.bin, sa.func.count()).group_by(*groups, binned.c.bin)
    ):
        key = tuple(row[: len(keys)])
        counts.setdefault(key, [0] * BINS)[int(row.bin)] = row[-1]
    return counts


def percent(score: Any, maximum: Any) -> sa.ColumnElement[Any]:
    """score as a percentage of maximum; NULL without a positive maximum."""
    return sa.case((maximum > 0, score * 100 / maximum))


def seconds_between(session: Session, start: Any, end: Any) -> sa.ColumnElement[float]:
    """`end - start` in seconds (timestamps are naive UTC on both databases)."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.extract("epoch", end - start), sa.Float)
    # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff"; julianday() reads it, in days.
    return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0


def criterion_scores(session: Session, *where: sa.ColumnElement[bool]) -> sa.Subquery:
    """One row per criterion of each `grade_results` row that `where` selects (it may
    name WorkItem, joined on the result's item): submission_id, provider, model, name,
    score, max_score, position (its place in the grade). Rows whose `criteria` is not a
    JSON array contribute none."""
    criteria = GradeResult.criteria
    if session.get_bind().dialect.name == "postgresql":
        array = sa.case((sa.func.json_typeof(criteria) == "array", criteria))
        elements = (
            sa.func.json_array_elements(array)
            .table_valued(sa.column("value", sa.JSON), with_ordinality="position")
            .render_derived(name="elements")  # AS elements(value, position)
        )
        position: sa.ColumnElement[Any] = elements.c.position
    else:
        # Nested, as SQLite may evaluate both sides of an AND: json_type() of text that
        # is not JSON raises.
        array = sa.case(
            (
                sa.func.json_valid(criteria) == 1,
                sa.case((sa.func.json_type(criteria) == "array", criteria)),
            )
        )
        elements = sa.func.json_each(array).table_valued(
            sa.column("value", sa.JSON), sa.column("key", sa.Integer)
        )
        position = elements.c.key
    element = elements.c.value
    return (
        sa.select(
            GradeResult.submission_id,
            GradeResult.provider,
            GradeResult.model,
            element["name"].as_string().label("name"),
            element["score"].as_float().label("score"),
            element["max_score"].as_float().label("max_score"),
            position.label("position"),
        )
        .select_from(GradeResult)
        .join(WorkItem, WorkItem.id == GradeResult.work_item_id)
        .join(elements, sa.true())
        .where(*where)
        .subquery("criterion_scores")
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
