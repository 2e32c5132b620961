"""`grading-app worker` processes: killed with SIGKILL, or two at once on one database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import GradeResult, JobBatch, WorkItem
from tests.factories import make_batch, make_job
from tests.fakes.llm_server import document_of

GRADING_APP = str(Path(sys.executable).with_name("grading-app"))


class _Worker:
    """A `grading-app worker` process whose output goes to a log file."""

    def __init__(self, database_url, provider_env, tmp_path, *, concurrency=4):
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env.update(provider_env)
        env.update(
            DATABASE_URL=database_url,
            LEASE_SECONDS="3",
            REQUEST_TIMEOUT_SECONDS="5",
        )
        self.log = tmp_path / f"worker-{uuid.uuid4().hex[:8]}.log"
        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                [GRADING_APP, "worker", "--concurrency", str(concurrency)],
                cwd=tmp_path,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text()

    def wait_until_started(self) -> None:
        """Its start line is printed just before it begins claiming."""
        _wait_for(lambda: self.output().startswith("Worker "), what="the worker to start")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.output()


def _wait_for(condition, timeout=90.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _batch_done(sessions, batch_id):
    def done() -> bool:
        with unit_of_work(sessions) as session:
            return session.get(JobBatch, batch_id).status == "completed"

    return done


def test_sigkilled_worker_leaves_nothing_lost_or_doubled(
    sessions, database_url, llm, provider_env, tmp_path
):
    llm.latency = 0.3
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        make_job(session, batch=batch, documents=30)
        batch_id = batch.id
    first = _Worker(database_url, provider_env, tmp_path)
    try:
        _wait_for(lambda: llm.count("fake-grader") >= 8, what="the first worker to start")
        first.kill()
        with unit_of_work(sessions) as session:
            stranded = session.scalar(
                sa.select(sa.func.count()).select_from(WorkItem).where(WorkItem.state == "running")
            )
        assert stranded > 0  # it died holding leases
        second = _Worker(database_url, provider_env, tmp_path)
        try:
            _wait_for(_batch_done(sessions, batch_id), what="the batch to complete")
        finally:
            output = second.stop()
    finally:
        if first.process.poll() is None:
            first.kill()
    with unit_of_work(sessions) as session:
        states = Counter(session.scalars(sa.select(WorkItem.state)))
        assert states == {"completed": 30}
        per_item = Counter(
            session.scalars(
                sa.select(GradeResult.work_item_id).where(GradeResult.work_item_id.is_not(None))
            )
        )
        assert len(per_item) == 30 and set(per_item.values()) == {1}
        batch = session.get(JobBatch, batch_id)
        assert batch.completed_items == 30 and batch.failed_items == 0
    assert "graded" in output


def test_two_workers_on_one_postgresql_never_grade_an_item_twice(
    postgres_url, llm, provider_env, tmp_path
):
    from grading_app.db import make_engine, make_sessionmaker
    from grading_app.upgrade.schema import upgrade_schema

    upgrade_schema(postgres_url, write=lambda _: None)
    engine = make_engine(postgres_url)
    pg_sessions = make_sessionmaker(engine)
    # Both workers are polling before any work exists, and one alone would need
    # about 2 s for it, so each gets a share however the two start up.
    llm.latency = 0.2
    workers = [_Worker(postgres_url, provider_env, tmp_path, concurrency=6) for _ in range(2)]
    try:
        for worker in workers:
            worker.wait_until_started()
        with unit_of_work(pg_sessions) as session:
            for index in range(3):
                make_job(
                    session,
                    batch=make_batch(session, name=f"class {index}"),
                    documents=20,
                    text_prefix=f"Class {index}. ",
                )
            batch_ids = [b.id for b in session.scalars(sa.select(JobBatch))]
        for batch_id in batch_ids:
            _wait_for(_batch_done(pg_sessions, batch_id), what="every batch to complete")
    finally:
        outputs = [worker.stop() for worker in workers]
    engine.dispose()
    calls = Counter(
        document_of(r.body["messages"][-1]["content"])
        for r in llm.requests
        if r.path.endswith("/chat/completions")
    )
    assert sum(calls.values()) == 60 and set(calls.values()) == {1}
    # Both took part: each says how many it graded.
    graded = [int(out.split("Worker stopped: ")[1].split(" graded")[0]) for out in outputs]
    assert sum(graded) == 60 and all(g > 0 for g in graded)
