"""The gradebook of a batch or job: its documents in order, each with every model's grade,
streamed; and its columns (student identifier, per model score, maximum, per-criterion
scores, feedback, cached input tokens, cost, spread). Cells keep their types: numbers
stay numbers, so each writer (CSV, XLSX) can neutralise text without touching a score."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, load_only

from grading_app.errors import BadRequest
from grading_app.models import GradingJob
from grading_app.providers.targets import Target, job_targets
from grading_app.reports.documents import Document, documents, graded_columns
from grading_app.reports.scope import Scope

Cell = str | int | float | None
ID_PATTERN_LENGTH = 200


def result_targets(session: Session, scope: Scope, *, found: list[Target]) -> list[Target]:
    """The models results are shown for: those its jobs name, and any its grades name
    (`found`) that they do not. A legacy job comparing models named them without their
    provider (the job's own provider stood in), while its grades carry the real one:
    such a model is shown under the provider of its grades."""
    targets: list[Target] = []
    jobs = session.scalars(
        sa.select(GradingJob)
        .where(scope.jobs())
        .options(
            load_only(
                GradingJob.job_name,
                GradingJob.provider,
                GradingJob.model,
                GradingJob.models_to_compare,
            )
        )
        .order_by(GradingJob.created_at, GradingJob.id)
    )
    for job in jobs:
        try:
            named = job_targets(job)
        except BadRequest:  # a legacy job that recorded no model
            named = []
        targets += [t for t in named if t not in targets]
    found_labels = {t.label for t in found}
    shown: list[Target] = []
    for target in targets:
        if target.label in found_labels or all(t.model != target.model for t in found):
            shown.append(target)
        else:  # the same model, graded under another provider
            shown += [t for t in found if t.model == target.model and t not in shown]
    return shown + sorted((t for t in found if t not in shown), key=lambda t: t.label)


def criterion_names(columns: list[tuple[str, str, str | None, Any]]) -> dict[str, list[str]]:
    """Each model's criterion names, in the order its grades give them, from
    `graded_columns`."""
    first: dict[str, dict[str, int]] = {}
    for provider, model, name, position in columns:
        if name is None:
            continue
        seen = first.setdefault(f"{provider}:{model}", {})
        seen[name] = min(seen.get(name, position or 0), position or 0)
    return {
        label: sorted(seen, key=lambda name: (seen[name], name)) for label, seen in first.items()
    }


def compile_id_pattern(text: str | None) -> re.Pattern[str] | None:
    """The `id_pattern` of an export: a regular expression with one group, searched in
    each document's file name; None (the default) takes the name without extension."""
    if not text:
        return None
    if len(text) > ID_PATTERN_LENGTH:
        raise BadRequest(f"id_pattern is {len(text)} characters; at most {ID_PATTERN_LENGTH}")
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise BadRequest(f"id_pattern is not a regular expression: {exc}") from None
    if pattern.groups != 1:
        raise BadRequest(
            f"id_pattern needs exactly one group, the identifier in parentheses, e.g. "
            f"^(\\d+)_ for 12345_essay.docx; it has {pattern.groups}"
        )
    return pattern


def base_name(filename: str) -> str:
    """The file name without any folder (documents from a .zip keep their path)."""
    return filename.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def student_id(filename: str, pattern: re.Pattern[str] | None) -> str:
    """The identifier in a file name: the pattern's group, or the name without its
    extension; empty when the pattern does not match."""
    name = base_name(filename)
    if pattern is None:
        stem, dot, _ = name.rpartition(".")
        return stem if dot and stem else name
    found = pattern.search(name)
    return (found.group(1) or "") if found else ""


@dataclass(frozen=True)
class Layout:
    """The gradebook's columns."""

    targets: list[Target]
    criteria: dict[str, list[str]]
    with_job: bool  # a batch's gradebook names each document's job

    @property
    def compares(self) -> bool:
        return len(self.targets) > 1

    def header(self) -> list[str]:
        header = ["student_id", "document", *(["job"] if self.with_job else []), "status"]
        header.append("error")
        for target in self.targets:
            prefix = f"{target.label} " if self.compares else ""
            header += [f"{prefix}score", f"{prefix}max_score"]
            header += [f"{prefix}{name}" for name in self.criteria.get(target.label, [])]
            header += [f"{prefix}feedback", f"{prefix}cached_tokens", f"{prefix}cost_usd"]
        if self.compares:
            header.append("spread_percentage_points")
        # The grade that counts: a reviewer's wins over the models' (their mean).
        header += ["final_score", "final_max_score", "review", "review_comment", "needs_review"]
        header.append("review_reasons")
        return header

    @cached_property
    def _grade_columns(self) -> list[tuple[str, list[str]]]:
        """Each model's label and criterion names, as the row needs them."""
        return [(t.label, self.criteria.get(t.label, [])) for t in self.targets]

    def row(self, document: Document, pattern: re.Pattern[str] | None) -> list[Cell]:
        # Once per document of an export: kept to plain loops over what it needs.
        row: list[Cell] = [student_id(document.original_filename, pattern)]
        row.append(document.original_filename)
        if self.with_job:
            row.append(document.job_name)
        row.append(document.status or "")
        row.append(document.error or "")
        grades = document.grades
        for label, names in self._grade_columns:
            grade = grades.get(label)
            if grade is None:
                row += [None, None, *(None for _ in names), "", None, None]
                continue
            row.append(_number(grade.score))
            row.append(_number(grade.max_score))
            if names:
                scores = {
                    c.get("name"): c.get("score")
                    for c in grade.criteria or ()
                    if isinstance(c, dict)
                }
                row += [_number(scores.get(name)) for name in names]
            row.append(grade.feedback or "")
            row.append(grade.cached_tokens)
            row.append(grade.cost_usd)
        if self.compares:
            row.append(spread(document))
        final_score, final_max = document.final_grade()
        review = document.review
        row += [_number(final_score), _number(final_max), document.review_state]
        row += [(review.comment or "") if review is not None else ""]
        row.append("yes" if document.needs_review else "")
        reasons = review.reasons if review is not None else None
        row.append(
            "; ".join(str(r.get("detail", "")) for r in reasons or () if isinstance(r, dict))
        )
        return row


def layout(session: Session, scope: Scope) -> Layout:
    columns = graded_columns(session, scope)
    found = sorted(
        {Target(provider, model) for provider, model, _, _ in columns}, key=lambda t: t.label
    )
    return Layout(
        targets=result_targets(session, scope, found=found),
        criteria=criterion_names(columns),
        with_job=scope.kind == "batch",
    )


def gradebook_rows(
    session: Session, scope: Scope, *, id_pattern: re.Pattern[str] | None = None
) -> Iterator[list[Cell]]:
    """The header, then one row per document; a generator, so a gradebook never sits
    whole in memory."""
    columns = layout(session, scope)
    yield list(columns.header())
    for document in documents(session, scope):
        yield columns.row(document, id_pattern)


def spread(document: Document) -> float | None:
    """Percentage points between the highest and lowest model's grade of a document."""
    percents = [g.percent for g in document.grades.values() if g.percent is not None]
    return round(max(percents) - min(percents), 1) if len(percents) >= 2 else None


def _number(value: Any) -> int | float | None:
    """Whole numbers as integers (70, not 70.0), others as they are; text that is not a
    number (a model's stray answer) stays out of a numeric column."""
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() else value
    if kind is int or value is None:
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else value
