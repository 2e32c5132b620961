"""Finishing items under concurrency and control: leases are exclusive, a paused or
cancelled job keeps its status, a submission graded by two models settles once, and the
estimate follows the observed rate."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from grading_app.config import Settings
from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.jobs.service import add_submission, queue_job
from grading_app.lifecycle import service as lifecycle
from grading_app.models import GradeResult, GradingJob, JobBatch, Submission, WorkItem, utcnow
from grading_app.processing import service
from grading_app.processing.claim import claim
from grading_app.processing.runtime import provider_resolver
from grading_app.processing.worker import LocalWorker, grade_claimed_item
from grading_app.providers.ratelimit import SlotTimeout
from grading_app.providers.targets import Target
from grading_app.upgrade.schema import upgrade_schema
from tests.factories import make_batch, make_job, make_outcome
from tests.fakes.llm_server import Fault


def _claim(sessions, *, owner="w1", limit=100, lease=300, now=None):
    with unit_of_work(sessions) as session:
        return [
            i.id
            for i in claim(
                session, owner=owner, limit=limit, lease_seconds=lease, now=now or utcnow()
            )
        ]


def _job(sessions, *, documents=2, targets=None):
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        job = make_job(session, batch=batch, documents=documents, targets=targets)
        return batch.id, job.id


def test_only_one_taker_gets_a_lease(sessions):
    _job(sessions, documents=1)
    [item_id] = _claim(sessions, owner="dispatcher")
    with unit_of_work(sessions) as session:
        assert service.take_over_lease(
            session,
            item_id=item_id,
            owner="dispatcher",
            new_owner="dispatcher/task-1",
            lease_seconds=300,
            now=utcnow(),
        )
    with unit_of_work(sessions) as session:  # the same message delivered again
        assert not service.take_over_lease(
            session,
            item_id=item_id,
            owner="dispatcher",
            new_owner="dispatcher/task-2",
            lease_seconds=300,
            now=utcnow(),
        )
    with unit_of_work(sessions) as session:  # a lease that ran out is not taken over
        assert not service.take_over_lease(
            session,
            item_id=item_id,
            owner="dispatcher/task-1",
            new_owner="dispatcher/task-3",
            lease_seconds=300,
            now=utcnow() + timedelta(seconds=301),
        )
    with unit_of_work(sessions) as session:
        assert not service.complete_item(
            session,
            item_id=item_id,
            owner="dispatcher/task-2",
            outcome=make_outcome(),
            single_model=True,
        )
        assert service.complete_item(
            session,
            item_id=item_id,
            owner="dispatcher/task-1",
            outcome=make_outcome(),
            single_model=True,
        )


def test_hold_before_the_call_renews_the_lease_and_honours_pause_and_expiry(sessions):
    batch_id, _ = _job(sessions, documents=2)
    start = utcnow()
    first, second = _claim(sessions, lease=60, now=start)
    later = start + timedelta(seconds=50)
    with unit_of_work(sessions) as session:
        assert service.hold_if_runnable(
            session, item_id=first, owner="w1", lease_seconds=60, now=later
        )
        assert session.get(WorkItem, first).lease_expires_at == later + timedelta(seconds=60)
        # Not the holder: no.
        assert not service.hold_if_runnable(
            session, item_id=first, owner="w2", lease_seconds=60, now=later
        )
    # A lease that ran out while waiting (another worker may have it now): no call.
    with unit_of_work(sessions) as session:
        assert not service.hold_if_runnable(
            session,
            item_id=second,
            owner="w1",
            lease_seconds=60,
            now=start + timedelta(seconds=61),
        )
    with unit_of_work(sessions) as session:
        lifecycle.pause_batch(session, batch_id=batch_id)
    with unit_of_work(sessions) as session:
        assert not service.hold_if_runnable(
            session, item_id=first, owner="w1", lease_seconds=60, now=later
        )


def test_a_paused_or_cancelled_job_keeps_its_status_when_its_last_call_lands(sessions):
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        paused = make_job(session, batch=batch, documents=1, text_prefix="P ")
        cancelled = make_job(session, batch=batch, documents=2, text_prefix="C ")
        paused_id, cancelled_id, batch_id = paused.id, cancelled.id, batch.id
    in_flight = _claim(sessions, limit=2)
    with unit_of_work(sessions) as session:
        jobs = {item_id: session.get(WorkItem, item_id).job_id for item_id in in_flight}
        lifecycle.pause_job(session, job_id=paused_id)
        lifecycle.cancel_job(session, job_id=cancelled_id)
    for item_id in in_flight:
        with unit_of_work(sessions) as session:
            assert service.complete_item(
                session, item_id=item_id, owner="w1", outcome=make_outcome(), single_model=True
            )
    with unit_of_work(sessions) as session:
        statuses = {job_id: session.get(GradingJob, job_id).status for job_id in jobs.values()}
        assert statuses == {paused_id: "paused", cancelled_id: "cancelled"}
        batch = session.get(JobBatch, batch_id)
        assert batch.completed_jobs == 0 and batch.completed_items == 2


def test_two_models_finishing_one_submission_at_once_settle_it(postgres_url):
    """On PostgreSQL two transactions each finishing one model's item of the same
    submission must not each see the other still running."""
    upgrade_schema(postgres_url, write=lambda _: None)
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    targets = [Target("openai", "model-a"), Target("claude", "model-b")]
    _, job_id = _job(sessions, documents=1, targets=targets)
    first, second = _claim(sessions)

    first_session = sessions()
    assert service.complete_item(
        first_session, item_id=first, owner="w1", outcome=make_outcome(), single_model=False
    )
    finished = threading.Event()

    def finish_second() -> None:
        with unit_of_work(sessions) as session:
            service.complete_item(
                session, item_id=second, owner="w1", outcome=make_outcome(), single_model=False
            )
        finished.set()

    thread = threading.Thread(target=finish_second)
    thread.start()
    time.sleep(0.5)  # the second waits for the first's lock on the submission
    assert not finished.is_set()
    first_session.commit()
    first_session.close()
    thread.join(10)
    assert finished.is_set()
    with unit_of_work(sessions) as session:
        submission = session.scalars(sa.select(Submission)).one()
        assert submission.status == "completed"
        job = session.get(GradingJob, job_id)
        assert job.processed_submissions == 1 and job.status == "completed"
    engine.dispose()


def test_the_estimate_follows_the_observed_rate(sessions):
    batch_id, job_id = _job(sessions, documents=4)
    items = _claim(sessions)
    with unit_of_work(sessions) as session:  # the work began 40 s ago
        started = utcnow() - timedelta(seconds=40)
        session.get(GradingJob, job_id).started_at = started
        session.get(JobBatch, batch_id).started_at = started
    for item_id in items[:2]:
        with unit_of_work(sessions) as session:
            service.complete_item(
                session, item_id=item_id, owner="w1", outcome=make_outcome(), single_model=True
            )
    with unit_of_work(sessions) as session:
        # Two of four done in 40 s: two more take about 40 s. On a loaded machine the
        # completions themselves take a while: `late` widens the bounds by that much.
        late = (utcnow() - started).total_seconds() - 40
        for row in (session.get(GradingJob, job_id), session.get(JobBatch, batch_id)):
            remaining = (row.estimated_completion - utcnow()).total_seconds()
            assert 35 - late <= remaining <= 41 + late


def test_an_estimate_that_has_gone_by_is_renewed_by_the_next_item(sessions):
    # A large batch is estimated anew at each whole percent only; an estimate that has
    # gone by meanwhile (work slower than it was) must not be shown until then.
    batch_id, job_id = _job(sessions, documents=300)
    items = _claim(sessions, limit=5)
    with unit_of_work(sessions) as session:
        started = utcnow() - timedelta(seconds=30)
        for row in (session.get(GradingJob, job_id), session.get(JobBatch, batch_id)):
            row.started_at = started
    for item_id in items[:4]:  # 4 of 300 done: the 5th is within the same percent
        with unit_of_work(sessions) as session:
            service.complete_item(
                session, item_id=item_id, owner="w1", outcome=make_outcome(), single_model=True
            )
    with unit_of_work(sessions) as session:
        for row in (session.get(GradingJob, job_id), session.get(JobBatch, batch_id)):
            row.estimated_completion = utcnow() - timedelta(seconds=5)
    with unit_of_work(sessions) as session:
        service.complete_item(
            session, item_id=items[4], owner="w1", outcome=make_outcome(), single_model=True
        )
    with unit_of_work(sessions) as session:
        for row in (session.get(GradingJob, job_id), session.get(JobBatch, batch_id)):
            assert row.estimated_completion > utcnow() + timedelta(minutes=10)


def test_no_rate_limit_slot_hands_the_item_back_without_using_an_attempt(sessions):
    _job(sessions, documents=1)
    [item_id] = _claim(sessions)

    class Saturated:
        def slot(self, provider, model, *, timeout=None):
            raise SlotTimeout("openai model 'fake-grader' is at its limit", retry_after=20)

    worker = LocalWorker(sessions, resolve_provider=provider_resolver({"OPENAI_API_KEY": "k"})[0])
    parts = worker.parts.__class__(**{**worker.parts.__dict__, "limiter": Saturated()})
    assert grade_claimed_item(parts, item_id=item_id, owner="w1") == "released"
    with unit_of_work(sessions) as session:
        item = session.get(WorkItem, item_id)
        assert item.state == "queued" and item.attempts == 0
        assert 15 <= (item.next_attempt_at - utcnow()).total_seconds() <= 21
    assert _claim(sessions) == []


def test_the_worker_loop_survives_a_locked_database(tmp_path, llm, provider_env):
    url = f"sqlite:///{tmp_path / 'grading_app.db'}"
    upgrade_schema(url, write=lambda _: None)
    engine = make_engine(url, busy_timeout_ms=100)
    sessions = make_sessionmaker(engine)
    _, job_id = _job(sessions, documents=3)
    # Another process holds the write lock for longer than the busy timeout.
    blocker = sqlite3.connect(tmp_path / "grading_app.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    worker = LocalWorker(
        sessions,
        resolve_provider=provider_resolver(provider_env)[0],
        concurrency=2,
        request_timeout=5,
        poll_interval=0.05,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"until_idle": True})
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive()  # claiming failed, and the loop waits and tries again
    blocker.execute("COMMIT")
    blocker.close()
    thread.join(30)
    stop.set()
    assert not thread.is_alive()
    with unit_of_work(sessions) as session:
        assert session.get(GradingJob, job_id).status == "completed"
    engine.dispose()


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "memory://"),
        ({"BROKER_URL": "redis://127.0.0.1:6379/0"}, "redis://127.0.0.1:6379/0"),
        ({"BROKER_URL": "amqp://guest@127.0.0.1//"}, "memory://"),
        (
            {"BROKER_URL": "redis://h/0", "RATE_LIMIT_STORAGE": "redis://other/1"},
            "redis://other/1",
        ),
    ],
)
def test_rate_limits_are_shared_through_the_brokers_redis_by_default(
    monkeypatch, environment, expected
):
    for name in ("BROKER_URL", "RATE_LIMIT_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None).effective_rate_limit_storage == expected


def test_an_item_released_after_its_job_was_cancelled_leaves_the_totals(sessions):
    batch_id, job_id = _job(sessions, documents=2)
    claimed = _claim(sessions, limit=2)
    with unit_of_work(sessions) as session:
        lifecycle.cancel_batch(session, batch_id=batch_id)
    worker = LocalWorker(sessions, resolve_provider=provider_resolver({})[0])
    # One worker finds the cancel before its call; the other's lease runs out.
    assert grade_claimed_item(worker.parts, item_id=claimed[0], owner="w1") == "released"
    with unit_of_work(sessions) as session:
        session.get(WorkItem, claimed[1]).lease_expires_at = utcnow() - timedelta(seconds=1)
    worker._reap()
    with unit_of_work(sessions) as session:
        assert {session.get(WorkItem, i).state for i in claimed} == {"cancelled"}
        job, batch = session.get(GradingJob, job_id), session.get(JobBatch, batch_id)
        assert (job.total_items, batch.total_items) == (0, 0)
        assert job.status == "cancelled" and batch.status == "cancelled"
        submissions = session.scalars(sa.select(Submission)).all()
        assert {s.status for s in submissions} == {"failed"}
        assert {s.error_message for s in submissions} == {"cancelled before grading"}
        assert job.failed_submissions == 2


def test_a_failed_grading_keeps_what_the_model_said_and_what_it_cost(sessions, llm, provider_env):
    # An unusable answer, then the repair call itself is refused for good.
    llm.script("sloppy", [Fault.non_json_text(), Fault.status(400, "context too long")])
    _job(sessions, documents=1, targets=[Target("openai", "sloppy")])
    [item_id] = _claim(sessions)
    worker = LocalWorker(sessions, resolve_provider=provider_resolver(provider_env)[0])
    assert grade_claimed_item(worker.parts, item_id=item_id, owner="w1") == "failed"
    with unit_of_work(sessions) as session:
        result = session.scalars(sa.select(GradeResult)).one()
        assert result.status == "failed" and "context too long" in result.error_message
        assert result.raw_response and result.raw_response.strip()  # the first answer
        assert result.prompt_tokens and result.completion_tokens
        assert result.latency_ms is not None


def test_until_idle_ends_when_what_is_left_is_paused_but_waits_for_retries(sessions):
    batch_id, _ = _job(sessions, documents=2)
    with unit_of_work(sessions) as session:
        assert service.has_runnable_work(session, batch_id=batch_id)
        lifecycle.pause_batch(session, batch_id=batch_id)
    with unit_of_work(sessions) as session:
        assert not service.has_runnable_work(session, batch_id=batch_id)
    worker = LocalWorker(sessions, resolve_provider=provider_resolver({})[0], poll_interval=0.05)
    thread = threading.Thread(
        target=worker.run, args=(threading.Event(),), kwargs={"until_idle": True}
    )
    thread.start()
    thread.join(10)
    assert not thread.is_alive()  # `grading-app grade` does not hang on a paused batch
    with unit_of_work(sessions) as session:
        lifecycle.resume_batch(session, batch_id=batch_id)
    [item_id, _] = _claim(sessions)
    with unit_of_work(sessions) as session:  # a retry waiting for its time is work left
        service.retry_later(
            session, item_id=item_id, owner="w1", error="rate limited", retry_after=60
        )
        session.execute(sa.update(WorkItem).where(WorkItem.id != item_id).values(state="completed"))
    with unit_of_work(sessions) as session:
        assert service.has_runnable_work(session, batch_id=batch_id)


def test_a_job_with_an_unreadable_document_finishes_with_errors(sessions):
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        job = make_job(session, batch=batch, documents=2, queue=False)
        add_submission(
            session,
            job=job,
            original_filename="broken.pdf",
            stored_filename="stored_broken.pdf",
            file_type="pdf",
            file_size=16,
            extracted_text=None,
            error="an incomplete PDF",
        )
        queue_job(session, job=job)
        batch_id, job_id = batch.id, job.id
    for item_id in _claim(sessions):
        with unit_of_work(sessions) as session:
            service.complete_item(
                session, item_id=item_id, owner="w1", outcome=make_outcome(), single_model=True
            )
    with unit_of_work(sessions) as session:
        job, batch = session.get(GradingJob, job_id), session.get(JobBatch, batch_id)
        assert (job.processed_submissions, job.failed_submissions) == (2, 1)
        assert job.status == "completed_with_errors"
        assert batch.status == "completed_with_errors"
