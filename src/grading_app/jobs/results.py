"""Results of a job: per-document rows for the CSV export, and model agreement."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from itertools import combinations, groupby
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.errors import BadRequest
from grading_app.jobs.grades import Grade, grade_of, grades_subquery
from grading_app.models import GradingJob, Submission
from grading_app.providers.targets import Target, job_targets


def _by_submission(session: Session, job_id: str) -> Iterator[tuple[Any, dict[str, Grade]]]:
    """Submissions in order, each with its grades keyed by target label: one streamed
    query (submissions left-joined to their grades), not one per document."""
    grades = grades_subquery(Submission.job_id == job_id)
    rows = session.execute(
        sa.select(
            Submission.id,
            Submission.original_filename,
            Submission.status,
            Submission.error_message,
            *grades.c,
        )
        .outerjoin(grades, grades.c.submission_id == Submission.id)
        .where(Submission.job_id == job_id)
        .order_by(Submission.original_filename, Submission.id, grades.c.created_at)
        .execution_options(yield_per=500)
    )
    for _, group in groupby(rows, key=lambda row: row.id):
        grouped = list(group)
        found = (grade_of(r) for r in grouped if r.provider is not None)
        yield grouped[0], {grade.label: grade for grade in found}


def result_targets(session: Session, job: GradingJob) -> list[Target]:
    """The models a job's results are shown for: its own, and any its grades name that
    it does not. A legacy job comparing models named them without their provider (the
    job's own provider stood in), while its grades carry the real one: such a model is
    shown under the provider of its grades."""
    try:
        targets = job_targets(job)
    except BadRequest:  # a legacy job that recorded no model
        targets = []
    grades = grades_subquery(Submission.job_id == job.id)
    found = [
        Target(provider, model)
        for provider, model in session.execute(
            sa.select(grades.c.provider, grades.c.model).distinct()
        )
    ]
    found_labels = {t.label for t in found}
    shown: list[Target] = []
    for target in targets:
        if target.label in found_labels or all(t.model != target.model for t in found):
            shown.append(target)
        else:  # the same model, graded under another provider
            shown += [t for t in found if t.model == target.model and t not in shown]
    return shown + sorted((t for t in found if t not in shown), key=lambda t: t.label)


def criterion_names(session: Session, job_id: str, targets: list[Target]) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {t.label: [] for t in targets}
    grades = grades_subquery(Submission.job_id == job_id)
    rows = session.execute(
        sa.select(grades.c.provider, grades.c.model, grades.c.criteria).where(
            grades.c.criteria.is_not(None)
        )
    ).yield_per(500)
    for provider, model, criteria in rows:
        label = f"{provider}:{model}"
        for criterion in criteria if isinstance(criteria, list) else []:
            name = criterion.get("name") if isinstance(criterion, dict) else None
            if name and label in names and name not in names[label]:
                names[label].append(name)
    return names


def csv_rows(session: Session, *, job_id: str) -> Iterator[list[Any]]:
    """The header, then one row per document: per model score, maximum, per-criterion
    scores and feedback. A generator, so an export never sits whole in memory."""
    job = session.get(GradingJob, job_id)
    assert job is not None
    targets = result_targets(session, job)
    criteria = criterion_names(session, job_id, targets)
    multi = len(targets) > 1
    header = ["document", "status", "error"]
    for target in targets:
        prefix = f"{target.label} " if multi else ""
        header += [f"{prefix}score", f"{prefix}max_score"]
        header += [f"{prefix}{name}" for name in criteria[target.label]]
        header.append(f"{prefix}feedback")
    if multi:
        header.append("spread_percentage_points")
    yield header
    for submission, results in _by_submission(session, job_id):
        row: list[Any] = [
            submission.original_filename,
            submission.status,
            submission.error_message or "",
        ]
        for target in targets:
            result = results.get(target.label)
            scores = {
                c.get("name"): c.get("score")
                for c in (result.criteria or [] if result else [])
                if isinstance(c, dict)
            }
            row += [
                _number(result.score) if result else "",
                _number(result.max_score) if result else "",
            ]
            row += [_number(scores.get(name)) for name in criteria[target.label]]
            row.append(result.feedback if result else "")
        if multi:
            spread = _spread([_percent(r) for r in results.values()])
            row.append("" if spread is None else f"{spread:.1f}")
        yield row


def write_csv(session: Session, *, job_id: str, out: TextIO) -> int:
    """Write the export to `out`; returns the number of document rows."""
    writer = csv.writer(out)
    count = -1
    for row in csv_rows(session, job_id=job_id):
        writer.writerow(row)
        count += 1
    return count


def csv_chunks(session: Session, *, job_id: str, rows_per_chunk: int = 200) -> Iterator[str]:
    """The export as text chunks, for streaming over HTTP."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for index, row in enumerate(csv_rows(session, job_id=job_id)):
        writer.writerow(row)
        if index % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


@dataclass(frozen=True)
class Agreement:
    documents_compared: int
    mean_spread: float | None  # percentage points between the highest and lowest model
    max_spread: float | None
    mean_pairwise_correlation: float | None  # Pearson r of models' scores, averaged


def model_agreement(session: Session, *, job_id: str) -> Agreement:
    job = session.get(GradingJob, job_id)
    assert job is not None
    labels = [t.label for t in result_targets(session, job)]
    if not labels:  # a legacy job that recorded no model and has no grades yet
        return Agreement(
            documents_compared=0, mean_spread=None, max_spread=None, mean_pairwise_correlation=None
        )
    per_model: dict[str, list[float]] = {label: [] for label in labels}
    spreads: list[float] = []
    for _, results in _by_submission(session, job_id):
        percents = {label: _percent(results.get(label)) for label in labels}
        if any(p is None for p in percents.values()):
            continue  # compare only documents every model graded
        values = [p for p in percents.values() if p is not None]
        spreads.append(max(values) - min(values))
        for label in labels:
            per_model[label].append(percents[label])  # type: ignore[arg-type]
    correlations = []
    for a, b in combinations(labels, 2):
        if len(per_model[a]) >= 3:
            # StatisticsError: a model gave every document the same score.
            with suppress(statistics.StatisticsError):
                correlations.append(statistics.correlation(per_model[a], per_model[b]))
    return Agreement(
        documents_compared=len(spreads),
        mean_spread=statistics.fmean(spreads) if spreads else None,
        max_spread=max(spreads) if spreads else None,
        mean_pairwise_correlation=statistics.fmean(correlations) if correlations else None,
    )


def _percent(result: Any) -> float | None:
    if result is None or result.score is None or not result.max_score:
        return None
    return 100.0 * result.score / result.max_score


def _spread(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) - min(present) if len(present) >= 2 else None


def _number(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)
