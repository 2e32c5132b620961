"""Items finishing move counters, statuses, ETA and the legacy grade; control actions
follow the state machine."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.errors import Conflict
from grading_app.lifecycle import service as lifecycle
from grading_app.models import GradeResult, GradingJob, JobBatch, Submission, WorkItem, utcnow
from grading_app.processing import service
from grading_app.processing.claim import claim
from grading_app.providers.targets import Target
from tests.factories import make_batch, make_job, make_outcome


def _claim_all(sessions, owner="w1"):
    with unit_of_work(sessions) as session:
        return [
            i.id for i in claim(session, owner=owner, limit=100, lease_seconds=300, now=utcnow())
        ]


def _ids(sessions, batch_size=3, targets=None):
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        job = make_job(session, batch=batch, documents=batch_size, targets=targets)
        return batch.id, job.id


def test_completing_every_item_completes_job_and_batch(sessions):
    batch_id, job_id = _ids(sessions)
    items = _claim_all(sessions)
    for index, item_id in enumerate(items):
        with unit_of_work(sessions) as session:
            assert service.complete_item(
                session,
                item_id=item_id,
                owner="w1",
                outcome=make_outcome(score=60 + index),
                single_model=True,
            )
        with unit_of_work(sessions) as session:
            job = session.get(GradingJob, job_id)
            batch = session.get(JobBatch, batch_id)
            assert (job.completed_items, batch.completed_items) == (index + 1, index + 1)
            if index < len(items) - 1:
                assert batch.status == "processing" and batch.estimated_completion is not None
    with unit_of_work(sessions) as session:
        job = session.get(GradingJob, job_id)
        batch = session.get(JobBatch, batch_id)
        assert job.status == "completed" and job.completed_at is not None
        assert job.processed_submissions == 3 and job.failed_submissions == 0
        assert batch.status == "completed" and batch.completed_jobs == 1
        assert batch.completed_at is not None and batch.estimated_completion is None
        submissions = session.scalars(sa.select(Submission)).all()
        assert all(s.status == "completed" for s in submissions)
        # Legacy readers still find a single-model grade on the submission.
        assert all(s.grade.startswith("Score: ") for s in submissions)
        assert all(s.grade_metadata["max_score"] == 100 for s in submissions)
        results = session.scalars(sa.select(GradeResult)).all()
        assert len(results) == 3 and {r.score for r in results} == {60, 61, 62}
        assert all(r.raw_response and r.prompt_tokens == 100 for r in results)


def test_a_result_is_written_once_even_if_the_lease_was_lost(sessions):
    _ids(sessions, batch_size=1)
    [item_id] = _claim_all(sessions)
    with unit_of_work(sessions) as session:
        assert service.complete_item(
            session, item_id=item_id, owner="w1", outcome=make_outcome(), single_model=True
        )
    with unit_of_work(sessions) as session:  # a second delivery of the same work
        assert not service.complete_item(
            session, item_id=item_id, owner="w1", outcome=make_outcome(), single_model=True
        )
    with unit_of_work(sessions) as session:  # a worker whose lease was reaped
        assert not service.complete_item(
            session, item_id=item_id, owner="w2", outcome=make_outcome(), single_model=True
        )
        assert session.scalar(sa.select(sa.func.count()).select_from(GradeResult)) == 1


def test_failures_then_retry_failed(sessions):
    batch_id, job_id = _ids(sessions)
    items = _claim_all(sessions)
    for item_id in items[:2]:
        with unit_of_work(sessions) as session:
            service.fail_item(session, item_id=item_id, owner="w1", error="model not found")
    with unit_of_work(sessions) as session:
        service.complete_item(
            session, item_id=items[2], owner="w1", outcome=make_outcome(), single_model=True
        )
    with unit_of_work(sessions) as session:
        job, batch = session.get(GradingJob, job_id), session.get(JobBatch, batch_id)
        assert job.status == "completed_with_errors" and job.failed_items == 2
        assert batch.status == "completed_with_errors" and batch.completed_jobs == 1
        failed = session.scalars(sa.select(Submission).where(Submission.status == "failed")).all()
        assert len(failed) == 2 and "model not found" in failed[0].error_message

    with unit_of_work(sessions) as session:
        assert lifecycle.retry_failed_batch(session, batch_id=batch_id) == 2
    with unit_of_work(sessions) as session:
        job, batch = session.get(GradingJob, job_id), session.get(JobBatch, batch_id)
        assert (job.failed_items, batch.failed_items, batch.completed_jobs) == (0, 0, 0)
        assert batch.status == "processing" and job.failed_submissions == 0
    retried = _claim_all(sessions, owner="w2")
    assert sorted(retried) == sorted(items[:2])
    for item_id in retried:
        with unit_of_work(sessions) as session:
            service.complete_item(
                session, item_id=item_id, owner="w2", outcome=make_outcome(), single_model=True
            )
    with unit_of_work(sessions) as session:
        batch = session.get(JobBatch, batch_id)
        assert batch.status == "completed" and batch.completed_jobs == 1
        assert batch.completed_items == 3 and batch.failed_items == 0


def test_retry_later_backs_off_with_jitter_or_retry_after(sessions):
    _ids(sessions, batch_size=1)
    [item_id] = _claim_all(sessions)
    with unit_of_work(sessions) as session:
        when = service.retry_later(
            session, item_id=item_id, owner="w1", error="rate limited", retry_after=30
        )
    assert 29 <= (when - utcnow()).total_seconds() <= 31
    with unit_of_work(sessions) as session:
        item = session.get(WorkItem, item_id)
        assert item.state == "queued" and item.last_error == "rate limited"
    assert _claim_all(sessions) == []  # not before its time
    delays = [service.backoff_delay(4, retry_after=None, rng=random.Random(s)) for s in range(50)]
    assert all(0 <= d <= 16 for d in delays) and len(set(delays)) > 40


def test_cancel_turns_queued_items_into_cancelled(sessions):
    batch_id, job_id = _ids(sessions, batch_size=4)
    with unit_of_work(sessions) as session:
        [running] = [
            i.id for i in claim(session, owner="w1", limit=1, lease_seconds=300, now=utcnow())
        ]
    with unit_of_work(sessions) as session:
        lifecycle.cancel_batch(session, batch_id=batch_id)
    with unit_of_work(sessions) as session:
        states = dict(
            session.execute(
                sa.select(WorkItem.state, sa.func.count()).group_by(WorkItem.state)
            ).all()
        )
        assert states == {"cancelled": 3, "running": 1}
        batch = session.get(JobBatch, batch_id)
        assert batch.status == "cancelled" and batch.total_items == 1
    assert _claim_all(sessions) == []
    with unit_of_work(sessions) as session:  # the call in flight still lands
        assert service.complete_item(
            session, item_id=running, owner="w1", outcome=make_outcome(), single_model=True
        )


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (lifecycle.pause_batch, "completed"),
        (lifecycle.resume_batch, "processing"),
        (lifecycle.cancel_batch, "cancelled"),
        (lifecycle.start_batch, "processing"),
    ],
)
def test_illegal_transitions_are_refused(sessions, action, status):
    with unit_of_work(sessions) as session:
        batch = make_batch(session, name="Mock exams", status=status)
        batch_id = batch.id
    with unit_of_work(sessions) as session, pytest.raises(Conflict, match="Mock exams"):
        action(session, batch_id=batch_id)
    with unit_of_work(sessions) as session:
        assert session.get(JobBatch, batch_id).status == status


def test_multi_model_job_has_an_item_per_submission_and_model(sessions):
    targets = [Target("openai", "model-a"), Target("claude", "model-b")]
    batch_id, job_id = _ids(sessions, batch_size=2, targets=targets)
    items = _claim_all(sessions)
    assert len(items) == 4
    with unit_of_work(sessions) as session:
        job = session.get(GradingJob, job_id)
        assert job.models_to_compare == ["openai:model-a", "claude:model-b"]
        assert job.total_items == 4
    for item_id in items:
        with unit_of_work(sessions) as session:
            service.complete_item(
                session, item_id=item_id, owner="w1", outcome=make_outcome(), single_model=False
            )
    with unit_of_work(sessions) as session:
        assert session.get(JobBatch, batch_id).status == "completed"
        assert all(s.grade is None for s in session.scalars(sa.select(Submission)))
        assert session.scalar(sa.select(sa.func.count()).select_from(GradeResult)) == 4


def test_job_level_pause_cancel_and_retry(sessions):
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        paused_job = make_job(session, batch=batch, documents=2, text_prefix="P ")
        other_job = make_job(session, batch=batch, documents=2, text_prefix="O ")
        paused_id, other_id = paused_job.id, other_job.id
    with unit_of_work(sessions) as session:
        lifecycle.pause_job(session, job_id=paused_id)
    claimed = _claim_all(sessions)
    with unit_of_work(sessions) as session:
        jobs = {session.get(WorkItem, i).job_id for i in claimed}
    assert jobs == {other_id}  # the paused job's items wait
    with unit_of_work(sessions) as session:
        lifecycle.resume_job(session, job_id=paused_id)
        lifecycle.cancel_job(session, job_id=paused_id)
        assert session.get(GradingJob, paused_id).total_items == 0
    with unit_of_work(sessions) as session, pytest.raises(Conflict):
        lifecycle.pause_job(session, job_id=paused_id)
    for item_id in claimed:
        with unit_of_work(sessions) as session:
            service.fail_item(session, item_id=item_id, owner="w1", error="boom")
    with unit_of_work(sessions) as session:
        assert session.get(GradingJob, other_id).status == "failed"
        assert lifecycle.retry_failed_job(session, job_id=other_id) == 2
    with unit_of_work(sessions) as session:
        job = session.get(GradingJob, other_id)
        assert job.status == "processing" and job.failed_items == 0
