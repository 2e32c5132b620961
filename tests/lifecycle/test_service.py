"""Batch and job control: the state machine of start, pause, resume, cancel, retry
failed and archive, and what each action does to items, jobs, submissions and counters.

Workers are simulated with the processing service itself: `claim` takes items,
`complete_item` / `fail_item` finish them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.errors import Conflict
from grading_app.jobs.service import add_submission
from grading_app.lifecycle import service as lifecycle
from grading_app.models import (
    BatchStatus,
    GradingJob,
    JobBatch,
    JobStatus,
    Submission,
    WorkItem,
    utcnow,
)
from grading_app.processing import service as processing
from grading_app.processing.claim import ClaimedItem, claim
from grading_app.providers.targets import Target
from tests.factories import make_batch, make_job, make_outcome

BATCH_STATUSES = tuple(BatchStatus)
JOB_STATUSES = tuple(JobStatus)


# --- helpers -------------------------------------------------------------------------


def _setup(
    sessions: sessionmaker[Session],
    *,
    documents: tuple[int, ...] = (2,),
    targets: list[Target] | None = None,
) -> tuple[str, list[str]]:
    """A pending batch 'Mock exams' with one queued job per entry of `documents`."""
    with unit_of_work(sessions) as session:
        batch = make_batch(session, name="Mock exams")
        jobs = []
        for index, count in enumerate(documents):
            job = make_job(
                session, batch=batch, documents=count, targets=targets, text_prefix=f"J{index} "
            )
            job.job_name = f"Essay job {index}"
            jobs.append(job)
        session.flush()
        return batch.id, [job.id for job in jobs]


def _claim(
    sessions: sessionmaker[Session], *, limit: int = 100, owner: str = "w1"
) -> list[ClaimedItem]:
    with unit_of_work(sessions) as session:
        return claim(session, owner=owner, limit=limit, lease_seconds=300, now=utcnow())


def _complete(sessions: sessionmaker[Session], items: list[ClaimedItem], owner: str = "w1"):
    for item in items:
        with unit_of_work(sessions) as session:
            assert processing.complete_item(
                session, item_id=item.id, owner=owner, outcome=make_outcome(), single_model=True
            )


def _fail(sessions: sessionmaker[Session], items: list[ClaimedItem], owner: str = "w1"):
    for item in items:
        with unit_of_work(sessions) as session:
            assert processing.fail_item(
                session, item_id=item.id, owner=owner, error="model not found"
            )


def _batch(sessions: sessionmaker[Session], batch_id: str) -> JobBatch:
    with unit_of_work(sessions) as session:
        batch = session.get(JobBatch, batch_id)
        assert batch is not None
        return batch


def _job(sessions: sessionmaker[Session], job_id: str) -> GradingJob:
    with unit_of_work(sessions) as session:
        job = session.get(GradingJob, job_id)
        assert job is not None
        return job


def _submissions(sessions: sessionmaker[Session], job_id: str) -> list[Submission]:
    with unit_of_work(sessions) as session:
        return list(
            session.scalars(
                sa.select(Submission)
                .where(Submission.job_id == job_id)
                .order_by(Submission.original_filename)
            )
        )


def _states(sessions: sessionmaker[Session], **where: str) -> dict[str, int]:
    with unit_of_work(sessions) as session:
        query = sa.select(WorkItem.state, sa.func.count()).group_by(WorkItem.state)
        for column, value in where.items():
            query = query.where(getattr(WorkItem, column) == value)
        return {state: count for state, count in session.execute(query).all()}


def _act(sessions: sessionmaker[Session], action: Callable[..., Any], **ids: str) -> Any:
    with unit_of_work(sessions) as session:
        return action(session, **ids)


def _job_in(sessions: sessionmaker[Session], status: str) -> str:
    """An empty job 'Essay job <status>' in that status, of a processing batch; its id."""
    with unit_of_work(sessions) as session:
        job = make_job(session, batch=make_batch(session, status="processing"), documents=0)
        job.job_name = f"Essay job {status}"
        job.status = status
        return job.id


def _assert_move(
    sessions: sessionmaker[Session],
    action: str,
    *,
    kind: str,
    row_id: str,
    name: str,
    status: str,
    expected: str | None,
) -> None:
    """The `action` on a batch or job (`kind`) in `status` leaves it `expected`; with
    nothing expected, it is refused saying why and the status stays."""
    function = getattr(lifecycle, f"{action}_{kind}")
    read = _batch if kind == "batch" else _job
    ids = {f"{kind}_id": row_id}
    if expected is None:
        message = f"Cannot {action} {kind} '{name}': it is {status}"
        with pytest.raises(Conflict, match=f"^{message}$"):
            _act(sessions, function, **ids)
        assert read(sessions, row_id).status == status
    else:
        assert _act(sessions, function, **ids).status == expected
        assert read(sessions, row_id).status == expected


# --- the state machine, status by status ----------------------------------------------

# action -> {from status: resulting status}; every other status is refused.
BATCH_MOVES: dict[str, dict[str, str]] = {
    "start": {"draft": "pending"},
    "pause": {"pending": "paused", "processing": "paused"},
    "resume": {"paused": "pending"},  # never claimed, so pending again
    "cancel": {s: "cancelled" for s in ("draft", "pending", "processing", "paused")},
    "archive": {
        s: "archived" for s in ("completed", "completed_with_errors", "failed", "cancelled")
    },
}


@pytest.mark.parametrize("action", sorted(BATCH_MOVES))
def test_batch_actions_follow_the_state_machine(sessions, action):
    for status in BATCH_STATUSES:
        with unit_of_work(sessions) as session:
            batch = make_batch(session, name=f"Mock exams {status}", status=status)
            if action == "start":  # a batch starts only with documents to grade
                make_job(session, batch=batch, documents=1)
            batch_id = batch.id
        _assert_move(
            sessions,
            action,
            kind="batch",
            row_id=batch_id,
            name=f"Mock exams {status}",
            status=status,
            expected=BATCH_MOVES[action].get(status),
        )


def test_retry_failed_batch_follows_the_state_machine(sessions):
    refused = {"draft", "cancelled", "archived"}
    for status in BATCH_STATUSES:
        with unit_of_work(sessions) as session:
            batch_id = make_batch(session, name=f"Mock exams {status}", status=status).id
        if status in refused:
            message = (
                f"Cannot retry the failed items of batch 'Mock exams {status}': it is {status}"
            )
        else:  # allowed, but there is nothing to retry
            message = f"Batch 'Mock exams {status}' has no failed items to retry"
        with pytest.raises(Conflict, match=f"^{message}$"):
            _act(sessions, lifecycle.retry_failed_batch, batch_id=batch_id)
        assert _batch(sessions, batch_id).status == status


def test_resume_goes_back_to_processing_once_work_started(sessions):
    batch_id, [job_id] = _setup(sessions, documents=(3,))
    _claim(sessions, limit=1)
    _act(sessions, lifecycle.pause_batch, batch_id=batch_id)
    _act(sessions, lifecycle.pause_job, job_id=job_id)
    assert _act(sessions, lifecycle.resume_batch, batch_id=batch_id).status == "processing"
    assert _act(sessions, lifecycle.resume_job, job_id=job_id).status == "processing"


JOB_MOVES: dict[str, dict[str, str]] = {
    "pause": {"pending": "paused", "processing": "paused"},
    "resume": {"paused": "pending"},
    "cancel": {s: "cancelled" for s in ("pending", "processing", "paused")},
}


@pytest.mark.parametrize("action", sorted(JOB_MOVES))
def test_job_actions_follow_the_state_machine(sessions, action):
    for status in JOB_STATUSES:
        _assert_move(
            sessions,
            action,
            kind="job",
            row_id=_job_in(sessions, status),
            name=f"Essay job {status}",
            status=status,
            expected=JOB_MOVES[action].get(status),
        )


def test_retry_failed_job_follows_the_state_machine(sessions):
    for status in JOB_STATUSES:
        job_id = _job_in(sessions, status)
        if status == "cancelled":
            message = f"Cannot retry the failed items of job 'Essay job {status}': it is cancelled"
        else:
            message = f"Job 'Essay job {status}' has no failed items to retry"
        with pytest.raises(Conflict, match=f"^{message}$"):
            _act(sessions, lifecycle.retry_failed_job, job_id=job_id)
        assert _job(sessions, job_id).status == status


# --- bug 1: resume settles work that finished while paused -----------------------------


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(0, "completed"), (1, "completed_with_errors"), (2, "failed")],
)
def test_resume_settles_a_batch_whose_last_items_finished_while_paused(
    sessions, failures, expected
):
    batch_id, [job_id] = _setup(sessions, documents=(2,))
    items = _claim(sessions)
    _act(sessions, lifecycle.pause_batch, batch_id=batch_id)
    _fail(sessions, items[:failures])  # the calls in flight still land
    _complete(sessions, items[failures:])
    paused = _batch(sessions, batch_id)
    assert paused.status == "paused" and paused.completed_at is None
    assert paused.completed_items + paused.failed_items == paused.total_items == 2

    resumed = _act(sessions, lifecycle.resume_batch, batch_id=batch_id)
    assert resumed.status == expected
    batch = _batch(sessions, batch_id)
    assert batch.status == expected and batch.completed_at is not None
    assert batch.estimated_completion is None
    assert _job(sessions, job_id).status == expected  # the job settled on its own


def test_resume_of_a_paused_batch_with_work_left_lets_claims_go_on(sessions):
    batch_id, _ = _setup(sessions, documents=(3,))
    _complete(sessions, _claim(sessions, limit=1))
    _act(sessions, lifecycle.pause_batch, batch_id=batch_id)
    assert _claim(sessions) == []
    assert _act(sessions, lifecycle.resume_batch, batch_id=batch_id).status == "processing"
    assert len(_claim(sessions)) == 2


def test_resume_job_settles_a_job_whose_last_items_finished_while_paused(sessions):
    batch_id, [done_id, paused_id] = _setup(sessions, documents=(1, 2))
    items = _claim(sessions)
    _act(sessions, lifecycle.pause_job, job_id=paused_id)
    _complete(sessions, [i for i in items if i.job_id == done_id])
    _fail(sessions, [i for i in items if i.job_id == paused_id][:1])
    _complete(sessions, [i for i in items if i.job_id == paused_id][1:])
    assert _job(sessions, paused_id).status == "paused"

    assert _act(sessions, lifecycle.resume_job, job_id=paused_id).status == "completed_with_errors"
    job = _job(sessions, paused_id)
    assert job.completed_at is not None
    batch = _batch(sessions, batch_id)
    # Counted once, when it settled.
    assert (batch.completed_jobs, batch.failed_jobs) == (2, 0)


# --- bug 2: retry-failed of a job reopens its finished batch ---------------------------


@pytest.mark.parametrize("first_job_fails", [False, True])
def test_retry_failed_job_reopens_its_finished_batch(sessions, first_job_fails):
    batch_id, [first_id, second_id] = _setup(sessions, documents=(1, 2))
    items = _claim(sessions)
    first = [i for i in items if i.job_id == first_id]
    second = [i for i in items if i.job_id == second_id]
    (_fail if first_job_fails else _complete)(sessions, first)
    _fail(sessions, second)
    finished = _batch(sessions, batch_id)
    assert finished.status == ("failed" if first_job_fails else "completed_with_errors")
    assert (finished.completed_jobs, finished.failed_jobs) == (
        (0, 2) if first_job_fails else (1, 1)
    )

    assert _act(sessions, lifecycle.retry_failed_job, job_id=second_id) == 2
    batch = _batch(sessions, batch_id)
    assert batch.status == "processing" and batch.completed_at is None
    assert (batch.completed_jobs, batch.failed_jobs) == ((0, 1) if first_job_fails else (1, 0))
    assert batch.failed_items == (1 if first_job_fails else 0)
    job = _job(sessions, second_id)
    assert job.status == "processing" and job.completed_at is None
    assert job.failed_items == 0 and job.failed_submissions == 0
    assert {s.status for s in _submissions(sessions, second_id)} == {"processing"}
    assert _job(sessions, first_id).status == ("failed" if first_job_fails else "completed")

    retried = _claim(sessions, owner="w2")  # the requeued items are claimable again
    assert sorted(i.id for i in retried) == sorted(i.id for i in second)
    _complete(sessions, retried, owner="w2")
    batch = _batch(sessions, batch_id)
    assert batch.status == ("completed_with_errors" if first_job_fails else "completed")
    assert (batch.completed_jobs, batch.failed_jobs) == ((1, 1) if first_job_fails else (2, 0))
    assert batch.completed_at is not None
    job = _job(sessions, second_id)
    assert job.status == "completed" and job.processed_submissions == 2


def test_retry_failed_is_refused_for_cancelled_work(sessions):
    batch_id, [kept_id, cancelled_id] = _setup(sessions, documents=(1, 2))
    _fail(sessions, _claim(sessions, limit=2))  # one item of each job
    _act(sessions, lifecycle.cancel_job, job_id=cancelled_id)
    with pytest.raises(
        Conflict, match="^Cannot retry the failed items of job 'Essay job 1': it is cancelled$"
    ):
        _act(sessions, lifecycle.retry_failed_job, job_id=cancelled_id)
    # Batch-level retry leaves the cancelled job's failed items alone.
    assert _act(sessions, lifecycle.retry_failed_batch, batch_id=batch_id) == 1
    assert _states(sessions, job_id=cancelled_id) == {"failed": 1, "cancelled": 1}
    assert [i.job_id for i in _claim(sessions)] == [kept_id]
    assert _job(sessions, cancelled_id).status == "cancelled"

    _act(sessions, lifecycle.cancel_batch, batch_id=batch_id)
    with pytest.raises(
        Conflict, match="^Cannot retry the failed items of batch 'Mock exams': it is cancelled$"
    ):
        _act(sessions, lifecycle.retry_failed_batch, batch_id=batch_id)
    with pytest.raises(
        Conflict, match="^Cannot retry the failed items of job 'Essay job 0': it is cancelled$"
    ):
        _act(sessions, lifecycle.retry_failed_job, job_id=kept_id)


def test_retry_failed_job_is_refused_when_its_batch_is_archived(sessions):
    batch_id, [job_id] = _setup(sessions, documents=(1,))
    _fail(sessions, _claim(sessions))
    _act(sessions, lifecycle.archive_batch, batch_id=batch_id)
    message = (
        "^Cannot retry the failed items of job 'Essay job 0': its batch 'Mock exams' is archived$"
    )
    with pytest.raises(Conflict, match=message):
        _act(sessions, lifecycle.retry_failed_job, job_id=job_id)
    assert _states(sessions) == {"failed": 1}


# --- bug 3: cancel settles jobs and submissions ----------------------------------------


def test_cancel_batch_cancels_its_unfinished_jobs_and_their_submissions(sessions):
    batch_id, [done_id, running_id, paused_id] = _setup(sessions, documents=(1, 2, 2))
    done_item, running_item = _claim(sessions, limit=2)
    assert (done_item.job_id, running_item.job_id) == (done_id, running_id)
    _complete(sessions, [done_item])
    _act(sessions, lifecycle.pause_job, job_id=paused_id)

    assert _act(sessions, lifecycle.cancel_batch, batch_id=batch_id).status == "cancelled"
    assert _claim(sessions) == []
    assert _states(sessions) == {"completed": 1, "running": 1, "cancelled": 3}
    batch = _batch(sessions, batch_id)
    assert batch.total_items == 2 and batch.completed_items == 1
    assert (batch.completed_jobs, batch.failed_jobs) == (1, 0)
    statuses = {i: _job(sessions, i).status for i in (done_id, running_id, paused_id)}
    assert statuses == {done_id: "completed", running_id: "cancelled", paused_id: "cancelled"}

    # Submissions keep the legacy statuses: cancelled ones fail, saying why.
    done, running, paused = (_job(sessions, i) for i in (done_id, running_id, paused_id))
    assert (done.total_items, running.total_items, paused.total_items) == (1, 1, 0)
    assert [s.status for s in _submissions(sessions, done_id)] == ["completed"]
    in_flight, never_graded = _submissions(sessions, running_id)
    assert in_flight.status == "pending"  # its call is in flight and may still land
    assert never_graded.status == "failed"
    assert never_graded.error_message == "cancelled before grading"
    assert {s.status for s in _submissions(sessions, paused_id)} == {"failed"}
    assert (running.failed_submissions, paused.failed_submissions) == (1, 2)
    assert (running.processed_submissions, paused.processed_submissions) == (0, 0)

    _complete(sessions, [running_item])  # the call in flight lands
    in_flight, _ = _submissions(sessions, running_id)
    assert in_flight.status == "completed"
    running = _job(sessions, running_id)
    assert (running.processed_submissions, running.failed_submissions) == (1, 1)
    batch = _batch(sessions, batch_id)
    assert batch.status == "cancelled" and batch.completed_items == batch.total_items == 2


def test_a_cancelled_job_stays_cancelled_when_its_last_call_lands(sessions):
    batch_id, [job_id] = _setup(sessions, documents=(2,))
    [running] = _claim(sessions, limit=1)
    _act(sessions, lifecycle.cancel_job, job_id=job_id)
    _complete(sessions, [running])
    assert _job(sessions, job_id).status == "cancelled"
    batch = _batch(sessions, batch_id)
    assert (batch.completed_jobs, batch.failed_jobs) == (0, 0)


def test_cancel_job_settles_submissions_and_a_batch_with_nothing_left(sessions):
    targets = [Target("openai", "model-a"), Target("claude", "model-b")]
    batch_id, [graded_id, partial_id] = _setup(sessions, documents=(1, 2), targets=targets)
    items = _claim(sessions, limit=3)
    # The first job's document is graded by both models, the second job's first
    # document by one of them.
    assert [i.job_id for i in items] == [graded_id, graded_id, partial_id]
    _complete(sessions, items)
    assert _batch(sessions, batch_id).status == "processing"

    assert _act(sessions, lifecycle.cancel_job, job_id=partial_id).status == "cancelled"
    partly_graded, never_graded = _submissions(sessions, partial_id)
    assert partly_graded.status == "completed"  # one model's grade is kept
    assert never_graded.status == "failed"
    assert never_graded.error_message == "cancelled before grading"
    job = _job(sessions, partial_id)
    assert (job.processed_submissions, job.failed_submissions) == (1, 1)
    assert job.total_items == job.completed_items == 1
    # Nothing is left to run in the batch: it finishes now, not never.
    batch = _batch(sessions, batch_id)
    assert batch.status == "completed" and batch.completed_at is not None
    assert batch.total_items == batch.completed_items == 3
    assert _act(sessions, lifecycle.archive_batch, batch_id=batch_id).status == "archived"


def test_a_batch_whose_every_job_is_cancelled_is_cancelled(sessions):
    batch_id, job_ids = _setup(sessions, documents=(1, 1))
    for job_id in job_ids:
        _act(sessions, lifecycle.cancel_job, job_id=job_id)
    batch = _batch(sessions, batch_id)
    assert batch.status == "cancelled" and batch.total_items == 0


def test_cancelling_the_only_job_after_some_grades_cancels_the_batch(sessions):
    # Not "completed": most documents were never graded. The grades made stay.
    batch_id, [job_id] = _setup(sessions, documents=(3,))
    _complete(sessions, _claim(sessions, limit=1))
    _act(sessions, lifecycle.cancel_job, job_id=job_id)
    batch = _batch(sessions, batch_id)
    assert batch.status == "cancelled" and batch.completed_items == 1
    assert batch.estimated_completion is None


def test_the_only_jobs_call_in_flight_landing_after_its_cancel_leaves_the_batch_cancelled(
    sessions,
):
    batch_id, [job_id] = _setup(sessions, documents=(3,))
    _complete(sessions, _claim(sessions, limit=1))
    [running] = _claim(sessions, limit=1)
    _act(sessions, lifecycle.cancel_job, job_id=job_id)
    assert _batch(sessions, batch_id).status == "processing"  # a call is in flight
    _complete(sessions, [running])
    batch = _batch(sessions, batch_id)
    assert batch.status == "cancelled" and batch.completed_items == 2
    # As a cancel leaves a batch: cancelled work did not complete.
    assert batch.estimated_completion is None and batch.completed_at is None


def test_a_paused_or_cancelled_batch_shows_no_estimate(sessions):
    batch_id, [job_id] = _setup(sessions, documents=(4,))
    _complete(sessions, _claim(sessions, limit=1))
    assert _batch(sessions, batch_id).estimated_completion is not None
    in_flight = _claim(sessions, limit=1)
    _act(sessions, lifecycle.pause_batch, batch_id=batch_id)
    _complete(sessions, in_flight)  # landing while paused
    assert _batch(sessions, batch_id).estimated_completion is None
    _act(sessions, lifecycle.resume_batch, batch_id=batch_id)
    in_flight = _claim(sessions, limit=1)
    _act(sessions, lifecycle.cancel_batch, batch_id=batch_id)
    _complete(sessions, in_flight)  # landing after the cancel
    assert _batch(sessions, batch_id).estimated_completion is None
    assert _job(sessions, job_id).estimated_completion is None


def test_cancel_job_of_a_paused_batch_leaves_the_batch_to_resume(sessions):
    batch_id, [done_id, cancelled_id] = _setup(sessions, documents=(1, 1))
    _complete(sessions, _claim(sessions, limit=1))
    _act(sessions, lifecycle.pause_batch, batch_id=batch_id)
    _act(sessions, lifecycle.cancel_job, job_id=cancelled_id)
    assert _batch(sessions, batch_id).status == "paused"
    assert _act(sessions, lifecycle.resume_batch, batch_id=batch_id).status == "completed"
    assert _job(sessions, done_id).status == "completed"


# --- bug 4: retry-failed keeps a pause ---------------------------------------------------


def test_retry_failed_batch_keeps_a_paused_batch_paused(sessions):
    batch_id, [job_id] = _setup(sessions, documents=(3,))
    _fail(sessions, _claim(sessions, limit=2))
    _act(sessions, lifecycle.pause_batch, batch_id=batch_id)
    assert _act(sessions, lifecycle.retry_failed_batch, batch_id=batch_id) == 2
    batch = _batch(sessions, batch_id)
    assert batch.status == "paused" and batch.failed_items == 0
    assert _states(sessions) == {"queued": 3}
    assert _claim(sessions) == []
    _act(sessions, lifecycle.resume_batch, batch_id=batch_id)
    assert len(_claim(sessions)) == 3


def test_retry_failed_job_keeps_a_paused_job_paused(sessions):
    batch_id, [job_id] = _setup(sessions, documents=(3,))
    _fail(sessions, _claim(sessions, limit=2))
    _act(sessions, lifecycle.pause_job, job_id=job_id)
    assert _act(sessions, lifecycle.retry_failed_job, job_id=job_id) == 2
    assert _job(sessions, job_id).status == "paused"
    assert _claim(sessions) == []
    _act(sessions, lifecycle.resume_job, job_id=job_id)
    assert len(_claim(sessions)) == 3


def test_retry_failed_job_of_a_finished_job_in_a_paused_batch(sessions):
    batch_id, [failed_id, other_id] = _setup(sessions, documents=(1, 1))
    _fail(sessions, _claim(sessions, limit=1))
    _act(sessions, lifecycle.pause_batch, batch_id=batch_id)
    assert _act(sessions, lifecycle.retry_failed_job, job_id=failed_id) == 1
    assert _job(sessions, failed_id).status == "processing"
    batch = _batch(sessions, batch_id)
    assert batch.status == "paused" and batch.failed_jobs == 0
    assert _claim(sessions) == []


# --- bug 6: job-level and batch-level controls compose -----------------------------------


def test_a_job_paused_on_its_own_stays_paused_when_its_batch_resumes(sessions):
    batch_id, [paused_id, other_id] = _setup(sessions, documents=(2, 2))
    _act(sessions, lifecycle.pause_job, job_id=paused_id)
    _act(sessions, lifecycle.pause_batch, batch_id=batch_id)
    _act(sessions, lifecycle.resume_batch, batch_id=batch_id)
    assert _job(sessions, paused_id).status == "paused"
    assert {i.job_id for i in _claim(sessions)} == {other_id}
    _act(sessions, lifecycle.resume_job, job_id=paused_id)
    assert {i.job_id for i in _claim(sessions)} == {paused_id}


def test_an_archived_batch_refuses_every_action(sessions):
    batch_id, [job_id] = _setup(sessions, documents=(1,))
    _complete(sessions, _claim(sessions))
    _act(sessions, lifecycle.archive_batch, batch_id=batch_id)
    for action in ("start", "pause", "resume", "cancel", "archive"):
        with pytest.raises(Conflict, match="it is archived$"):
            _act(sessions, getattr(lifecycle, f"{action}_batch"), batch_id=batch_id)
    assert _batch(sessions, batch_id).status == "archived"


# --- bug 5: counters stay exact under concurrent workers (PostgreSQL) ----------------------


def _before_first_item_update(
    sessions: sessionmaker[Session], interleave: Callable[[], None]
) -> Callable[[], None]:
    """Run `interleave` (another worker's committed transaction) right before the first
    `UPDATE work_items` this sessionmaker's engine sends; returns the remover."""
    engine = sessions.kw["bind"]
    fired = threading.Event()

    def hook(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not fired.is_set() and statement.lstrip().startswith("UPDATE work_items"):
            fired.set()
            interleave()

    sa.event.listen(engine, "before_cursor_execute", hook)
    return lambda: sa.event.remove(engine, "before_cursor_execute", hook)


def test_cancel_counts_exactly_when_a_claim_commits_meanwhile(pg_sessions, postgres_url):
    batch_id, [job_id] = _setup(pg_sessions, documents=(4,))
    other_engine = make_engine(postgres_url)
    other = make_sessionmaker(other_engine)
    claimed: list[ClaimedItem] = []
    remove = _before_first_item_update(pg_sessions, lambda: claimed.extend(_claim(other, limit=1)))
    try:
        _act(pg_sessions, lifecycle.cancel_batch, batch_id=batch_id)
    finally:
        remove()
    assert len(claimed) == 1
    assert _states(pg_sessions) == {"running": 1, "cancelled": 3}
    batch, job = _batch(pg_sessions, batch_id), _job(pg_sessions, job_id)
    assert batch.total_items == job.total_items == 1
    _complete(other, claimed)
    other_engine.dispose()
    batch = _batch(pg_sessions, batch_id)
    assert batch.completed_items == batch.total_items == 1


def test_cancel_waits_for_a_claim_in_flight_and_counts_exactly(pg_sessions):
    """The claim holds its rows while cancel's UPDATE reaches them: cancel waits, then
    skips the now-running item (https://www.postgresql.org/docs/current/
    transaction-iso.html#XACT-READ-COMMITTED)."""
    batch_id, [job_id] = _setup(pg_sessions, documents=(4,))
    claimer = pg_sessions()
    claimed = claim(claimer, owner="w1", limit=1, lease_seconds=300, now=utcnow())
    errors: list[BaseException] = []
    pid: list[int] = []

    def cancel() -> None:
        try:
            with unit_of_work(pg_sessions) as session:
                pid.append(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
                lifecycle.cancel_batch(session, batch_id=batch_id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=cancel)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        waiting = False
        while not waiting and time.monotonic() < deadline:
            with unit_of_work(pg_sessions, read_only=True) as session:
                waiting = (
                    pid != []
                    and session.execute(
                        sa.text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                        {"pid": pid[0]},
                    ).scalar_one_or_none()
                    == "Lock"
                )
            time.sleep(0.02)
        assert waiting, "cancel never waited for the claim's row locks"
        claimer.commit()
    finally:
        claimer.close()
        thread.join(10)
    assert not errors
    assert _states(pg_sessions) == {"running": 1, "cancelled": 3}
    assert _batch(pg_sessions, batch_id).total_items == _job(pg_sessions, job_id).total_items == 1
    _complete(pg_sessions, claimed)
    batch = _batch(pg_sessions, batch_id)
    assert batch.completed_items == batch.total_items == 1


def test_retry_failed_counts_exactly_when_a_failure_commits_meanwhile(pg_sessions, postgres_url):
    batch_id, [job_id] = _setup(pg_sessions, documents=(3,))
    items = _claim(pg_sessions)
    _fail(pg_sessions, items[:1])
    other_engine = make_engine(postgres_url)
    other = make_sessionmaker(other_engine)
    remove = _before_first_item_update(pg_sessions, lambda: _fail(other, items[1:2]))
    try:
        requeued = _act(pg_sessions, lifecycle.retry_failed_batch, batch_id=batch_id)
    finally:
        remove()
        other_engine.dispose()
    assert _states(pg_sessions) == {"queued": 2, "running": 1}
    assert requeued == 2
    batch, job = _batch(pg_sessions, batch_id), _job(pg_sessions, job_id)
    assert batch.failed_items == job.failed_items == 0
    assert job.failed_submissions == 0
    assert {s.status for s in _submissions(pg_sessions, job_id)} == {"processing", "pending"}


# --- nothing to grade: refused, or settled at once -------------------------------------


def _unreadable_job(session: Session, batch: JobBatch, *, documents: int = 2) -> GradingJob:
    """A job of the batch whose every document could not be read: no work items."""
    job = make_job(session, batch=batch, documents=0)
    for index in range(documents):
        add_submission(
            session,
            job=job,
            original_filename=f"scan_{index}.pdf",
            stored_filename="",
            file_type=None,
            file_size=10,
            extracted_text=None,
            error="a scanned image with no text",
        )
    return job


def test_starting_a_batch_without_documents_is_refused_saying_how_to_add_them(sessions):
    with unit_of_work(sessions) as session:
        batch_id = make_batch(session, name="Mock exams", status="draft").id

    with pytest.raises(Conflict) as refused:
        _act(sessions, lifecycle.start_batch, batch_id=batch_id)

    assert refused.value.message.startswith(
        "Cannot start batch 'Mock exams': it has no documents to grade. Add them first with "
        f"POST /api/batches/{batch_id}/jobs"
    )
    assert _batch(sessions, batch_id).status == "draft"


def test_a_batch_whose_documents_are_all_unreadable_settles_when_started(sessions):
    with unit_of_work(sessions) as session:
        batch = make_batch(session, name="Mock exams", status="draft")
        job_id = _unreadable_job(session, batch).id
        batch_id = batch.id

    started = _act(sessions, lifecycle.start_batch, batch_id=batch_id)

    assert started.status == "failed"
    batch = _batch(sessions, batch_id)
    assert batch.status == "failed" and batch.completed_at is not None
    assert (batch.total_jobs, batch.completed_jobs, batch.failed_jobs) == (1, 0, 1)
    job = _job(sessions, job_id)
    assert job.status == "failed" and job.completed_at is not None
    assert _claim(sessions) == []


def test_a_job_with_nothing_readable_ends_at_once_in_a_running_batch(sessions):
    batch_id, [graded_id] = _setup(sessions, documents=(1,))
    with unit_of_work(sessions) as session:
        batch = session.get(JobBatch, batch_id)
        assert batch is not None
        unreadable_id = _unreadable_job(session, batch).id
        lifecycle.settle_jobs_without_work(session, batch_id=batch_id)
    assert _job(sessions, unreadable_id).status == "failed"
    assert _batch(sessions, batch_id).status == "pending"  # the other job still runs

    _complete(sessions, _claim(sessions))

    batch = _batch(sessions, batch_id)
    assert batch.status == "completed_with_errors"
    assert (batch.completed_jobs, batch.failed_jobs) == (1, 1)
    assert _job(sessions, graded_id).status == "completed"


def test_a_paused_batch_settles_its_unreadable_job_when_resumed(sessions):
    with unit_of_work(sessions) as session:
        batch = make_batch(session, name="Mock exams", status="paused")
        job_id = _unreadable_job(session, batch).id
        batch_id = batch.id
        lifecycle.settle_jobs_without_work(session, batch_id=batch_id)  # paused: nothing yet
    assert _job(sessions, job_id).status == "pending"

    assert _act(sessions, lifecycle.resume_batch, batch_id=batch_id).status == "failed"
    assert _job(sessions, job_id).status == "failed"


def test_resuming_a_paused_job_with_nothing_readable_settles_it_and_its_batch(sessions):
    with unit_of_work(sessions) as session:
        batch = make_batch(session, name="Mock exams", status="draft")
        job = _unreadable_job(session, batch)
        job.status = "paused"
        job_id, batch_id = job.id, batch.id
    assert _act(sessions, lifecycle.start_batch, batch_id=batch_id).status == "pending"

    assert _act(sessions, lifecycle.resume_job, job_id=job_id).status == "failed"
    batch = _batch(sessions, batch_id)
    assert batch.status == "failed" and batch.failed_jobs == 1


def test_cancel_counts_a_document_some_models_graded_and_one_failed_as_partly_failed(sessions):
    targets = [Target("openai", "m1"), Target("openai", "m2"), Target("openai", "m3")]
    batch_id, [job_id] = _setup(sessions, documents=(1,), targets=targets)
    first, second = _claim(sessions, limit=2)
    _complete(sessions, [first])
    _fail(sessions, [second])

    _act(sessions, lifecycle.cancel_job, job_id=job_id)  # the third model never ran

    [submission] = _submissions(sessions, job_id)
    assert submission.status == "completed"
    job = _job(sessions, job_id)
    assert (job.processed_submissions, job.partly_failed_submissions) == (1, 1)
