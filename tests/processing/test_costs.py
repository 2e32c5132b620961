"""Every grading is priced as it is stored (its tokens, cached input and delivery at the
price in force), and its batch's spending moves with it."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.grading.service import Usage
from grading_app.models import GradeResult, JobBatch, utcnow
from grading_app.processing import service
from grading_app.processing.claim import claim
from grading_app.processing.runtime import provider_resolver
from grading_app.processing.worker import LocalWorker
from grading_app.providers.targets import Target
from grading_app.reports.prices import DEFAULT_PRICES
from tests.factories import make_batch, make_job, make_outcome

GPT = DEFAULT_PRICES["openai:gpt-4o"]
SONNET = DEFAULT_PRICES["claude:claude-sonnet-4"]


def _claimed(sessions, *, targets, documents=1):
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        make_job(session, batch=batch, documents=documents, targets=targets)
        batch_id = batch.id
    with unit_of_work(sessions) as session:
        items = claim(session, owner="w1", limit=100, lease_seconds=300, now=utcnow())
        return batch_id, [item.id for item in items]


def _results(sessions, batch_id):
    with unit_of_work(sessions, read_only=True) as session:
        rows = session.scalars(sa.select(GradeResult).order_by(GradeResult.created_at)).all()
        spent = session.get(JobBatch, batch_id).spent_usd
    return rows, spent


def test_a_live_grading_with_cached_input_is_priced_at_the_default(sessions):
    batch_id, [item] = _claimed(sessions, targets=[Target("claude", "claude-sonnet-4")])
    outcome = dataclasses.replace(
        make_outcome(prompt_tokens=2_000, completion_tokens=300),
        cached_tokens=1_500,
        cache_write_tokens=200,
    )
    with unit_of_work(sessions) as session:
        assert service.complete_item(
            session, item_id=item, owner="w1", outcome=outcome, single_model=True
        )

    [result], spent = _results(sessions, batch_id)
    expected = SONNET.cost(2_000, 300, cached_tokens=1_500, cache_write_tokens=200)
    assert expected == pytest.approx((300 * 3 + 1_500 * 0.3 + 200 * 3.75 + 300 * 15) / 1e6)
    assert result.cost_usd == pytest.approx(expected) and result.delivery == "live"
    assert (result.cached_tokens, result.cache_write_tokens) == (1_500, 200)
    assert spent == pytest.approx(expected)


def test_a_grading_through_the_batch_api_gets_the_batch_discount(sessions):
    batch_id, [item] = _claimed(sessions, targets=[Target("openai", "gpt-4o")])
    outcome = dataclasses.replace(
        make_outcome(prompt_tokens=1_000, completion_tokens=200),
        cached_tokens=400,
        delivery="batch_api",
    )
    with unit_of_work(sessions) as session:
        service.complete_item(session, item_id=item, owner="w1", outcome=outcome, single_model=True)

    [result], spent = _results(sessions, batch_id)
    live = GPT.cost(1_000, 200, cached_tokens=400)
    assert result.delivery == "batch_api"
    assert result.cost_usd == pytest.approx(live / 2) and spent == pytest.approx(live / 2)


def test_a_cost_the_caller_priced_is_kept_and_an_unknown_model_costs_nothing_known(sessions):
    batch_id, items = _claimed(
        sessions, targets=[Target("openai", "gpt-4o"), Target("openai", "mystery-model")]
    )
    with unit_of_work(sessions) as session:
        for item in items:
            outcome = make_outcome()
            if (
                session.execute(
                    sa.text("SELECT model FROM work_items WHERE id = :id"), {"id": item}
                ).scalar_one()
                == "gpt-4o"
            ):
                outcome = dataclasses.replace(outcome, cost_usd=0.123)
            service.complete_item(
                session, item_id=item, owner="w1", outcome=outcome, single_model=False
            )

    rows, spent = _results(sessions, batch_id)
    costs = {row.model: row.cost_usd for row in rows}
    assert costs == {"gpt-4o": 0.123, "mystery-model": None}  # None: unknown, not 0
    assert spent == pytest.approx(0.123)


def test_a_failed_grading_that_was_answered_is_paid_for(sessions):
    batch_id, [item] = _claimed(sessions, targets=[Target("openai", "gpt-4o")])
    usage = Usage(raw_text="not a grade", prompt_tokens=800, completion_tokens=100, latency_ms=5)
    with unit_of_work(sessions) as session:
        assert service.fail_item(session, item_id=item, owner="w1", error="no", usage=usage)

    [result], spent = _results(sessions, batch_id)
    assert result.status == "failed"
    assert result.cost_usd == pytest.approx(GPT.cost(800, 100)) == pytest.approx(spent)


def test_spent_usd_is_the_sum_of_the_batch_s_grade_costs_graded_live(sessions, provider_env):
    """Through the fake vendor, by a real worker: each answer's tokens (cached ones
    included, as the vendor reports them) priced at the default, summed on the batch."""
    targets = [Target("openai", "gpt-4o"), Target("claude", "claude-3-5-haiku")]
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        make_job(session, batch=batch, documents=5, targets=targets)
        batch_id = batch.id
    resolve, _ = provider_resolver(provider_env)
    worker = LocalWorker(
        sessions, resolve_provider=resolve, concurrency=4, request_timeout=5, poll_interval=0.05
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"until_idle": True})
    thread.start()
    thread.join(60)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()

    rows, spent = _results(sessions, batch_id)
    assert len(rows) == 10
    for row in rows:
        price = DEFAULT_PRICES[f"{row.provider}:{row.model}"]
        assert row.prompt_tokens and row.completion_tokens
        expected = price.cost(
            row.prompt_tokens,
            row.completion_tokens,
            cached_tokens=row.cached_tokens or 0,
            cache_write_tokens=row.cache_write_tokens or 0,
        )
        assert row.cost_usd == pytest.approx(expected) and row.delivery == "live"
    assert spent == pytest.approx(sum(row.cost_usd for row in rows))
