"""Helpers shared by the processing tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from grading_app.db import unit_of_work
from grading_app.models import JobBatch
from grading_app.processing.runtime import provider_resolver
from grading_app.processing.worker import LocalWorker


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def batch_status(sessions, batch_id: str) -> str:
    with unit_of_work(sessions, read_only=True) as session:
        return session.get(JobBatch, batch_id).status


def grade_everything(sessions, provider_env: dict[str, str], *, concurrency: int = 4) -> None:
    """Run a real worker against the fake vendor until nothing is left to grade."""
    resolve, _ = provider_resolver(provider_env)
    worker = LocalWorker(
        sessions,
        resolve_provider=resolve,
        concurrency=concurrency,
        request_timeout=5,
        poll_interval=0.05,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"until_idle": True})
    thread.start()
    thread.join(60)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
