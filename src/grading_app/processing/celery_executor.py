"""The Celery executor: a dispatcher claims items and sends their ids to Celery workers.

The database stays the truth of work state. The dispatcher claims (leases) items in
priority order and sends only as many as the workers can run (`capacity`), so the broker
queue stays shallow and priority, pause and cancel stay exact; Celery priorities and
revoke are never used. Tasks are acknowledged late with a prefetch of one, so a worker
that dies loses nothing: the message is redelivered, or the lease expires and the
reaper requeues the item; the result is written once either way (see
processing/service.complete_item).

Start workers with:
    BROKER_URL=redis://127.0.0.1:6379/0 DATABASE_URL=... \\
        celery -A grading_app.processing.celery_executor worker --pool threads -c 8
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import lru_cache

import sqlalchemy as sa
from celery import Celery, Task
from sqlalchemy.orm import Session, sessionmaker

from grading_app.config import default_lease_seconds, get_settings
from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.models import WorkItem, WorkItemState, utcnow
from grading_app.processing.claim import ClaimedItem, claim, reap_expired_leases
from grading_app.processing.runtime import provider_resolver, worker_dependencies
from grading_app.processing.service import (
    has_runnable_work,
    release_item,
    take_over_lease,
    withdraw_cancelled,
)
from grading_app.processing.worker import (
    DATABASE_ERRORS,
    MAX_ERROR_BACKOFF_SECONDS,
    PROVIDER_BATCH_INTERVAL,
    GradingParts,
    grade_claimed_item,
    run_provider_batches,
    worker_name,
)
from grading_app.processing.writer import in_own_transaction
from grading_app.providers.base import Provider

log = logging.getLogger(__name__)
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def make_celery(broker_url: str) -> Celery:
    app = Celery("grading_app", broker=broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue="grading",
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
    )
    return app


celery_app = make_celery(get_settings().broker_url or DEFAULT_BROKER)


@lru_cache(maxsize=1)
def _parts() -> GradingParts:
    """One engine and provider set per worker process."""
    settings = get_settings()
    engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    resolve, limiter = worker_dependencies(settings)
    sessions = make_sessionmaker(engine)
    return GradingParts(
        sessions=sessions,
        resolve_provider=resolve,
        limiter=limiter,
        request_timeout=settings.request_timeout_seconds,
        lease_seconds=settings.effective_lease_seconds,
        write=in_own_transaction(sessions),
    )


@celery_app.task(name="grading.grade_item", bind=True)
def grade_item(self: Task, item_id: str, owner: str) -> str:
    """Grade an item the dispatcher leased to `owner`.

    The task first takes the lease over under a name of its own, so that of two
    deliveries of one message (a redelivery after a lost connection, say) only one
    calls the provider; a stale message finds the lease gone and does nothing.
    """
    parts = _parts()
    task_owner = f"{owner}/{self.request.id}"
    with unit_of_work(parts.sessions) as session:
        taken = take_over_lease(
            session,
            item_id=item_id,
            owner=owner,
            new_owner=task_owner,
            lease_seconds=parts.lease_seconds,
            now=utcnow(),
        )
    if not taken:
        return "released"
    return grade_claimed_item(parts, item_id=item_id, owner=task_owner)


class CeleryDispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        capacity: int,
        send: Callable[[str, str], object] | None = None,
        owner: str | None = None,
        request_timeout: float = 120.0,
        lease_seconds: float | None = None,
        poll_interval: float = 0.2,
        reap_interval: float = 15.0,
        resolve_provider: Callable[[str], Provider] | None = None,
        provider_batch_interval: float | None = PROVIDER_BATCH_INTERVAL,
    ) -> None:
        self.sessions = sessions
        self.capacity = max(1, capacity)
        self.owner = owner or worker_name("dispatcher")
        self.send = send or (lambda item_id, owner: grade_item.delay(item_id, owner))
        self.lease_seconds = lease_seconds or default_lease_seconds(request_timeout)
        self.poll_interval = poll_interval
        self.reap_interval = reap_interval
        self.sent = 0
        # The batch-API work (processing/provider_batches.py) is done here, beside the
        # claims: its calls are few and long, not a task's.
        self.resolve_provider = resolve_provider
        self.provider_batch_interval = provider_batch_interval

    def in_flight(self) -> int:
        """Items sent and not yet finished: leased to this dispatcher or to one of the
        tasks it sent (their owners start with its name)."""
        with unit_of_work(self.sessions, read_only=True) as session:
            return session.execute(
                sa.select(sa.func.count())
                .select_from(WorkItem)
                .where(
                    WorkItem.lease_owner.startswith(self.owner, autoescape=True),
                    WorkItem.state == WorkItemState.RUNNING,
                )
            ).scalar_one()

    def run(self, stop: threading.Event, *, until_idle: bool = False) -> int:
        if self.provider_batch_interval is None:
            return self._run(stop, until_idle=until_idle)
        from grading_app.processing.provider_batches import ProviderBatchManager

        manager = ProviderBatchManager(
            self.sessions,
            resolve_provider=self.resolve_provider or provider_resolver()[0],
            owner=f"{self.owner}/provider-batches",
        )
        done = threading.Event()
        thread = threading.Thread(
            target=run_provider_batches,
            args=(manager, self.provider_batch_interval),
            kwargs={"stop": done},
            name="provider-batches",
            daemon=True,
        )
        thread.start()
        try:
            return self._run(stop, until_idle=until_idle)
        finally:
            done.set()
            thread.join()

    def _run(self, stop: threading.Event, *, until_idle: bool) -> int:
        last_reap = 0.0
        failures = 0
        while not stop.is_set():
            try:
                if time.monotonic() - last_reap >= self.reap_interval:
                    with unit_of_work(self.sessions) as session:
                        if reap_expired_leases(session, now=utcnow()):
                            # any of them of a job cancelled meanwhile leaves the totals
                            withdraw_cancelled(session, now=utcnow())
                    last_reap = time.monotonic()
                busy = self.in_flight()
                claimed = self._claim(self.capacity - busy) if busy < self.capacity else []
                if until_idle and not claimed and busy == 0 and not self._work_left():
                    break
                for item in claimed:  # after the claim is committed, never before
                    self._send(item.id, stop)
            except DATABASE_ERRORS as exc:
                failures += 1
                delay = min(MAX_ERROR_BACKOFF_SECONDS, self.poll_interval * 2**failures)
                log.warning("dispatching failed (%s); retrying in %.1f s", exc, delay)
                stop.wait(delay)
                continue
            failures = 0
            if not claimed:
                stop.wait(self.poll_interval)
        return self.sent

    def _claim(self, limit: int) -> list[ClaimedItem]:
        with unit_of_work(self.sessions) as session:
            return claim(
                session,
                owner=self.owner,
                limit=limit,
                lease_seconds=self.lease_seconds,
                now=utcnow(),
            )

    def _send(self, item_id: str, stop: threading.Event) -> None:
        try:
            self.send(item_id, self.owner)
            self.sent += 1
        except Exception:  # broker unreachable: hand the item back, retry later
            log.exception("could not send item %s to the broker", item_id)
            with unit_of_work(self.sessions) as session:
                release_item(session, item_id=item_id, owner=self.owner)
            stop.wait(self.poll_interval * 10)

    def _work_left(self) -> bool:
        """As the local worker: a paused or cancelled batch leaves no work to wait for."""
        with unit_of_work(self.sessions, read_only=True) as session:
            return has_runnable_work(session)
