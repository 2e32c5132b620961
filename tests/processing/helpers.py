"""Helpers shared by the processing tests."""

from __future__ import annotations

import time
from collections.abc import Callable

from grading_app.db import unit_of_work
from grading_app.models import JobBatch


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
