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
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from grading_app.config import get_settings
from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.models import WorkItem, utcnow
from grading_app.processing.claim import claim, reap_expired_leases
from grading_app.processing.runtime import worker_dependencies
from grading_app.processing.service import release_item
from grading_app.processing.worker import GradingParts, grade_claimed_item, worker_name

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
    return GradingParts(
        sessions=make_sessionmaker(engine),
        resolve_provider=resolve,
        limiter=limiter,
        request_timeout=settings.request_timeout_seconds,
    )


@celery_app.task(name="grading.grade_item")
def grade_item(item_id: str, owner: str) -> str:
    """Grade an item the dispatcher leased to `owner`; a stale message finds the lease
    gone and does nothing."""
    return grade_claimed_item(_parts(), item_id=item_id, owner=owner)


class CeleryDispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        capacity: int,
        send: Callable[[str, str], object] | None = None,
        owner: str | None = None,
        request_timeout: float = 120.0,
        poll_interval: float = 0.2,
        reap_interval: float = 15.0,
    ) -> None:
        self.sessions = sessions
        self.capacity = max(1, capacity)
        self.owner = owner or worker_name("dispatcher")
        self.send = send or (lambda item_id, owner: grade_item.delay(item_id, owner))
        self.lease_seconds = 2 * request_timeout + 60
        self.poll_interval = poll_interval
        self.reap_interval = reap_interval
        self.sent = 0

    def in_flight(self) -> int:
        with unit_of_work(self.sessions) as session:
            return session.execute(
                sa.select(sa.func.count())
                .select_from(WorkItem)
                .where(WorkItem.lease_owner == self.owner, WorkItem.state == "running")
            ).scalar_one()

    def run(self, stop: threading.Event, *, until_idle: bool = False) -> int:
        last_reap = 0.0
        while not stop.is_set():
            if time.monotonic() - last_reap >= self.reap_interval:
                with unit_of_work(self.sessions) as session:
                    reap_expired_leases(session, now=utcnow())
                last_reap = time.monotonic()
            busy = self.in_flight()
            free = self.capacity - busy
            claimed = []
            if free > 0:
                with unit_of_work(self.sessions) as session:
                    claimed = claim(
                        session,
                        owner=self.owner,
                        limit=free,
                        lease_seconds=self.lease_seconds,
                        now=utcnow(),
                    )
                for item in claimed:  # after the claim is committed, never before
                    try:
                        self.send(item.id, self.owner)
                        self.sent += 1
                    except Exception:  # broker unreachable: hand the item back, retry later
                        log.exception("could not send item %s to the broker", item.id)
                        with unit_of_work(self.sessions) as session:
                            release_item(session, item_id=item.id, owner=self.owner)
                        stop.wait(self.poll_interval * 10)
            if until_idle and not claimed and busy == 0 and not self._work_left():
                break
            if not claimed:
                stop.wait(self.poll_interval)
        return self.sent

    def _work_left(self) -> bool:
        with unit_of_work(self.sessions) as session:
            return bool(
                session.execute(
                    sa.select(sa.func.count())
                    .select_from(WorkItem)
                    .where(WorkItem.state.in_(("queued", "running")))
                ).scalar_one()
            )
