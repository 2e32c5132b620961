"""Work-item lifecycle: enqueue, finish, fail, retry, release; counters and status.

Each function runs inside the caller's transaction and only flushes. Counters on jobs
and batches move with atomic `SET n = n + 1` updates as items finish, so progress reads
are O(1) and concurrent workers never lose an increment.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from grading_app.grading.rubric import Rubric, stored_rubric
from grading_app.grading.service import GradingOutcome, Usage
from grading_app.models import (
    GradingJob,
    JobBatch,
    Submission,
    WorkItem,
    WorkItemState,
    new_id,
    utcnow,
)

BACKOFF_BASE_SECONDS = 2.0
DEFAULT_MAX_RETRIES = 3
BACKOFF_CAP_SECONDS = 300.0

# The finishing path runs once per graded item, so it speaks Core to the tables: a few
# statements, each changing and returning what the next needs. Row lock order, the same
# in every writer: work item, submission, batch, job.
_ITEMS = cast(sa.Table, WorkItem.__table__)
_SUBMISSIONS = cast(sa.Table, Submission.__table__)
_JOBS = cast(sa.Table, GradingJob.__table__)
_BATCHES = cast(sa.Table, JobBatch.__table__)
ACTIVE_STATUSES = ("pending", "processing")
CANCELLED_BEFORE_GRADING = "cancelled before grading"


def _statement(sql: str, columns: dict[str, Any] | None = None, **types: Any) -> sa.Executable:
    """A statement built once: per-item SQLAlchemy construction and cache-key work
    cost more than SQLite's own execution (profiled in benchmarks/throughput.py).
    `types` type the parameters, `columns` the result columns that need it."""
    statement = sa.text(sql).bindparams(
        *(sa.bindparam(name, type_=kind) for name, kind in types.items())
    )
    return statement.columns(**columns) if columns else statement


_ITEM_CONTEXT = _statement(
    "SELECT wi.id, wi.attempts, wi.provider, wi.model, wi.state, wi.lease_owner, "
    "s.id AS submission_id, s.original_filename, s.extracted_text, "
    "j.id AS job_id, j.batch_id, j.prompt, j.status AS job_status, j.temperature, "
    "j.max_tokens, j.models_to_compare, b.status AS batch_status, b.batch_settings, "
    "ms.content AS scheme_content, sms.content AS saved_scheme_content, "
    "ms.rubric AS scheme_rubric, sms.rubric AS saved_scheme_rubric "
    "FROM work_items wi "
    "JOIN submissions s ON s.id = wi.submission_id "
    "JOIN grading_jobs j ON j.id = wi.job_id "
    "LEFT JOIN job_batches b ON b.id = wi.batch_id "
    "LEFT JOIN marking_schemes ms ON ms.id = j.marking_scheme_id "
    "LEFT JOIN saved_marking_schemes sms ON sms.id = j.saved_marking_scheme_id "
    "WHERE wi.id = :id",
    columns={
        "models_to_compare": sa.JSON(),
        "batch_settings": sa.JSON(),
        "scheme_rubric": sa.JSON(),
        "saved_scheme_rubric": sa.JSON(),
    },
)
_END_LEASE = _statement(
    "UPDATE work_items SET state = :state, lease_owner = NULL, lease_expires_at = NULL, "
    "completed_at = :now, updated_at = :now, last_error = :error "
    "WHERE id = :id AND state = 'running' AND lease_owner = :owner "
    "RETURNING id, submission_id, job_id, batch_id, provider, model",
    now=sa.DateTime(),
)
_SUBMISSION_STATUS = "SELECT status FROM submissions WHERE id = :id"
_LOCK_SUBMISSION = {
    "postgresql": _statement(_SUBMISSION_STATUS + " FOR NO KEY UPDATE"),
    "sqlite": _statement(_SUBMISSION_STATUS),  # BEGIN IMMEDIATE: one writer already
}
_ITEM_STATES = _statement(
    "SELECT state, COUNT(*) FROM work_items WHERE submission_id = :id GROUP BY state"
)
_INSERT_RESULT = _statement(
    "INSERT INTO grade_results (id, submission_id, work_item_id, provider, model, status, "
    "grade, grade_metadata, score, max_score, criteria, feedback, error_message, "
    "raw_response, prompt_tokens, completion_tokens, latency_ms, created_at) VALUES "
    "(:id, :submission_id, :work_item_id, :provider, :model, :status, :grade, "
    ":grade_metadata, :score, :max_score, :criteria, :feedback, :error_message, "
    ":raw_response, :prompt_tokens, :completion_tokens, :latency_ms, :created_at)",
    grade_metadata=sa.JSON(),
    criteria=sa.JSON(),
    created_at=sa.DateTime(),
)
_SETTLE = "UPDATE submissions SET status = :status, error_message = :error, updated_at = :now"
_SETTLE_SUBMISSION = {
    False: _statement(_SETTLE + " WHERE id = :id", now=sa.DateTime()),
    # With the legacy single-model grade.
    True: _statement(
        _SETTLE + ", grade = :grade, grade_metadata = :grade_metadata WHERE id = :id",
        now=sa.DateTime(),
        grade_metadata=sa.JSON(),
    ),
}
_PROGRESS = (
    "RETURNING status, total_items, completed_items, failed_items, started_at, estimated_completion"
)
_COUNT_BATCH_ITEM = _statement(
    "UPDATE job_batches SET completed_items = completed_items + :completed, "
    "failed_items = failed_items + :failed, total_items = total_items - :withdrawn "
    f"WHERE id = :id {_PROGRESS}",
    columns={"started_at": sa.DateTime(), "estimated_completion": sa.DateTime()},
)
# The job's submission counters that settling a submission adds one to.
_PROCESSED = ("processed_submissions",)
_FAILED = ("failed_submissions",)
# Graded by some models while others failed: processed, and partly failed too.
_PARTLY_FAILED = ("processed_submissions", "partly_failed_submissions")
# Settled again after a retry of its failed models, still partly failed (the retry took
# it out of that count; see lifecycle's _requeue_failed).
_STILL_PARTLY_FAILED = ("partly_failed_submissions",)
_COUNT_JOB_ITEM: dict[tuple[str, ...], sa.Executable] = {
    # One variant per set of submission counters that the item may settle.
    counters: _statement(
        "UPDATE grading_jobs SET completed_items = completed_items + :completed, "
        "failed_items = failed_items + :failed, total_items = total_items - :withdrawn"
        + "".join(f", {counter} = COALESCE({counter}, 0) + 1" for counter in counters)
        + f" WHERE id = :id {_PROGRESS}, failed_submissions",
        columns={"started_at": sa.DateTime(), "estimated_completion": sa.DateTime()},
    )
    for counters in ((), _PROCESSED, _FAILED, _PARTLY_FAILED, _STILL_PARTLY_FAILED)
}


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
            .where(Submission.job_id == job.id, Submission.status != "failed")
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
    _add_counts(session, job_id=job.id, batch_id=job.batch_id, total=len(rows))
    session.flush()
    return len(rows)


@dataclass(frozen=True)
class ItemContext:
    """What a worker needs to grade an item, loaded in one short read."""

    item_id: str
    attempts: int
    provider: str
    model: str
    submission_id: str
    document_name: str
    document_text: str
    job_id: str
    batch_id: str | None
    instructions: str
    marking_scheme: str | None
    # The marking scheme's criteria and maxima, when it is a structured rubric.
    rubric: Rubric | None
    temperature: float | None
    max_tokens: int | None
    max_retries: int
    # The batch's own timeout for one call, if it sets one.
    timeout_seconds: float | None
    runnable: bool
    single_model: bool


def load_context(session: Session, *, item_id: str, owner: str) -> ItemContext | None:
    """What grading the item needs; `runnable` only while `owner` holds its lease and its
    job and batch are running."""
    row = session.execute(_ITEM_CONTEXT, {"id": item_id}).one_or_none()
    if row is None:
        return None
    return ItemContext(
        item_id=row.id,
        attempts=row.attempts,
        provider=row.provider,
        model=row.model,
        submission_id=row.submission_id,
        document_name=row.original_filename,
        document_text=row.extracted_text or "",
        job_id=row.job_id,
        batch_id=row.batch_id,
        instructions=row.prompt,
        marking_scheme=row.scheme_content or row.saved_scheme_content,
        # The rubric of the scheme whose text is used: the job's own, else (a legacy job
        # that names only a library scheme) the saved one.
        rubric=stored_rubric(row.scheme_rubric if row.scheme_content else row.saved_scheme_rubric),
        temperature=row.temperature,
        max_tokens=row.max_tokens,
        max_retries=max_retries_of(row.batch_settings),
        timeout_seconds=_timeout_of(row.batch_settings),
        runnable=row.state == WorkItemState.RUNNING
        and row.lease_owner == owner
        and row.job_status in ACTIVE_STATUSES
        and (row.batch_id is None or row.batch_status in ACTIVE_STATUSES),
        single_model=not (
            isinstance(row.models_to_compare, list) and len(row.models_to_compare) > 1
        ),
    )


def max_retries_of(batch_settings: Any) -> int:
    """The batch's `max_retries` (settings of legacy rows may be anything)."""
    settings = batch_settings if isinstance(batch_settings, dict) else {}
    try:
        return max(0, int(settings.get("max_retries", DEFAULT_MAX_RETRIES)))
    except (TypeError, ValueError):
        return DEFAULT_MAX_RETRIES


def _timeout_of(batch_settings: Any) -> float | None:
    value = batch_settings.get("timeout_seconds") if isinstance(batch_settings, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def has_runnable_work(session: Session, *, batch_id: str | None = None) -> bool:
    running = _ITEMS.c.state == WorkItemState.RUNNING.value
    queued_and_active = sa.and_(
        _ITEMS.c.state == WorkItemState.QUEUED.value,
        sa.exists().where(_JOBS.c.id == _ITEMS.c.job_id, _JOBS.c.status.in_(ACTIVE_STATUSES)),
        sa.or_(
            _ITEMS.c.batch_id.is_(None),
            sa.exists().where(
                _BATCHES.c.id == _ITEMS.c.batch_id, _BATCHES.c.status.in_(ACTIVE_STATUSES)
            ),
        ),
    )
    query = sa.select(_ITEMS.c.id).where(sa.or_(running, queued_and_active)).limit(1)
    if batch_id is not None:
        query = query.where(_ITEMS.c.batch_id == batch_id)
    return session.execute(query).first() is not None


def hold_if_runnable(
    session: Session, *, item_id: str, owner: str, lease_seconds: float, now: datetime
) -> bool:
    """Right before the provider call: True, with the lease renewed from now, while
    `owner` still holds the item and its job and batch are running. A pause takes effect
    here; a lease that ran out while the worker waited for a rate-limit slot (and may
    have gone to another worker) is never called on."""
    job_active = (
        sa.select(_JOBS.c.id)
        .where(_JOBS.c.id == _ITEMS.c.job_id, _JOBS.c.status.in_(ACTIVE_STATUSES))
        .exists()
    )
    batch_active = sa.or_(
        _ITEMS.c.batch_id.is_(None),
        sa.select(_BATCHES.c.id)
        .where(_BATCHES.c.id == _ITEMS.c.batch_id, _BATCHES.c.status.in_(ACTIVE_STATUSES))
        .exists(),
    )
    result = session.execute(
        sa.update(_ITEMS)
        .where(
            _ITEMS.c.id == item_id,
            _ITEMS.c.state == WorkItemState.RUNNING.value,
            _ITEMS.c.lease_owner == owner,
            _ITEMS.c.lease_expires_at > now,
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


@dataclass(frozen=True)
class _Ended:
    """A work item whose lease this worker has just ended."""

    id: str
    submission_id: str
    job_id: str
    batch_id: str | None
    provider: str
    model: str


def _end_lease(
    session: Session,
    *,
    item_id: str,
    owner: str,
    state: WorkItemState,
    now: datetime,
    error: str | None,
) -> _Ended | None:
    """Move the item to its final state if `owner` still holds it; None otherwise (the
    reaper requeued it, or a stale message came twice): nothing is written then."""
    row = session.execute(
        _END_LEASE,
        {"id": item_id, "owner": owner, "state": state.value, "now": now, "error": error},
    ).one_or_none()
    return _Ended(*row) if row is not None else None


def complete_item(
    session: Session, *, item_id: str, owner: str, outcome: GradingOutcome, single_model: bool
) -> bool:
    """Store the result and mark the item completed; False if the lease was lost."""
    now = utcnow()
    ended = _end_lease(
        session, item_id=item_id, owner=owner, state=WorkItemState.COMPLETED, now=now, error=None
    )
    if ended is None:
        return False
    # Before the result's foreign key locks it in share mode (see _lock_submission).
    submission_status = _lock_submission(session, ended.submission_id)
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
        raw_response=outcome.raw_text,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        latency_ms=outcome.latency_ms,
    )
    # Legacy readers look at submissions.grade / grade_metadata.
    legacy = {"grade": grade.summary(), "grade_metadata": metadata} if single_model else {}
    _after_item(
        session,
        ended,
        completed=1,
        now=now,
        submission_status=submission_status,
        submission_values=legacy,
    )
    return True


def _insert_result(
    session: Session, ended: _Ended, *, now: datetime, linked: bool, **values: Any
) -> None:
    columns = dict.fromkeys(
        ("grade_metadata", "score", "max_score", "criteria", "feedback", "error_message")
        + ("raw_response", "prompt_tokens", "completion_tokens", "latency_ms")
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
        return False
    submission_status = _lock_submission(session, ended.submission_id)
    if usage is not None:
        # Not linked: the unique link is for the one completed result, and a retried
        # item may still get it.
        _insert_result(
            session,
            ended,
            now=now,
            linked=False,
            status="failed",
            grade="",
            error_message=error,
            raw_response=usage.raw_text,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            latency_ms=usage.latency_ms,
        )
    _after_item(
        session,
        ended,
        failed=1,
        now=now,
        submission_status=submission_status,
        submission_values={},
    )
    return True


def retry_later(
    session: Session,
    *,
    item_id: str,
    owner: str,
    error: str,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> datetime | None:
    """Put a transiently failed item back with backoff: full jitter, or Retry-After when
    the provider sent one (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/)."""
    item = _still_ours(session, item_id, owner)
    if item is None:
        return None
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
        "attempts": sa.case((_ITEMS.c.attempts > 0, _ITEMS.c.attempts - 1), else_=0),
        "updated_at": now,
    }
    if not_before_seconds is not None:
        values["next_attempt_at"] = now + timedelta(seconds=not_before_seconds)
    result = session.execute(
        sa.update(_ITEMS)
        .where(
            _ITEMS.c.id == item_id,
            _ITEMS.c.lease_owner == owner,
            _ITEMS.c.state == WorkItemState.RUNNING.value,
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
        sa.update(_ITEMS)
        .where(
            _ITEMS.c.id == item_id,
            _ITEMS.c.lease_owner == owner,
            _ITEMS.c.state == WorkItemState.RUNNING.value,
            _ITEMS.c.lease_expires_at > now,
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
        sa.exists().where(_JOBS.c.id == _ITEMS.c.job_id, _JOBS.c.status == "cancelled"),
        sa.exists().where(_BATCHES.c.id == _ITEMS.c.batch_id, _BATCHES.c.status == "cancelled"),
    )
    statement = sa.update(_ITEMS).where(_ITEMS.c.state == WorkItemState.QUEUED.value, cancelled)
    if item_ids is not None:
        statement = statement.where(_ITEMS.c.id.in_(item_ids))
    rows = session.execute(
        statement.values(
            state=WorkItemState.CANCELLED.value, completed_at=now, updated_at=now
        ).returning(
            _ITEMS.c.id,
            _ITEMS.c.submission_id,
            _ITEMS.c.job_id,
            _ITEMS.c.batch_id,
            _ITEMS.c.provider,
            _ITEMS.c.model,
        )
    ).all()
    withdrawn = sorted((_Ended(*row) for row in rows), key=lambda e: e.submission_id)
    # Every submission locked before any batch or job row: the order writers keep.
    for submission_id in dict.fromkeys(e.submission_id for e in withdrawn):
        _lock_submission(session, submission_id)
    for ended in withdrawn:
        _after_item(
            session,
            ended,
            withdrawn=1,
            now=now,
            # Read again: an earlier item of this loop may have settled it.
            submission_status=_lock_submission(session, ended.submission_id),
            submission_values={},
        )
    return len(withdrawn)


def _add_counts(
    session: Session,
    *,
    job_id: str,
    batch_id: str | None,
    total: int = 0,
    completed: int = 0,
    failed: int = 0,
) -> None:
    # Batch row before job row, the order every writer locks them in.
    if batch_id:
        session.execute(
            sa.update(_BATCHES)
            .where(_BATCHES.c.id == batch_id)
            .values(
                total_items=_BATCHES.c.total_items + total,
                completed_items=_BATCHES.c.completed_items + completed,
                failed_items=_BATCHES.c.failed_items + failed,
            )
        )
    session.execute(
        sa.update(_JOBS)
        .where(_JOBS.c.id == job_id)
        .values(
            total_items=_JOBS.c.total_items + total,
            completed_items=_JOBS.c.completed_items + completed,
            failed_items=_JOBS.c.failed_items + failed,
        )
    )


def _after_item(
    session: Session,
    ended: _Ended,
    *,
    completed: int = 0,
    failed: int = 0,
    withdrawn: int = 0,
    now: datetime,
    submission_status: str | None,
    submission_values: dict[str, Any],
) -> None:
    """Counters, the submission's status, and the job's and batch's status and ETA, for
    an item that completed, failed, or was withdrawn from the totals (cancelled)."""
    settled_as = _settle_submission(
        session, ended, previous=submission_status, now=now, values=submission_values
    )
    counts = {"completed": completed, "failed": failed, "withdrawn": withdrawn}
    batch = None
    if ended.batch_id:
        batch = session.execute(_COUNT_BATCH_ITEM, {**counts, "id": ended.batch_id}).one()
    job = session.execute(_COUNT_JOB_ITEM[settled_as], {**counts, "id": ended.job_id}).one()
    job_done = job.completed_items + job.failed_items >= job.total_items
    if job_done and job.status in ACTIVE_STATUSES:
        # Only a running job finishes here: a paused or cancelled one keeps its status
        # (resume settles a paused job whose items are all done).
        # Documents that could not be read never became items, but count as errors.
        status = finished_status(
            job.completed_items, job.failed_items, unreadable=bool(job.failed_submissions)
        )
        session.execute(
            sa.update(_JOBS)
            .where(_JOBS.c.id == ended.job_id)
            .values(status=status, completed_at=now, estimated_completion=None, updated_at=now)
        )
        if ended.batch_id:
            tally = _BATCHES.c.failed_jobs if status == "failed" else _BATCHES.c.completed_jobs
            session.execute(
                sa.update(_BATCHES)
                .where(_BATCHES.c.id == ended.batch_id)
                .values({tally.key: tally + 1})
            )
    elif not job_done and job.status in ACTIVE_STATUSES:
        _refresh_eta(session, _JOBS, ended.job_id, job, now=now)
    if ended.batch_id and batch is not None:
        _settle_batch(session, ended.batch_id, batch, now=now)


def _lock_submission(session: Session, submission_id: str) -> str | None:
    """Lock the submission row and return its status.

    Finishers of one submission's items (one per model) take turns here, so each reads
    the others' states after they committed; otherwise two finishing at once on
    PostgreSQL would each see the other still running, and neither would settle it.
    FOR NO KEY UPDATE, since a result's foreign key holds a KEY SHARE lock on the row
    that FOR UPDATE would wait for (https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-ROWS).
    """
    dialect = session.get_bind().dialect.name
    return session.execute(_LOCK_SUBMISSION[dialect], {"id": submission_id}).scalar_one()


def _settle_submission(
    session: Session,
    ended: _Ended,
    *,
    previous: str | None,
    now: datetime,
    values: dict[str, Any],
) -> tuple[str, ...]:
    """Update the (locked) submission's status from its items; returns the job's
    submission counters to add one to as it settles (none while items are open)."""
    states: dict[str, int] = dict(
        session.execute(_ITEM_STATES, {"id": ended.submission_id}).all()  # type: ignore[arg-type]
    )
    update = sa.update(_SUBMISSIONS).where(_SUBMISSIONS.c.id == ended.submission_id)
    if states.get("queued") or states.get("running"):
        if values or previous == "pending":
            session.execute(
                update.values(
                    **values,
                    status="processing" if previous == "pending" else previous,
                    updated_at=now,
                )
            )
        return ()
    completed, failed = states.get("completed", 0), states.get("failed", 0)
    status = "completed" if completed else "failed"
    error = None if completed or failed else CANCELLED_BEFORE_GRADING
    if failed:
        errors = session.execute(
            sa.select(_ITEMS.c.model, _ITEMS.c.last_error).where(
                _ITEMS.c.submission_id == ended.submission_id, _ITEMS.c.state == "failed"
            )
        ).all()
        error = "; ".join(f"{model}: {message}" for model, message in errors)[:2000]
    session.execute(
        _SETTLE_SUBMISSION["grade" in values],
        {**values, "id": ended.submission_id, "status": status, "error": error, "now": now},
    )
    if previous in ("completed", "failed"):
        return _STILL_PARTLY_FAILED if previous == "completed" and completed and failed else ()
    if status == "failed":
        return _FAILED
    return _PARTLY_FAILED if failed else _PROCESSED


def _settle_batch(session: Session, batch_id: str, batch: Any, *, now: datetime) -> None:
    done = batch.completed_items + batch.failed_items
    if batch.total_items and done >= batch.total_items and batch.status == "processing":
        status = batch_finished_status(
            session, batch_id, completed=batch.completed_items, failed=batch.failed_items
        )
        session.execute(
            sa.update(_BATCHES)
            .where(_BATCHES.c.id == batch_id)
            .values(
                status=status,
                # As a cancel leaves it: cancelled work did not complete.
                completed_at=None if status == "cancelled" else now,
                estimated_completion=None,
                updated_at=now,
            )
        )
    elif batch.total_items and done < batch.total_items and batch.status in ACTIVE_STATUSES:
        # (A paused or cancelled batch has no estimate: its calls in flight still land.)
        _refresh_eta(session, _BATCHES, batch_id, batch, now=now)


def _refresh_eta(
    session: Session, table: sa.Table, row_id: str, progress: Any, *, now: datetime
) -> None:
    """Store a new estimate at each whole percent of progress (every item of a small
    job), and whenever the stored one has gone by: the estimate stays fresh without a
    write per item of a large one."""
    done, total = progress.completed_items + progress.failed_items, progress.total_items
    same_percent = total > 100 and (done * 100) // total == ((done - 1) * 100) // total
    stored = progress.estimated_completion
    if same_percent and stored is not None and stored > now:
        return
    session.execute(
        sa.update(table)
        .where(table.c.id == row_id)
        .values(estimated_completion=_eta(progress.started_at, done, total, now))
    )


def finished_status(completed: int, failed: int, *, unreadable: bool = False) -> str:
    """What finished work comes to; `unreadable`: some documents could not be read (they
    never became items), so all being graded is still not a clean "completed"."""
    if failed == 0 and not unreadable:
        return "completed"
    if completed == 0:
        return "failed"
    return "completed_with_errors"


def batch_finished_status(session: Session, batch_id: str, *, completed: int, failed: int) -> str:
    """What a batch whose items are all done comes to: cancelled when every job in it
    was cancelled (what was graded before the cancel stays, but the work was given up),
    else what its items and unreadable documents say."""
    statuses = set(
        session.execute(
            sa.select(_JOBS.c.status).where(_JOBS.c.batch_id == batch_id).distinct()
        ).scalars()
    )
    if statuses == {"cancelled"}:
        return "cancelled"
    return finished_status(
        completed, failed, unreadable=has_unreadable_documents(session, batch_id)
    )


def has_unreadable_documents(session: Session, batch_id: str) -> bool:
    """Whether a job of the batch has failed submissions (asked once, as it finishes);
    a cancelled job's documents were given up on purpose, not errors."""
    return (
        session.execute(
            sa.select(_JOBS.c.id)
            .where(
                _JOBS.c.batch_id == batch_id,
                _JOBS.c.failed_submissions > 0,
                _JOBS.c.status != "cancelled",
            )
            .limit(1)
        ).first()
        is not None
    )


def _eta(started_at: datetime | None, done: int, total: int, now: datetime) -> datetime | None:
    """From the observed rate since the work started."""
    if started_at is None or done <= 0:
        return None
    elapsed = (now - started_at).total_seconds()
    if elapsed <= 0:
        return None
    rate = done / elapsed
    return now + timedelta(seconds=(total - done) / rate)
