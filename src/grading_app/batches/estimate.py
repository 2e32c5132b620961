"""What a batch will use and cost, per model, before it starts and while it runs: only
the documents still to grade count, and once some are graded, what they really used
replaces the guesses (the rules are processing/estimate.py's).

`cost_estimate` is the arithmetic over work items; `estimate_batch` feeds it a batch's
stored items, batches/draft_estimate.py the items a batch not yet made would have, so
the two say the same for the same prompt, scheme, models and documents."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.batches.schemas import (
    CostEstimateOut,
    EstimateOut,
    EstimateTotalsOut,
    ModelEstimateOut,
)
from grading_app.grading.rubric import Rubric, stored_rubric
from grading_app.lifecycle import service as lifecycle
from grading_app.models import (
    GradeResult,
    GradingJob,
    MarkingScheme,
    SavedMarkingScheme,
    Submission,
    WorkItem,
    WorkItemState,
)
from grading_app.processing.delivery import Delivery, budget_setting, delivery_setting
from grading_app.processing.estimate import (
    MIN_CACHED_PREFIX_TOKENS,
    PromptFrame,
    answer_tokens,
    price_for,
    prompt_frame,
    tokens_of,
)
from grading_app.processing.settings import has_batch_api
from grading_app.trust.settings import HELD_FOR_REVIEW

TO_GRADE = (WorkItemState.QUEUED.value, WorkItemState.RUNNING.value)


@dataclass(frozen=True)
class JobFrame:
    """A job's prompt around its documents, and the guess for each answer's length."""

    frame: PromptFrame
    answer_tokens: int


def job_frame(
    *,
    model: str,
    instructions: str,
    marking_scheme: str | None,
    rubric: Rubric | None,
    max_tokens: int | None,
) -> JobFrame:
    frame = prompt_frame(
        model=model, instructions=instructions, marking_scheme=marking_scheme, rubric=rubric
    )
    return JobFrame(frame, answer_tokens(rubric, max_tokens))


class Item(NamedTuple):
    """One (document, model) grading as the estimate reads it: its text's and name's
    lengths in characters, once graded the tokens it used, and whether it is held for
    review (failed at upload with hidden instructions under `hidden_instructions: hold`:
    it costs nothing until a person grades it anyway)."""

    job_id: str
    provider: str
    model: str
    state: str
    text_length: int
    name_length: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    held: bool = False


@dataclass
class _Model:
    """One model's items, added up as they are read."""

    provider: str
    model: str
    documents: int = 0
    to_grade: int = 0
    input_tokens: int = 0
    guessed_output_tokens: int = 0
    calls_per_job: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Of the graded ones: what they used, and what this estimate said they would.
    graded: int = 0
    held: int = 0
    used_input: int = 0
    estimated_input: int = 0
    used_output: int = 0


def estimate_batch(session: Session, *, batch_id: str) -> EstimateOut:
    batch = lifecycle.get_batch(session, batch_id=batch_id)
    items = (Item._make(row) for row in session.execute(_items(batch_id)))
    budget = budget_setting(batch.batch_settings)
    spent = float(batch.spent_usd or 0.0)
    figures = cost_estimate(
        session,
        jobs=_jobs(session, batch_id),
        items=items,
        delivery=delivery_setting(batch.batch_settings),
        budget=budget,
        spent=spent,
    )
    return EstimateOut(
        **dict(figures),
        batch_id=batch.id,
        status=batch.status,
        spent_usd=spent,
        remaining_budget_usd=round(budget - spent, 6) if budget is not None else None,
    )


def cost_estimate(
    session: Session,
    *,
    jobs: Mapping[str, JobFrame],
    items: Iterable[Item],
    delivery: Delivery,
    budget: float | None,
    spent: float = 0.0,
) -> CostEstimateOut:
    """Tokens and costs per model and in total of `items`, whose jobs are `jobs`."""
    models: dict[tuple[str, str], _Model] = {}
    for item in items:
        job = jobs[item.job_id]
        tally = models.setdefault((item.provider, item.model), _Model(item.provider, item.model))
        tokens = tokens_of(job.frame.call_characters(item.text_length, item.name_length))
        tally.documents += 1
        tally.held += bool(item.held)
        if item.state in TO_GRADE:
            tally.to_grade += 1
            tally.input_tokens += tokens
            tally.guessed_output_tokens += job.answer_tokens
            tally.calls_per_job[item.job_id] += 1
        elif item.prompt_tokens and item.completion_tokens is not None:
            tally.graded += 1
            tally.used_input += item.prompt_tokens
            tally.estimated_input += tokens
            tally.used_output += item.completion_tokens
    estimates = [_model_estimate(session, tally, jobs) for tally in models.values()]
    totals = _totals(estimates, delivery)
    expected = totals.expected_cost_usd
    return CostEstimateOut(
        delivery=delivery.value,
        budget_usd=budget,
        models=estimates,
        totals=totals,
        within_budget=None if budget is None or expected is None else spent + expected <= budget,
    )


def _jobs(session: Session, batch_id: str) -> dict[str, JobFrame]:
    rows = session.execute(
        sa.select(
            GradingJob.id,
            GradingJob.prompt,
            GradingJob.model,
            GradingJob.max_tokens,
            MarkingScheme.content.label("scheme"),
            MarkingScheme.rubric.label("rubric"),
            SavedMarkingScheme.content.label("saved_scheme"),
            SavedMarkingScheme.rubric.label("saved_rubric"),
        )
        .outerjoin(MarkingScheme, MarkingScheme.id == GradingJob.marking_scheme_id)
        .outerjoin(SavedMarkingScheme, SavedMarkingScheme.id == GradingJob.saved_marking_scheme_id)
        .where(GradingJob.batch_id == batch_id)
    )
    jobs = {}
    for row in rows:
        # The scheme whose text is used, as the worker picks it (processing/context.py).
        rubric = stored_rubric(row.rubric if row.scheme else row.saved_rubric)
        jobs[row.id] = job_frame(
            model=row.model or "",
            instructions=row.prompt or "",
            marking_scheme=row.scheme or row.saved_scheme,
            rubric=rubric,
            max_tokens=row.max_tokens,
        )
    return jobs


def _items(batch_id: str) -> sa.Select[tuple[str, str, str, str, int, int, int, int, bool]]:
    graded = (
        sa.select(
            GradeResult.work_item_id,
            sa.func.max(GradeResult.prompt_tokens).label("prompt_tokens"),
            sa.func.max(GradeResult.completion_tokens).label("completion_tokens"),
        )
        .where(GradeResult.status == WorkItemState.COMPLETED.value)
        .group_by(GradeResult.work_item_id)
        .subquery()
    )
    return (
        sa.select(
            WorkItem.job_id,
            WorkItem.provider,
            WorkItem.model,
            WorkItem.state,
            sa.func.coalesce(sa.func.length(Submission.extracted_text), 0).label("text_length"),
            sa.func.coalesce(sa.func.length(Submission.original_filename), 0).label("name_length"),
            graded.c.prompt_tokens,
            graded.c.completion_tokens,
            # As jobs/service.py's `_hold` fails them, until a retry queues them again.
            sa.and_(
                WorkItem.state == WorkItemState.FAILED.value,
                WorkItem.last_error.startswith(HELD_FOR_REVIEW, autoescape=True),
            ).label("held"),
        )
        .join(Submission, Submission.id == WorkItem.submission_id)
        .outerjoin(graded, graded.c.work_item_id == WorkItem.id)
        .where(WorkItem.batch_id == batch_id, WorkItem.state != WorkItemState.CANCELLED.value)
    )


def _model_estimate(
    session: Session, tally: _Model, jobs: Mapping[str, JobFrame]
) -> ModelEstimateOut:
    cached = sum(
        shared * (calls - 1)
        for job_id, calls in tally.calls_per_job.items()
        if (shared := tokens_of(jobs[job_id].frame.shared)) >= MIN_CACHED_PREFIX_TOKENS
    )
    input_tokens = tally.input_tokens
    input_basis = "estimated at about 4 characters per token"
    output_tokens = tally.guessed_output_tokens
    output_basis = "guessed from the number of rubric criteria"
    if tally.graded and tally.estimated_input:
        ratio = tally.used_input / tally.estimated_input
        input_tokens = round(input_tokens * ratio)
        cached = min(round(cached * ratio), input_tokens)
        input_basis = (
            f"calibrated on {tally.graded} graded document(s): they used {ratio:.2f} times "
            "the estimate"
        )
        mean = tally.used_output / tally.graded
        output_tokens = round(mean * tally.to_grade)
        output_basis = f"observed: {mean:.0f} per answer over {tally.graded} graded document(s)"
    price = price_for(session, tally.provider, tally.model)
    batch_api = has_batch_api(tally.provider)
    note = None
    live = via_batch = None
    if price is None:
        note = (
            f"No price known for {tally.provider}:{tally.model}: tokens only. An "
            "administrator can add its price"
        )
    else:
        live = price.cost(input_tokens, output_tokens, cached_tokens=cached)
        if batch_api:
            via_batch = price.cost(input_tokens, output_tokens, cached_tokens=cached, batch=True)
        else:
            note = f"{tally.provider} has no batch API: live calls only"
    return ModelEstimateOut(
        model=f"{tally.provider}:{tally.model}",
        documents=tally.documents,
        to_grade=tally.to_grade,
        graded=tally.graded,
        held=tally.held,
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=output_tokens,
        input_basis=input_basis,
        output_basis=output_basis,
        cost_live_usd=_usd(live),
        cost_batch_api_usd=_usd(via_batch),
        price_source=price.source if price is not None else None,
        note=note,
    )


def _totals(models: list[ModelEstimateOut], delivery: Delivery) -> EstimateTotalsOut:
    priced = [m for m in models if m.cost_live_usd is not None]
    live = sum(m.cost_live_usd or 0.0 for m in priced)
    # Through the batch API where the vendor has one, live where it has not.
    via_batch = sum(
        m.cost_batch_api_usd if m.cost_batch_api_usd is not None else m.cost_live_usd or 0.0
        for m in priced
    )
    expected = live if delivery == Delivery.LIVE else via_batch
    return EstimateTotalsOut(
        documents=sum(m.documents for m in models),
        to_grade=sum(m.to_grade for m in models),
        held=sum(m.held for m in models),
        input_tokens=sum(m.input_tokens for m in models),
        cached_input_tokens=sum(m.cached_input_tokens for m in models),
        output_tokens=sum(m.output_tokens for m in models),
        cost_live_usd=_usd(live) if priced else None,
        cost_batch_api_usd=_usd(via_batch) if priced else None,
        expected_cost_usd=_usd(expected) if priced else None,
        complete=len(priced) == len(models),
    )


def _usd(amount: float | None) -> float | None:
    return round(amount, 6) if amount is not None else None
