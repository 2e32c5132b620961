"""Claiming runnable work items, in priority order, without two workers taking one item.

Order: batch priority (10 first) raised by how long the batch has waited since a worker
last took one of its items (so nothing starves), then the soonest deadline, then the
item's position in its batch (so batches of equal priority take turns), then age.

PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent claimers skip each
other's rows instead of queueing (https://www.postgresql.org/docs/current/sql-select.html
#SQL-FOR-UPDATE-SHARE). SQLite: the claim runs under BEGIN IMMEDIATE (one writer) as one
conditional `UPDATE ... RETURNING`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

# Every AGING_SECONDS a batch waits without a claim, it counts one priority level higher.
AGING_SECONDS = 300
_NOW = sa.bindparam("now", type_=sa.DateTime())
RUNNABLE_BATCH_STATUSES = ("pending", "processing")
RUNNABLE_JOB_STATUSES = ("pending", "processing")


@dataclass(frozen=True)
class ClaimedItem:
    id: str
    job_id: str
    batch_id: str | None


def _waited_seconds(dialect: str) -> str:
    since = "COALESCE(b.last_claimed_at, b.created_at, wi.created_at)"
    if dialect == "postgresql":
        return f"EXTRACT(EPOCH FROM (CAST(:now AS TIMESTAMP) - {since}))"
    return f"((julianday(:now) - julianday({since})) * 86400.0)"


def _candidates_sql(dialect: str, *, only_batch: bool) -> str:
    effective_priority = (
        f"COALESCE(b.priority, j.priority, 5) + "
        f"CAST(COALESCE({_waited_seconds(dialect)}, 0) / {AGING_SECONDS} AS INTEGER)"
    )
    return f"""
        SELECT wi.id
        FROM work_items wi
        JOIN grading_jobs j ON j.id = wi.job_id
        LEFT JOIN job_batches b ON b.id = wi.batch_id
        WHERE wi.state = 'queued'
          AND (wi.next_attempt_at IS NULL OR wi.next_attempt_at <= :now)
          AND j.status IN ('pending', 'processing')
          AND (wi.batch_id IS NULL OR b.status IN ('pending', 'processing'))
          {"AND wi.batch_id = :batch_id" if only_batch else ""}
        ORDER BY {effective_priority} DESC,
                 CASE WHEN b.deadline IS NULL THEN 1 ELSE 0 END, b.deadline,
                 wi.sequence, wi.created_at, wi.id
        LIMIT :limit
    """


_CLAIM_SET = """
    state = 'running', lease_owner = :owner, lease_expires_at = :lease_expires_at,
    attempts = attempts + 1, started_at = COALESCE(started_at, :now), updated_at = :now
"""


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
    dialect = session.get_bind().dialect.name
    params = {
        "owner": owner,
        "limit": limit,
        "now": now,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "batch_id": batch_id,
    }
    candidates = _candidates_sql(dialect, only_batch=batch_id is not None)
    if dialect == "postgresql":
        sql = f"""
            WITH picked AS ({candidates} FOR UPDATE OF wi SKIP LOCKED)
            UPDATE work_items SET {_CLAIM_SET}
            FROM picked WHERE work_items.id = picked.id
            RETURNING work_items.id, work_items.job_id, work_items.batch_id
        """
    else:
        sql = f"""
            UPDATE work_items SET {_CLAIM_SET}
            WHERE id IN ({candidates}) AND state = 'queued'
            RETURNING id, job_id, batch_id
        """
    statement = sa.text(sql).bindparams(
        sa.bindparam("now", type_=sa.DateTime()),
        sa.bindparam("lease_expires_at", type_=sa.DateTime()),
    )
    rows = session.execute(statement, params).all()
    claimed = [ClaimedItem(id=r.id, job_id=r.job_id, batch_id=r.batch_id) for r in rows]
    _mark_started(session, claimed, now)
    return claimed


def _mark_started(session: Session, claimed: list[ClaimedItem], now: datetime) -> None:
    # One row at a time, in id order: a multi-row UPDATE locks rows in scan order, which
    # differs between transactions once rows have moved, and concurrent claimers would
    # deadlock on PostgreSQL.
    for batch_id in sorted({item.batch_id for item in claimed if item.batch_id}):
        session.execute(_START_BATCH, {"now": now, "id": batch_id})
    for job_id in sorted({item.job_id for item in claimed}):
        session.execute(_START_JOB, {"now": now, "id": job_id})


_START_BATCH = sa.text(
    "UPDATE job_batches SET last_claimed_at = :now, started_at = COALESCE(started_at, :now), "
    "status = CASE WHEN status = 'pending' THEN 'processing' ELSE status END WHERE id = :id"
).bindparams(_NOW)
_START_JOB = sa.text(
    "UPDATE grading_jobs SET started_at = COALESCE(started_at, :now), "
    "status = CASE WHEN status = 'pending' THEN 'processing' ELSE status END WHERE id = :id"
).bindparams(_NOW)


def reap_expired_leases(session: Session, *, now: datetime) -> int:
    """Items whose worker died (lease expired) go back to the queue."""
    result = session.execute(
        sa.text(
            "UPDATE work_items SET state = 'queued', lease_owner = NULL, "
            "lease_expires_at = NULL, next_attempt_at = NULL, updated_at = :now, "
            "last_error = 'the worker grading it stopped; requeued' "
            "WHERE state = 'running' AND lease_expires_at < :now"
        ).bindparams(_NOW),
        {"now": now},
    )
    return cast("CursorResult[Any]", result).rowcount or 0
