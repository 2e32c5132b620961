"""The Celery executor with real worker processes on the local Redis."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from grading_app.db import unit_of_work
from grading_app.lifecycle import service as lifecycle
from grading_app.models import GradeResult, JobBatch, Submission, WorkItem, utcnow
from grading_app.processing.celery_executor import CeleryDispatcher, make_celery
from grading_app.processing.claim import claim, reap_expired_leases
from tests.conftest import empty_redis_database
from tests.factories import make_batch, make_job
from tests.fakes.llm_server import RecordedRequest, document_of
from tests.processing.helpers import batch_status, wait_for

BROKER = "redis://127.0.0.1:6379/14"
CELERY = str(Path(sys.executable).with_name("celery"))
QUEUE = "grading"
# Celery's log line for a finished task: "Task NAME[ID] succeeded in 0.31s: 'completed'".
_TASK_RESULT = re.compile(r"Task grading\.grade_item\[[^\]]+\] succeeded in [\d.]+s: '(\w+)'")
POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def broker() -> Iterator[str]:
    with empty_redis_database(BROKER) as url:
        yield url


@dataclass
class CeleryWorkers:
    """Starts `celery worker` processes on the test broker and stops them all at the end."""

    broker: str
    env: dict[str, str]
    folder: Path
    started: list[tuple[subprocess.Popen, Path]] = field(default_factory=list)

    def start(self, database_url: str, *, concurrency: int = 4, **env: str) -> subprocess.Popen:
        log = self.folder / f"celery-worker-{len(self.started)}.log"
        # A file, not a pipe: a worker that logs a lot never blocks on a full pipe.
        with log.open("w") as output:
            process = subprocess.Popen(
                [CELERY, "-A", "grading_app.processing.celery_executor", "worker"]
                + ["--pool", "threads", "-c", str(concurrency), "-Q", QUEUE]
                + ["--without-heartbeat", "--without-mingle", "--without-gossip"]
                # INFO: the worker logs what each task returned (see task_results).
                + ["--loglevel", "INFO"],
                cwd=self.folder,
                env={**self.env, "DATABASE_URL": database_url, "BROKER_URL": self.broker, **env},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.started.append((process, log))
        return process

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL: no shutdown code runs; leases and unacknowledged messages stay behind."""
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def output(self) -> str:
        return "\n".join(log.read_text() for _, log in self.started)

    def task_results(self) -> list[str]:
        """What each finished grade_item task returned (completed, released, ...)."""
        return _TASK_RESULT.findall(self.output())


@pytest.fixture
def celery_workers(broker, provider_env, tmp_path) -> Iterator[CeleryWorkers]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    workers = CeleryWorkers(broker, {**env, **provider_env}, tmp_path)
    try:
        yield workers
    finally:
        workers.stop_all()
        print(workers.output())  # shown by pytest when the test fails


@contextmanager
def dispatching(
    sessions: sessionmaker[Session], broker: str, *, capacity: int = 4, **options: Any
) -> Iterator[CeleryDispatcher]:
    """A CeleryDispatcher claiming and sending ids in a thread of this process."""
    app = make_celery(broker)
    dispatcher = CeleryDispatcher(
        sessions,
        capacity=capacity,
        send=lambda item_id, owner: app.send_task(
            "grading.grade_item", args=[item_id, owner], queue=QUEUE
        ),
        **options,
    )
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), name="dispatcher")
    thread.start()
    try:
        yield dispatcher
    finally:
        stop.set()
        thread.join(10)
        app.close()


def _completions(llm) -> list[RecordedRequest]:
    return [r for r in llm.requests if r.path.endswith("/chat/completions")]


def _document(request: RecordedRequest) -> str:
    return document_of(request.body["messages"][-1]["content"])


def _assert_one_result_per_item(session: Session, items: int) -> None:
    per_item = Counter(
        session.scalars(
            sa.select(GradeResult.work_item_id).where(GradeResult.work_item_id.is_not(None))
        )
    )
    assert len(per_item) == items and set(per_item.values()) == {1}
    assert Counter(session.scalars(sa.select(WorkItem.state))) == {"completed": items}


def test_celery_workers_grade_every_item_once(sessions, database_url, celery_workers, llm):
    llm.latency = 0.05
    with unit_of_work(sessions) as session:
        low = make_batch(session, name="low", priority=2)
        make_job(session, batch=low, documents=10, text_prefix="Low. ")
        high = make_batch(session, name="high", priority=9)
        make_job(session, batch=high, documents=10, text_prefix="High. ")
        batch_ids = [low.id, high.id]

    celery_workers.start(database_url)
    depth_seen = []
    with dispatching(sessions, celery_workers.broker) as dispatcher:

        def all_done() -> bool:
            depth_seen.append(dispatcher.in_flight())
            return {batch_status(sessions, b) for b in batch_ids} == {"completed"}

        wait_for(all_done, "both batches to complete", timeout=90)

    with unit_of_work(sessions) as session:
        _assert_one_result_per_item(session, 20)
    # The broker never held more than the workers could run.
    assert max(depth_seen) <= 4
    calls = [_document(r) for r in _completions(llm)]
    assert len(calls) == 20 and len(set(calls)) == 20
    # Priority held across the broker: the high batch's items were sent first.
    assert all(text.startswith("High.") for text in calls[:8])


@POSTGRESQL_ONLY
def test_pause_stops_provider_calls_within_two_seconds_and_resume_finishes(
    sessions, database_url, celery_workers, llm
):
    llm.latency = 0.3
    with unit_of_work(sessions) as session:
        paused = make_batch(session, name="paused")
        make_job(session, batch=paused, documents=30, text_prefix="Paused. ")
        other = make_batch(session, name="other")
        make_job(session, batch=other, documents=12, text_prefix="Other. ")
        paused_id, other_id = paused.id, other.id

    def calls_for(prefix: str, *, after: float = 0.0) -> list[str]:
        return [
            _document(r)
            for r in _completions(llm)
            if r.at > after and _document(r).startswith(prefix)
        ]

    celery_workers.start(database_url)
    with dispatching(sessions, celery_workers.broker):
        wait_for(lambda: len(calls_for("Paused.")) >= 4, "the paused batch to be graded")
        with unit_of_work(sessions) as session:
            lifecycle.pause_batch(session, batch_id=paused_id)
        paused_at = time.time()  # the clock RecordedRequest.at uses

        # The other batch goes on to the end; the paused one waits.
        wait_for(lambda: batch_status(sessions, other_id) == "completed", "the other batch")
        wait_for(lambda: time.time() > paused_at + 3.0, "a second after the 2 s")
        assert calls_for("Paused.", after=paused_at + 2.0) == []
        with unit_of_work(sessions) as session:
            states = Counter(
                session.scalars(sa.select(WorkItem.state).where(WorkItem.batch_id == paused_id))
            )
            assert states["running"] == 0 and states["queued"] > 0, states
            assert session.get(JobBatch, paused_id).status == "paused"
            lifecycle.resume_batch(session, batch_id=paused_id)

        wait_for(lambda: batch_status(sessions, paused_id) == "completed", "the resumed batch")

    with unit_of_work(sessions) as session:
        _assert_one_result_per_item(session, 42)
    calls = Counter(_document(r) for r in _completions(llm))
    assert len(calls) == 42 and set(calls.values()) == {1}


@POSTGRESQL_ONLY
def test_a_sigkilled_worker_loses_nothing_and_calls_nothing_twice(
    sessions, database_url, celery_workers, llm
):
    """The killed worker's leases expire and the dispatcher's reaper requeues them; a new
    worker grades the rest. Calls it had in flight were lost with it (the vendor answered
    a process that no longer exists), so those documents are called once more; nothing
    else is."""
    # Longer than a worker takes to start, so messages that waited for it find their lease
    # (see test_a_message_that_outwaited_its_lease_does_not_call_the_provider_twice).
    lease = 8
    llm.latency = 0.3
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        make_job(session, batch=batch, documents=24)
        batch_id = batch.id
    settings = {"LEASE_SECONDS": str(lease), "REQUEST_TIMEOUT_SECONDS": "5"}

    first = celery_workers.start(database_url, **settings)
    with dispatching(
        sessions, celery_workers.broker, lease_seconds=lease, reap_interval=0.5
    ) as dispatcher:
        wait_for(lambda: len(_completions(llm)) >= 6, "the first worker to grade")
        celery_workers.kill(first)
        with unit_of_work(sessions, read_only=True) as session:
            graded_before_kill = set(
                session.scalars(
                    sa.select(Submission.extracted_text)
                    .join(WorkItem, WorkItem.submission_id == Submission.id)
                    .where(WorkItem.state == "completed")
                )
            )
            stranded = session.scalar(
                sa.select(sa.func.count()).select_from(WorkItem).where(WorkItem.state == "running")
            )
        assert stranded > 0  # it died holding items
        # Requests the dead worker wrote before it died may still be read by the fake
        # vendor for a moment; no other process calls it until the new worker starts.
        time.sleep(0.3)
        new_worker_from = time.time()
        celery_workers.start(database_url, **settings)
        wait_for(lambda: batch_status(sessions, batch_id) == "completed", "the batch")
        assert dispatcher.in_flight() == 0

    with unit_of_work(sessions) as session:
        _assert_one_result_per_item(session, 24)
        texts = set(session.scalars(sa.select(Submission.extracted_text)))
        assert session.get(JobBatch, batch_id).completed_items == 24
    calls_after_kill = Counter(_document(r) for r in _completions(llm) if r.at >= new_worker_from)
    # Graded before the kill: never again. Every other document: exactly once more.
    assert {text: calls_after_kill[text] for text in texts} == {
        text: 0 if text in graded_before_kill else 1 for text in texts
    }


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_message_delivered_twice_calls_the_provider_once(
    sessions, database_url, celery_workers, llm
):
    """As after a redelivery (a lost connection, a visibility timeout): the task takes the
    dispatcher's lease over under its own name, so only one delivery gets it."""
    llm.latency = 0.2
    owner = "dispatcher:test"
    with unit_of_work(sessions) as session:
        make_job(session, batch=make_batch(session), documents=8)
    with unit_of_work(sessions) as session:
        claimed = claim(session, owner=owner, limit=8, lease_seconds=120, now=utcnow())
    assert len(claimed) == 8
    app = make_celery(celery_workers.broker)
    try:
        for item in claimed:  # each twice in a row, so the two deliveries overlap
            for _ in range(2):
                app.send_task("grading.grade_item", args=[item.id, owner], queue=QUEUE)
    finally:
        app.close()

    celery_workers.start(database_url)
    wait_for(lambda: len(celery_workers.task_results()) == 16, "all 16 deliveries to run")

    assert Counter(celery_workers.task_results()) == {"completed": 8, "released": 8}
    with unit_of_work(sessions) as session:
        _assert_one_result_per_item(session, 8)
    calls = Counter(_document(r) for r in _completions(llm))
    assert len(calls) == 8 and set(calls.values()) == {1}, calls


@POSTGRESQL_ONLY
def test_a_message_that_outwaited_its_lease_does_not_call_the_provider_twice(
    sessions, database_url, celery_workers, llm
):
    """A message can wait in the broker longer than the dispatcher's lease (workers busy,
    or starting after a crash). Its item must not be called on while the reaper hands it
    to another worker: one call per item, as the recheck before a call promises for a
    lease that ran out while waiting for a rate-limit slot (processing/worker.py)."""
    llm.latency = 1.5
    with unit_of_work(sessions) as session:
        make_job(session, batch=make_batch(session), documents=1)
    with unit_of_work(sessions) as session:
        [item] = claim(session, owner="dispatcher:a", limit=1, lease_seconds=0.5, now=utcnow())
    celery_workers.start(database_url)
    time.sleep(1.0)  # as if its message had waited: the lease runs out, unreaped
    app = make_celery(celery_workers.broker)
    sent = 0

    def dispatch_turn(owner: str) -> None:
        """What any dispatcher does each turn: requeue expired leases, claim, send."""
        nonlocal sent
        with unit_of_work(sessions) as session:
            reap_expired_leases(session, now=utcnow())
        with unit_of_work(sessions) as session:
            again = claim(session, owner=owner, limit=1, lease_seconds=60, now=utcnow())
        for claimed in again:
            app.send_task("grading.grade_item", args=[claimed.id, owner], queue=QUEUE)
            sent += 1

    try:
        app.send_task("grading.grade_item", args=[item.id, "dispatcher:a"], queue=QUEUE)
        sent += 1
        # The task either calls the provider or, finding its lease gone, gives up.
        wait_for(
            lambda: len(_completions(llm)) == 1 or bool(celery_workers.task_results()),
            "the late message to be run",
        )
        dispatch_turn("dispatcher:b")  # while that call (if any) is in flight
        wait_for(lambda: len(celery_workers.task_results()) == sent, "the tasks sent to end")
        dispatch_turn("dispatcher:c")  # once more, if the item is still to be graded
        wait_for(lambda: len(celery_workers.task_results()) == sent, "the tasks sent to end")
    finally:
        app.close()

    with unit_of_work(sessions) as session:
        _assert_one_result_per_item(session, 1)
    assert len(_completions(llm)) == 1


def test_the_dispatcher_sends_batch_api_work_through_the_vendors_batch_api(
    sessions, database_url, celery_workers, llm, provider_env
):
    from grading_app.processing.runtime import provider_resolver

    with unit_of_work(sessions) as session:
        live = make_batch(session, name="live")
        make_job(session, batch=live, documents=3)
        by_api = make_batch(session, name="batch api", settings={"delivery": "batch_api"})
        make_job(session, batch=by_api, documents=3)
        batch_ids = [live.id, by_api.id]

    celery_workers.start(database_url)
    resolve, _ = provider_resolver(provider_env)
    with dispatching(
        sessions, celery_workers.broker, resolve_provider=resolve, provider_batch_interval=0.1
    ):
        wait_for(
            lambda: {batch_status(sessions, b) for b in batch_ids} == {"completed"},
            "both batches to complete",
            timeout=90,
        )

    with unit_of_work(sessions) as session:
        _assert_one_result_per_item(session, 6)
        deliveries = Counter(
            (result.batch_id, result.delivery)
            for result in session.execute(
                sa.select(WorkItem.batch_id, GradeResult.delivery).join(
                    GradeResult, GradeResult.work_item_id == WorkItem.id
                )
            )
        )
    assert deliveries == {(live.id, "live"): 3, (by_api.id, "batch_api"): 3}
    live_calls = [r for r in _completions(llm) if r.method == "POST"]
    assert len(live_calls) == 3  # the batch API's lines are answered in the vendor's batch
