"""What a worker needs to grade one claimed item, read in one statement, and the batch
settings it obeys (retries, timeout)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.grading.rubric import Rubric, stored_rubric
from grading_app.models import RUNNABLE, WorkItemState
from grading_app.processing.delivery import budget_setting
from grading_app.processing.progress import statement
from grading_app.trust.settings import TrustSettings, trust_settings

DEFAULT_MAX_RETRIES = 3

_ITEM_CONTEXT = statement(
    "SELECT wi.id, wi.attempts, wi.provider, wi.model, wi.state, wi.lease_owner, "
    "s.id AS submission_id, s.original_filename, s.extracted_text, "
    "j.id AS job_id, j.batch_id, j.prompt, j.status AS job_status, j.temperature, "
    "j.max_tokens, j.models_to_compare, b.status AS batch_status, b.batch_settings, "
    "b.spent_usd, "
    "ms.content AS scheme_content, sms.content AS saved_scheme_content, "
    "ms.rubric AS scheme_rubric, sms.rubric AS saved_scheme_rubric, dr.findings "
    "FROM work_items wi "
    "JOIN submissions s ON s.id = wi.submission_id "
    "LEFT JOIN document_reviews dr ON dr.submission_id = s.id "
    "JOIN grading_jobs j ON j.id = wi.job_id "
    "LEFT JOIN job_batches b ON b.id = wi.batch_id "
    "LEFT JOIN marking_schemes ms ON ms.id = j.marking_scheme_id "
    "LEFT JOIN saved_marking_schemes sms ON sms.id = j.saved_marking_scheme_id "
    "WHERE wi.id = :id",
    columns={
        "models_to_compare": sa.JSON(),
        "batch_settings": sa.JSON(),
        "scheme_rubric": sa.JSON(),
        "saved_scheme_rubric": sa.JSON(),
        "findings": sa.JSON(),
    },
)


@dataclass(frozen=True)
class ItemContext:
    """What a worker needs to grade an item, loaded in one short read."""

    item_id: str
    attempts: int
    provider: str
    model: str
    submission_id: str
    document_name: str
    document_text: str
    job_id: str
    batch_id: str | None
    instructions: str
    marking_scheme: str | None
    # The marking scheme's criteria and maxima, when it is a structured rubric.
    rubric: Rubric | None
    temperature: float | None
    max_tokens: int | None
    max_retries: int
    # The batch's own timeout for one call, if it sets one.
    timeout_seconds: float | None
    runnable: bool
    single_model: bool
    # Redaction, hidden-text handling and review thresholds of the batch.
    trust: TrustSettings
    # What the hidden-instruction scan found in the document at upload.
    findings: list[dict[str, Any]] | None
    # The batch's budget in USD (None: none) and what it had spent when this was read.
    budget_usd: float | None = None
    spent_usd: float = 0.0


def load_context(session: Session, *, item_id: str, owner: str) -> ItemContext | None:
    """What grading the item needs; `runnable` only while `owner` holds its lease and its
    job and batch are running."""
    row = session.execute(_ITEM_CONTEXT, {"id": item_id}).one_or_none()
    if row is None:
        return None
    return ItemContext(
        item_id=row.id,
        attempts=row.attempts,
        provider=row.provider,
        model=row.model,
        submission_id=row.submission_id,
        document_name=row.original_filename,
        document_text=row.extracted_text or "",
        job_id=row.job_id,
        batch_id=row.batch_id,
        instructions=row.prompt,
        marking_scheme=row.scheme_content or row.saved_scheme_content,
        # The rubric of the scheme whose text is used: the job's own, else (a legacy job
        # that names only a library scheme) the saved one.
        rubric=stored_rubric(row.scheme_rubric if row.scheme_content else row.saved_scheme_rubric),
        temperature=row.temperature,
        max_tokens=row.max_tokens,
        max_retries=max_retries_of(row.batch_settings),
        timeout_seconds=_timeout_of(row.batch_settings),
        runnable=row.state == WorkItemState.RUNNING
        and row.lease_owner == owner
        and row.job_status in RUNNABLE
        and (row.batch_id is None or row.batch_status in RUNNABLE),
        single_model=not (
            isinstance(row.models_to_compare, list) and len(row.models_to_compare) > 1
        ),
        trust=trust_settings(row.batch_settings),
        findings=row.findings if isinstance(row.findings, list) else None,
        budget_usd=budget_setting(row.batch_settings),
        spent_usd=float(row.spent_usd or 0.0),
    )


def max_retries_of(batch_settings: Any) -> int:
    """The batch's `max_retries` (settings of legacy rows may be anything)."""
    settings = batch_settings if isinstance(batch_settings, dict) else {}
    try:
        return max(0, int(settings.get("max_retries", DEFAULT_MAX_RETRIES)))
    except (TypeError, ValueError):
        return DEFAULT_MAX_RETRIES


def _timeout_of(batch_settings: Any) -> float | None:
    value = batch_settings.get("timeout_seconds") if isinstance(batch_settings, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None
