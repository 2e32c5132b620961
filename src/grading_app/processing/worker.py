"""The local executor: a pool of threads that claim, grade and record work items.

Used inside `grading-app serve`, by a standalone `grading-app worker` (any number, on
any machines sharing one PostgreSQL) and by `grading-app grade`. The database is the
truth: a thread holds an item only through its lease, and every write is a short
transaction of its own, never held across the provider call.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from grading_app.config import default_lease_seconds
from grading_app.db import unit_of_work
from grading_app.errors import AppError, DatabaseUnavailable
from grading_app.grading.prompt import build_request
from grading_app.grading.service import GradingFailed, GradingOutcome, Usage, grade_document
from grading_app.models import utcnow
from grading_app.processing import budget, service
from grading_app.processing.claim import claim, reap_expired_leases
from grading_app.processing.context import ItemContext, load_context
from grading_app.processing.writer import BatchingWriter, Write, in_own_transaction
from grading_app.providers.base import ChatRequest, Provider, ProviderError
from grading_app.providers.ratelimit import SlotTimeout
from grading_app.trust.pipeline import Outgoing, outgoing, with_evidence

if TYPE_CHECKING:
    from grading_app.processing.provider_batches import ProviderBatchManager

log = logging.getLogger(__name__)
# What a worker loop survives: the database away or locked; it backs off and goes on.
DATABASE_ERRORS = (SQLAlchemyError, DatabaseUnavailable)
MAX_ERROR_BACKOFF_SECONDS = 10.0
# Seconds between two rounds of batch-API work (submit, poll, collect).
PROVIDER_BATCH_INTERVAL = 5.0


class Limiter(Protocol):
    def slot(
        self, provider: str, model: str, *, timeout: float | None = None
    ) -> AbstractContextManager[None]: ...


class NoLimits:
    def slot(
        self, provider: str, model: str, *, timeout: float | None = None
    ) -> AbstractContextManager[None]:
        return nullcontext()


def worker_name(kind: str = "worker") -> str:
    """Unique per process and run; host and pid make a stuck lease traceable."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class WorkerStats:
    completed: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0
    error: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: str) -> None:
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)


class LocalWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        resolve_provider: Callable[[str], Provider],
        limiter: Limiter | None = None,
        concurrency: int = 8,
        owner: str | None = None,
        request_timeout: float = 120.0,
        poll_interval: float = 0.5,
        reap_interval: float = 15.0,
        batch_id: str | None = None,
        on_item_done: Callable[[str, str], None] | None = None,
        lease_seconds: float | None = None,
        provider_batch_interval: float | None = PROVIDER_BATCH_INTERVAL,
    ) -> None:
        self.sessions = sessions
        # Long enough for a call, its repair call and their timeouts; the reaper hands
        # an item to another worker only after that.
        self.lease_seconds = lease_seconds or default_lease_seconds(request_timeout)
        self.parts = GradingParts(
            sessions=sessions,
            resolve_provider=resolve_provider,
            limiter=limiter or NoLimits(),
            request_timeout=request_timeout,
            lease_seconds=self.lease_seconds,
            write=in_own_transaction(sessions),
        )
        self.concurrency = max(1, concurrency)
        # Claimed ahead of the calls in flight: few, so priority and pause stay exact.
        self.ready_items = max(1, self.concurrency // 4)
        self.owner = owner or worker_name()
        self.request_timeout = request_timeout
        self.poll_interval = poll_interval
        self.reap_interval = min(reap_interval, self.lease_seconds / 2)
        self.batch_id = batch_id
        self.on_item_done = on_item_done
        self.stats = WorkerStats()
        self._wake = threading.Event()
        # How often the batch-API work is done (processing/provider_batches.py); None:
        # not by this worker.
        self.provider_batch_interval = provider_batch_interval

    # --- the loop ------------------------------------------------------------------

    def run(self, stop: threading.Event, *, until_idle: bool = False) -> WorkerStats:
        """Claim and grade until `stop` is set (or, with until_idle, nothing is left)."""
        if self.provider_batch_interval is None:
            return self._run(stop, until_idle=until_idle)
        done = threading.Event()
        manager = threading.Thread(
            target=run_provider_batches,
            args=(self.provider_batch_manager(), self.provider_batch_interval),
            kwargs={"stop": done},
            name="provider-batches",
            daemon=True,
        )
        manager.start()
        try:
            return self._run(stop, until_idle=until_idle)
        finally:
            done.set()
            manager.join()

    def provider_batch_manager(self) -> ProviderBatchManager:
        from grading_app.processing.provider_batches import ProviderBatchManager

        return ProviderBatchManager(
            self.sessions,
            resolve_provider=self.parts.resolve_provider,
            owner=f"{self.owner}/provider-batches",
            request_timeout=self.request_timeout,
        )

    def _run(self, stop: threading.Event, *, until_idle: bool) -> WorkerStats:
        if self._dialect() != "sqlite":
            # PostgreSQL takes many writers: a shared transaction would only lock rows
            # of several items out of the order every writer keeps.
            return self._loop(stop, until_idle=until_idle)
        writer = BatchingWriter(self.sessions).start()
        own_transactions = self.parts
        self.parts = replace(own_transactions, write=writer)
        try:
            return self._loop(stop, until_idle=until_idle)
        finally:
            writer.stop()  # after the pool: the last calls' results are written
            self.parts = own_transactions

    def _dialect(self) -> str:
        with self.sessions() as session:
            return session.get_bind().dialect.name

    def _loop(self, stop: threading.Event, *, until_idle: bool) -> WorkerStats:
        in_flight: set[Future[None]] = set()
        last_reap = 0.0
        failures = 0
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="grader") as pool:
            try:
                while not stop.is_set():
                    self._wake.clear()
                    in_flight = {f for f in in_flight if not f.done()}
                    # A few claimed items wait ready behind the calls in flight, so a
                    # thread that finishes starts its next item at once instead of
                    # waiting for this loop's next claim; each is checked (pause,
                    # lease) when it starts, like every item.
                    free = self.concurrency + self.ready_items - len(in_flight)
                    try:
                        if time.monotonic() - last_reap >= self.reap_interval:
                            self._reap()
                            last_reap = time.monotonic()
                        claimed = self._claim(free) if free > 0 else []
                        idle = until_idle and not in_flight and not claimed
                        if idle and not self._work_left():
                            break
                    except DATABASE_ERRORS as exc:
                        # Unreachable or locked for longer than the busy timeout: the
                        # loop keeps going (calls in flight finish) and tries again.
                        failures += 1
                        delay = min(MAX_ERROR_BACKOFF_SECONDS, self.poll_interval * 2**failures)
                        log.warning("claiming failed (%s); retrying in %.1f s", exc, delay)
                        stop.wait(delay)
                        continue
                    failures = 0
                    for item_id in claimed:
                        future = pool.submit(self.process, item_id)
                        future.add_done_callback(lambda _: self._wake.set())
                        in_flight.add(future)
                    if not claimed or free - len(claimed) <= 0:
                        self._wake.wait(self.poll_interval)
            finally:
                if stop.is_set():
                    # Claimed items not yet started are cancelled here and released by
                    # the caller (release_all); calls in flight finish.
                    for future in in_flight:
                        future.cancel()
        return self.stats

    def release_all(self) -> int:
        with unit_of_work(self.sessions) as session:
            released = service.release_owned(session, owner=self.owner)
            if released:  # any of them of a job cancelled meanwhile leaves the totals
                service.withdraw_cancelled(session, now=utcnow())
        return released

    def _claim(self, limit: int) -> list[str]:
        items = self.parts.write(
            lambda session: claim(
                session,
                owner=self.owner,
                limit=limit,
                lease_seconds=self.lease_seconds,
                now=utcnow(),
                batch_id=self.batch_id,
            )
        )
        return [item.id for item in items]

    def _reap(self) -> None:
        with unit_of_work(self.sessions) as session:
            count = reap_expired_leases(session, now=utcnow())
            if count:  # any of them of a job cancelled meanwhile leaves the totals
                service.withdraw_cancelled(session, now=utcnow())
        if count:
            log.warning("%d items whose worker stopped or hung were requeued or failed", count)

    def _work_left(self) -> bool:
        """Items in flight, or queued in a running job and batch (a retry waiting for
        its time included). A paused or cancelled batch leaves no work for until_idle."""
        with unit_of_work(self.sessions, read_only=True) as session:
            return service.has_runnable_work(session, batch_id=self.batch_id)

    # --- one item ------------------------------------------------------------------

    def process(self, item_id: str) -> None:
        try:
            outcome = self._grade(item_id)
        except Exception:  # a bug must not kill the pool; the lease expires and it retries
            log.exception("unexpected error grading item %s", item_id)
            outcome = "error"
        self.stats.add(outcome)
        if self.on_item_done is not None:
            self.on_item_done(item_id, outcome)

    def _grade(self, item_id: str) -> str:
        return grade_claimed_item(self.parts, item_id=item_id, owner=self.owner)


def run_provider_batches(
    manager: ProviderBatchManager, interval: float, *, stop: threading.Event
) -> None:
    """A round of batch-API work every `interval` seconds until `stop`; the local worker
    and the Celery dispatcher each run this beside their claims."""
    failures = 0
    while True:
        try:
            manager.step()
            failures = 0
        except DATABASE_ERRORS as exc:
            failures += 1
            log.warning("provider batches: database unavailable (%s)", exc)
        except Exception:  # a bug must not stop the loop; the rows' leases run out
            failures += 1
            log.exception("provider batches: unexpected error")
        if stop.wait(min(MAX_ERROR_BACKOFF_SECONDS * 6, interval * 2**failures)):
            return


@dataclass(frozen=True)
class GradingParts:
    """What grading an item needs, whichever executor runs it."""

    sessions: sessionmaker[Session]
    resolve_provider: Callable[[str], Provider]
    limiter: Limiter
    request_timeout: float
    # How long a claim holds an item; renewed right before a call that waited.
    lease_seconds: float
    # Where the item's writes go (processing/writer.py): own transactions by default.
    write: Write


# Waiting longer than this for a rate-limit slot hands the item back to the queue (for
# when the limit says it frees up) instead of holding its lease.
SLOT_WAIT_SECONDS = 30.0
# The claim and the context read have just checked the item; after a wait this long for
# a rate-limit slot, check again (pause, lease) before calling. Well under the 2 s a
# pause promises.
RECHECK_AFTER_SECONDS = 0.25


def grade_claimed_item(parts: GradingParts, *, item_id: str, owner: str) -> str:
    """Grade one item this owner has claimed; returns completed, failed, retried or
    released. Each database step is its own short transaction; none spans the call."""
    with unit_of_work(parts.sessions, read_only=True) as session:
        context = load_context(session, item_id=item_id, owner=owner)
    loaded_at = time.monotonic()
    if context is None:
        return "released"
    if not context.runnable:
        return _release(parts, item_id, owner)
    try:
        provider = parts.resolve_provider(context.provider)
    except AppError as exc:
        return _fail(parts, item_id, owner, exc.message)
    sent, request = item_request(context, request_timeout=parts.request_timeout)
    if context.budget_usd is not None and not parts.write(
        lambda session: budget.hold_within_budget(
            session, context=context, owner=owner, request=request
        )
    ):
        return "released"  # and the batch paused: this call would pass its budget
    try:
        with parts.limiter.slot(context.provider, context.model, timeout=SLOT_WAIT_SECONDS):
            # After a wait for a rate-limit slot: a pause takes effect before the call,
            # and a lease that ran out meanwhile is not called on.
            if time.monotonic() - loaded_at > RECHECK_AFTER_SECONDS and not _hold(
                parts, item_id, owner
            ):
                return _release(parts, item_id, owner)
            result = grade_document(provider, request, rubric=context.rubric)
    except SlotTimeout as exc:
        wait = exc.retry_after or 1.0
        parts.write(
            lambda session: service.release_item(
                session, item_id=item_id, owner=owner, not_before_seconds=wait
            )
        )
        return "released"
    except ProviderError as exc:
        usage = Usage.of(exc.answers) if exc.answers else None
        if exc.retryable:
            return _retry_or_fail(
                parts, context, owner, exc.message, retry_after=exc.retry_after, usage=usage
            )
        return _fail(parts, item_id, owner, exc.message, usage=usage)
    except GradingFailed as exc:
        return _fail(parts, item_id, owner, exc.reason, usage=exc.usage)
    except Exception as exc:
        # A bug of ours or of an SDK (one raised TypeError for an argument it dropped).
        # Retried like a transient error, then failed with its name, so the item
        # neither sits on its lease until it expires nor comes back for ever.
        log.exception("unexpected error grading item %s", item_id)
        message = f"internal error while grading ({type(exc).__name__}: {exc})"[:500]
        return _retry_or_fail(parts, context, owner, message, retry_after=None)
    # Real names back in the grade, its quotes checked against the text the teacher sees.
    checked = with_evidence(result, sent, context.document_text)
    stored = parts.write(
        lambda session: service.complete_item(
            session,
            item_id=item_id,
            owner=owner,
            outcome=checked,
            may_need_review=may_need_review(context, checked),
            single_model=context.single_model,
        )
    )
    return "completed" if stored else "released"


def item_request(context: ItemContext, *, request_timeout: float) -> tuple[Outgoing, ChatRequest]:
    """What is sent for the item, live or in a provider batch alike: the document as it
    leaves the machine (hidden text stripped and personal data replaced, as the batch
    says; the answer is read back through it) and the grading request."""
    sent = outgoing(
        context.document_text,
        name=context.document_name,
        settings=context.trust,
        findings=context.findings,
    )
    request = build_request(
        model=context.model,
        instructions=context.instructions,
        document_text=sent.text,
        document_name=sent.name,
        marking_scheme=context.marking_scheme,
        rubric=context.rubric,
        temperature=context.temperature,
        max_tokens=context.max_tokens,
        # A batch may shorten the server's timeout, not lengthen it: the lease that
        # keeps other workers off the item is sized from the server's.
        timeout_seconds=min(context.timeout_seconds or request_timeout, request_timeout),
    )
    return sent, request


def may_need_review(context: ItemContext, outcome: GradingOutcome) -> bool:
    """Whether the document this grade settles could have a reason for review (see
    trust.doubt): only then is it assessed."""
    return (
        not context.single_model
        or bool(context.findings)
        or bool(context.trust.grade_boundaries)
        or outcome.repaired
        or any(check.get("status") == "unverified" for check in outcome.evidence)
    )


def _retry_or_fail(
    parts: GradingParts,
    context: ItemContext,
    owner: str,
    message: str,
    *,
    retry_after: float | None,
    usage: Usage | None = None,
) -> str:
    """Back to the queue with backoff while the batch's retries last, else failed; the
    answers the attempt was billed for (`usage`) are kept and counted either way."""
    item_id = context.item_id
    if context.attempts <= context.max_retries:
        parts.write(
            lambda session: service.retry_later(
                session,
                item_id=item_id,
                owner=owner,
                error=message,
                retry_after=retry_after,
                usage=usage,
            )
        )
        return "retried"
    return _fail(
        parts,
        item_id,
        owner,
        f"{message} (gave up after {context.attempts} attempts)",
        usage=usage,
    )


def _hold(parts: GradingParts, item_id: str, owner: str) -> bool:
    return parts.write(
        lambda session: service.hold_if_runnable(
            session,
            item_id=item_id,
            owner=owner,
            lease_seconds=parts.lease_seconds,
            now=utcnow(),
        )
    )


def _release(parts: GradingParts, item_id: str, owner: str) -> str:
    def release(session: Session) -> None:
        if service.release_item(session, item_id=item_id, owner=owner):
            # Found cancelled before its call: it leaves the totals as cancel does.
            service.withdraw_cancelled(session, now=utcnow(), item_ids=[item_id])

    parts.write(release)
    return "released"


def _fail(
    parts: GradingParts, item_id: str, owner: str, message: str, usage: Usage | None = None
) -> str:
    parts.write(
        lambda session: service.fail_item(
            session, item_id=item_id, owner=owner, error=message, usage=usage
        )
    )
    return "failed"
