"""The Celery executor with a real worker process on the local Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.models import GradeResult, JobBatch, WorkItem
from grading_app.processing.celery_executor import CeleryDispatcher, make_celery
from grading_app.upgrade.runner import upgrade_schema
from tests.factories import make_batch, make_job
from tests.fakes.llm_server import document_of

BROKER = "redis://127.0.0.1:6379/14"
CELERY = str(Path(sys.executable).with_name("celery"))


@pytest.fixture
def broker():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(BROKER)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("GRADING_APP_REQUIRE_REDIS"):
            pytest.fail(f"Redis is required but unreachable: {exc}")
        pytest.skip(f"Redis unreachable: {exc}")
    client.flushdb()
    yield BROKER
    client.flushdb()


def test_celery_workers_grade_every_item_once(postgres_url, broker, llm, provider_env, tmp_path):
    llm.latency = 0.05
    upgrade_schema(postgres_url, write=lambda _: None)
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    with unit_of_work(sessions) as session:
        low = make_batch(session, name="low", priority=2)
        make_job(session, batch=low, documents=10, text_prefix="Low. ")
        high = make_batch(session, name="high", priority=9)
        make_job(session, batch=high, documents=10, text_prefix="High. ")
        batch_ids = [low.id, high.id]

    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(provider_env, DATABASE_URL=postgres_url, BROKER_URL=broker)
    worker = subprocess.Popen(
        [
            CELERY,
            "-A",
            "grading_app.processing.celery_executor",
            "worker",
            "--pool",
            "threads",
            "-c",
            "4",
            "-Q",
            "grading",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    app = make_celery(broker)
    dispatcher = CeleryDispatcher(
        sessions,
        capacity=4,
        send=lambda item_id, owner: app.send_task(
            "grading.grade_item", args=[item_id, owner], queue="grading"
        ),
    )
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,))
    thread.start()
    depth_seen = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            depth_seen.append(dispatcher.in_flight())
            with unit_of_work(sessions) as session:
                statuses = {session.get(JobBatch, b).status for b in batch_ids}
            if statuses == {"completed"}:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(10)
        worker.send_signal(signal.SIGTERM)
        try:
            output = worker.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            worker.kill()
            output = worker.communicate()[0]
    engine_done = make_sessionmaker(engine)
    with unit_of_work(engine_done) as session:
        assert {session.get(JobBatch, b).status for b in batch_ids} == {"completed"}, output
        assert Counter(session.scalars(sa.select(WorkItem.state))) == {"completed": 20}
        results = session.scalar(sa.select(sa.func.count()).select_from(GradeResult))
        assert results == 20
    engine.dispose()
    # The broker never held more than the workers could run.
    assert max(depth_seen) <= 4
    calls = [
        document_of(r.body["messages"][-1]["content"])
        for r in llm.requests
        if r.path.endswith("/chat/completions")
    ]
    assert len(calls) == 20 and len(set(calls)) == 20
    # Priority held across the broker: the high batch's items were sent first.
    assert all(text.startswith("High.") for text in calls[:8])
