"""Every grading is priced as it is stored (its tokens, cached input and delivery at the
price in force), and its batch's spending moves with it."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.grading.service import Usage
from grading_app.lifecycle import service as lifecycle
from grading_app.models import GradeResult, JobBatch, WorkItem, utcnow
from grading_app.processing import service
from grading_app.processing.claim import claim, reap_expired_leases
from grading_app.processing.runtime import provider_resolver
from grading_app.processing.worker import LocalWorker, grade_claimed_item
from grading_app.providers.targets import Target
from grading_app.reports.prices import DEFAULT_PRICES
from tests.factories import make_batch, make_job, make_outcome
from tests.fakes.llm_server import Fault
from tests.processing.helpers import wait_for

GPT = DEFAULT_PRICES["openai:gpt-4o"]
SONNET = DEFAULT_PRICES["claude:claude-sonnet-4"]
LATER = timedelta(minutes=10)  # past any backoff


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


def _grade_claimed(sessions, provider_env, item_id: str) -> str:
    worker = LocalWorker(sessions, resolve_provider=provider_resolver(provider_env)[0])
    return grade_claimed_item(worker.parts, item_id=item_id, owner="w1")


def _charged(rows) -> float:
    """What the analytics sum: every stored answer's cost."""
    return sum(row.cost_usd for row in rows if row.raw_response is not None)


def test_an_answer_retried_after_its_repair_call_failed_is_paid_for(sessions, llm, provider_env):
    """Through the fake vendor: an unusable answer, its repair call a 500 (retried), then
    a good answer. The first answer was billed: it is kept and counted, once."""
    llm.script("gpt-4o", [Fault.non_json_text(), Fault.server_error(retry_after=0)])
    batch_id, [item] = _claimed(sessions, targets=[Target("openai", "gpt-4o")])

    assert _grade_claimed(sessions, provider_env, item) == "retried"
    with unit_of_work(sessions) as session:
        claim(session, owner="w1", limit=1, lease_seconds=300, now=utcnow() + LATER)
    assert _grade_claimed(sessions, provider_env, item) == "completed"

    rows, spent = _results(sessions, batch_id)
    unused, graded = rows
    assert graded.work_item_id == item and graded.status == "completed"
    assert unused.work_item_id is None and unused.status == "failed"
    assert unused.raw_response and unused.error_message
    paid = GPT.cost(unused.prompt_tokens, unused.completion_tokens)
    assert unused.cost_usd == pytest.approx(paid)
    assert unused.cost_usd > 0 and graded.cost_usd > 0
    assert (
        spent == pytest.approx(unused.cost_usd + graded.cost_usd) == pytest.approx(_charged(rows))
    )


def test_an_answer_that_came_after_the_lease_ran_out_is_paid_for(sessions, llm, provider_env):
    """The worker's call outlives its lease: the reaper requeues the item, the answer
    then comes (and is billed) but is not the grade; the next attempt grades it."""
    batch_id, [item] = _claimed(sessions, targets=[Target("openai", "gpt-4o")])
    llm.gate = threading.Event()
    outcome: list[str] = []
    slow = threading.Thread(
        target=lambda: outcome.append(_grade_claimed(sessions, provider_env, item))
    )
    slow.start()
    wait_for(lambda: llm.in_flight == 1, "the call to reach the vendor")
    with unit_of_work(sessions) as session:
        session.execute(
            sa.update(WorkItem).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        assert reap_expired_leases(session, now=utcnow()) == 1
    llm.gate.set()
    slow.join(30)
    assert outcome == ["released"]

    rows, spent = _results(sessions, batch_id)
    [unused] = rows
    assert unused.work_item_id is None and unused.error_message == service.LEASE_LOST
    assert unused.cost_usd and spent == pytest.approx(unused.cost_usd)

    with unit_of_work(sessions) as session:
        claim(session, owner="w1", limit=1, lease_seconds=300, now=utcnow())
    assert _grade_claimed(sessions, provider_env, item) == "completed"
    rows, spent = _results(sessions, batch_id)
    assert len(rows) == 2 and spent == pytest.approx(_charged(rows))


def test_a_document_retried_by_its_teacher_adds_only_its_new_calls(sessions, llm, provider_env):
    """Failed (two unusable answers, both paid), then retried by a person and graded:
    the spending is every answer once, the failed ones not counted again."""
    llm.script("gpt-4o", [Fault.non_json_text(), Fault.non_json_text()])
    batch_id, [item] = _claimed(sessions, targets=[Target("openai", "gpt-4o")])
    assert _grade_claimed(sessions, provider_env, item) == "failed"
    [failed], spent_failing = _results(sessions, batch_id)
    assert failed.cost_usd and spent_failing == pytest.approx(failed.cost_usd)

    with unit_of_work(sessions) as session:
        assert lifecycle.retry_failed_batch(session, batch_id=batch_id) == 1
    with unit_of_work(sessions) as session:
        claim(session, owner="w1", limit=1, lease_seconds=300, now=utcnow())
    assert _grade_claimed(sessions, provider_env, item) == "completed"

    rows, spent = _results(sessions, batch_id)
    assert [row.status for row in rows] == ["failed", "completed"]
    assert spent == pytest.approx(_charged(rows))


def test_the_same_unusable_batch_answer_in_two_attempts_is_paid_for_twice(sessions):
    """A vendor batch answers with no latency of its own, and a model at temperature 0
    can give the same unusable answer (cut off at max_tokens, say) in the next provider
    batch: two calls billed, so two charges; only a write made again is charged once."""
    batch_id, [item] = _claimed(sessions, targets=[Target("openai", "gpt-4o")])
    cut_off = Usage(
        raw_text='{"score": 7, "feedback": "The argu',
        prompt_tokens=1_000,
        completion_tokens=200,
        latency_ms=0,
        delivery="batch_api",
    )

    def attempt(now) -> None:
        with unit_of_work(sessions) as session:
            [claimed] = claim(session, owner="w1", limit=1, lease_seconds=300, now=now)
            assert claimed.id == item
        for _ in range(2):  # the second: the same write made again
            with unit_of_work(sessions) as session:
                service.retry_later(
                    session,
                    item_id=item,
                    owner="w1",
                    error="repair failed",
                    retry_after=None,
                    usage=cut_off,
                )

    with unit_of_work(sessions) as session:  # the first attempt's claim is _claimed's
        service.release_item(session, item_id=item, owner="w1", not_before_seconds=0)
    attempt(utcnow())
    attempt(utcnow() + LATER)

    rows, spent = _results(sessions, batch_id)
    assert len(rows) == 2
    one = GPT.cost(1_000, 200, batch=True)
    assert spent == pytest.approx(2 * one) == pytest.approx(_charged(rows))
