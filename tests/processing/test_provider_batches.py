"""Batch-API delivery through the fake vendor's batch endpoints: submit, poll, collect,
partial failures, expiry, refusal, pause, cancel, auto, restart, exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.lifecycle import service as lifecycle
from grading_app.models import GradeResult, JobBatch, WorkItem, utcnow
from grading_app.models.costs import ProviderBatch
from grading_app.processing import provider_batches
from grading_app.processing.claim import claim, reap_expired_leases
from grading_app.processing.provider_batches import ProviderBatchManager
from grading_app.processing.runtime import provider_resolver
from grading_app.processing.worker import LocalWorker
from grading_app.providers.base import ChatRequest
from grading_app.providers.batch_api import BatchLine
from grading_app.providers.targets import Target
from tests.factories import make_batch, make_job
from tests.fakes.llm_server import Fault
from tests.processing.helpers import batch_status

TARGETS = {"openai": Target("openai", "gpt-fake"), "claude": Target("claude", "claude-fake")}
LATER = timedelta(minutes=30)  # past any poll delay and row lease


def _manager(sessions, provider_env, owner="manager-1") -> ProviderBatchManager:
    resolve, _ = provider_resolver(provider_env)
    return ProviderBatchManager(sessions, resolve_provider=resolve, owner=owner, request_timeout=5)


def _batch(sessions, *, documents=3, targets=None, settings=None, deadline=None):
    with unit_of_work(sessions) as session:
        batch = make_batch(
            session, settings=settings or {"delivery": "batch_api"}, deadline=deadline
        )
        job = make_job(session, batch=batch, documents=documents, targets=targets)
        return batch.id, job.id


@pytest.fixture
def answering(sessions, llm, provider_env):
    """Submits a batch of three documents to a provider's batch API and returns the
    batch's id and the manager; the vendor is still answering (five polls to go) and
    answers `answered` lines if cancelled."""

    def submit(provider: str, *, answered: int = 1) -> tuple[str, ProviderBatchManager]:
        batch_id, _ = _batch(sessions, documents=3, targets=[TARGETS[provider]])
        llm.batches.polls_until_done = 5
        llm.batches.answer_before_cancel = answered
        manager = _manager(sessions, provider_env)
        manager.step()
        return batch_id, manager

    return submit


def _taken(manager: ProviderBatchManager, provider: str):
    """The provider's batch API and the row and items a manager took, not yet sent."""
    api = manager.batch_api(provider)
    [group] = manager._groups(utcnow())
    row_id, items = manager._take(*group, api, now=utcnow())
    return api, row_id, items


def _run(manager, *, rounds=2) -> None:
    """Submit now, then poll and collect as if the poll delays had passed."""
    manager.step()
    for round_ in range(1, rounds):
        manager.step(now=utcnow() + LATER * round_)


def _items(sessions) -> list[WorkItem]:
    with unit_of_work(sessions, read_only=True) as session:
        return list(session.scalars(sa.select(WorkItem).order_by(WorkItem.sequence)))


def _rows(sessions) -> list[ProviderBatch]:
    with unit_of_work(sessions, read_only=True) as session:
        return list(session.scalars(sa.select(ProviderBatch).order_by(ProviderBatch.created_at)))


def _results(sessions) -> list[GradeResult]:
    with unit_of_work(sessions, read_only=True) as session:
        return list(session.scalars(sa.select(GradeResult)))


def _lines(model: str, *custom_ids: str) -> list[BatchLine]:
    return [
        BatchLine(custom_id, ChatRequest(model=model, system="", user="a document"))
        for custom_id in custom_ids
    ]


def _live_calls(llm) -> int:
    return sum(
        1
        for r in llm.requests
        if r.method == "POST" and r.path.endswith(("/chat/completions", "/messages"))
    )


def _batch_lines(llm) -> int:
    return sum(1 for r in llm.requests if r.method == "BATCH")


@pytest.mark.parametrize("provider", ["openai", "claude"])
def test_every_item_is_graded_once_through_the_batch_api(sessions, llm, provider_env, provider):
    batch_id, _ = _batch(sessions, documents=3, targets=[TARGETS[provider]])
    llm.batches.polls_until_done = 1

    _run(_manager(sessions, provider_env), rounds=4)

    items = _items(sessions)
    assert {i.state for i in items} == {"completed"} and {i.attempts for i in items} == {1}
    assert all(i.provider_batch_id is None and i.lease_owner is None for i in items)
    results = _results(sessions)
    assert sorted(r.work_item_id for r in results) == sorted(i.id for i in items)
    assert {r.delivery for r in results} == {"batch_api"}
    assert all(r.score is not None and r.prompt_tokens for r in results)
    [row] = _rows(sessions)
    assert row.state == "collected" and row.request_count == 3 and row.succeeded_count == 3
    assert row.failed_count == 0 and row.requeued_count == 0 and row.error is None
    assert row.external_id and row.collected_at and row.batch_id == batch_id
    assert _live_calls(llm) == 0 and _batch_lines(llm) == 3
    with unit_of_work(sessions, read_only=True) as session:
        batch = session.get(JobBatch, batch_id)
        assert batch.status == "completed" and batch.completed_items == 3


def test_live_claims_leave_batch_api_items_alone(sessions, llm, provider_env):
    _batch(sessions, documents=2, targets=[TARGETS["openai"], Target("openrouter", "x/y")])
    with unit_of_work(sessions) as session:
        claimed = claim(session, owner="w", limit=10, lease_seconds=60, now=utcnow())
    assert {item.id for item in claimed} == {
        i.id for i in _items(sessions) if i.provider == "openrouter"
    }
    _manager(sessions, provider_env).step()
    taken = [i for i in _items(sessions) if i.provider == "openai"]
    assert {i.state for i in taken} == {"running"}
    assert all(i.lease_owner == f"provider-batch:{i.provider_batch_id}" for i in taken)


def test_failed_lines_are_retried_or_failed_as_live_calls_are(sessions, llm, provider_env):
    _batch(sessions, documents=3, targets=[TARGETS["openai"]])
    first, second, third = (i.id for i in _items(sessions))
    llm.batches.script_line(first, Fault.server_error())  # retryable, once
    llm.batches.script_line(second, Fault.status(400, "the request was malformed"))
    manager = _manager(sessions, provider_env)

    _run(manager)

    by_id = {i.id: i for i in _items(sessions)}
    assert by_id[third].state == "completed"
    assert by_id[second].state == "failed" and "malformed" in by_id[second].last_error
    assert by_id[first].state == "queued" and by_id[first].last_error
    assert by_id[first].provider_batch_id is None
    [row] = _rows(sessions)
    assert (row.succeeded_count, row.failed_count) == (1, 2)

    # Its retry goes in the next provider batch, once its backoff has passed.
    with unit_of_work(sessions) as session:
        session.get(WorkItem, first).next_attempt_at = None
    _run(manager)
    assert {i.id: i.state for i in _items(sessions)}[first] == "completed"
    assert len(_rows(sessions)) == 2
    assert Counter(r.work_item_id for r in _results(sessions) if r.work_item_id)[first] == 1


def test_expiry_sends_the_rest_back_with_the_reason(sessions, llm, provider_env):
    _batch(sessions, documents=3, targets=[TARGETS["claude"]])
    llm.batches.expire_next(answered=1)

    _run(_manager(sessions, provider_env))

    states = Counter(i.state for i in _items(sessions))
    assert states == {"completed": 1, "queued": 2}
    back = [i for i in _items(sessions) if i.state == "queued"]
    assert all("expired" in i.last_error and i.attempts == 0 for i in back)
    assert all(i.provider_batch_id is None and i.lease_owner is None for i in back)
    [row] = _rows(sessions)
    assert row.state == "collected" and row.succeeded_count == 1 and row.requeued_count == 2


def test_a_refused_batch_sends_its_items_back_or_fails_them(sessions, llm, provider_env):
    _batch(sessions, documents=2, targets=[TARGETS["openai"]])
    manager = _manager(sessions, provider_env)

    llm.batches.refuse_next(Fault.server_error(503))
    manager.step()
    items = _items(sessions)
    assert {i.state for i in items} == {"queued"} and {i.attempts for i in items} == {0}
    assert all("refused" in i.last_error and i.next_attempt_at for i in items)
    assert [r.state for r in _rows(sessions)] == ["failed"]

    with unit_of_work(sessions) as session:
        session.execute(sa.update(WorkItem).values(next_attempt_at=None))
    llm.batches.refuse_next(Fault.status(400, "batch too large for this account"))
    manager.step()
    items = _items(sessions)
    assert {i.state for i in items} == {"failed"}
    assert all("too large" in i.last_error for i in items)
    assert [r.state for r in _rows(sessions)] == ["failed", "failed"]
    assert "too large" in _rows(sessions)[1].error


def test_pause_cancels_at_the_vendor_and_keeps_what_was_answered(sessions, llm, answering):
    batch_id, manager = answering("openai")
    with unit_of_work(sessions) as session:
        lifecycle.pause_batch(session, batch_id=batch_id)

    report = manager.step()  # not due a poll yet: cancelled all the same

    assert report.cancelled == 1
    assert Counter(i.state for i in _items(sessions)) == {"completed": 1, "queued": 2}
    [row] = _rows(sessions)
    assert row.state == "collected" and row.succeeded_count == 1 and row.requeued_count == 2
    with unit_of_work(sessions, read_only=True) as session:
        totals = provider_batches.totals(session, batch_id=batch_id)
    assert (totals.open, totals.answered) == (0, 1)

    # Paused: nothing more is sent; resumed: the rest goes in a new provider batch.
    manager.step(now=utcnow() + LATER)
    assert len(_rows(sessions)) == 1
    with unit_of_work(sessions) as session:
        lifecycle.resume_batch(session, batch_id=batch_id)
    llm.batches.polls_until_done = 0
    _run(manager)
    assert {i.state for i in _items(sessions)} == {"completed"}
    assert len(_results(sessions)) == 3


def test_cancel_cancels_at_the_vendor_and_the_rest(sessions, answering):
    batch_id, manager = answering("claude")
    with unit_of_work(sessions) as session:
        lifecycle.cancel_batch(session, batch_id=batch_id)

    manager.step()

    assert Counter(i.state for i in _items(sessions)) == {"completed": 1, "cancelled": 2}
    with unit_of_work(sessions, read_only=True) as session:
        batch = session.get(JobBatch, batch_id)
        assert batch.status == "cancelled" and batch.completed_items == 1
        assert batch.total_items == 1
    assert len(_results(sessions)) == 1


def test_auto_uses_the_batch_api_while_the_deadline_leaves_room(sessions, llm, provider_env):
    now = utcnow()
    far, _ = _batch(
        sessions, settings={"delivery": "auto"}, deadline=now + timedelta(days=3), documents=2
    )
    near, _ = _batch(
        sessions, settings={"delivery": "auto"}, deadline=now + timedelta(hours=3), documents=2
    )
    llm.batches.polls_until_done = 100
    manager = _manager(sessions, provider_env)
    manager.step()
    [row] = _rows(sessions)
    assert row.batch_id == far and row.state == "submitted"
    assert {i.state for i in _items(sessions) if i.batch_id == near} == {"queued"}

    # Still answering two hours before the deadline: it may go on.
    manager.step(now=now + timedelta(days=3) - timedelta(hours=2))
    assert [r.state for r in _rows(sessions)] == ["submitted"]
    # Half an hour before: cancelled at the vendor, the rest goes live.
    manager.step(now=now + timedelta(days=3) - timedelta(minutes=30))
    assert {i.state for i in _items(sessions) if i.batch_id == far} == {"queued"}
    assert [r.state for r in _rows(sessions)] == ["collected"]
    with unit_of_work(sessions) as session:
        claimed = claim(session, owner="w", limit=10, lease_seconds=60, now=now + timedelta(days=3))
    assert {item.batch_id for item in claimed} == {far, near}


def test_a_new_manager_collects_what_a_stopped_one_submitted(sessions, llm, provider_env):
    _batch(sessions, documents=3, targets=[TARGETS["openai"]])
    _manager(sessions, provider_env, owner="first").step()  # then it is gone

    _run(_manager(sessions, provider_env, owner="second"))

    assert {i.state for i in _items(sessions)} == {"completed"}
    assert len(_results(sessions)) == 3 and _batch_lines(llm) == 3


@pytest.mark.parametrize("provider", ["openai", "claude"])
def test_a_batch_left_preparing_with_nothing_sent_is_released(
    sessions, llm, provider_env, provider
):
    _batch(sessions, documents=2, targets=[TARGETS[provider]])
    _taken(_manager(sessions, provider_env, owner="first"), provider)  # then it stopped

    _run(_manager(sessions, provider_env, owner="second"))

    [row] = _rows(sessions)
    assert row.state == "failed" and "stopped" in row.error
    assert {i.state for i in _items(sessions)} == {"queued"}
    assert {i.attempts for i in _items(sessions)} == {0}
    assert llm.batches.ids() == []


@pytest.mark.parametrize("provider", ["openai", "claude"])
def test_a_batch_the_vendor_took_before_a_crash_is_found_and_collected_once(
    sessions, llm, provider_env, provider, monkeypatch
):
    """The vendor accepted the batch (and will bill it); the worker crashed before
    recording its id. The next manager finds it (OpenAI by its metadata, Anthropic by
    its size and time) and collects it: its items are not sent again."""
    _batch(sessions, documents=2, targets=[TARGETS[provider]])
    # At the vendor already: a batch of the same size that a row has recorded, and an
    # unrecorded one of another size (sent by someone else): neither is it.
    api = _manager(sessions, provider_env, owner="other").batch_api(provider)
    model = TARGETS[provider].model
    recorded = api.submit(_lines(model, "x-1", "x-2"), metadata={})
    api.submit(_lines(model, "y-1"), metadata={})
    with unit_of_work(sessions) as session:
        session.add(
            ProviderBatch(
                provider=provider,
                model=model,
                state="collected",
                external_id=recorded.external_id,
                created_at=utcnow() - timedelta(minutes=1),
            )
        )

    def crash(*args, **kwargs):
        raise RuntimeError("the worker stopped here")

    monkeypatch.setattr(provider_batches, "_record_vendor", crash)
    with pytest.raises(RuntimeError):
        _manager(sessions, provider_env, owner="first").step()
    monkeypatch.undo()
    sent = llm.batches.ids()[-1]
    assert len(llm.batches.ids()) == 3 and _rows(sessions)[-1].state == "preparing"

    _run(_manager(sessions, provider_env, owner="second"))

    row = _rows(sessions)[-1]
    assert row.state == "collected" and row.succeeded_count == 2 and row.external_id == sent
    items = _items(sessions)
    assert {i.state for i in items} == {"completed"} and {i.attempts for i in items} == {1}
    assert len(llm.batches.ids()) == 3 and _batch_lines(llm) == 2  # not sent again
    assert len(_results(sessions)) == 2


def test_collecting_twice_applies_nothing_twice(sessions, llm, provider_env):
    _batch(sessions, documents=2, targets=[TARGETS["openai"]])
    manager = _manager(sessions, provider_env)
    _run(manager)
    assert len(_results(sessions)) == 2
    # As if the manager had stopped after applying the results, before closing the row.
    with unit_of_work(sessions) as session:
        session.execute(sa.update(ProviderBatch).values(state="ended", next_poll_at=None))

    report = _manager(sessions, provider_env, owner="other").step(now=utcnow() + LATER)

    assert report.collected == 1 and report.applied == {}
    assert len(_results(sessions)) == 2
    assert {i.state for i in _items(sessions)} == {"completed"}


def test_the_api_lists_a_batchs_provider_batches(client, llm, provider_env):
    sessions = client.app.state.sessionmaker
    batch_id, _ = _batch(sessions, documents=2, targets=[TARGETS["openai"]])
    _run(_manager(sessions, provider_env))

    answer = client.get(f"/api/batches/{batch_id}/provider-batches")

    assert answer.status_code == 200
    body = answer.json()
    assert body["totals"] == {"total": 1, "open": 0, "answered": 2, "cost_usd": 0.0}
    [item] = body["items"]
    assert item["state"] == "collected" and item["provider"] == "openai"
    assert item["request_count"] == 2 and item["succeeded_count"] == 2
    assert "sk-test" not in answer.text
    assert client.get("/api/batches/nope/provider-batches").status_code == 404


def test_pause_and_read_say_what_was_answered_already(client, answering):
    batch_id, manager = answering("openai", answered=2)

    paused = client.post(f"/api/batches/{batch_id}/pause")

    assert paused.status_code == 200
    assert paused.json()["provider_batches"] == {
        "total": 1,
        "open": 1,
        "answered": 0,
        "cost_usd": 0.0,
    }
    manager.step()
    read = client.get(f"/api/batches/{batch_id}").json()
    assert read["status"] == "paused"
    assert read["provider_batches"] == {"total": 1, "open": 0, "answered": 2, "cost_usd": 0.0}


def test_the_local_worker_does_batch_api_work_beside_live_calls(sessions, llm, provider_env):
    live_id, _ = _batch(
        sessions, settings={"delivery": "live"}, documents=2, targets=[TARGETS["claude"]]
    )
    api_id, _ = _batch(sessions, documents=2, targets=[TARGETS["openai"]])
    resolve, _ = provider_resolver(provider_env)
    worker = LocalWorker(
        sessions,
        resolve_provider=resolve,
        concurrency=2,
        request_timeout=5,
        poll_interval=0.05,
        provider_batch_interval=0.1,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"until_idle": True})
    thread.start()
    thread.join(60)  # the first poll is due POLL_FIRST after submitting
    stop.set()
    thread.join(10)
    assert not thread.is_alive()

    assert {batch_status(sessions, b) for b in (live_id, api_id)} == {"completed"}
    deliveries = Counter((r.provider, r.delivery) for r in _results(sessions))
    assert deliveries == {("claude", "live"): 2, ("openai", "batch_api"): 2}
    assert _batch_lines(llm) == 2


def test_a_line_over_the_vendors_size_limit_fails_and_the_rest_goes_on(sessions, llm, provider_env):
    from grading_app.providers.batch_api import batch_api_for

    def tiny(provider):
        api = batch_api_for(provider)
        api.max_bytes = 1  # not one line fits
        return api

    _batch(sessions, documents=3, targets=[TARGETS["openai"]])
    resolve, _ = provider_resolver(provider_env)
    manager = ProviderBatchManager(
        sessions, resolve_provider=resolve, owner="m", request_timeout=5, batch_api_for=tiny
    )

    manager.step()

    states = Counter(i.state for i in _items(sessions))
    assert states == {"failed": 1, "queued": 2}
    [failed] = [i for i in _items(sessions) if i.state == "failed"]
    assert "too large" in failed.last_error
    assert all(i.provider_batch_id is None for i in _items(sessions))
    assert [r.state for r in _rows(sessions)] == ["failed"]


def test_a_provider_batch_the_vendor_failed_counts_as_an_attempt(sessions, llm, provider_env):
    _batch(
        sessions,
        documents=2,
        targets=[TARGETS["openai"]],
        settings={"delivery": "batch_api", "max_retries": 0},
    )
    llm.batches.fail_next("the input file is malformed")

    _run(_manager(sessions, provider_env))

    items = _items(sessions)
    assert {i.state for i in items} == {"failed"}
    assert all("malformed" in i.last_error for i in items)
    [row] = _rows(sessions)
    assert row.state == "collected" and "malformed" in row.error and row.failed_count == 2


def test_items_of_a_provider_without_its_key_fail_naming_it(sessions, llm, provider_env):
    _batch(sessions, documents=2, targets=[TARGETS["claude"]])
    without_key = {k: v for k, v in provider_env.items() if not k.startswith("ANTHROPIC")}

    _manager(sessions, without_key).step()

    items = _items(sessions)
    assert {i.state for i in items} == {"failed"}
    assert all("ANTHROPIC_API_KEY" in i.last_error for i in items)
    assert _rows(sessions) == []


def test_a_batch_paused_between_taking_and_sending_sends_nothing(sessions, llm, provider_env):
    batch_id, _ = _batch(sessions, documents=2, targets=[TARGETS["openai"]])
    manager = _manager(sessions, provider_env)
    api, row_id, items = _taken(manager, "openai")
    with unit_of_work(sessions) as session:
        lifecycle.pause_batch(session, batch_id=batch_id)

    manager._send(row_id, items, api)

    assert llm.batches.ids() == []
    items = _items(sessions)
    assert {i.state for i in items} == {"queued"} and {i.attempts for i in items} == {0}
    assert all(i.provider_batch_id is None for i in items)
    [row] = _rows(sessions)
    assert row.state == "failed" and "paused" in row.error


def test_a_provider_batch_that_would_pass_the_budget_is_not_sent(sessions, llm, provider_env):
    """Before anything is paid for: the lines at the batch price against the budget; over
    it, nothing goes to the vendor, the items wait in the queue and the batch pauses
    saying why."""
    from grading_app.models import ModelPrice

    batch_id, _ = _batch(
        sessions,
        documents=3,
        targets=[TARGETS["openai"]],
        settings={"delivery": "batch_api", "budget": 0.0001},
    )
    with unit_of_work(sessions) as session:
        session.add(
            ModelPrice(
                provider="openai",
                model="gpt-fake",
                input_per_million=10.0,
                output_per_million=40.0,
                batch_discount=0.5,
            )
        )

    _manager(sessions, provider_env).step()

    assert llm.batches.ids() == [] and _batch_lines(llm) == 0
    items = _items(sessions)
    assert {i.state for i in items} == {"queued"} and {i.attempts for i in items} == {0}
    [row] = _rows(sessions)
    assert row.state == "failed" and "budget of $0.00" in (row.error or "")
    with unit_of_work(sessions, read_only=True) as session:
        batch = session.get(JobBatch, batch_id)
        assert batch is not None and batch.status == "paused"
        assert batch.pause_reason and batch.pause_reason.startswith("Paused: the budget")


# --- what was paid for, and what is left at the vendor ---------------------------------

PRICED = Target("openai", "gpt-4o")  # a model with a default price


def _spent(sessions, batch_id) -> float:
    with unit_of_work(sessions, read_only=True) as session:
        return session.get(JobBatch, batch_id).spent_usd


def test_an_answer_whose_repair_call_failed_is_paid_for_when_retried(sessions, llm, provider_env):
    batch_id, _ = _batch(sessions, documents=1, targets=[PRICED])
    [item] = _items(sessions)
    llm.batches.script_line(item.id, Fault.non_json_text())
    llm.script(PRICED.model, [Fault.server_error(retry_after=0)])  # the live repair call
    manager = _manager(sessions, provider_env)

    _run(manager)

    [item] = _items(sessions)
    assert item.state == "queued"  # retried
    [unused] = _results(sessions)
    assert unused.work_item_id is None and unused.delivery == "batch_api"
    assert unused.cost_usd and unused.cost_usd > 0
    assert _spent(sessions, batch_id) == pytest.approx(unused.cost_usd)
    assert _rows(sessions)[0].cost_usd == pytest.approx(unused.cost_usd)

    _run(manager)  # the retry, in the next provider batch

    results = _results(sessions)
    assert {i.state for i in _items(sessions)} == {"completed"} and len(results) == 2
    assert _spent(sessions, batch_id) == pytest.approx(sum(r.cost_usd for r in results))


def test_the_reaper_leaves_the_items_of_an_open_provider_batch(sessions, llm, provider_env):
    """The vendor is late, or no worker ran for days: the items' leases have run out,
    but their answers will come (and be billed); they stay with their provider batch."""
    batch_id, _ = _batch(sessions, documents=2, targets=[PRICED])
    llm.batches.polls_until_done = 1
    manager = _manager(sessions, provider_env)
    manager.step()
    assert {i.state for i in _items(sessions)} == {"running"}

    with unit_of_work(sessions) as session:
        assert reap_expired_leases(session, now=utcnow() + timedelta(days=3)) == 0

    _run(manager, rounds=3)
    items = _items(sessions)
    assert {i.state for i in items} == {"completed"} and {i.attempts for i in items} == {1}
    results = _results(sessions)
    assert len(results) == 2 and _batch_lines(llm) == 2 and _live_calls(llm) == 0
    assert _spent(sessions, batch_id) == pytest.approx(sum(r.cost_usd for r in results))


def test_a_provider_batch_no_worker_can_poll_is_given_up_after_the_window(
    sessions, llm, provider_env
):
    """Its provider taken out of the configuration while the vendor held the batch: the
    row is polled again until a day past the vendor's window, then its items go back to
    the queue with the reason (the reaper leaves them alone while the row is open)."""
    _batch(sessions, documents=2, targets=[TARGETS["openai"]])
    llm.batches.polls_until_done = 100
    _manager(sessions, provider_env).step()
    without_openai = {k: v for k, v in provider_env.items() if not k.startswith("OPENAI")}
    unconfigured = _manager(sessions, without_openai, owner="manager-2")

    unconfigured.step(now=utcnow() + timedelta(hours=30))
    [row] = _rows(sessions)
    assert row.state == "submitted" and {i.state for i in _items(sessions)} == {"running"}

    unconfigured.step(now=utcnow() + timedelta(days=3))
    [row] = _rows(sessions)
    assert row.state == "failed" and "no batch API configured" in row.error
    items = _items(sessions)
    assert {i.state for i in items} == {"queued"}
    assert {i.attempts for i in items} == {0}
    assert all(i.provider_batch_id is None and "day past" in i.last_error for i in items)


@pytest.mark.parametrize("ending", ["completed", "expired", "failed", "cancelled"])
def test_no_file_is_left_at_the_vendor(sessions, llm, provider_env, ending):
    batch_id, _ = _batch(sessions, documents=3, targets=[TARGETS["openai"]])
    if ending == "expired":
        llm.batches.expire_next(answered=1)
    elif ending == "failed":
        llm.batches.fail_next("the input file is malformed")
    manager = _manager(sessions, provider_env)
    manager.step()
    assert len(llm.batches.file_ids()) == 1  # the input, while the vendor works
    if ending == "cancelled":
        llm.batches.polls_until_done = 5
        with unit_of_work(sessions) as session:
            lifecycle.cancel_batch(session, batch_id=batch_id)

    _run(manager, rounds=4)  # what went back to the queue goes in a next provider batch

    rows = _rows(sessions)
    assert {row.state for row in rows} == {"collected"} and all(r.input_file_id for r in rows)
    assert llm.batches.file_ids() == []
    deletes = {r.path for r in llm.requests if r.method == "DELETE"}
    assert {f"/v1/files/{row.input_file_id}" for row in rows} <= deletes


def test_a_file_the_vendor_will_not_delete_is_logged_and_the_results_kept(
    sessions, llm, provider_env, caplog
):
    _batch(sessions, documents=2, targets=[TARGETS["openai"]])
    llm.batches.failing_deletes = 1

    _run(_manager(sessions, provider_env))

    assert {i.state for i in _items(sessions)} == {"completed"} and len(_results(sessions)) == 2
    [row] = _rows(sessions)
    assert row.state == "collected"
    assert len(llm.batches.file_ids()) == 1  # the one that failed; the others are gone
    [warning] = [r for r in caplog.records if "could not delete" in r.getMessage()]
    assert llm.batches.file_ids()[0] in warning.getMessage()
    assert "sk-test" not in caplog.text


def test_anthropic_batches_taken_for_each_other_after_a_crash_change_nothing_twice(
    sessions, llm, provider_env, monkeypatch
):
    """The window that remains on Anthropic: two provider batches of one size, both sent
    and neither recorded, may be taken for each other. Whatever was matched, every item
    gets one grade, and what is stored and charged is one answer per grade."""
    for _ in range(2):
        _batch(sessions, documents=2, targets=[TARGETS["claude"]])
    # Sent, then the worker stopped before recording either vendor id.
    monkeypatch.setattr(provider_batches, "_record_vendor", lambda *args, **kwargs: True)
    _manager(sessions, provider_env, owner="first").step()
    monkeypatch.undo()
    assert len(llm.batches.ids()) == 2
    assert {r.state for r in _rows(sessions)} == {"preparing"}

    _run(_manager(sessions, provider_env, owner="second"), rounds=4)

    items = _items(sessions)
    assert {i.state for i in items} == {"completed"}
    results = _results(sessions)
    assert sorted(r.work_item_id for r in results) == sorted(i.id for i in items)
    adopted = {r.external_id for r in _rows(sessions)[:2]}
    assert adopted == set(llm.batches.ids()[:2])  # each vendor batch taken by one row
