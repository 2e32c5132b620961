"""Exports of a batch or job in any format: the one entry point the API and the CLI use."""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum

from sqlalchemy.orm import Session

from grading_app.reports.archive import zip_chunks
from grading_app.reports.gradebook import gradebook_rows
from grading_app.reports.prices import PriceTable
from grading_app.reports.schemas import ScopeAnalytics
from grading_app.reports.scope import Scope
from grading_app.reports.snapshots import scope_analytics
from grading_app.reports.spreadsheet import SummaryLine, xlsx_chunks
from grading_app.reports.writers import csv_chunks, json_chunks


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    XLSX = "xlsx"
    ZIP = "zip"


MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.JSON: "application/json",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ExportFormat.ZIP: "application/zip",
}


def export_filename(scope: Scope, export_format: ExportFormat) -> str:
    """batch-<id>.csv: ids only, so the name needs no quoting in a header."""
    safe_id = re.sub(r"[^A-Za-z0-9-]", "", scope.id)[:64] or "export"
    return f"{scope.kind}-{safe_id}.{export_format.value}"


def export_chunks(
    session: Session,
    scope: Scope,
    *,
    export_format: ExportFormat,
    prices: PriceTable,
    id_pattern: re.Pattern[str] | None = None,
) -> Iterator[str | bytes]:
    """The export's content, chunk by chunk, read inside `session`."""
    if export_format == ExportFormat.CSV:
        yield from csv_chunks(gradebook_rows(session, scope, id_pattern=id_pattern))
    elif export_format == ExportFormat.JSON:
        yield from json_chunks(session, scope, id_pattern=id_pattern)
    else:
        # The XLSX summary shows no criteria; the ZIP's summary.json has every figure.
        figures = scope_analytics(
            session, scope, prices=prices, criteria=export_format == ExportFormat.ZIP
        )
        if export_format == ExportFormat.XLSX:
            yield from xlsx_chunks(
                session, scope, summary=summary_lines(figures), id_pattern=id_pattern
            )
        else:
            yield from zip_chunks(
                session,
                scope,
                summary_json=figures.model_dump_json(indent=2),
                id_pattern=id_pattern,
            )


def summary_lines(figures: ScopeAnalytics) -> list[SummaryLine]:
    """The XLSX Summary sheet: what was exported, how far grading got, each model."""
    documents, items = figures.counts.documents, figures.counts.items
    lines: list[SummaryLine] = [
        f"Grading App export of {figures.scope} '{figures.name}'",
        ("Id", figures.id),
        ("Status", figures.status or ""),
        ("Exported at (UTC)", figures.generated_at.strftime("%Y-%m-%d %H:%M:%S")),
        ("Documents", sum(documents.values())),
        ("Graded documents", documents.get("completed", 0)),
        ("Failed documents", documents.get("failed", 0)),
        ("Work items", sum(items.values())),
        ("Completed items", items.get("completed", 0)),
        ("Failed items", items.get("failed", 0)),
        ("Success rate (items)", figures.success_rate.items),
        ("Total cost (USD)", figures.cost.total_usd),
        ("Total cost partly estimated", "yes" if figures.cost.estimated else "no"),
    ]
    for model in figures.models:
        lines += [
            f"Model {model.label}",
            ("Documents graded", model.scores.count),
            ("Mean score (%)", model.scores.mean),
            ("Median score (%)", model.scores.median),
            ("Lowest score (%)", model.scores.min),
            ("Highest score (%)", model.scores.max),
            ("Failed items", model.items.get("failed", 0)),
            ("Prompt tokens", model.prompt_tokens),
            ("Cached prompt tokens", model.cached_tokens),
            ("Completion tokens", model.completion_tokens),
            ("Cost (USD)", model.cost.total_usd if model.cost else None),
        ]
    agreement = figures.agreement
    if agreement.documents_compared:
        lines += [
            "Agreement between models",
            ("Documents compared", agreement.documents_compared),
            ("Mean spread (percentage points)", agreement.mean_spread_points),
            ("Mean absolute difference (points)", agreement.mean_absolute_difference_points),
            ("Mean pairwise correlation", agreement.mean_pairwise_correlation),
            ("Share within 10 points", agreement.share_within_10_points),
        ]
    return lines
