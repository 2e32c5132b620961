"""SQL that summarises many rows into a few, the same on SQLite and PostgreSQL:
percentiles and histograms (from counts of each distinct value), per-criterion scores
out of the JSON column, durations. The database does the scanning; Python gets one row
per group and value."""

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
    histogram: list[int] | None = None  # of percentages, when asked for


def _nearest_rank(p: int, size: int) -> int:
    """The position (from 1) of the p-th percentile among `size` sorted values."""
    return (size * p + 99) // 100


def summarise(
    session: Session, values: sa.Subquery, *, keys: Sequence[str], value: str = "value"
) -> dict[Key, Summary]:
    """Per group of `keys`, a Summary of the non-null `value`s, with a histogram (for
    percentages): one query that counts each distinct value, the percentiles worked out
    here from the counts. Grades take few distinct values (a score out of 100 at most
    101, however many documents), so few rows come back; latencies and durations may
    take as many as there are rows, and counting them still costs the database less
    than ranking every row with a window (at 100,000 rows on SQLite, a third)."""
    groups = [values.c[k] for k in keys]
    measured = values.c[value]
    counts: dict[Key, list[tuple[float, int]]] = {}
    for row in session.execute(
        sa.select(*groups, measured, sa.func.count())
        .where(measured.is_not(None))
        .group_by(*groups, measured)
    ):
        counts.setdefault(tuple(row[: len(keys)]), []).append((float(row[-2]), row[-1]))
    return {key: summary_of_counts(pairs) for key, pairs in counts.items()}


def summary_of_counts(pairs: list[tuple[float, int]]) -> Summary:
    """A Summary, with the histogram of percentages, of (value, how many) pairs."""
    pairs = sorted(pairs)
    size = sum(count for _, count in pairs)
    bins = [0] * BINS
    step = 100 / BINS
    ranks = {p: _nearest_rank(p, size) for p in PERCENTILES}
    percentiles: dict[int, float] = {}
    seen = 0
    for value, count in pairs:
        bins[min(BINS - 1, max(0, int(value // step)))] += count
        for p, rank in ranks.items():
            if seen < rank <= seen + count:
                percentiles[p] = value
        seen += count
    return Summary(
        count=size,
        mean=sum(value * count for value, count in pairs) / size,
        minimum=pairs[0][0],
        maximum=pairs[-1][0],
        percentiles=percentiles,
        histogram=bins,
    )


def percent(score: Any, maximum: Any) -> sa.ColumnElement[Any]:
    """score as a percentage of maximum; NULL without a positive maximum."""
    return sa.case((maximum > 0, score * 100 / maximum))


def seconds_between(session: Session, start: Any, end: Any) -> sa.ColumnElement[float]:
    """`end - start` in seconds (timestamps are naive UTC on both databases)."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.extract("epoch", end - start), sa.Float)
    # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff"; julianday() reads it, in days.
    return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0


def criteria_elements(
    session: Session, *, only_if: sa.ColumnElement[bool] | None = None
) -> tuple[Any, sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """The elements of `grade_results.criteria`, as a table-valued function to join
    (its arguments name GradeResult), with each element and its position in the array.
    Rows whose `criteria` is not a JSON array, or for which `only_if` does not hold,
    have none."""
    criteria = GradeResult.criteria
    if session.get_bind().dialect.name == "postgresql":
        is_array = sa.func.json_typeof(criteria) == "array"
        array = sa.case((is_array if only_if is None else sa.and_(only_if, is_array), criteria))
        elements = (
            sa.func.json_array_elements(array)
            .table_valued(sa.column("value", sa.JSON), with_ordinality="position")
            .render_derived(name="elements")  # AS elements(value, position)
        )
        return elements, elements.c.value, elements.c.position
    # The column holds what SQLAlchemy's JSON type wrote (json.dumps): an array's text
    # starts with "[". Checked on the text, as parsing it twice more (json_valid,
    # json_type) would double the cost of the scan.
    is_array = sa.func.substr(criteria, 1, 1) == "["
    array = sa.case((is_array if only_if is None else sa.and_(only_if, is_array), criteria))
    elements = sa.func.json_each(array).table_valued(
        sa.column("value", sa.JSON), sa.column("key", sa.Integer)
    )
    return elements, elements.c.value, elements.c.key


def criterion_scores(session: Session, *where: sa.ColumnElement[bool]) -> sa.Subquery:
    """One row per criterion of each `grade_results` row that `where` selects (it may
    name WorkItem, joined on the result's item): submission_id, provider, model, name,
    score, max_score, position (its place in the grade). Rows whose `criteria` is not a
    JSON array contribute none."""
    elements, element, position = criteria_elements(session)
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
