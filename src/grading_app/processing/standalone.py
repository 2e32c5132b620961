"""`grading-app worker`: a long-running local executor process."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from rich.console import Console

from grading_app.config import Settings
from grading_app.db import make_engine, make_sessionmaker
from grading_app.processing.runtime import worker_dependencies
from grading_app.processing.worker import LocalWorker, worker_name


def run_worker(
    database_url: str, *, settings: Settings, concurrency: int, console: Console
) -> None:
    engine = make_engine(database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    resolve, limiter = worker_dependencies(settings)
    worker = LocalWorker(
        make_sessionmaker(engine),
        resolve_provider=resolve,
        limiter=limiter,
        concurrency=concurrency,
        owner=worker_name("worker"),
        request_timeout=settings.request_timeout_seconds,
        lease_seconds=settings.effective_lease_seconds,
    )
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        console.print(f"Stopping ({signal.Signals(signum).name}): calls in flight will finish")
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console.print(f"Worker {worker.owner} grading with {concurrency} parallel calls")
    try:
        stats = worker.run(stop)
    finally:
        released = worker.release_all()
        engine.dispose()
    console.print(
        f"Worker stopped: {stats.completed} graded, {stats.failed} failed, "
        f"{stats.retried} retried later, {released} handed back to the queue"
    )
