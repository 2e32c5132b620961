"""Work-item lifecycle: enqueue, claim context, finish, fail, retry, release; what a
landed item changes in counters and statuses is `progress.py`.

Each function runs inside the caller's transaction and only flushes. Counters on jobs
and batches move with atomic `SET n = n + 1` updates as items finish, so progress reads
are O(1) and concurrent workers never lose an increment.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from grading_app.grading.service import GradingOutcome, Usage
from grading_app.models import (
    RUNNABLE,
    GradeResult,
    GradingJob,
    JobStatus,
    Submission,
    SubmissionStatus,
    WorkItem,
    WorkItemState,
    new_id,
    utcnow,
)
from grading_app.processing.progress import (
    BATCHES,
    ITEMS,
    JOBS,
    Ended,
    add_counts,
    after_item,
    lock_submission,
    statement,
)
from grading_app.reports.price_book import call_cost

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0

_END_LEASE = statement(
    "UPDATE work_items SET state = :state, lease_owner = NULL, lease_expires_at = NULL, "
    "completed_at = :now, updated_at = :now, last_error = :error "
    "WHERE id = :id AND state = 'running' AND lease_owner = :owner "
    "RETURNING id, submission_id, job_id, batch_id, provider, model",
    now=sa.DateTime(),
)
RESULTS = cast(sa.Table, GradeResult.__table__)
# What `Ended` holds, in its order.
_ENDED_COLUMNS = (
    ITEMS.c.id,
    ITEMS.c.submission_id,
    ITEMS.c.job_id,
    ITEMS.c.batch_id,
    ITEMS.c.provider,
    ITEMS.c.model,
)
_INSERT_RESULT = statement(
    "INSERT INTO grade_results (id, submission_id, work_item_id, provider, model, status, "
    "grade, grade_metadata, score, max_score, criteria, feedback, error_message, "
    "raw_response, prompt_tokens, completion_tokens, latency_ms, cached_tokens, "
    "cache_write_tokens, delivery, cost_usd, quotes_total, quotes_verified, created_at) "
    "VALUES (:id, :submission_id, :work_item_id, :provider, :model, :status, :grade, "
    ":grade_metadata, :score, :max_score, :criteria, :feedback, :error_message, "
    ":raw_response, :prompt_tokens, :completion_tokens, :latency_ms, :cached_tokens, "
    ":cache_write_tokens, :delivery, :cost_usd, :quotes_total, :quotes_verified, "
    ":created_at)",
    grade_metadata=sa.JSON(),
    criteria=sa.JSON(),
    created_at=sa.DateTime(),
)


def enqueue_job(
    session: Session,
    *,
    job: GradingJob,
    models: list[tuple[str, str]],
    submission_ids: Sequence[str] | None = None,
) -> int:
    """One work item per (submission, model) of the job, or of just `submission_ids`
    (documents added later); returns how many were added. Items are numbered after
    those already in the batch (or job), so later documents come last."""
    if submission_ids is None:
        submissions: Iterable[str] = session.execute(
            sa.select(Submission.id)
            .where(Submission.job_id == job.id, Submission.status != SubmissionStatus.FAILED)
            .order_by(Submission.created_at, Submission.id)
        ).scalars()
    else:
        submissions = submission_ids
    scope = WorkItem.batch_id == job.batch_id if job.batch_id else WorkItem.job_id == job.id
    start = session.execute(
        sa.select(sa.func.count()).select_from(WorkItem).where(scope)
    ).scalar_one()
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for index, submission_id in enumerate(submissions):
        for provider, model in models:
            rows.append(
                {
                    "id": new_id(),
                    "submission_id": submission_id,
                    "job_id": job.id,
                    "batch_id": job.batch_id,
                    "provider": provider,
                    "model": model,
                    "state": WorkItemState.QUEUED.value,
                    "attempts": 0,
                    "sequence": start + index,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if rows:
        session.execute(sa.insert(WorkItem), rows)
    add_counts(session, job_id=job.id, batch_id=job.batch_id, total=len(rows))
    session.flush()
    return len(rows)


def has_runnable_work(session: Session, *, batch_id: str | None = None) -> bool:
    running = ITEMS.c.state == WorkItemState.RUNNING.value
    queued_and_active = sa.and_(
        ITEMS.c.state == WorkItemState.QUEUED.value,
        sa.exists().where(JOBS.c.id == ITEMS.c.job_id, JOBS.c.status.in_(RUNNABLE)),
        sa.or_(
            ITEMS.c.batch_id.is_(None),
            sa.exists().where(BATCHES.c.id == ITEMS.c.batch_id, BATCHES.c.status.in_(RUNNABLE)),
        ),
    )
    query = sa.select(ITEMS.c.id).where(sa.or_(running, queued_and_active)).limit(1)
    if batch_id is not None:
        query = query.where(ITEMS.c.batch_id == batch_id)
    return session.execute(query).first() is not None


def hold_if_runnable(
    session: Session, *, item_id: str, owner: str, lease_seconds: float, now: datetime
) -> bool:
    """Right before the provider call: True, with the lease renewed from now, while
    `owner` still holds the item and its job and batch are running. A pause takes effect
    here; a lease that ran out while the worker waited for a rate-limit slot (and may
    have gone to another worker) is never called on."""
    job_active = (
        sa.select(JOBS.c.id)
        .where(JOBS.c.id == ITEMS.c.job_id, JOBS.c.status.in_(RUNNABLE))
        .exists()
    )
    batch_active = sa.or_(
        ITEMS.c.batch_id.is_(None),
        sa.select(BATCHES.c.id)
        .where(BATCHES.c.id == ITEMS.c.batch_id, BATCHES.c.status.in_(RUNNABLE))
        .exists(),
    )
    result = session.execute(
        sa.update(ITEMS)
        .where(
            ITEMS.c.id == item_id,
            ITEMS.c.state == WorkItemState.RUNNING.value,
            ITEMS.c.lease_owner == owner,
            ITEMS.c.lease_expires_at > now,
            job_active,
            batch_active,
        )
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    return bool(cast("CursorResult[Any]", result).rowcount)


def _still_ours(session: Session, item_id: str, owner: str) -> WorkItem | None:
    """The item, if this worker still holds its lease (a reaper may have taken it)."""
    statement = sa.select(WorkItem).where(
        WorkItem.id == item_id,
        WorkItem.state == WorkItemState.RUNNING,
        WorkItem.lease_owner == owner,
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return session.execute(statement).scalar_one_or_none()


def _end_lease(
    session: Session,
    *,
    item_id: str,
    owner: str,
    state: WorkItemState,
    now: datetime,
    error: str | None,
) -> Ended | None:
    """Move the item to its final state if `owner` still holds it; None otherwise (the
    reaper requeued it, or a stale message came twice): nothing is written then."""
    row = session.execute(
        _END_LEASE,
        {"id": item_id, "owner": owner, "state": state.value, "now": now, "error": error},
    ).one_or_none()
    return Ended(*row) if row is not None else None


def complete_item(
    session: Session,
    *,
    item_id: str,
    owner: str,
    outcome: GradingOutcome,
    single_model: bool,
    may_need_review: bool = True,
) -> bool:
    """Store the result and mark the item completed; False if the lease was lost.
    `may_need_review`: False when the worker knows the document can give no reason for
    review (one model, no finding, no grade boundaries, an answer neither repaired nor
    with unverified quotes)."""
    now = utcnow()
    ended = _end_lease(
        session, item_id=item_id, owner=owner, state=WorkItemState.COMPLETED, now=now, error=None
    )
    if ended is None:
        charge_unused_answers(session, item_id=item_id, usage=outcome, reason=LEASE_LOST)
        return False
    # Before the result's foreign key locks it in share mode (see _lock_submission).
    submission_status = lock_submission(session, ended.submission_id)
    cost = _cost(session, ended, outcome)
    grade = outcome.grade
    criteria = [c.model_dump() for c in grade.criteria]
    metadata = {
        "overall_score": grade.overall_score,
        "max_score": grade.max_score,
        "criteria": criteria,
        "feedback": grade.feedback,
        "provider": ended.provider,
        "model": ended.model,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "latency_ms": outcome.latency_ms,
        "repaired": outcome.repaired,
        "evidence": list(outcome.evidence),
    }
    _insert_result(
        session,
        ended,
        now=now,
        linked=True,
        status="completed",
        grade=grade.summary(),
        grade_metadata=metadata,
        score=grade.overall_score,
        max_score=grade.max_score,
        criteria=criteria,
        feedback=grade.feedback,
        **_usage_values(outcome),
        cost_usd=cost,
        quotes_total=len(outcome.evidence),
        quotes_verified=sum(
            1 for check in outcome.evidence if check.get("status") in ("verified", "near")
        ),
    )
    # Legacy readers look at submissions.grade / grade_metadata.
    legacy = {"grade": grade.summary(), "grade_metadata": metadata} if single_model else {}
    after_item(
        session,
        ended,
        completed=1,
        now=now,
        submission_status=submission_status,
        submission_values=legacy,
        assess_document=may_need_review,
        spent=cost or 0.0,
    )
    return True


def _cost(session: Session, ended: Ended, usage: GradingOutcome | Usage) -> float | None:
    """What the grading's calls cost: as the caller priced them, else at the price in
    force for their tokens and delivery (None: no known price)."""
    if usage.cost_usd is not None:
        return usage.cost_usd
    return call_cost(
        session,
        provider=ended.provider,
        model=ended.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        delivery=usage.delivery,
    )


def _insert_result(
    session: Session, ended: Ended, *, now: datetime, linked: bool, **values: Any
) -> None:
    columns = dict.fromkeys(
        ("grade_metadata", "score", "max_score", "criteria", "feedback", "error_message")
        + ("raw_response", "prompt_tokens", "completion_tokens", "latency_ms")
        + ("cached_tokens", "cache_write_tokens", "delivery", "cost_usd")
        + ("quotes_total", "quotes_verified")
    )
    session.execute(
        _INSERT_RESULT,
        {
            **columns,
            **values,
            "id": new_id(),
            "submission_id": ended.submission_id,
            "work_item_id": ended.id if linked else None,
            "provider": ended.provider,
            "model": ended.model,
            "created_at": now,
        },
    )


def _insert_answers(
    session: Session, ended: Ended, usage: GradingOutcome | Usage, *, now: datetime, error: str
) -> float | None:
    """Answers that are not the item's grade, kept as a failed result with what they
    cost (returned). Not linked: the unique link is for the one completed result, and a
    retried item may still get it. Its metadata names the item and the attempt, so that
    the same write made again is told from another attempt's answers (`_stored_already`)."""
    cost = _cost(session, ended, usage)
    _insert_result(
        session,
        ended,
        now=now,
        linked=False,
        status="failed",
        grade="",
        grade_metadata=_answered_in(session, ended.id),
        error_message=error,
        **_usage_values(usage),
        cost_usd=cost,
    )
    return cost


def _answered_in(session: Session, item_id: str) -> dict[str, Any]:
    """The item and its attempt (claims so far) that answers are stored for."""
    attempts = session.scalar(sa.select(ITEMS.c.attempts).where(ITEMS.c.id == item_id))
    return {"work_item_id": item_id, "attempt": attempts}


def _stored_already(session: Session, ended: Ended, usage: GradingOutcome | Usage) -> bool:
    """Whether these very answers are stored already: the item's grade, or answers kept
    in this same attempt of the item (a write made again). The text and latency alone do
    not tell: a vendor batch's answers have no latency of their own, and a model at
    temperature 0 may give another attempt the same answer, billed again."""
    same_answers = session.execute(
        sa.select(RESULTS.c.work_item_id, RESULTS.c.grade_metadata).where(
            RESULTS.c.submission_id == ended.submission_id,
            RESULTS.c.provider == ended.provider,
            RESULTS.c.model == ended.model,
            RESULTS.c.latency_ms == usage.latency_ms,
            RESULTS.c.raw_response == usage.raw_text,
        )
    ).all()
    this_attempt = _answered_in(session, ended.id)
    return any(linked == ended.id or metadata == this_attempt for linked, metadata in same_answers)


def _usage_values(usage: GradingOutcome | Usage) -> dict[str, Any]:
    """A result's columns for what its calls said and used."""
    return {
        "raw_response": usage.raw_text,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "latency_ms": usage.latency_ms,
        "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "delivery": usage.delivery,
    }


def fail_item(
    session: Session, *, item_id: str, owner: str, error: str, usage: Usage | None = None
) -> bool:
    """A permanent failure (or retries exhausted): the item fails with `error`; what the
    model answered, if it did, is kept as a failed result with its usage."""
    now = utcnow()
    ended = _end_lease(
        session, item_id=item_id, owner=owner, state=WorkItemState.FAILED, now=now, error=error
    )
    if ended is None:
        if usage is not None:
            charge_unused_answers(session, item_id=item_id, usage=usage, reason=LEASE_LOST)
        return False
    submission_status = lock_submission(session, ended.submission_id)
    cost = None
    if usage is not None:
        cost = _insert_answers(session, ended, usage, now=now, error=error)
    after_item(
        session,
        ended,
        failed=1,
        now=now,
        submission_status=submission_status,
        submission_values={},
        spent=cost or 0.0,
    )
    return True


# Why a paid answer that a worker could not store as the item's grade was kept apart.
LEASE_LOST = "answered after this worker had lost the item (its lease ran out); not used"


def charge_unused_answers(
    session: Session, *, item_id: str, usage: GradingOutcome | Usage, reason: str
) -> float | None:
    """Answers the vendor billed that will not be the item's grade (an attempt retried
    after they came, or a worker that lost the item meanwhile): kept as a failed result
    that no item links to, so the analytics count their cost, and added to the batch's
    spending, so its budget checks what was really paid. Each caller does this once
    per attempt, right where the attempt ends; the same answers written again (a write
    made twice) are found stored already and not counted twice. Returns the cost
    (None: unpriced, stored already, or the item is gone)."""
    row = session.execute(sa.select(*_ENDED_COLUMNS).where(ITEMS.c.id == item_id)).one_or_none()
    if row is None:  # deleted with its job: nothing left to charge it to
        return None
    ended = Ended(*row)
    if _stored_already(session, ended, usage):
        return None
    cost = _insert_answers(session, ended, usage, now=utcnow(), error=reason[:2000])
    if cost and ended.batch_id:
        session.execute(
            sa.update(BATCHES)
            .where(BATCHES.c.id == ended.batch_id)
            .values(spent_usd=BATCHES.c.spent_usd + cost)
        )
    return cost


def retry_later(
    session: Session,
    *,
    item_id: str,
    owner: str,
    error: str,
    retry_after: float | None,
    rng: random.Random | None = None,
    usage: Usage | None = None,
) -> datetime | None:
    """Put a transiently failed item back with backoff: full jitter, or Retry-After when
    the provider sent one (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
    `usage`: what the attempt's answers cost before it failed (an unusable answer whose
    repair call failed): paid for, so kept and added to the batch's spending."""
    item = _still_ours(session, item_id, owner)
    if item is None:
        if usage is not None:
            charge_unused_answers(session, item_id=item_id, usage=usage, reason=LEASE_LOST)
        return None
    if usage is not None:
        charge_unused_answers(session, item_id=item_id, usage=usage, reason=error)
    delay = backoff_delay(item.attempts, retry_after=retry_after, rng=rng)
    now = utcnow()
    when = now + timedelta(seconds=delay)
    item.state = WorkItemState.QUEUED
    item.lease_owner = None
    item.lease_expires_at = None
    item.next_attempt_at = when
    item.last_error = error
    item.updated_at = now
    session.flush()
    return when


def backoff_delay(
    attempts: int, *, retry_after: float | None, rng: random.Random | None = None
) -> float:
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, BACKOFF_CAP_SECONDS)
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return (rng or random).uniform(0, ceiling)


def release_item(
    session: Session, *, item_id: str, owner: str, not_before_seconds: float | None = None
) -> bool:
    """Give a claimed item back untouched (its batch was paused before the call, or no
    rate-limit slot came): the claim does not count as an attempt. With
    `not_before_seconds`, no worker takes it again before then."""
    now = utcnow()
    values: dict[str, Any] = {
        "state": WorkItemState.QUEUED.value,
        "lease_owner": None,
        "lease_expires_at": None,
        "attempts": sa.case((ITEMS.c.attempts > 0, ITEMS.c.attempts - 1), else_=0),
        "updated_at": now,
    }
    if not_before_seconds is not None:
        values["next_attempt_at"] = now + timedelta(seconds=not_before_seconds)
    result = session.execute(
        sa.update(ITEMS)
        .where(
            ITEMS.c.id == item_id,
            ITEMS.c.lease_owner == owner,
            ITEMS.c.state == WorkItemState.RUNNING.value,
        )
        .values(values)
    )
    return bool(cast("CursorResult[Any]", result).rowcount)


def take_over_lease(
    session: Session,
    *,
    item_id: str,
    owner: str,
    new_owner: str,
    lease_seconds: float,
    now: datetime,
) -> bool:
    """Hand a held, unexpired lease to `new_owner` (a Celery task taking the dispatcher's
    claim), renewed from now; False if `owner` no longer holds it or it ran out while
    the message waited in the broker (the reaper may have given the item to another
    worker), so at most one taker ever calls the provider."""
    result = session.execute(
        sa.update(ITEMS)
        .where(
            ITEMS.c.id == item_id,
            ITEMS.c.lease_owner == owner,
            ITEMS.c.state == WorkItemState.RUNNING.value,
            ITEMS.c.lease_expires_at > now,
        )
        .values(
            lease_owner=new_owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
    )
    return bool(cast("CursorResult[Any]", result).rowcount)


def release_owned(session: Session, *, owner: str) -> int:
    """On a clean shutdown (Ctrl-C): every item this worker holds goes back to the queue."""
    result = session.execute(
        sa.update(WorkItem)
        .where(WorkItem.lease_owner == owner, WorkItem.state == WorkItemState.RUNNING)
        .values(
            state=WorkItemState.QUEUED,
            lease_owner=None,
            lease_expires_at=None,
            attempts=sa.case((WorkItem.attempts > 0, WorkItem.attempts - 1), else_=0),
            updated_at=utcnow(),
        )
    )
    return cast("CursorResult[Any]", result).rowcount or 0


def withdraw_cancelled(
    session: Session, *, now: datetime, item_ids: Sequence[str] | None = None
) -> int:
    """Queued items of a cancelled job or batch become cancelled and leave the totals,
    as cancel does with the items queued when it ran. These came back to the queue
    afterwards: released by a worker that found the job cancelled before its call,
    handed back on shutdown, or reaped. Returns how many."""
    cancelled = sa.or_(
        sa.exists().where(JOBS.c.id == ITEMS.c.job_id, JOBS.c.status == JobStatus.CANCELLED),
        sa.exists().where(
            BATCHES.c.id == ITEMS.c.batch_id, BATCHES.c.status == JobStatus.CANCELLED
        ),
    )
    statement = sa.update(ITEMS).where(ITEMS.c.state == WorkItemState.QUEUED.value, cancelled)
    if item_ids is not None:
        statement = statement.where(ITEMS.c.id.in_(item_ids))
    rows = session.execute(
        statement.values(
            state=WorkItemState.CANCELLED.value, completed_at=now, updated_at=now
        ).returning(*_ENDED_COLUMNS)
    ).all()
    withdrawn = sorted((Ended(*row) for row in rows), key=lambda e: e.submission_id)
    # Every submission locked before any batch or job row: the order writers keep.
    for submission_id in dict.fromkeys(e.submission_id for e in withdrawn):
        lock_submission(session, submission_id)
    for ended in withdrawn:
        after_item(
            session,
            ended,
            withdrawn=1,
            now=now,
            # Read again: an earlier item of this loop may have settled it.
            submission_status=lock_submission(session, ended.submission_id),
            submission_values={},
        )
    return len(withdrawn)
