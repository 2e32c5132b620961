"""Claiming runnable work items, in priority order, without two workers taking one item.

A claim first picks *queues*, then takes their items through an index, so its cost does
not grow with the number of queued items:

1. Two small queries list the runnable queues: each runnable batch (pending/processing)
   with a due queued item of a runnable job, and each runnable job without a batch that
   has one (read only when some item without a batch is queued). There are few of
   them, whatever the queue length; each costs one index probe for its first item.
2. The queues are ranked, in Python, by effective priority (the batch's priority plus
   one level per AGING_SECONDS it has waited, so nothing starves), then the soonest
   deadline, then least recently served (`last_claimed_at`; never served first). A
   claim of `limit` items takes what `limit` single-item claims in a row would take:
   a queue that has just been served goes to the back, so batches of equal priority
   and deadline take turns (round robin), also when one of them arrived much later.
3. Each chosen queue gives its next items through the `(batch_id, state)` index (the
   `(job_id, state)` index for a job without a batch), in the order they were queued.
   A queue that gives fewer than asked (drained, or its rows locked by another claimer)
   is dropped and the remaining places go to the next queues. (Queued items that are
   not due yet, or belong to a paused job of a running batch, are read past: a claim
   costs more in proportion to those only.)

Aging counts the wait from when the batch was last served (`last_claimed_at`) or became
runnable, whichever is later. The schema has no column for the latter, so `updated_at`
stands in for it: starting a draft and resuming a paused batch set it, so time spent as
a draft or paused does not count. Every other write to the batch row (an item
finishing, an edit) restarts the wait as well, which only ever delays aging. A job
without a batch has no `last_claimed_at`: its `updated_at` stands in for both.

A batch whose calls go through a vendor's batch API (`delivery`; the rule is
processing/delivery.uses_batch_api) is a queue of the items no batch API takes: those
of providers without one. The provider batch manager (processing/provider_batches.py)
takes the others. Batches called live read no more than before.

PostgreSQL: the queues' items are taken with `SELECT ... FOR UPDATE SKIP LOCKED` (one
statement for all the queues of a turn), so concurrent claimers skip each other's rows
instead of queueing (https://www.postgresql.org/docs/current/sql-select.html
#SQL-FOR-UPDATE-SHARE). SQLite: the claim runs under BEGIN IMMEDIATE (one writer), an
`UPDATE ... RETURNING` per queue.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from grading_app.models.costs import OPEN_PROVIDER_BATCH_STATES
from grading_app.models.statuses import RUNNABLE, JobStatus, WorkItemState, sql_list
from grading_app.processing import service
from grading_app.processing.context import max_retries_of
from grading_app.processing.delivery import BATCH_API_PROVIDERS, delivery_setting, uses_batch_api

# Every AGING_SECONDS a batch waits without a claim, it counts one priority level higher.
AGING_SECONDS = 300
_NOW = sa.bindparam("now", type_=sa.DateTime())
_DEFAULT_PRIORITY = 5


@dataclass(frozen=True)
class ClaimedItem:
    id: str
    job_id: str
    batch_id: str | None


# --- 1. the runnable queues ------------------------------------------------------------

_DUE = "(wi.next_attempt_at IS NULL OR wi.next_attempt_at <= :now)"
_RUNNABLE = sql_list(RUNNABLE)
_QUEUED = f"'{WorkItemState.QUEUED}'"
_RUNNING = f"'{WorkItemState.RUNNING}'"
_JOB_RUNNABLE = f"j.status IN {_RUNNABLE}"


def _queued(dialect: str, column: str, queue: str, *, select: str = "wi.id", also: str = "") -> str:
    """Due queued items of runnable jobs whose `column` (batch_id, or job_id for a job
    without a batch) is `queue`, in the order they were queued, read through the
    (column, state) index; add LIMIT."""
    if dialect == "postgresql":
        # This is `column = queue AND state = 'queued'`, spelled as a row-value range so
        # that only the (column, state) index can serve it and the ORDER BY is not
        # dropped as constant. With plain equalities the planner, which takes a batch's
        # rows to be spread through the table (they sit together), chose a sequential
        # scan or the (state, next_attempt_at) index for `LIMIT n` and read past every
        # queued item of the other batches: 27-38 ms a claim at 100,000 items.
        where = (
            f"(wi.{column}, wi.state) >= ({queue}, {_QUEUED}) "
            f"AND (wi.{column}, wi.state) <= ({queue}, {_QUEUED})"
        )
        order = f"wi.{column}, wi.state"  # then heap order: the order they were queued
    else:
        where = f"wi.{column} = {queue} AND wi.state = {_QUEUED}"
        order = "wi.rowid"  # the last column of every SQLite index: no sort
    return f"""
        SELECT {select} FROM work_items wi JOIN grading_jobs j ON j.id = wi.job_id
        WHERE {where} AND {_DUE} AND {_JOB_RUNNABLE} {also}
        ORDER BY {order}"""


def _has_queued(dialect: str, column: str, queue: str) -> tuple[str, str]:
    """(FROM addition, WHERE addition) keeping the rows whose queue has a due item."""
    first = f"{_queued(dialect, column, queue)} LIMIT 1"
    if dialect == "postgresql":  # EXISTS would drop the ORDER BY the plan relies on
        return f"CROSS JOIN LATERAL ({first}) AS first_item", ""
    return "", f"AND EXISTS ({first})"


def _delivery_sql(dialect: str) -> str:
    """The batch's `delivery` setting, NULL when unset or unreadable (rows of earlier
    releases may hold anything there)."""
    if dialect == "postgresql":
        return "b.batch_settings ->> 'delivery'"
    return (
        "CASE WHEN json_valid(b.batch_settings) "
        "THEN json_extract(b.batch_settings, '$.delivery') END"
    )


def _batch_queues_sql(dialect: str, *, one_batch: bool) -> str:
    join, where = _has_queued(dialect, "batch_id", "b.id")
    return f"""
        SELECT b.id AS batch_id, b.priority AS priority, b.deadline AS deadline,
               b.last_claimed_at AS last_claimed_at, b.updated_at AS updated_at,
               b.created_at AS created_at, {_delivery_sql(dialect)} AS delivery
        FROM job_batches b {join}
        WHERE b.status IN {_RUNNABLE} {"AND b.id = :batch_id" if one_batch else ""}
          {where}"""


def _loose_job_queues_sql(dialect: str) -> str:
    # `guard` has a row only when some item without a batch is queued at all (one probe
    # of the (batch_id, state) index). It is the outer side of the join (SQLite keeps
    # the order of a CROSS JOIN; PostgreSQL flattens it into a one-time filter), so the
    # jobs are not read otherwise.
    join, where = _has_queued(dialect, "job_id", "lj.id")
    return f"""
        SELECT lj.id AS job_id, lj.priority AS priority, lj.updated_at AS updated_at,
               lj.created_at AS created_at
        FROM (SELECT 1 AS one WHERE EXISTS (
                SELECT 1 FROM work_items q WHERE q.batch_id IS NULL AND q.state = {_QUEUED})
             ) guard
        CROSS JOIN grading_jobs lj {join}
        WHERE lj.batch_id IS NULL AND lj.status IN {_RUNNABLE} {where}"""


_BATCH_COLUMNS = (
    sa.column("batch_id", sa.String()),
    sa.column("priority", sa.Integer()),
    sa.column("deadline", sa.DateTime()),
    sa.column("last_claimed_at", sa.DateTime()),
    sa.column("updated_at", sa.DateTime()),
    sa.column("created_at", sa.DateTime()),
    sa.column("delivery", sa.String()),
)
_LOOSE_JOB_COLUMNS = (
    sa.column("job_id", sa.String()),
    sa.column("priority", sa.Integer()),
    sa.column("updated_at", sa.DateTime()),
    sa.column("created_at", sa.DateTime()),
)
_DIALECTS = ("postgresql", "sqlite")
_BATCH_QUEUES = {
    (dialect, one): sa.text(_batch_queues_sql(dialect, one_batch=one))
    .bindparams(_NOW)
    .columns(*_BATCH_COLUMNS)
    for dialect in _DIALECTS
    for one in (False, True)
}
_LOOSE_JOB_QUEUES = {
    dialect: sa.text(_loose_job_queues_sql(dialect)).bindparams(_NOW).columns(*_LOOSE_JOB_COLUMNS)
    for dialect in _DIALECTS
}


@dataclass(eq=False)  # each queue is itself: hashed and compared by identity
class _Queue:
    """A runnable batch, or a runnable job without a batch."""

    batch_id: str | None
    job_id: str | None
    priority: int
    deadline: datetime | None
    # Aging counts from here: when it was last served or became runnable.
    waiting_since: datetime | None
    # Turns among equals: least recently served first (None: never, so first of all).
    last_served: datetime | None
    # 0 until served in this claim; then the how-many-th serving it was (its turn).
    served: int = 0
    exhausted: bool = False
    # Its calls go through a batch API: only items of providers without one are claimed.
    live_only: bool = False

    @property
    def name(self) -> str:
        return self.batch_id or f"job:{self.job_id}"

    def rank(self, now: datetime, served: int) -> tuple[Any, ...]:
        """Lower goes first; `served` is this claim's turn number when it was last
        served (0: not yet)."""
        priority = self.priority
        if not served and self.waiting_since is not None:
            waited = (now - self.waiting_since).total_seconds()
            priority += max(0, math.floor(waited / AGING_SECONDS))
        return (
            -priority,
            self.deadline is None,
            self.deadline or datetime.max,
            served,
            self.last_served or datetime.min,
            self.waiting_since or datetime.min,
            self.name,
        )


def _latest(*moments: datetime | None) -> datetime | None:
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def _runnable_queues(
    session: Session, dialect: str, *, now: datetime, batch_id: str | None
) -> list[_Queue]:
    params: dict[str, Any] = {"now": now, "batch_id": batch_id}
    statement = _BATCH_QUEUES[(dialect, batch_id is not None)]
    queues = [
        _Queue(
            batch_id=row.batch_id,
            job_id=None,
            priority=_DEFAULT_PRIORITY if row.priority is None else row.priority,
            deadline=row.deadline,
            waiting_since=_latest(row.last_claimed_at, row.updated_at) or row.created_at,
            last_served=row.last_claimed_at,
            live_only=row.delivery is not None
            and uses_batch_api(
                delivery_setting({"delivery": row.delivery}), deadline=row.deadline, now=now
            ),
        )
        for row in session.execute(statement, params)
    ]
    if batch_id is None:
        queues.extend(
            _Queue(
                batch_id=None,
                job_id=row.job_id,
                priority=_DEFAULT_PRIORITY if row.priority is None else row.priority,
                deadline=None,
                # No last_claimed_at on jobs: their last write (an item finishing, a
                # pause...) stands in for both.
                waiting_since=row.updated_at or row.created_at,
                last_served=row.updated_at or row.created_at,
            )
            for row in session.execute(_LOOSE_JOB_QUEUES[dialect], params)
        )
    return queues


# --- 2. whose turn it is ---------------------------------------------------------------


def _turns(queues: list[_Queue], slots: int, now: datetime, served: int) -> list[_Queue]:
    """The queue of each of the next `slots` single claims, as if each were served in
    turn (the queues themselves are not changed)."""
    live = [q for q in queues if not q.exhausted]
    simulated = {q: q.served for q in live}
    turns: list[_Queue] = []
    for _ in range(slots if live else 0):
        best = min(live, key=lambda q: q.rank(now, simulated[q]))
        served += 1
        simulated[best] = served
        turns.append(best)
    return turns


# --- 3. taking a queue's items ---------------------------------------------------------

_CLAIM_SET = f"""
    state = {_RUNNING}, lease_owner = :owner, lease_expires_at = :lease_expires_at,
    attempts = attempts + 1, started_at = COALESCE(started_at, :now), updated_at = :now
"""
# Re-checks the batch status in the same statement: on PostgreSQL (READ COMMITTED) a
# pause committed since the queues were listed is seen here.
_BATCH_STILL_RUNNABLE = (
    "AND EXISTS (SELECT 1 FROM job_batches qb WHERE qb.id = {queue} AND qb.status IN "
    + _RUNNABLE
    + ")\n"
)


# Items no batch API takes, for a batch whose calls go through one.
_WITHOUT_BATCH_API = f"AND wi.provider NOT IN {sql_list(BATCH_API_PROVIDERS)}\n"


def _take_sql(dialect: str, *, loose: bool, live_only: bool = False) -> sa.TextClause:
    column = "job_id" if loose else "batch_id"
    if dialect == "postgresql":
        # All the queues of a round in one statement (a round trip per queue cost more
        # than the rest of the claim): for each (queue, n), its first n unlocked items.
        # `= ANY(ARRAY(...))`: joined to `picked` instead, whose size the planner cannot
        # know (LIMIT w.n), the UPDATE hashed the whole table (65 ms at 100,000 items).
        also = "" if loose else _BATCH_STILL_RUNNABLE.format(queue="w.queue")
        also += _WITHOUT_BATCH_API if live_only else ""
        items = _queued(dialect, column, "w.queue", also=also)
        sql = f"""
            WITH picked AS (
                SELECT p.id
                FROM unnest(CAST(:queues AS VARCHAR[]), CAST(:counts AS INTEGER[]))
                     AS w(queue, n)
                CROSS JOIN LATERAL ({items} LIMIT w.n FOR UPDATE OF wi SKIP LOCKED) AS p)
            UPDATE work_items SET {_CLAIM_SET}
            WHERE id = ANY(ARRAY(SELECT id FROM picked))
            RETURNING id, job_id, batch_id
        """
    else:
        # One queue a statement. The write lock is ours (BEGIN IMMEDIATE): the rows
        # cannot change in between. (A second condition on `state` here would make
        # SQLite scan every queued item.)
        also = "" if loose else _BATCH_STILL_RUNNABLE.format(queue=":queue")
        also += _WITHOUT_BATCH_API if live_only else ""
        items = _queued(dialect, column, ":queue", select="wi.rowid", also=also)
        sql = f"""
            UPDATE work_items SET {_CLAIM_SET}
            WHERE rowid IN ({items} LIMIT :limit)
            RETURNING id, job_id, batch_id
        """
    return sa.text(sql).bindparams(_NOW, sa.bindparam("lease_expires_at", type_=sa.DateTime()))


# (loose, live_only): a job without a batch, or a batch called live or through a batch API.
_QUEUE_KINDS = ((False, False), (False, True), (True, False))
_TAKE = {
    (dialect, loose, live_only): _take_sql(dialect, loose=loose, live_only=live_only)
    for dialect in _DIALECTS
    for loose, live_only in _QUEUE_KINDS
}


def _take(
    session: Session, dialect: str, wanted: dict[_Queue, int], params: dict[str, Any]
) -> dict[_Queue, list[ClaimedItem]]:
    """Lease up to `wanted[queue]` items of each queue; fewer when it has no more that
    are unlocked."""
    taken: dict[_Queue, list[ClaimedItem]] = {queue: [] for queue in wanted}
    for loose, live_only in _QUEUE_KINDS:
        by_key = {
            (queue.job_id if loose else queue.batch_id): queue
            for queue in wanted
            if (queue.batch_id is None) == loose and queue.live_only == live_only
        }
        if not by_key:
            continue
        statement = _TAKE[(dialect, loose, live_only)]
        if dialect == "postgresql":
            counts = [wanted[queue] for queue in by_key.values()]
            calls = [{**params, "queues": list(by_key), "counts": counts}]
        else:
            calls = [{**params, "queue": key, "limit": wanted[q]} for key, q in by_key.items()]
        for values in calls:
            for row in session.execute(statement, values):
                item = ClaimedItem(id=row.id, job_id=row.job_id, batch_id=row.batch_id)
                taken[by_key[item.job_id if loose else item.batch_id]].append(item)
    return taken


def claim(
    session: Session,
    *,
    owner: str,
    limit: int,
    lease_seconds: float,
    now: datetime,
    batch_id: str | None = None,
) -> list[ClaimedItem]:
    """Lease up to `limit` runnable items to `owner` (of one batch, if given); the caller
    commits at once."""
    if limit <= 0:
        return []
    dialect = "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"
    queues = _runnable_queues(session, dialect, now=now, batch_id=batch_id)
    params: dict[str, Any] = {
        "owner": owner,
        "now": now,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
    }
    order: list[_Queue] = []  # whose turn each claimed item was
    taken: dict[_Queue, deque[ClaimedItem]] = {}
    served = 0
    while len(order) < limit:
        turns = _turns(queues, limit - len(order), now, served)
        if not turns:
            break
        wanted = Counter(turns)
        got = _take(session, dialect, wanted, params)
        for queue, items in got.items():
            taken.setdefault(queue, deque()).extend(items)
            if len(items) < wanted[queue]:
                queue.exhausted = True  # drained, or the rest is locked by other claimers
        left = {queue: len(items) for queue, items in got.items()}
        for queue in turns:  # the turns that were served, in order
            if left[queue] > 0:
                left[queue] -= 1
                served += 1
                queue.served = served
                order.append(queue)
    claimed = [taken[queue].popleft() for queue in order]
    mark_started(session, claimed, now)
    return claimed


def mark_started(session: Session, claimed: list[ClaimedItem], now: datetime) -> None:
    """The batches and jobs of the claimed items: started (pending -> processing), and
    the batches' last_claimed_at. Batch rows before job rows, each table's rows locked in
    id order: a multi-row UPDATE locks rows in scan order, which differs between
    transactions once rows have moved, and concurrent claimers would deadlock on
    PostgreSQL. There the sorted `SELECT ... FOR UPDATE` runs first (as an InitPlan) and
    locks every row before the UPDATE touches one; SQLite has a single writer."""
    if not claimed:
        return
    dialect = "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"
    batch_ids = sorted({item.batch_id for item in claimed if item.batch_id})
    if batch_ids:
        session.execute(_START_BATCHES[dialect], {"now": now, "ids": batch_ids})
    job_ids = sorted({item.job_id for item in claimed})
    session.execute(_START_JOBS[dialect], {"now": now, "ids": job_ids})


def _start_sql(dialect: str, table: str, also: str) -> sa.TextClause:
    if dialect == "postgresql":
        rows = (
            f"id = ANY(ARRAY(SELECT id FROM {table} WHERE id = ANY(CAST(:ids AS VARCHAR[])) "
            "ORDER BY id FOR UPDATE))"
        )
        ids: sa.BindParameter[Any] = sa.bindparam("ids")
    else:
        rows = "id IN :ids"
        ids = sa.bindparam("ids", expanding=True)
    return sa.text(
        f"UPDATE {table} SET {also}started_at = COALESCE(started_at, :now), "
        f"status = CASE WHEN status = '{JobStatus.PENDING}' THEN '{JobStatus.PROCESSING}' "
        "ELSE status END "
        f"WHERE {rows}"
    ).bindparams(_NOW, ids)


_START_BATCHES = {
    dialect: _start_sql(dialect, "job_batches", "last_claimed_at = :now, ") for dialect in _DIALECTS
}
_START_JOBS = {dialect: _start_sql(dialect, "grading_jobs", "") for dialect in _DIALECTS}


def reap_expired_leases(session: Session, *, now: datetime) -> int:
    """Items whose worker died or hung (lease expired) go back to the queue; those that
    have had every attempt their batch allows fail instead, so a document that takes
    its worker down each time does not come back for ever. Returns how many of either."""
    failed = 0
    expired = session.execute(_EXPIRED_LEASES, {"now": now}).all()
    for item_id, owner, attempts, batch_settings in expired:
        if attempts > max_retries_of(batch_settings) and service.fail_item(
            session,
            item_id=item_id,
            owner=owner,
            error=f"gave up after {attempts} attempts: the worker grading it stopped or hung "
            "each time (see the worker's log)",
        ):
            failed += 1
    result = session.execute(_REQUEUE_EXPIRED, {"now": now})
    return failed + (cast("CursorResult[Any]", result).rowcount or 0)


def _not_in_open_provider_batch(items: str) -> str:
    """Items sent in a provider batch stay with it while it is open, however late the
    vendor is (or however long no worker ran): its manager collects what the vendor
    answered, which was paid for, and sends the rest back itself. Reaped, their answers
    would be paid for and thrown away, and the items sent and paid for again."""
    return (
        "NOT EXISTS (SELECT 1 FROM provider_batches pb "
        f"WHERE pb.id = {items}.provider_batch_id "
        f"AND pb.state IN {sql_list(OPEN_PROVIDER_BATCH_STATES)})"
    )


_EXPIRED_LEASES = (
    sa.text(
        "SELECT wi.id, wi.lease_owner, wi.attempts, b.batch_settings FROM work_items wi "
        "LEFT JOIN job_batches b ON b.id = wi.batch_id "
        f"WHERE wi.state = {_RUNNING} AND wi.lease_expires_at < :now "
        f"AND {_not_in_open_provider_batch('wi')}"
    )
    .bindparams(_NOW)
    .columns(batch_settings=sa.JSON())
)
_REQUEUE_EXPIRED = sa.text(
    f"UPDATE work_items SET state = {_QUEUED}, lease_owner = NULL, "
    "lease_expires_at = NULL, next_attempt_at = NULL, updated_at = :now, "
    "provider_batch_id = NULL, "
    "last_error = 'the worker grading it stopped or hung; requeued' "
    f"WHERE state = {_RUNNING} AND lease_expires_at < :now "
    f"AND {_not_in_open_provider_batch('work_items')}"
).bindparams(_NOW)
