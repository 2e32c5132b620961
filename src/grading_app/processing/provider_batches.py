"""Sending work through a vendor's batch API (half price, answered within its window):
submit, poll, collect, cancel, and pick up where a stopped worker left off.

`ProviderBatchManager.step` does one round of each; the local worker and the Celery
dispatcher run it every few seconds, so either executor does it. All state is in the
database (`provider_batches`, and `work_items.provider_batch_id` while a row is open):

1. *Submit.* The queued, due items of a running batch whose calls go through a batch API
   (processing/delivery.uses_batch_api), grouped by (batch, provider, model), up to the
   vendor's `max_requests`, are taken in one short transaction together with a new row
   in state `preparing`: running, leased to `provider-batch:<row id>` until the vendor's
   window ends, `provider_batch_id` set (the reaper leaves them while the row is open,
   however late the vendor or the next worker: what the vendor answers is paid for and
   must find its item), one attempt
   counted. Then, outside any transaction, each request is built exactly as the live
   worker builds it and the lines are sent; the vendor's ids are recorded (`submitted`).
   A refusal sends the items back (not counting the attempt) or, when the vendor will
   never take them, fails them; the row is `failed` with the reason.
2. *Poll.* Due rows are taken with a row lease (a conditional UPDATE: one poller per
   row, on SQLite and PostgreSQL alike), asked for their status, and looked at again
   after a delay that doubles from POLL_FIRST to POLL_MAX. A row whose batch was paused,
   cancelled or changed to `live`, or (`auto`) whose deadline is under an hour away, is
   cancelled at the vendor first (`cancelling`), then polled until it ends.
3. *Collect.* Each result is applied only to an item still running under the row's
   lease owner (processing/service.complete_item and the others check it), so a result
   seen twice, or one for an item the reaper took back, changes nothing. An answer is
   graded as a live answer is (one repair call, live, if it is unusable); an error is
   retried or failed as a live error is; a request the vendor left unanswered (expired,
   cancelled) goes back to the queue without counting the attempt, with the reason.
   Items with no result at all go back too. What was answered was paid for and is kept,
   also when a pause or cancel ended the provider batch; an answer that does not become
   the grade (its repair call failed and the item is retried) is kept as a failed result
   and counted in the batch's spending all the same (service.charge_unused_answers).
   Once the results are stored, the batch's files are deleted at the vendor (OpenAI
   keeps the uploaded input and the output and error files until then); a failed
   delete is logged and left.
4. *Restart.* A row whose lease ran out is taken by the next manager. One still
   `preparing` (its worker stopped between taking the items and recording the vendor's
   id) is looked up at the vendor (`find_sent`): OpenAI by the metadata sent with it,
   exactly; Anthropic, which keeps no metadata, by its shape: a batch not recorded by
   us, with the row's request count, created nearest the row. Found, it goes on as
   submitted; otherwise its items go back to the queue and the row fails. What remains
   on Anthropic: two rows of one size left preparing at the same moment may each take
   the other's batch, or one may take a batch another worker has sent and not yet
   recorded (results that name items the row does not hold are ignored, and the row's
   items go back to the queue and are sent again), and a batch the
   vendor accepted only after the row was given up (a send slower than ROW_LEASE,
   answered by a cancel, `_orphaned`) is not collected. Such an orphan is paid for and
   its answers are never applied nor counted in the batch's spending, so nothing is
   applied or charged twice; its cost shows only on the vendor's bill.
5. *Given up.* The reaper leaves a provider batch's items alone while the row is open
   (processing/claim.py). A row no worker can poll (its provider taken out of the
   configuration, or its batch API turned off, while the vendor held it) is given up
   GIVE_UP_AFTER past the vendor's window: its items go back to the queue with the
   reason, and the row fails. Whatever the vendor answered is not collected then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from grading_app.db import rows_affected, unit_of_work
from grading_app.errors import AppError
from grading_app.grading.service import GradingFailed, Usage, grade_answer
from grading_app.models import RUNNABLE, JobBatch, WorkItem, WorkItemState, utcnow
from grading_app.models.costs import OPEN_PROVIDER_BATCH_STATES, ProviderBatch, ProviderBatchState
from grading_app.models.statuses import sql_list
from grading_app.processing import budget, service
from grading_app.processing.claim import ClaimedItem, mark_started
from grading_app.processing.context import ItemContext, load_context
from grading_app.processing.delivery import (
    BATCH_API_PROVIDERS,
    DEADLINE_MARGIN,
    Delivery,
    delivery_setting,
    uses_batch_api,
)
from grading_app.processing.worker import item_request, may_need_review
from grading_app.providers.base import Provider, ProviderError

log = logging.getLogger(__name__)

OWNER_PREFIX = "provider-batch:"
POLL_FIRST = timedelta(seconds=5)
POLL_MAX = timedelta(minutes=5)
# How long one manager holds a row while it submits, polls or collects it; a manager
# that stops is replaced after this.
ROW_LEASE = timedelta(minutes=10)
# A refused submission is not tried again for this long (or the vendor's Retry-After).
REFUSED_RETRY = timedelta(minutes=1)
# Both vendors answer a batch within 24 hours (or expire it).
VENDOR_WINDOW = timedelta(hours=24)
# A row no worker here can poll is given up this long after the vendor's window ended:
# time for an administrator to put the provider back, or a worker that has it to poll.
GIVE_UP_AFTER = timedelta(days=1)


def item_owner(provider_batch_id: str) -> str:
    """The lease owner of the items in a provider batch: the row, not a worker, so that
    any manager can collect them."""
    return f"{OWNER_PREFIX}{provider_batch_id}"


# The vendor side (providers/batch_api.py); imported where used, as the SDKs are.
BatchAPIFor = Callable[[Provider], Any]


def _default_batch_api_for(provider: Provider) -> Any:
    from grading_app.providers.batch_api import batch_api_for

    return batch_api_for(provider)


@dataclass
class StepReport:
    submitted: int = 0  # provider batches sent
    polled: int = 0
    cancelled: int = 0  # cancels asked of the vendor
    collected: int = 0  # provider batches collected
    applied: dict[str, int] = field(default_factory=dict)  # completed/failed/retried/requeued


class ProviderBatchManager:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        resolve_provider: Callable[[str], Provider],
        owner: str,
        request_timeout: float = 120.0,
        batch_api_for: BatchAPIFor = _default_batch_api_for,
    ) -> None:
        self.sessions = sessions
        self.resolve_provider = resolve_provider
        self.owner = owner
        self.request_timeout = request_timeout
        self.batch_api_for = batch_api_for
        self._without_batch_api: set[str] = set()

    def batch_api(self, provider_name: str) -> Any:
        """The provider's batch API, or None (not configured, or it has none)."""
        try:
            provider = self.resolve_provider(provider_name)
        except AppError:
            return None
        api = self.batch_api_for(provider)
        if api is None and provider_name not in self._without_batch_api:
            self._without_batch_api.add(provider_name)
            log.warning("provider %s has no batch API: its items are called live", provider_name)
        return api

    # --- one round -------------------------------------------------------------------

    def step(self, *, now: datetime | None = None) -> StepReport:
        report = StepReport()
        self.submit(report, now=now or utcnow())
        self.poll(report, now=now or utcnow())
        return report

    # --- 1. submit -------------------------------------------------------------------

    def submit(self, report: StepReport, *, now: datetime) -> None:
        for batch_id, provider, model in self._groups(now):
            api = self.batch_api(provider)
            if api is None:
                self._fail_unconfigured(batch_id, provider, model, now=now)
                continue
            while True:
                taken = self._take(batch_id, provider, model, api, now=utcnow())
                if taken is None:
                    break
                row_id, items = taken
                self._send(row_id, items, api)
                report.submitted += 1
                if len(items) < api.max_requests:
                    break

    def _groups(self, now: datetime) -> list[tuple[str, str, str]]:
        """(batch, provider, model) with due queued items, of running batches whose calls
        go through a batch API now."""
        with unit_of_work(self.sessions, read_only=True) as session:
            batches = session.execute(
                sa.select(JobBatch.id, JobBatch.batch_settings, JobBatch.deadline).where(
                    JobBatch.status.in_(RUNNABLE)
                )
            ).all()
            wanted = [
                batch_id
                for batch_id, settings, deadline in batches
                if uses_batch_api(delivery_setting(settings), deadline=deadline, now=now)
            ]
            if not wanted:
                return []
            self._note_live_providers(session, wanted)
            rows = session.execute(
                sa.select(WorkItem.batch_id, WorkItem.provider, WorkItem.model)
                .where(
                    WorkItem.batch_id.in_(wanted),
                    WorkItem.state == WorkItemState.QUEUED,
                    WorkItem.provider.in_(BATCH_API_PROVIDERS),
                    sa.or_(WorkItem.next_attempt_at.is_(None), WorkItem.next_attempt_at <= now),
                )
                .group_by(WorkItem.batch_id, WorkItem.provider, WorkItem.model)
            ).all()
        return [(str(b), str(p), str(m)) for b, p, m in rows]

    def _note_live_providers(self, session: Session, batch_ids: list[str]) -> None:
        """Say once (in the log) which providers of batch-API batches are called live."""
        live = session.scalars(
            sa.select(WorkItem.provider)
            .where(
                WorkItem.batch_id.in_(batch_ids),
                WorkItem.state == WorkItemState.QUEUED,
                WorkItem.provider.not_in(BATCH_API_PROVIDERS),
            )
            .distinct()
        ).all()
        for provider in set(live) - self._without_batch_api:
            self._without_batch_api.add(provider)
            log.warning("%s has no batch API: its items are called live in every batch", provider)

    def _take(
        self, batch_id: str, provider: str, model: str, api: Any, *, now: datetime
    ) -> tuple[str, list[ClaimedItem]] | None:
        """The group's next items, with the row that holds them; None when none is left."""
        with unit_of_work(self.sessions) as session:
            row = ProviderBatch(
                batch_id=batch_id,
                provider=provider,
                model=model,
                state=ProviderBatchState.PREPARING,
                created_at=now,
                lease_owner=self.owner,
                lease_expires_at=now + ROW_LEASE,
            )
            session.add(row)
            session.flush()
            dialect = session.get_bind().dialect.name
            items = [
                ClaimedItem(id=r.id, job_id=r.job_id, batch_id=r.batch_id)
                for r in session.execute(
                    _TAKE_ITEMS[dialect == "postgresql"],
                    {
                        "batch_id": batch_id,
                        "provider": provider,
                        "model": model,
                        "limit": api.max_requests,
                        "now": now,
                        "owner": item_owner(row.id),
                        "row_id": row.id,
                        "lease_expires_at": now + api.completion_window + DEADLINE_MARGIN,
                    },
                )
            ]
            if not items:
                session.delete(row)
                return None
            row.request_count = len(items)
            mark_started(session, items, now)
            return row.id, items

    def _send(self, row_id: str, items: list[ClaimedItem], api: Any) -> None:
        from grading_app.providers.batch_api import BatchLine

        owner = item_owner(row_id)
        lines = []
        with unit_of_work(self.sessions, read_only=True) as session:
            contexts = [load_context(session, item_id=i.id, owner=owner) for i in items]
        for context in contexts:
            if context is not None and context.runnable:
                _, request = item_request(context, request_timeout=self.request_timeout)
                lines.append(BatchLine(custom_id=context.item_id, request=request))
        if len(lines) < len(items):  # paused or cancelled since they were taken
            with unit_of_work(self.sessions) as session:
                sent = [line.custom_id for line in lines]
                held_back = [item.id for item in items if item.id not in set(sent)]
                _release_items(
                    session, row_id, reason="its batch stopped before sending", item_ids=held_back
                )
                if not lines:
                    _finish_row(
                        session,
                        row_id,
                        state=ProviderBatchState.FAILED,
                        error="nothing sent: its batch was paused or cancelled",
                    )
                    return
                session.execute(
                    sa.update(ProviderBatch)
                    .where(ProviderBatch.id == row_id)
                    .values(request_count=len(lines))
                )
        if not self._within_budget(row_id, contexts, lines):
            return
        try:
            vendor = self._submit(row_id, lines, api)
        except ProviderError as exc:
            self._refused(row_id, exc)
            return
        if vendor is None:
            return
        with unit_of_work(self.sessions) as session:
            recorded = _record_vendor(session, row_id, vendor, owner=self.owner, now=utcnow())
        if not recorded:
            self._orphaned(row_id, vendor, api)

    def _within_budget(
        self, row_id: str, contexts: list[ItemContext | None], lines: list[Any]
    ) -> bool:
        """Before anything is paid for: the lines at the batch price, with the batch's
        other calls in flight, against its budget. Over it, the items go back to the
        queue, the row fails with the reason and the batch pauses with it."""
        context = next((c for c in contexts if c is not None), None)
        if context is None or context.batch_id is None or context.budget_usd is None:
            return True
        with unit_of_work(self.sessions) as session:
            cost = budget.calls_cost_usd(
                session,
                batch_id=context.batch_id,
                provider=context.provider,
                model=context.model,
                requests=[line.request for line in lines],
                rubric=context.rubric,
                batch_api=True,
            )
            if not cost:
                return True
            # This row's items are running already: counted in flight, at the mean.
            reason = budget.would_exceed(
                session, batch_id=context.batch_id, extra_usd=0.0, per_item_usd=cost / len(lines)
            )
            if reason is None:
                return True
            _release_items(session, row_id, reason=reason)
            _finish_row(session, row_id, state=ProviderBatchState.FAILED, error=reason)
            budget.pause_for_budget(session, batch_id=context.batch_id, reason=reason)
        return False

    def _submit(self, row_id: str, lines: list[Any], api: Any) -> Any:
        """Send the lines; those over the vendor's size limit go back to the queue for
        the next provider batch. None: not even one line fits (it fails, with why)."""
        from grading_app.providers.batch_api import BatchTooLarge

        try:
            return api.submit(lines, metadata={"provider_batch_id": row_id})
        except BatchTooLarge as exc:
            keep, back = lines[: exc.fits], lines[exc.fits :]
            owner = item_owner(row_id)
            with unit_of_work(self.sessions) as session:
                if not keep:  # the first line alone is over the limit
                    too_large = f"too large for the vendor's batch API: {exc}"
                    service.fail_item(
                        session, item_id=back[0].custom_id, owner=owner, error=too_large
                    )
                    back = back[1:]
                _release_items(
                    session,
                    row_id,
                    reason="did not fit in one provider batch; sent in the next",
                    item_ids=[line.custom_id for line in back],
                )
                if not keep:
                    _release_items(session, row_id, reason=str(exc))
                    _finish_row(session, row_id, state=ProviderBatchState.FAILED, error=str(exc))
                    return None
                session.execute(
                    sa.update(ProviderBatch)
                    .where(ProviderBatch.id == row_id)
                    .values(request_count=len(keep))
                )
            return api.submit(keep, metadata={"provider_batch_id": row_id})

    def _orphaned(self, row_id: str, vendor: Any, api: Any) -> None:
        """Sending took longer than the row's lease and another manager took the row as
        left by a stopped one: if it found this vendor batch, it goes on with it; if not,
        the items went back to the queue and nobody would collect it, so it is cancelled."""
        with unit_of_work(self.sessions, read_only=True) as session:
            known = session.scalar(
                sa.select(ProviderBatch.external_id).where(ProviderBatch.id == row_id)
            )
        if known != vendor.external_id:
            log.error("provider batch %s was given up while sending; cancelling it", row_id)
            api.cancel(vendor.external_id)
            # Nobody will collect it: what it answers before the cancel is lost (and was
            # paid for; see the module's note on the window that remains).
            api.delete_files([vendor.input_file_id])

    def _refused(self, row_id: str, exc: ProviderError) -> None:
        reason = f"the vendor refused the provider batch: {exc.message}"
        with unit_of_work(self.sessions) as session:
            if exc.retryable:
                wait = exc.retry_after or REFUSED_RETRY.total_seconds()
                _release_items(
                    session, row_id, reason=reason, not_before=utcnow() + timedelta(seconds=wait)
                )
            else:
                for item_id in _open_items(session, row_id):
                    service.fail_item(
                        session, item_id=item_id, owner=item_owner(row_id), error=reason
                    )
                _release_items(session, row_id, reason=reason)
            _finish_row(session, row_id, state=ProviderBatchState.FAILED, error=reason)
        log.warning("provider batch %s: %s", row_id, reason)

    def _fail_unconfigured(
        self, batch_id: str, provider: str, model: str, *, now: datetime
    ) -> None:
        """Items of a provider this server cannot call fail as a live call would."""
        try:
            self.resolve_provider(provider)
        except AppError as exc:
            message = exc.message
        else:
            return  # it has no batch API: claims take its items live
        with unit_of_work(self.sessions) as session:
            ids = session.scalars(
                sa.update(WorkItem)
                .where(
                    WorkItem.batch_id == batch_id,
                    WorkItem.provider == provider,
                    WorkItem.model == model,
                    WorkItem.state == WorkItemState.QUEUED,
                )
                .values(state=WorkItemState.RUNNING, lease_owner=self.owner, updated_at=now)
                .returning(WorkItem.id)
            ).all()
            for item_id in ids:
                service.fail_item(session, item_id=item_id, owner=self.owner, error=message)

    # --- 2. poll, cancel, and 3. collect ----------------------------------------------

    def poll(self, report: StepReport, *, now: datetime) -> None:
        for row_id in self._due_rows(now):
            if not self._lease_row(row_id, now=now):
                continue  # another manager has it
            try:
                self._look_at(row_id, report, now=now)
            finally:
                with unit_of_work(self.sessions) as session:
                    _unlease_row(session, row_id, owner=self.owner)

    def _due_rows(self, now: datetime) -> list[str]:
        """Rows to look at: due a poll, to cancel, to collect, or left by a stopped manager."""
        with unit_of_work(self.sessions, read_only=True) as session:
            rows = session.execute(
                sa.select(
                    ProviderBatch.id,
                    ProviderBatch.state,
                    ProviderBatch.next_poll_at,
                    ProviderBatch.lease_expires_at,
                    JobBatch.status,
                    JobBatch.batch_settings,
                    JobBatch.deadline,
                )
                .outerjoin(JobBatch, JobBatch.id == ProviderBatch.batch_id)
                .where(ProviderBatch.state.in_(OPEN_PROVIDER_BATCH_STATES))
                .order_by(ProviderBatch.created_at)
            ).all()
        due = []
        for row_id, state, next_poll_at, lease_expires_at, status, settings, deadline in rows:
            if lease_expires_at is not None and lease_expires_at > now:
                continue  # held by a manager
            due_anyway = state in (ProviderBatchState.PREPARING, ProviderBatchState.ENDED)
            due_a_poll = next_poll_at is None or next_poll_at <= now
            to_cancel = state == ProviderBatchState.SUBMITTED and _cancel_wanted(
                status, settings, deadline, now=now
            )
            # Preparing with its lease run out: the manager sending it stopped.
            if due_anyway or due_a_poll or to_cancel:
                due.append(row_id)
        return due

    def _lease_row(self, row_id: str, *, now: datetime) -> bool:
        with unit_of_work(self.sessions) as session:
            taken = session.execute(
                sa.update(ProviderBatch)
                .where(
                    ProviderBatch.id == row_id,
                    ProviderBatch.state.in_(OPEN_PROVIDER_BATCH_STATES),
                    sa.or_(
                        ProviderBatch.lease_expires_at.is_(None),
                        ProviderBatch.lease_expires_at <= now,
                    ),
                )
                .values(lease_owner=self.owner, lease_expires_at=now + ROW_LEASE)
            )
            return rows_affected(taken) == 1

    def _look_at(self, row_id: str, report: StepReport, *, now: datetime) -> None:
        with unit_of_work(self.sessions, read_only=True) as session:
            row = session.get(ProviderBatch, row_id)
            assert row is not None
            batch = session.get(JobBatch, row.batch_id) if row.batch_id else None
            state, external_id, provider = row.state, row.external_id, row.provider
            model = row.model
            window_end = row.expires_at or (row.submitted_at or row.created_at) + VENDOR_WINDOW
            cancel = state == ProviderBatchState.SUBMITTED and _cancel_wanted(
                batch.status if batch else None,
                batch.batch_settings if batch else None,
                batch.deadline if batch else None,
                now=now,
            )
        api = self.batch_api(provider)
        if api is None:  # not configured in this worker: left for one that is
            log.warning("provider batch %s: %s is not configured here", row_id, provider)
            with unit_of_work(self.sessions) as session:
                if now > window_end + GIVE_UP_AFTER:
                    reason = (
                        f"no worker could poll this provider batch ({provider} has no batch "
                        "API configured) for a day past the vendor's window; its items went "
                        "back to the queue, and what the vendor answered was not collected"
                    )
                    _release_items(session, row_id, reason=reason)
                    _finish_row(session, row_id, state=ProviderBatchState.FAILED, error=reason)
                    return
                _poll_later(session, row_id, vendor_status=None, now=now)
            return
        try:
            if state == ProviderBatchState.PREPARING:
                vendor = api.find_sent(self._as_sent(row_id))
                with unit_of_work(self.sessions) as session:
                    if vendor is None:
                        reason = (
                            "the worker sending this provider batch stopped before the vendor "
                            "confirmed it; its items went back to the queue"
                        )
                        _release_items(session, row_id, reason=reason)
                        _finish_row(session, row_id, state=ProviderBatchState.FAILED, error=reason)
                        return
                    _record_vendor(session, row_id, vendor, owner=self.owner, now=utcnow())
                state, external_id = ProviderBatchState.SUBMITTED, vendor.external_id
            assert external_id is not None  # recorded with the state submitted
            if state == ProviderBatchState.ENDED:
                vendor = api.status(external_id)
            elif cancel:
                vendor = self._cancel(row_id, external_id, api)
                report.cancelled += 1
                if not vendor.ended:
                    vendor = api.status(external_id)
            else:
                vendor = api.status(external_id)
        except ProviderError as exc:
            if exc.retryable:
                with unit_of_work(self.sessions) as session:
                    _poll_later(session, row_id, vendor_status=None, now=utcnow())
                log.warning("provider batch %s: polling failed (%s)", row_id, exc.message)
                return
            # The vendor no longer knows it (or will not say): nothing more will come.
            reason = f"the vendor lost it: {exc.message}"
            self._collect(row_id, api, None, report, reason=reason)
            return
        report.polled += 1
        with unit_of_work(self.sessions) as session:
            _update_from_vendor(session, row_id, vendor)
            if not vendor.ended:
                _poll_later(session, row_id, vendor_status=vendor.vendor_status, now=utcnow())
                return
        # Anthropic does not say which model a batch asked; a failed line's error names it.
        self._collect(
            row_id, api, replace(vendor, model=vendor.model or model), report, reason=None
        )

    def _as_sent(self, row_id: str) -> Any:
        """What the vendor batch of a row left preparing would look like, if it was sent."""
        from grading_app.providers.batch_api import SentBatch

        with unit_of_work(self.sessions, read_only=True) as session:
            row = session.get(ProviderBatch, row_id)
            assert row is not None
            known = session.scalars(
                sa.select(ProviderBatch.external_id).where(
                    ProviderBatch.provider == row.provider,
                    ProviderBatch.external_id.is_not(None),
                    # Rows that could have sent a batch since ours was created: any
                    # created up to a send (under ROW_LEASE) before it; a day is plenty.
                    ProviderBatch.created_at >= row.created_at - timedelta(days=1),
                )
            ).all()
            return SentBatch(
                metadata=("provider_batch_id", row_id),
                request_count=row.request_count,
                created_at=row.created_at,
                known_ids=frozenset(k for k in known if k),
            )

    def _cancel(self, row_id: str, external_id: str, api: Any) -> Any:
        """Ask the vendor to stop; what it answered already comes back all the same."""
        try:
            vendor = api.cancel(external_id)
        except ProviderError as exc:  # it ended meanwhile, most likely: its status says
            log.warning("provider batch %s: cancel refused (%s)", row_id, exc.message)
            vendor = api.status(external_id)
        with unit_of_work(self.sessions) as session:
            session.execute(
                sa.update(ProviderBatch)
                .where(ProviderBatch.id == row_id)
                .values(state=ProviderBatchState.CANCELLING)
            )
        return vendor

    def _collect(
        self,
        row_id: str,
        api: Any,
        vendor: Any | None,
        report: StepReport,
        *,
        reason: str | None,
    ) -> None:
        """Apply the ended provider batch's results, send the rest back, close the row,
        then delete its files at the vendor."""
        started = utcnow()
        owner = item_owner(row_id)
        applied: dict[str, int] = {}
        results_read = False
        if vendor is not None:
            try:
                for result in api.results(vendor):
                    outcome = self._apply(row_id, owner, result)
                    if outcome:
                        applied[outcome] = applied.get(outcome, 0) + 1
                results_read = True
            except ProviderError as exc:
                reason = f"its results could not be read: {exc.message}"
            if vendor.error:
                # Failed as a whole (OpenAI: its input did not validate): sending the
                # same lines again may fail again, so each try counts as an attempt.
                reason = f"the vendor failed the provider batch: {vendor.error}"
                for outcome in self._retry_all(row_id, reason):
                    applied[outcome] = applied.get(outcome, 0) + 1
            elif reason is None and vendor.vendor_status not in ("completed", "ended"):
                reason = f"the vendor ended it as {vendor.vendor_status}"
        left = reason or "the vendor returned no answer for it"
        with unit_of_work(self.sessions) as session:
            cost = _cost_since(session, row_id, started)  # before the items leave the row
            requeued = _release_items(
                session, row_id, reason=f"sent back from a provider batch: {left}"
            )
            session.execute(
                sa.update(ProviderBatch)
                .where(ProviderBatch.id == row_id)
                .values(
                    succeeded_count=applied.get("completed", 0),
                    failed_count=applied.get("failed", 0) + applied.get("retried", 0),
                    requeued_count=requeued + applied.get("requeued", 0),
                    cost_usd=cost,
                    error=reason,
                )
            )
            _finish_row(session, row_id, state=ProviderBatchState.COLLECTED, error=reason)
            files = session.execute(
                sa.select(
                    ProviderBatch.input_file_id,
                    ProviderBatch.output_file_id,
                    ProviderBatch.error_file_id,
                ).where(ProviderBatch.id == row_id)
            ).one()
        # Only once the results are stored (committed above). Results that could not be
        # read stay at the vendor for a person to look at; the input is of no more use.
        api.delete_files(tuple(files) if results_read else files[:1])
        report.collected += 1
        for key, count in applied.items():
            report.applied[key] = report.applied.get(key, 0) + count

    def _retry_all(self, row_id: str, reason: str) -> list[str]:
        """The row's open items retried later (or failed, their retries spent)."""
        owner = item_owner(row_id)
        error = ProviderError(reason, retryable=True)
        with unit_of_work(self.sessions, read_only=True) as session:
            item_ids = _open_items(session, row_id)
            contexts = [load_context(session, item_id=i, owner=owner) for i in item_ids]
        outcomes = [
            self._retry_or_fail(context, owner, error, usage=None)
            for context in contexts
            if context is not None
        ]
        return [outcome for outcome in outcomes if outcome]

    def _apply(self, row_id: str, owner: str, result: Any) -> str | None:
        """One result, if its item is still this row's; what became of it, or None."""
        with unit_of_work(self.sessions, read_only=True) as session:
            context = load_context(session, item_id=result.custom_id, owner=owner)
        if context is None or not _held(self.sessions, context.item_id, owner, row_id):
            return None  # unknown, or already applied, or taken back by the reaper
        if result.response is not None:
            return self._apply_answer(context, owner, result.response)
        if result.error is not None:
            return self._apply_error(context, owner, result.error)
        reason = f"sent back from a provider batch: {result.unanswered or 'no answer'}"
        with unit_of_work(self.sessions) as session:
            released = _release_items(session, row_id, reason=reason, item_ids=[context.item_id])
        return "requeued" if released else None

    def _apply_answer(self, context: ItemContext, owner: str, response: Any) -> str | None:
        sent, request = item_request(context, request_timeout=self.request_timeout)
        try:
            # Only a repair call, for an unusable answer, goes to the provider live.
            provider = self.resolve_provider(context.provider)
            outcome = grade_answer(provider, request, response, rubric=context.rubric)
        except GradingFailed as exc:
            usage = replace(exc.usage, delivery="batch_api")
            return self._fail(context, owner, exc.reason, usage=usage)
        except ProviderError as exc:  # the repair call failed
            usage = replace(Usage.of(exc.answers or [response]), delivery="batch_api")
            return self._retry_or_fail(context, owner, exc, usage=usage)
        except AppError as exc:  # the provider is no longer configured (for the repair)
            usage = replace(Usage.of([response]), delivery="batch_api")
            return self._fail(context, owner, exc.message, usage=usage)
        from grading_app.trust.pipeline import with_evidence

        checked = with_evidence(replace(outcome, delivery="batch_api"), sent, context.document_text)
        with unit_of_work(self.sessions) as session:
            stored = service.complete_item(
                session,
                item_id=context.item_id,
                owner=owner,
                outcome=checked,
                may_need_review=may_need_review(context, checked),
                single_model=context.single_model,
            )
        return "completed" if stored else None

    def _apply_error(self, context: ItemContext, owner: str, error: ProviderError) -> str | None:
        return self._retry_or_fail(context, owner, error, usage=None)

    def _retry_or_fail(
        self, context: ItemContext, owner: str, error: ProviderError, *, usage: Usage | None
    ) -> str | None:
        if error.retryable and context.attempts <= context.max_retries:
            with unit_of_work(self.sessions) as session:
                when = service.retry_later(
                    session,
                    item_id=context.item_id,
                    owner=owner,
                    error=error.message,
                    retry_after=error.retry_after,
                    usage=usage,
                )
                return "retried" if when else None
        message = error.message
        if error.retryable:
            message = f"{message} (gave up after {context.attempts} attempts)"
        return self._fail(context, owner, message, usage=usage)

    def _fail(
        self, context: ItemContext, owner: str, message: str, *, usage: Usage | None
    ) -> str | None:
        with unit_of_work(self.sessions) as session:
            failed = service.fail_item(
                session, item_id=context.item_id, owner=owner, error=message, usage=usage
            )
        return "failed" if failed else None


# --- what a job batch's provider batches have done -------------------------------------


@dataclass(frozen=True)
class ProviderBatchTotals:
    """For a person deciding on a pause or cancel: what is still at the vendor, and what
    was answered (and so paid for) already."""

    total: int  # provider batches in all
    open: int
    answered: int
    cost_usd: float


def totals(session: Session, *, batch_id: str) -> ProviderBatchTotals:
    total, open_count, answered, cost = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(ProviderBatch.state.in_(OPEN_PROVIDER_BATCH_STATES)),
            sa.func.coalesce(
                sa.func.sum(ProviderBatch.succeeded_count + ProviderBatch.failed_count), 0
            ),
            sa.func.coalesce(sa.func.sum(ProviderBatch.cost_usd), 0.0),
        ).where(ProviderBatch.batch_id == batch_id)
    ).one()
    return ProviderBatchTotals(
        total=total, open=open_count, answered=answered, cost_usd=float(cost or 0)
    )


def list_for_batch(session: Session, *, batch_id: str) -> list[ProviderBatch]:
    return list(
        session.scalars(
            sa.select(ProviderBatch)
            .where(ProviderBatch.batch_id == batch_id)
            .order_by(ProviderBatch.created_at, ProviderBatch.id)
        )
    )


# --- the SQL -----------------------------------------------------------------------------


def _cancel_wanted(
    status: str | None, settings: Any, deadline: datetime | None, *, now: datetime
) -> bool:
    """A submitted provider batch is cancelled at the vendor (what it answered is kept,
    the rest goes back to the queue) when its batch is paused, cancelled or deleted,
    was changed to `live`, or is `auto` and its deadline is less than DEADLINE_MARGIN
    away: the vendor is late, and the rest must go live now. (An `auto` batch is sent
    only while the deadline leaves the vendor its whole window plus that margin.)"""
    if status not in RUNNABLE:
        return True
    delivery = delivery_setting(settings)
    if delivery is Delivery.AUTO:
        return deadline is not None and now > deadline - DEADLINE_MARGIN
    return delivery is Delivery.LIVE


def _take_items_sql(postgresql: bool) -> sa.TextClause:
    runnable = sql_list(RUNNABLE)
    picked = f"""
        SELECT wi.id FROM work_items wi JOIN grading_jobs j ON j.id = wi.job_id
        WHERE wi.batch_id = :batch_id AND wi.provider = :provider AND wi.model = :model
          AND wi.state = '{WorkItemState.QUEUED}'
          AND (wi.next_attempt_at IS NULL OR wi.next_attempt_at <= :now)
          AND j.status IN {runnable}
          AND EXISTS (SELECT 1 FROM job_batches b WHERE b.id = wi.batch_id
                      AND b.status IN {runnable})
        ORDER BY wi.sequence, wi.id LIMIT :limit"""
    where = (
        f"id = ANY(ARRAY({picked} FOR UPDATE OF wi SKIP LOCKED))"
        if postgresql
        else f"id IN ({picked})"  # SQLite: the write lock is ours (BEGIN IMMEDIATE)
    )
    return sa.text(
        f"""UPDATE work_items SET state = '{WorkItemState.RUNNING}', lease_owner = :owner,
            lease_expires_at = :lease_expires_at, provider_batch_id = :row_id,
            attempts = attempts + 1, started_at = COALESCE(started_at, :now), updated_at = :now
        WHERE {where}
        RETURNING id, job_id, batch_id"""
    ).bindparams(
        sa.bindparam("now", type_=sa.DateTime()),
        sa.bindparam("lease_expires_at", type_=sa.DateTime()),
    )


_TAKE_ITEMS = {postgresql: _take_items_sql(postgresql) for postgresql in (False, True)}


def _held(sessions: sessionmaker[Session], item_id: str, owner: str, row_id: str) -> bool:
    with unit_of_work(sessions, read_only=True) as session:
        return (
            session.scalar(
                sa.select(sa.func.count())
                .select_from(WorkItem)
                .where(
                    WorkItem.id == item_id,
                    WorkItem.state == WorkItemState.RUNNING,
                    WorkItem.lease_owner == owner,
                    WorkItem.provider_batch_id == row_id,
                )
            )
            == 1
        )


def _open_items(session: Session, row_id: str) -> list[str]:
    return list(
        session.scalars(
            sa.select(WorkItem.id).where(
                WorkItem.provider_batch_id == row_id,
                WorkItem.state == WorkItemState.RUNNING,
                WorkItem.lease_owner == item_owner(row_id),
            )
        )
    )


def _release_items(
    session: Session,
    row_id: str,
    *,
    reason: str,
    not_before: datetime | None = None,
    item_ids: Iterable[str] | None = None,
) -> int:
    """The row's items still in it go back to the queue, the attempt not counted (the
    vendor did not grade them); those of a batch cancelled meanwhile are withdrawn.
    Every item of the row leaves it. Returns how many went back."""
    now = utcnow()
    held = sa.and_(
        WorkItem.provider_batch_id == row_id,
        WorkItem.state == WorkItemState.RUNNING,
        WorkItem.lease_owner == item_owner(row_id),
    )
    if item_ids is not None:
        held = sa.and_(held, WorkItem.id.in_(list(item_ids)))
    released = session.scalars(
        sa.update(WorkItem)
        .where(held)
        .values(
            state=WorkItemState.QUEUED,
            lease_owner=None,
            lease_expires_at=None,
            provider_batch_id=None,
            attempts=sa.case((WorkItem.attempts > 0, WorkItem.attempts - 1), else_=0),
            next_attempt_at=not_before,
            last_error=reason[:2000],
            updated_at=now,
        )
        .returning(WorkItem.id)
        .execution_options(synchronize_session=False)
    ).all()
    if item_ids is None:
        session.execute(
            sa.update(WorkItem)
            .where(WorkItem.provider_batch_id == row_id)
            .values(provider_batch_id=None)
            .execution_options(synchronize_session=False)
        )
    if released:
        service.withdraw_cancelled(session, now=now, item_ids=released)
    return len(released)


def _record_vendor(
    session: Session, row_id: str, vendor: Any, *, owner: str, now: datetime
) -> bool:
    """The vendor has the batch: its ids, and the first poll soon. False if this manager
    no longer holds the row."""
    result = session.execute(
        sa.update(ProviderBatch)
        .where(
            ProviderBatch.id == row_id,
            ProviderBatch.state == ProviderBatchState.PREPARING,
            ProviderBatch.lease_owner == owner,
        )
        .values(
            state=ProviderBatchState.SUBMITTED,
            external_id=vendor.external_id,
            input_file_id=vendor.input_file_id,
            vendor_status=vendor.vendor_status,
            expires_at=vendor.expires_at,
            submitted_at=now,
            next_poll_at=now + POLL_FIRST,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return rows_affected(result) == 1


def _update_from_vendor(session: Session, row_id: str, vendor: Any) -> None:
    values: dict[str, Any] = {
        "vendor_status": vendor.vendor_status,
        "output_file_id": vendor.output_file_id,
        "error_file_id": vendor.error_file_id,
        "polls": ProviderBatch.polls + 1,
    }
    if vendor.expires_at is not None:
        values["expires_at"] = vendor.expires_at
    if vendor.ended:
        values.update(state=ProviderBatchState.ENDED, ended_at=utcnow())
    session.execute(sa.update(ProviderBatch).where(ProviderBatch.id == row_id).values(values))


def _poll_later(session: Session, row_id: str, *, vendor_status: str | None, now: datetime) -> None:
    row = session.get(ProviderBatch, row_id)
    assert row is not None
    delay = min(POLL_MAX, POLL_FIRST * 2 ** min(row.polls, 10))
    row.next_poll_at = now + delay
    if vendor_status is not None:
        row.vendor_status = vendor_status
    session.flush()


def _unlease_row(session: Session, row_id: str, *, owner: str) -> None:
    session.execute(
        sa.update(ProviderBatch)
        .where(ProviderBatch.id == row_id, ProviderBatch.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


def _finish_row(
    session: Session, row_id: str, *, state: ProviderBatchState, error: str | None
) -> None:
    now = utcnow()
    values: dict[str, Any] = {
        "state": state,
        "error": error,
        "lease_owner": None,
        "lease_expires_at": None,
        "next_poll_at": None,
    }
    if state == ProviderBatchState.COLLECTED:
        values["collected_at"] = now
    else:
        values["ended_at"] = now
    session.execute(sa.update(ProviderBatch).where(ProviderBatch.id == row_id).values(values))


def _cost_since(session: Session, row_id: str, since: datetime) -> float | None:
    """What the row's answers cost: the batch-API results written since collecting began
    for its items (the costs of each call are priced as it is stored)."""
    from grading_app.models import GradeResult

    return session.scalar(
        sa.select(sa.func.sum(GradeResult.cost_usd))
        .join(
            WorkItem,
            sa.and_(
                WorkItem.submission_id == GradeResult.submission_id,
                WorkItem.provider == GradeResult.provider,
                WorkItem.model == GradeResult.model,
            ),
        )
        .where(
            WorkItem.provider_batch_id == row_id,
            GradeResult.delivery == "batch_api",
            GradeResult.created_at >= since,
        )
    )
