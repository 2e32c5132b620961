"""Where a worker's writes happen: each in a transaction of its own, or, in a local worker,
on one writer thread that commits whatever is waiting together.

Why one thread: SQLite has one writer at a time. A grading thread that held the write
lock while the interpreter ran the other grading threads (they take turns every few
milliseconds) held every other writer up with it, and at zero latency most of the time
went to waiting for the lock. One thread that writes while the others grade, putting
the writes that queued up meanwhile into one transaction, turns many commits into one
(should one write fail, they are made again one by one, so it takes no other with it).
The callers still wait for their own write to be committed, so what they return is as
true as before; a crash loses
at most the writes not yet committed, which come back as expired leases and are graded
again, never twice.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from grading_app.db import unit_of_work

log = logging.getLogger(__name__)
T = TypeVar("T")
# Enough to amortise a commit, few enough that one transaction stays short.
MAX_WRITES_PER_TRANSACTION = 64


class Write(Protocol):
    def __call__(self, write: Callable[[Session], T]) -> T: ...


def in_own_transaction(sessions: sessionmaker[Session]) -> Write:
    """Each write in a short transaction of its own (the Celery task, tests)."""

    def run(write: Callable[[Session], T]) -> T:
        with unit_of_work(sessions) as session:
            return write(session)

    return run  # type: ignore[return-value]


class BatchingWriter:
    """A thread that runs the writes handed to it, in batches, one transaction each."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._pending: queue.SimpleQueue[tuple[Callable[[Session], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def __call__(self, write: Callable[[Session], T]) -> T:
        """Run `write` in the next transaction and return its result once committed."""
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the writer is not running")
        future: Future[T] = Future()
        self._pending.put((write, future))
        return future.result()

    def start(self) -> BatchingWriter:
        self._thread = threading.Thread(target=self._run, name="grading-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Writes handed over before this are still made."""
        if self._thread is not None:
            self._pending.put(None)
            self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._pending.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_WRITES_PER_TRANSACTION:
                try:
                    more = self._pending.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._write(batch)

    def _write(self, batch: list[tuple[Callable[[Session], Any], Future[Any]]]) -> None:
        """All of them in one transaction; if any fails, each again on its own, so one
        bad write (or a commit that failed) does not take the others with it."""
        if len(batch) > 1:
            try:
                with unit_of_work(self.sessions) as session:
                    results = [write(session) for write, _ in batch]
            except Exception as exc:
                log.info(
                    "a batch of %d writes failed (%s); writing them one by one", len(batch), exc
                )
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    future.set_result(result)
                return
        for write, future in batch:
            try:
                with unit_of_work(self.sessions) as session:
                    result = write(session)
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
