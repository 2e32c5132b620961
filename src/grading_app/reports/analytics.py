"""Figures over a batch or a job: counts, success, throughput, ETA, per model calls,
failures, latency, tokens and cost (per model, per job and in all), score distributions,
and agreement between models.

Each figure is an aggregate query (a fixed number per report, whatever the size of the
batch); no row is loaded as an ORM object. Plain batch and job reads stay O(1): they
read stored counters, never this.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.fields import naive_utc
from grading_app.models import (
    RUNNABLE,
    GradeResult,
    GradingJob,
    JobStatus,
    Submission,
    SubmissionStatus,
    WorkItem,
    WorkItemState,
    utcnow,
)
from grading_app.processing.delivery import Delivery
from grading_app.reports import aggregates
from grading_app.reports.aggregates import Summary, criterion_scores
from grading_app.reports.agreement import agreement, final_percents, graded_percents
from grading_app.reports.causes import Cause, cause_of
from grading_app.reports.prices import PRICES_AS_OF, PriceTable
from grading_app.reports.schemas import (
    Agreement,
    CriterionDistribution,
    Distribution,
    Eta,
    JobCost,
    Latency,
    ModelAnalytics,
    ProcessingTime,
    ScopeAnalytics,
    ScopeCost,
    SuccessRate,
    Throughput,
)
from grading_app.reports.schemas import Cost as CostOut
from grading_app.reports.schemas import Counts as CountsOut
from grading_app.reports.scope import Scope
from grading_app.trust.review import review_figures

RECENT_WINDOW = timedelta(minutes=10)
Model = tuple[str, str]


@dataclass(frozen=True)
class Spend:
    """The stored answers of one job and model, sent one way (live or batch API): the
    costs stored with them, and the tokens of those stored without one (made by an
    earlier release, or when no price was known), priced when the report is made."""

    job_id: str
    provider: str
    model: str
    delivery: str | None
    recorded_usd: float
    recorded_calls: int
    unpriced_calls: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int


@dataclass(frozen=True)
class Measured:
    """The figures that depend on the scope's rows alone, not on the time or the prices:
    what `reports/snapshots.py` may keep while those rows stay as they are."""

    counts: CountsOut
    finished_items: int
    first_started: datetime | None
    last_finished: datetime | None
    processing_time: ProcessingTime
    models: list[ModelAnalytics]  # without cost (priced when assembled)
    agreement: Agreement
    criteria: bool  # whether the models carry their per-criterion distributions
    final_scores: Distribution  # the grades that count (reviewers' win)
    spend: tuple[Spend, ...] = ()
    jobs: tuple[tuple[str, str], ...] = ()  # (id, name), oldest first


def scope_analytics(
    session: Session,
    scope: Scope,
    *,
    prices: PriceTable,
    now: datetime | None = None,
    criteria: bool = True,
) -> ScopeAnalytics:
    """The figures; without `criteria`, no model's per-criterion distributions (the
    costliest figure, reading every criterion of every grade: for a summary that shows
    none)."""
    measured = measure(session, scope, criteria=criteria)
    return assemble(session, scope, measured, prices=prices, now=now or utcnow())


def measure(session: Session, scope: Scope, *, criteria: bool = True) -> Measured:
    """Every figure read from the scope's rows."""
    finished, first_started, last_finished = _finished(session, scope)
    models = _models(session, scope, criteria=criteria)
    graded = [(m.provider, m.model) for m in models if m.scores.count]
    return Measured(
        counts=_counts(session, scope),
        finished_items=finished,
        first_started=first_started,
        last_finished=last_finished,
        processing_time=_processing_time(session, scope),
        models=models,
        agreement=agreement(session, scope, models=graded),
        criteria=criteria,
        final_scores=_distribution(
            aggregates.summarise(
                session, final_percents(scope).subquery("final"), keys=["key"]
            ).get(("final",))
        ),
        spend=_spend(session, scope),
        jobs=tuple(
            (job_id, name)
            for job_id, name in session.execute(
                sa.select(GradingJob.id, GradingJob.job_name)
                .where(scope.jobs())
                .order_by(GradingJob.created_at, GradingJob.id)
            )
        ),
    )


def assemble(
    session: Session, scope: Scope, measured: Measured, *, prices: PriceTable, now: datetime
) -> ScopeAnalytics:
    """The report from `measured`, as of `now` (rates, ETA) at `prices` (cost)."""
    counts = measured.counts
    items = counts.items
    finished = items[WorkItemState.COMPLETED] + items[WorkItemState.FAILED]
    settled = (
        counts.documents[SubmissionStatus.COMPLETED] + counts.documents[SubmissionStatus.FAILED]
    )
    throughput = _throughput(session, scope, measured, now=now)
    return ScopeAnalytics(
        scope=scope.kind,
        id=scope.id,
        name=scope.name,
        status=scope.status,
        generated_at=now,
        counts=counts,
        success_rate=SuccessRate(
            items=items[WorkItemState.COMPLETED] / finished if finished else None,
            documents=counts.documents[SubmissionStatus.COMPLETED] / settled if settled else None,
        ),
        throughput=throughput,
        processing_time=measured.processing_time,
        eta=_eta(scope, items, throughput, now=now),
        models=[
            model.model_copy(
                update={"cost": _model_cost(prices, model.provider, model.model, measured.spend)}
            )
            for model in measured.models
        ],
        cost=_scope_cost(prices, measured),
        agreement=measured.agreement,
        final_scores=measured.final_scores,
        review=review_figures(session, kind=scope.kind, scope_id=scope.id),
    )


# --- counts, throughput, ETA -------------------------------------------------------------


def _tally(rows: Iterable[Any], names: Iterable[str], *, missing: str) -> dict[str, int]:
    """{status: count} with every known status present (0 when none)."""
    tally = dict.fromkeys((str(name) for name in names), 0)
    for status, count in rows:
        key = missing if status is None else str(status)
        tally[key] = tally.get(key, 0) + count
    return tally


def _counts(session: Session, scope: Scope) -> CountsOut:
    jobs = session.execute(
        sa.select(GradingJob.status, sa.func.count())
        .where(scope.jobs())
        .group_by(GradingJob.status)
    )
    documents = session.execute(
        sa.select(Submission.status, sa.func.count())
        .where(scope.submissions())
        .group_by(Submission.status)
    )
    items = session.execute(
        sa.select(WorkItem.state, sa.func.count()).where(scope.items()).group_by(WorkItem.state)
    )
    return CountsOut(
        jobs=_tally(jobs, JobStatus, missing=JobStatus.PENDING),
        # Earlier releases' rows without a status are taken as pending, as the upgrade does.
        documents=_tally(documents, SubmissionStatus, missing=SubmissionStatus.PENDING),
        items=_tally(items, WorkItemState, missing=WorkItemState.QUEUED),
    )


_FINISHED_STATES = (WorkItemState.COMPLETED, WorkItemState.FAILED)


def _finished(session: Session, scope: Scope) -> tuple[int, datetime | None, datetime | None]:
    """How many items finished, when the first started and the last finished."""
    first_started = session.scalar(sa.select(sa.func.min(WorkItem.started_at)).where(scope.items()))
    finished, last_finished = session.execute(
        sa.select(sa.func.count(), sa.func.max(WorkItem.completed_at)).where(
            scope.items(), WorkItem.state.in_(_FINISHED_STATES)
        )
    ).one()
    return finished, first_started, last_finished


def _throughput(session: Session, scope: Scope, measured: Measured, *, now: datetime) -> Throughput:
    first_started, finished = measured.first_started, measured.finished_items
    last_finished = measured.last_finished
    overall = recent_rate = None
    if first_started is not None and finished:
        since = now - RECENT_WINDOW
        recent = 0  # none finished since, when the last did before
        if last_finished is not None and last_finished >= since:
            recent = (
                session.scalar(
                    sa.select(sa.func.count()).where(
                        scope.items(),
                        WorkItem.state.in_(_FINISHED_STATES),
                        WorkItem.completed_at >= since,
                    )
                )
                or 0
            )
        running = scope.status in RUNNABLE
        end = now if running else (last_finished or now)
        minutes = (end - first_started).total_seconds() / 60
        overall = finished / minutes if minutes > 0 else None
        window = min(RECENT_WINDOW, now - first_started).total_seconds() / 60
        recent_rate = recent / window if window > 0 else None
    return Throughput(
        finished_items=finished,
        items_per_minute_overall=overall,
        items_per_minute_recent=recent_rate,
        window_minutes=RECENT_WINDOW.total_seconds() / 60,
        first_started_at=first_started,
        last_finished_at=last_finished,
    )


def _processing_time(session: Session, scope: Scope) -> ProcessingTime:
    durations = (
        sa.select(
            aggregates.seconds_between(session, WorkItem.started_at, WorkItem.completed_at).label(
                "value"
            )
        )
        .where(
            scope.items(),
            WorkItem.state == WorkItemState.COMPLETED,
            WorkItem.started_at.is_not(None),
            WorkItem.completed_at.is_not(None),
        )
        .subquery("durations")
    )
    summary = aggregates.summarise(session, durations, keys=[]).get(())
    if summary is None:
        return ProcessingTime(count=0, mean_seconds=None, p50_seconds=None, p95_seconds=None)
    return ProcessingTime(
        count=summary.count,
        mean_seconds=summary.mean,
        p50_seconds=summary.percentiles.get(50),
        p95_seconds=summary.percentiles.get(95),
    )


def _eta(scope: Scope, items: dict[str, int], throughput: Throughput, *, now: datetime) -> Eta:
    remaining = items[WorkItemState.QUEUED] + items[WorkItemState.RUNNING]
    deadline = scope.deadline
    rate: float | None = None
    basis: Literal["recent", "overall"] | None = None
    estimate: datetime | None = None
    on_track: bool | None = None
    if remaining == 0:
        # (The schema holds aware UTC; stored timestamps are naive UTC.)
        finished_at = scope.completed_at or naive_utc(throughput.last_finished_at)
        if deadline is not None and finished_at is not None:
            on_track = finished_at <= deadline
    elif scope.status in RUNNABLE:
        if throughput.items_per_minute_recent:
            rate, basis = throughput.items_per_minute_recent, "recent"
        elif throughput.items_per_minute_overall:
            rate, basis = throughput.items_per_minute_overall, "overall"
        if rate:
            estimate = now + timedelta(minutes=remaining / rate)
        if deadline is not None:
            on_track = estimate <= deadline if estimate else (False if deadline < now else None)
    elif deadline is not None:
        on_track = False  # paused or not started: at the current rate it never finishes
    return Eta(
        remaining_items=remaining,
        items_per_minute=rate,
        rate_basis=basis,
        estimated_completion=estimate,
        deadline=deadline,
        on_track=on_track,
    )


# --- per model ----------------------------------------------------------------------------


@dataclass
class _ModelFigures:
    items: dict[str, int]
    failures: dict[str, int]
    calls: int = 0
    retrying: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    quotes: int = 0
    quotes_verified: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0


def _models(session: Session, scope: Scope, *, criteria: bool) -> list[ModelAnalytics]:
    figures: dict[Model, _ModelFigures] = {}

    def of(model: Model) -> _ModelFigures:
        if model not in figures:
            figures[model] = _ModelFigures(
                items=dict.fromkeys((s.value for s in WorkItemState), 0),
                failures=dict.fromkeys((c.value for c in Cause), 0),
            )
        return figures[model]

    waiting_again = sa.and_(
        WorkItem.state == WorkItemState.QUEUED, WorkItem.last_error.is_not(None)
    )
    for provider, model, state, count, attempts, retrying in session.execute(
        sa.select(
            WorkItem.provider,
            WorkItem.model,
            WorkItem.state,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(WorkItem.attempts), 0),
            sa.func.count().filter(waiting_again),
        )
        .where(scope.items())
        .group_by(WorkItem.provider, WorkItem.model, WorkItem.state)
    ):
        entry = of((provider, model))
        entry.items[state] = entry.items.get(state, 0) + count
        entry.calls += int(attempts)
        entry.retrying += retrying
        if state == WorkItemState.CANCELLED:
            entry.failures[Cause.CANCELLED] += count
    # Grouped outside: the cause is an expression with parameters, which PostgreSQL
    # would not match between SELECT and GROUP BY.
    failed = (
        sa.select(WorkItem.provider, WorkItem.model, cause_of(WorkItem.last_error).label("cause"))
        .where(scope.items(), WorkItem.state == WorkItemState.FAILED)
        .subquery("failed")
    )
    for provider, model, cause, count in session.execute(
        sa.select(failed.c.provider, failed.c.model, failed.c.cause, sa.func.count()).group_by(
            failed.c.provider, failed.c.model, failed.c.cause
        )
    ):
        of((provider, model)).failures[cause] += count

    # Every stored answer, a failed grading's too (it was paid for).
    usage = (
        sa.select(
            GradeResult.provider,
            GradeResult.model,
            GradeResult.prompt_tokens,
            GradeResult.completion_tokens,
            GradeResult.cached_tokens,
            GradeResult.cache_write_tokens,
            GradeResult.latency_ms.label("value"),
            GradeResult.quotes_total,
            GradeResult.quotes_verified,
        )
        .join(Submission, Submission.id == GradeResult.submission_id)
        .where(scope.submissions(), GradeResult.raw_response.is_not(None))
        .subquery("usage")
    )
    # One pass for tokens and latencies: the sums per model and latency, and how many
    # answers took each latency (the percentiles come from those counts).
    latency_counts: dict[Model, list[tuple[float, int]]] = {}
    for (
        provider,
        model,
        latency,
        count,
        prompt_tokens,
        completion_tokens,
        quotes,
        verified,
        cached_tokens,
        cache_write_tokens,
    ) in session.execute(
        sa.select(
            usage.c.provider,
            usage.c.model,
            usage.c.value,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(usage.c.prompt_tokens), 0),
            sa.func.coalesce(sa.func.sum(usage.c.completion_tokens), 0),
            sa.func.coalesce(sa.func.sum(usage.c.quotes_total), 0),
            sa.func.coalesce(sa.func.sum(usage.c.quotes_verified), 0),
            sa.func.coalesce(sa.func.sum(usage.c.cached_tokens), 0),
            sa.func.coalesce(sa.func.sum(usage.c.cache_write_tokens), 0),
        ).group_by(usage.c.provider, usage.c.model, usage.c.value)
    ):
        entry = of((provider, model))
        entry.prompt_tokens += int(prompt_tokens)
        entry.completion_tokens += int(completion_tokens)
        entry.cached_tokens += int(cached_tokens)
        entry.cache_write_tokens += int(cache_write_tokens)
        entry.quotes += int(quotes)
        entry.quotes_verified += int(verified)
        if latency is not None:
            latency_counts.setdefault((provider, model), []).append((float(latency), count))
    latencies = {key: aggregates.summary_of_counts(pairs) for key, pairs in latency_counts.items()}

    percents = graded_percents(scope).subquery("percents")
    scores = aggregates.summarise(session, percents, keys=["provider", "model"])
    by_criterion = _criteria(session, scope) if criteria else {}
    for key in list(scores):
        of(key)  # a legacy grade may name a model no item of ours does

    return [
        ModelAnalytics(
            provider=provider,
            model=model,
            label=f"{provider}:{model}",
            items=entry.items,
            calls=entry.calls,
            failures=entry.failures,
            retrying=entry.retrying,
            latency=_latency(latencies.get((provider, model))),
            prompt_tokens=entry.prompt_tokens,
            completion_tokens=entry.completion_tokens,
            cached_tokens=entry.cached_tokens,
            cache_write_tokens=entry.cache_write_tokens,
            cached_share=round(entry.cached_tokens / entry.prompt_tokens, 4)
            if entry.prompt_tokens
            else None,
            cost=None,  # priced when assembled
            quotes_checked=entry.quotes,
            quotes_verified_share=round(entry.quotes_verified / entry.quotes, 4)
            if entry.quotes
            else None,
            scores=_distribution(scores.get((provider, model))),
            criteria=by_criterion.get((provider, model), []),
        )
        for (provider, model), entry in sorted(figures.items())
    ]


def _criteria(session: Session, scope: Scope) -> dict[Model, list[CriterionDistribution]]:
    """Per model and criterion, the distribution of its percentages. The database counts
    each (score, maximum) once per criterion, so the JSON is read in one pass and few
    rows come back; the percentages are worked out here."""
    scores = criterion_scores(session, scope.items())
    counts: dict[tuple[str, str, str], list[tuple[float, int]]] = {}
    first: dict[tuple[str, str, str], int] = {}
    for row in session.execute(
        sa.select(
            scores.c.provider,
            scores.c.model,
            scores.c.name,
            scores.c.score,
            scores.c.max_score,
            sa.func.min(scores.c.position),
            sa.func.count(),
        )
        .where(scores.c.name.is_not(None))
        .group_by(
            scores.c.provider, scores.c.model, scores.c.name, scores.c.score, scores.c.max_score
        )
    ):
        provider, model, name, score, maximum, position, count = row
        key = (provider, model, name)
        first[key] = min(first.get(key, position or 0), position or 0)
        if score is not None and maximum:
            counts.setdefault(key, []).append((100.0 * score / maximum, count))
    found: dict[Model, list[CriterionDistribution]] = {}
    # In the order the grades give them (the marking scheme's), then by name.
    for key in sorted(counts, key=lambda k: (k[0], k[1], first[k], k[2])):
        provider, model, name = key
        shape = _distribution(aggregates.summary_of_counts(counts[key]))
        found.setdefault((provider, model), []).append(
            CriterionDistribution(name=name, **shape.model_dump())
        )
    return found


def _distribution(summary: Summary | None) -> Distribution:
    summary = summary or Summary(count=0, mean=None, minimum=None, maximum=None)
    return Distribution(
        count=summary.count,
        mean=summary.mean,
        min=summary.minimum,
        p25=summary.percentiles.get(25),
        median=summary.percentiles.get(50),
        p75=summary.percentiles.get(75),
        max=summary.maximum,
        histogram=summary.histogram or [0] * aggregates.BINS,
    )


def _latency(summary: Summary | None) -> Latency:
    if summary is None:
        return Latency(count=0, mean_ms=None, p50_ms=None, p95_ms=None)
    return Latency(
        count=summary.count,
        mean_ms=summary.mean,
        p50_ms=summary.percentiles.get(50),
        p95_ms=summary.percentiles.get(95),
    )


# --- cost ---------------------------------------------------------------------------------


def _spend(session: Session, scope: Scope) -> tuple[Spend, ...]:
    """Every stored answer's cost, a failed grading's too (it was paid for), per job,
    model and delivery: one grouped pass."""
    unpriced = GradeResult.cost_usd.is_(None)

    def unpriced_sum(column: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((unpriced, column), else_=0)), 0)

    rows = session.execute(
        sa.select(
            Submission.job_id,
            GradeResult.provider,
            GradeResult.model,
            GradeResult.delivery,
            sa.func.coalesce(sa.func.sum(GradeResult.cost_usd), 0.0),
            sa.func.count(GradeResult.cost_usd),
            sa.func.count().filter(unpriced),
            unpriced_sum(GradeResult.prompt_tokens),
            unpriced_sum(GradeResult.completion_tokens),
            unpriced_sum(GradeResult.cached_tokens),
            unpriced_sum(GradeResult.cache_write_tokens),
        )
        .join(Submission, Submission.id == GradeResult.submission_id)
        .where(scope.submissions(), GradeResult.raw_response.is_not(None))
        .group_by(Submission.job_id, GradeResult.provider, GradeResult.model, GradeResult.delivery)
    )
    return tuple(
        Spend(
            job_id,
            provider,
            model,
            delivery,
            float(recorded),
            int(recorded_calls),
            int(unpriced_calls),
            int(prompt),
            int(completion),
            int(cached),
            int(written),
        )
        for (
            job_id,
            provider,
            model,
            delivery,
            recorded,
            recorded_calls,
            unpriced_calls,
            prompt,
            completion,
            cached,
            written,
        ) in rows
    )


def _estimate(prices: PriceTable, spend: Spend) -> tuple[float, int, int]:
    """The calls stored without a cost, at today's price: the estimate, how many calls
    it covers, and how many no price covers (left out)."""
    if not spend.unpriced_calls:
        return 0.0, 0, 0
    price = prices.price(spend.provider, spend.model)
    if price is None:
        return 0.0, 0, spend.unpriced_calls
    estimate = price.cost(
        spend.prompt_tokens,
        spend.completion_tokens,
        cached_tokens=spend.cached_tokens,
        cache_write_tokens=spend.cache_write_tokens,
        batch=spend.delivery == Delivery.BATCH_API,
    )
    return estimate, spend.unpriced_calls, 0


def _model_cost(
    prices: PriceTable, provider: str, model: str, spend: tuple[Spend, ...]
) -> CostOut | None:
    price = prices.price(provider, model)
    recorded = estimated = 0.0
    recorded_calls = estimated_calls = left_out = 0
    for part in spend:
        if part.provider == provider and part.model == model:
            estimate, priced_now, unpriced = _estimate(prices, part)
            recorded += part.recorded_usd
            recorded_calls += part.recorded_calls
            estimated += estimate
            estimated_calls += priced_now
            left_out += unpriced
    if price is None and not recorded_calls:
        return None  # unknown: no cost, never a cost of 0
    source = price.source if price is not None else None
    return CostOut(
        total_usd=recorded + estimated,
        recorded_usd=recorded,
        estimated_usd=estimated,
        estimated=bool(estimated_calls),
        unpriced_calls=left_out,
        input_usd_per_million=price.input_per_million if price is not None else None,
        output_usd_per_million=price.output_per_million if price is not None else None,
        cached_input_usd_per_million=price.cached_input_per_million if price else None,
        price_source=source,
        prices_as_of=PRICES_AS_OF if source == "default" else None,
    )


def _scope_cost(prices: PriceTable, measured: Measured) -> ScopeCost:
    totals: dict[str, float] = {}
    estimated: set[str] = set()
    unpriced: dict[str, int] = {}
    for part in measured.spend:
        estimate, priced_now, left_out = _estimate(prices, part)
        totals[part.job_id] = totals.get(part.job_id, 0.0) + part.recorded_usd + estimate
        if priced_now:
            estimated.add(part.job_id)
        unpriced[part.job_id] = unpriced.get(part.job_id, 0) + left_out
    return ScopeCost(
        total_usd=sum(totals.values()),
        estimated=bool(estimated),
        unpriced_calls=sum(unpriced.values()),
        jobs=[
            JobCost(
                job_id=job_id,
                job_name=name,
                total_usd=totals.get(job_id, 0.0),
                estimated=job_id in estimated,
                unpriced_calls=unpriced.get(job_id, 0),
            )
            for job_id, name in measured.jobs
        ],
    )
