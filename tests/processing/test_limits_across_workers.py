"""Rate limits hold across `grading-app worker` processes sharing one Redis.

Only the concurrency limit is tested to its end: the requests-per-minute window is 60 s
and cannot be shortened from the environment (RateLimiter.window_seconds is for tests in
process only), so for RPM the test checks that two workers together stay within one
minute's budget, not that the budget comes back after the minute.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import JobBatch, WorkItem
from tests.conftest import empty_redis_database
from tests.factories import make_batch, make_job
from tests.fakes.llm_server import document_of

GRADING_APP = str(Path(sys.executable).with_name("grading-app"))
RATE_LIMIT_STORAGE = "redis://127.0.0.1:6379/13"


@pytest.fixture
def rate_limit_storage() -> Iterator[str]:
    """The Redis database the workers keep their shared counters in, emptied around
    the test (an RPM window outlives a test by a minute)."""
    with empty_redis_database(RATE_LIMIT_STORAGE) as url:
        yield url


def _start_worker(
    database_url: str, provider_env: dict[str, str], tmp_path: Path, *, limits: str, storage: str
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(
        provider_env,
        DATABASE_URL=database_url,
        GRADING_APP_RATE_LIMITS=limits,
        RATE_LIMIT_STORAGE=storage,
    )
    return subprocess.Popen(
        [GRADING_APP, "worker", "--concurrency", "4"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _grading_calls(llm) -> Counter[str]:
    return Counter(
        document_of(r.body["messages"][-1]["content"])
        for r in llm.requests
        if r.path.endswith("/chat/completions")
    )


def test_two_workers_together_keep_to_one_concurrency_limit(
    pg_sessions, postgres_url, rate_limit_storage, llm, provider_env, tmp_path
):
    llm.latency = 0.3
    with unit_of_work(pg_sessions) as session:
        batch = make_batch(session)
        make_job(session, batch=batch, documents=20)
        batch_id = batch.id
    workers = [
        _start_worker(
            postgres_url, provider_env, tmp_path, limits="openai=-/2", storage=rate_limit_storage
        )
        for _ in range(2)
    ]
    outputs = []
    try:

        def done() -> bool:
            with unit_of_work(pg_sessions, read_only=True) as session:
                return session.get(JobBatch, batch_id).status == "completed"

        _wait_for(done, "the batch to complete")
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                outputs.append(worker.communicate(timeout=30)[0])
            except subprocess.TimeoutExpired:
                worker.kill()
                outputs.append(worker.communicate()[0])

    # Eight threads wanted to call; two at a time did, across both processes.
    assert llm.max_in_flight == 2
    calls = _grading_calls(llm)
    assert len(calls) == 20 and set(calls.values()) == {1}
    # Both took part, so the limit was shared rather than one worker doing it all.
    graded = [int(re.search(r"Worker stopped: (\d+) graded", out)[1]) for out in outputs]
    assert sum(graded) == 20 and all(g > 0 for g in graded), outputs


def test_two_workers_together_keep_to_one_requests_per_minute_budget(
    pg_sessions, postgres_url, rate_limit_storage, llm, provider_env, tmp_path
):
    with unit_of_work(pg_sessions) as session:
        make_job(session, batch=make_batch(session), documents=12)
    workers = [
        _start_worker(
            postgres_url, provider_env, tmp_path, limits="openai=3/-", storage=rate_limit_storage
        )
        for _ in range(2)
    ]
    try:
        _wait_for(lambda: sum(_grading_calls(llm).values()) >= 3, "the first three calls")

        def both_waiting() -> bool:
            with unit_of_work(pg_sessions, read_only=True) as session:
                owners = session.scalars(
                    sa.select(WorkItem.lease_owner).where(WorkItem.state == "running").distinct()
                ).all()
            return len(owners) == 2

        # Both workers hold claimed items and wait for the minute's budget to allow a
        # call; with budgets of their own they would have called at once.
        _wait_for(both_waiting, "both workers to wait for the budget")
        time.sleep(1.0)
        assert sum(_grading_calls(llm).values()) == 3
    finally:
        # SIGKILL: a clean stop would wait for the threads blocked on the budget.
        for worker in workers:
            worker.kill()
            worker.communicate()
