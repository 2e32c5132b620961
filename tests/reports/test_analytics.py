"""Analytics of a batch and of a job, checked against grades made with known scores,
latencies and failures, on SQLite and PostgreSQL."""

from __future__ import annotations

import statistics
from datetime import timedelta

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import GradeResult, JobBatch, WorkItem, utcnow
from grading_app.reports.analytics import scope_analytics
from grading_app.reports.prices import PRICES_AS_OF, PriceTable
from grading_app.reports.scope import batch_scope, job_scope
from tests.factories import make_batch, make_job, make_outcome
from tests.reports.helpers import (
    CLAUDE,
    CLAUDE_PERCENTS,
    GPT,
    GPT_PERCENTS,
    MYSTERY,
    grade_all,
    graded_batch,
)

NO_OVERRIDES = PriceTable.of({})


def _by_label(figures):
    return {model.label: model for model in figures.models}


def test_batch_analytics_counts_rates_and_times(sessions):
    deadline = utcnow() + timedelta(days=1)
    graded = graded_batch(sessions, deadline=deadline)
    with unit_of_work(sessions, read_only=True) as session:
        figures = scope_analytics(
            session, batch_scope(session, batch_id=graded.batch_id), prices=NO_OVERRIDES
        )

    assert figures.scope == "batch" and figures.name == "Term 2 essays"
    assert figures.status == "completed_with_errors"
    counts = figures.counts
    assert counts.items == {"queued": 0, "running": 0, "completed": 8, "failed": 2, "cancelled": 0}
    assert counts.documents["completed"] == 5 and counts.documents["failed"] == 1
    assert counts.documents["pending"] == 0
    assert counts.jobs["completed_with_errors"] == 2 and sum(counts.jobs.values()) == 2
    assert figures.success_rate.items == pytest.approx(8 / 10)
    assert figures.success_rate.documents == pytest.approx(5 / 6)
    # Completed items took 10, 20, ... 80 s from their first claim to their result.
    timing = figures.processing_time
    assert timing.count == 8 and timing.mean_seconds == pytest.approx(45, abs=0.01)
    assert timing.p50_seconds == pytest.approx(40, abs=0.01)
    assert timing.p95_seconds == pytest.approx(80, abs=0.01)
    # 10 items in the 100 s from the first start to the last finish.
    throughput = figures.throughput
    assert throughput.finished_items == 10
    assert throughput.items_per_minute_overall == pytest.approx(6.0, rel=1e-3)
    assert throughput.items_per_minute_recent == 0
    eta = figures.eta
    assert eta.remaining_items == 0 and eta.estimated_completion is None
    assert eta.on_track is True  # it finished before its deadline


def test_per_model_calls_failures_latency_tokens_and_cost(sessions):
    graded = graded_batch(sessions)
    with unit_of_work(sessions) as session:
        # Claude's grades as an earlier release stored them: without a cost.
        session.execute(
            sa.update(GradeResult).where(GradeResult.model == CLAUDE.model).values(cost_usd=None)
        )
    prices = PriceTable.of({"anthropic:claude-sonnet-4": (1.0, 2.0)})  # an override
    with unit_of_work(sessions, read_only=True) as session:
        figures = scope_analytics(
            session, batch_scope(session, batch_id=graded.batch_id), prices=prices
        )
    models = _by_label(figures)
    assert list(models) == sorted([CLAUDE.label, GPT.label, MYSTERY.label])

    gpt, claude, mystery = models[GPT.label], models[CLAUDE.label], models[MYSTERY.label]
    assert gpt.items["completed"] == 4 and gpt.calls == 4
    assert set(gpt.failures.values()) == {0}
    assert claude.items == {"queued": 0, "running": 0, "completed": 3, "failed": 1, "cancelled": 0}
    assert claude.failures["rate_limit"] == 1 and sum(claude.failures.values()) == 1
    assert mystery.failures["invalid_answer"] == 1 and sum(mystery.failures.values()) == 1

    assert gpt.latency.count == 4 and gpt.latency.mean_ms == pytest.approx(250)
    assert (gpt.latency.p50_ms, gpt.latency.p95_ms) == (200, 400)
    # make_outcome: 100 prompt and 50 completion tokens per grade.
    assert (gpt.prompt_tokens, gpt.completion_tokens) == (400, 200)
    # GPT's cost was stored as each grade was (at the default price of then).
    assert gpt.cost is not None and gpt.cost.price_source == "default"
    assert gpt.cost.prices_as_of == PRICES_AS_OF
    assert gpt.cost.recorded_usd == pytest.approx((400 * 2.5 + 200 * 10) / 1e6)
    assert gpt.cost.total_usd == gpt.cost.recorded_usd and not gpt.cost.estimated
    # Claude's, stored without a cost, is estimated at today's price (the override's).
    assert claude.cost is not None and claude.cost.price_source == "GRADING_APP_PRICES"
    assert claude.cost.estimated and claude.cost.recorded_usd == 0
    assert claude.cost.estimated_usd == pytest.approx((300 * 1 + 150 * 2) / 1e6)
    assert mystery.cost is None  # unknown: no cost, not a cost of 0
    assert (mystery.prompt_tokens, mystery.completion_tokens) == (100, 50)
    assert gpt.cached_tokens == 0 and gpt.cached_share == 0

    total = figures.cost
    assert total.total_usd == pytest.approx(gpt.cost.total_usd + claude.cost.total_usd)
    assert total.estimated
    jobs = {job.job_name: job for job in total.jobs}
    assert jobs["Compared"].total_usd == pytest.approx(total.total_usd)
    assert jobs["Compared"].estimated
    # The mystery model's answer: no stored cost, no price, left out.
    assert jobs["Single"].total_usd == 0 and not jobs["Single"].estimated
    assert jobs["Single"].unpriced_calls == total.unpriced_calls == 1


def test_score_distributions_per_model_and_criterion(sessions):
    graded = graded_batch(sessions)
    with unit_of_work(sessions, read_only=True) as session:
        figures = scope_analytics(
            session, batch_scope(session, batch_id=graded.batch_id), prices=NO_OVERRIDES
        )
    models = _by_label(figures)

    gpt = models[GPT.label].scores  # 40, 60, 80, 100
    assert gpt.count == 4 and gpt.mean == pytest.approx(70)
    assert (gpt.min, gpt.p25, gpt.median, gpt.p75, gpt.max) == (40, 40, 60, 80, 100)
    assert gpt.histogram == [0, 0, 0, 0, 1, 0, 1, 0, 1, 1]  # 100 counts in the last tenth
    claude = models[CLAUDE.label].scores  # 50, 60, 90
    assert claude.count == 3 and claude.mean == pytest.approx(200 / 3)
    assert (claude.min, claude.median, claude.max) == (50, 60, 90)
    mystery = models[MYSTERY.label].scores  # 10 out of 20
    assert (mystery.count, mystery.mean, mystery.histogram[5]) == (1, 50, 1)
    # make_outcome's one criterion scores half of half the maximum: the same percentage.
    [argument] = models[GPT.label].criteria
    assert argument.name == "Argument" and argument.count == 4
    assert (argument.min, argument.median, argument.max) == (40, 60, 100)
    assert argument.histogram == gpt.histogram


def test_agreement_between_models_across_the_batch(sessions):
    graded = graded_batch(sessions)
    with unit_of_work(sessions, read_only=True) as session:
        figures = scope_analytics(
            session, batch_scope(session, batch_id=graded.batch_id), prices=NO_OVERRIDES
        )
    agreement = figures.agreement
    both = sorted(CLAUDE_PERCENTS)  # the documents both models graded
    gpt = [GPT_PERCENTS[d] for d in both]
    claude = [CLAUDE_PERCENTS[d] for d in both]
    differences = [abs(a - b) for a, b in zip(gpt, claude, strict=True)]  # 10, 0, 10

    assert agreement.documents_compared == 3
    assert agreement.mean_spread_points == pytest.approx(statistics.fmean(differences))
    assert agreement.max_spread_points == pytest.approx(10)
    [pair] = agreement.pairs
    assert pair.models == [CLAUDE.label, GPT.label] and pair.documents == 3
    assert pair.mean_absolute_difference == pytest.approx(20 / 3)
    assert pair.correlation == pytest.approx(statistics.correlation(gpt, claude))
    assert pair.share_within_10_points == 1.0
    assert agreement.mean_pairwise_correlation == pytest.approx(pair.correlation)


def test_a_job_has_the_same_figures_for_its_own_work(sessions):
    graded = graded_batch(sessions)
    with unit_of_work(sessions, read_only=True) as session:
        figures = scope_analytics(
            session, job_scope(session, job_id=graded.single_job_id), prices=NO_OVERRIDES
        )
    assert figures.scope == "job" and figures.name == "Single"
    assert figures.counts.items["completed"] == 1 and figures.counts.items["failed"] == 1
    assert [m.label for m in figures.models] == [MYSTERY.label]
    assert figures.agreement.documents_compared == 0 and figures.agreement.pairs == []


def test_eta_and_deadline_at_the_recent_rate(sessions):
    now = utcnow()
    with unit_of_work(sessions) as session:
        batch = make_batch(session, deadline=now + timedelta(minutes=10))
        make_job(session, batch=batch, documents=10)
        batch_id = batch.id
    grade_all(sessions, lambda _: make_outcome(), at_most=4)  # six remain queued
    with unit_of_work(sessions) as session:
        finished = session.scalars(
            sa.select(WorkItem.id).where(
                WorkItem.batch_id == batch_id, WorkItem.state == "completed"
            )
        ).all()
        assert len(finished) == 4
        # Four items finished in the last ten minutes, the first started 20 minutes ago.
        session.execute(
            sa.update(WorkItem)
            .where(WorkItem.batch_id == batch_id)
            .values(started_at=now - timedelta(minutes=20))
        )
        session.execute(
            sa.update(WorkItem)
            .where(WorkItem.id.in_(finished))
            .values(completed_at=now - timedelta(minutes=5))
        )

    with unit_of_work(sessions, read_only=True) as session:
        scope = batch_scope(session, batch_id=batch_id)
        figures = scope_analytics(session, scope, prices=NO_OVERRIDES, now=now)
    eta = figures.eta
    assert figures.throughput.items_per_minute_recent == pytest.approx(0.4)
    assert eta.remaining_items == 6 and eta.rate_basis == "recent"
    # Six items at 0.4 a minute: 15 minutes, past the deadline 10 minutes away.
    assert eta.estimated_completion.replace(tzinfo=None) == now + timedelta(minutes=15)
    assert eta.on_track is False
    with unit_of_work(sessions) as session:
        session.execute(
            sa.update(JobBatch)
            .where(JobBatch.id == batch_id)
            .values(deadline=now + timedelta(hours=1))
        )
    with unit_of_work(sessions, read_only=True) as session:
        scope = batch_scope(session, batch_id=batch_id)
        assert scope_analytics(session, scope, prices=NO_OVERRIDES, now=now).eta.on_track is True
    with unit_of_work(sessions) as session:
        session.execute(sa.update(JobBatch).where(JobBatch.id == batch_id).values(status="paused"))
    with unit_of_work(sessions, read_only=True) as session:
        scope = batch_scope(session, batch_id=batch_id)
        paused = scope_analytics(session, scope, prices=NO_OVERRIDES, now=now).eta
    assert paused.estimated_completion is None and paused.on_track is False


def test_an_empty_batch_has_figures_without_any(sessions):
    with unit_of_work(sessions) as session:
        batch_id = make_batch(session, status="draft").id
    with unit_of_work(sessions, read_only=True) as session:
        figures = scope_analytics(
            session, batch_scope(session, batch_id=batch_id), prices=NO_OVERRIDES
        )
    assert figures.models == [] and figures.success_rate.items is None
    assert figures.processing_time.count == 0 and figures.processing_time.p50_seconds is None
    assert figures.throughput.items_per_minute_overall is None
    assert figures.agreement.documents_compared == 0
