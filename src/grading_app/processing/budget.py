"""A batch's budget: before a live call, and before a batch of calls goes to a vendor's
batch API, the batch pauses when what it has spent (`job_batches.spent_usd`), what is
in flight and what comes next would pass its budget. The pause is the lifecycle's, as
a person's is (calls in flight finish), with `pause_reason` saying why; the teacher
raises the budget and resumes, or leaves it. A resume clears the reason and lets work
go on; if the budget is still too small, the next check pauses the batch again.

Costs are estimates (processing/estimate.py): a call's input at about 4 characters a
token, its answer as long as the batch's answers so far (or guessed from the rubric),
at the model's price. A model without a price is not counted against the budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.accounts import audit
from grading_app.accounts.principal import Principal, Role
from grading_app.grading.rubric import Rubric
from grading_app.lifecycle import service as lifecycle
from grading_app.models import RUNNABLE, GradeResult, JobBatch, WorkItem, WorkItemState
from grading_app.processing import service
from grading_app.processing.context import ItemContext
from grading_app.processing.delivery import budget_setting
from grading_app.processing.estimate import answer_tokens, price_for, tokens_of
from grading_app.providers.base import ChatRequest

# Who the audit trail names for a pause no person made.
BUDGET_CHECK = Principal(user_id=None, username="budget check", role=Role.ADMIN, via="system")


def call_cost_usd(
    session: Session,
    *,
    batch_id: str,
    provider: str,
    model: str,
    request: ChatRequest,
    rubric: Rubric | None,
    batch_api: bool = False,
) -> float | None:
    """The estimated cost of one call; None when the model has no price."""
    return calls_cost_usd(
        session,
        batch_id=batch_id,
        provider=provider,
        model=model,
        requests=[request],
        rubric=rubric,
        batch_api=batch_api,
    )


def calls_cost_usd(
    session: Session,
    *,
    batch_id: str,
    provider: str,
    model: str,
    requests: Sequence[ChatRequest],
    rubric: Rubric | None,
    batch_api: bool = False,
) -> float | None:
    """The estimated cost of calls to one model of the batch, together; None when the
    model has no price."""
    price = price_for(session, provider, model)
    if price is None or not requests:
        return None if price is None else 0.0
    mean_output = session.scalar(
        sa.select(sa.func.avg(GradeResult.completion_tokens))
        .join(WorkItem, WorkItem.id == GradeResult.work_item_id)
        .where(
            WorkItem.batch_id == batch_id,
            WorkItem.provider == provider,
            WorkItem.model == model,
            GradeResult.status == WorkItemState.COMPLETED.value,
            GradeResult.completion_tokens.is_not(None),
        )
    )
    return sum(
        price.cost(
            tokens_of(len(request.system) + len(request.user)),
            round(float(mean_output))
            if mean_output is not None
            else answer_tokens(rubric, request.max_tokens),
            batch=batch_api,
        )
        for request in requests
    )


def would_exceed(
    session: Session,
    *,
    batch_id: str,
    extra_usd: float,
    per_item_usd: float | None = None,
    exclude_item_id: str | None = None,
) -> str | None:
    """The pause reason when spent, plus the items in flight (running, or sent in a
    vendor batch) at `per_item_usd` each (default `extra_usd`), plus `extra_usd` would
    pass the batch's budget; None within it, or without a budget."""
    row = session.execute(
        sa.select(JobBatch.spent_usd, JobBatch.batch_settings).where(JobBatch.id == batch_id)
    ).one_or_none()
    budget = budget_setting(row.batch_settings) if row is not None else None
    if row is None or budget is None:
        return None
    in_flight_items = sa.select(sa.func.count(WorkItem.id)).where(
        WorkItem.batch_id == batch_id,
        sa.or_(
            WorkItem.state == WorkItemState.RUNNING.value,
            sa.and_(
                WorkItem.provider_batch_id.is_not(None),
                WorkItem.state == WorkItemState.QUEUED.value,
            ),
        ),
    )
    if exclude_item_id is not None:
        in_flight_items = in_flight_items.where(WorkItem.id != exclude_item_id)
    in_flight = (session.scalar(in_flight_items) or 0) * (
        per_item_usd if per_item_usd is not None else extra_usd
    )
    spent = float(row.spent_usd or 0.0)
    if spent + in_flight + extra_usd <= budget:
        return None
    return (
        f"Paused: the budget of ${budget:.2f} would be passed: ${spent:.2f} spent, about "
        f"${in_flight + extra_usd:.2f} more in flight and next. Raise the budget and resume "
        "to go on"
    )


def pause_for_budget(session: Session, *, batch_id: str, reason: str) -> bool:
    """Pause the batch as a person would, saying why; False if it was no longer
    running (paused or cancelled meanwhile)."""
    batch = lifecycle.lock_batch(session, batch_id)
    if batch.status not in RUNNABLE:
        return False
    lifecycle.pause_batch(session, batch_id=batch_id)
    batch.pause_reason = reason
    audit.record(session, BUDGET_CHECK, "pause", "batch", batch_id, reason=reason)
    session.flush()
    return True


def hold_within_budget(
    session: Session, *, context: ItemContext, owner: str, request: ChatRequest
) -> bool:
    """Before a live call: True to make it. Else the item goes back to the queue
    untouched and the batch is paused with the reason."""
    if context.batch_id is None or context.budget_usd is None:
        return True
    cost = call_cost_usd(
        session,
        batch_id=context.batch_id,
        provider=context.provider,
        model=context.model,
        request=request,
        rubric=context.rubric,
    )
    if cost is None:
        return True
    reason = would_exceed(
        session, batch_id=context.batch_id, extra_usd=cost, exclude_item_id=context.item_id
    )
    if reason is None:
        return True
    # The item's row before the batch's: the order every writer locks them in.
    service.release_item(session, item_id=context.item_id, owner=owner)
    pause_for_budget(session, batch_id=context.batch_id, reason=reason)
    return False
