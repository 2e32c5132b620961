"""Claiming: priority, deadline, fairness, aging, pause, and never twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.lifecycle import service as lifecycle
from grading_app.models import GradingJob, JobBatch, Submission, WorkItem, utcnow
from grading_app.processing.claim import claim, reap_expired_leases
from tests.factories import make_batch, make_job


def _claim(sessions, limit=1, owner="w1", lease=300, batch_id=None, now=None):
    with unit_of_work(sessions) as session:
        return claim(
            session,
            owner=owner,
            limit=limit,
            lease_seconds=lease,
            now=now or utcnow(),
            batch_id=batch_id,
        )


def _batches(items) -> list[str | None]:
    return [item.batch_id for item in items]


def _queued_batch(session, *, documents: int, **fields) -> str:
    """A batch (`fields` as make_batch takes them) with one job of `documents`
    documents, its items queued; the batch's id."""
    batch = make_batch(session, **fields)
    make_job(session, batch=batch, documents=documents)
    return batch.id


def _is_postgres(sessions) -> bool:
    return sessions.kw["bind"].dialect.name == "postgresql"


def test_higher_priority_batches_go_first(sessions):
    with unit_of_work(sessions) as session:
        low = _queued_batch(session, name="low", priority=2, documents=1)
        high = _queued_batch(session, name="high", priority=9, documents=1)
        mid = _queued_batch(session, name="mid", priority=5, documents=1)
    claimed = [_claim(sessions)[0].batch_id for _ in range(3)]
    assert claimed == [high, mid, low]
    assert _claim(sessions) == []


def test_soonest_deadline_first_among_equal_priority(sessions):
    now = utcnow()
    with unit_of_work(sessions) as session:
        later = _queued_batch(session, name="later", deadline=now + timedelta(days=3), documents=1)
        none = _queued_batch(session, name="no deadline", documents=1)
        sooner = _queued_batch(
            session, name="sooner", deadline=now + timedelta(hours=2), documents=1
        )
    assert [_claim(sessions)[0].batch_id for _ in range(3)] == [sooner, later, none]


def test_equal_priority_batches_take_turns(sessions):
    with unit_of_work(sessions) as session:
        first = _queued_batch(session, name="first", documents=4)
        second = _queued_batch(session, name="second", documents=4)
    claimed = [item.batch_id for item in _claim(sessions, limit=4)]
    assert sorted(claimed) == sorted([first, first, second, second])


def test_paused_batches_are_not_claimed_until_resumed(sessions):
    with unit_of_work(sessions) as session:
        batch_id = _queued_batch(session, documents=2)
    with unit_of_work(sessions) as session:
        lifecycle.pause_batch(session, batch_id=batch_id)
    assert _claim(sessions, limit=5) == []
    assert _claim(sessions, limit=5, batch_id=batch_id) == []
    with unit_of_work(sessions) as session:
        lifecycle.resume_batch(session, batch_id=batch_id)
    assert len(_claim(sessions, limit=5)) == 2


def test_concurrent_claimers_never_take_the_same_item(sessions):
    with unit_of_work(sessions) as session:
        for index in range(4):
            make_job(session, batch=make_batch(session, name=f"b{index}"), documents=25)
    taken: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        try:
            while True:
                items = _claim(sessions, limit=3, owner=name)
                if not items:
                    return
                with lock:
                    taken.extend(item.id for item in items)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(taken) == 100 and len(set(taken)) == 100
    with unit_of_work(sessions) as session:
        owners = session.execute(
            sa.select(WorkItem.lease_owner, sa.func.count()).group_by(WorkItem.lease_owner)
        ).all()
    assert sum(count for _, count in owners) == 100


def test_an_item_whose_worker_keeps_dying_fails_once_its_retries_are_spent(sessions):
    # A document that takes its worker down every time must not come back for ever.
    with unit_of_work(sessions) as session:
        batch_id = _queued_batch(session, settings={"max_retries": 1}, documents=1)
    for owner, reaped_state in (("w1", "queued"), ("w2", "failed")):
        assert len(_claim(sessions, owner=owner, lease=-1)) == 1  # the worker "died"
        with unit_of_work(sessions) as session:
            assert reap_expired_leases(session, now=utcnow()) == 1
            item = session.execute(sa.select(WorkItem)).scalar_one()
            assert item.state == reaped_state and item.lease_owner is None
    with unit_of_work(sessions) as session:
        assert "gave up after 2 attempts" in item.last_error
        batch = session.get(JobBatch, batch_id)
        assert (batch.status, batch.failed_items, batch.completed_items) == ("failed", 1, 0)
        assert session.execute(sa.select(Submission.status)).scalar_one() == "failed"
    assert _claim(sessions, owner="w3") == []


def test_expired_leases_are_reaped_back_to_the_queue(sessions):
    with unit_of_work(sessions) as session:
        make_job(session, batch=make_batch(session), documents=2)
    claimed = _claim(sessions, limit=2, lease=-1)  # already expired: the worker "died"
    assert len(claimed) == 2
    with unit_of_work(sessions) as session:
        assert reap_expired_leases(session, now=utcnow()) == 2
    again = _claim(sessions, limit=2, owner="w2")
    assert {i.id for i in again} == {i.id for i in claimed}
    with unit_of_work(sessions) as session:
        attempts = session.execute(sa.select(WorkItem.attempts)).scalars().all()
    assert attempts == [2, 2]


def test_claim_can_be_limited_to_one_batch(sessions):
    with unit_of_work(sessions) as session:
        _queued_batch(session, name="other", priority=10, documents=2)
        mine_id = _queued_batch(session, name="mine", priority=1, documents=2)
    claimed = _claim(sessions, limit=5, batch_id=mine_id)
    assert {item.batch_id for item in claimed} == {mine_id} and len(claimed) == 2


def test_priority_ten_goes_before_five_within_one_claim(sessions):
    with unit_of_work(sessions) as session:
        five = _queued_batch(session, name="five", priority=5, documents=3)
        ten = _queued_batch(session, name="ten", priority=10, documents=2)
    assert _batches(_claim(sessions, limit=3)) == [ten, ten, five]


def test_a_multi_item_claim_alternates_between_equal_batches(sessions):
    with unit_of_work(sessions) as session:
        first = _queued_batch(session, name="first", documents=10)
        second = _queued_batch(session, name="second", documents=10)
    claimed = _batches(_claim(sessions, limit=8))
    assert Counter(claimed) == {first: 4, second: 4}
    assert all(a != b for a, b in zip(claimed, claimed[1:], strict=False))


def test_a_batch_that_runs_dry_gives_its_turns_to_the_others(sessions):
    with unit_of_work(sessions) as session:
        small = _queued_batch(session, name="small", documents=1)
        large = _queued_batch(session, name="large", documents=10)
    assert Counter(_batches(_claim(sessions, limit=8))) == {small: 1, large: 7}


def test_a_late_equal_priority_batch_gets_turns_at_once(sessions):
    # Items of the older batch have later positions in their batch than the new batch's
    # first items: that must not let the new batch win every claim until it catches up.
    with unit_of_work(sessions) as session:
        older_id = _queued_batch(session, name="older", documents=40)
    assert _batches(_claim(sessions, limit=20)) == [older_id] * 20
    with unit_of_work(sessions) as session:
        newer_id = _queued_batch(session, name="newer", documents=20)
    claimed = [_claim(sessions)[0].batch_id for _ in range(16)]
    assert newer_id in claimed[:2]  # its first turn comes at once
    assert 7 <= claimed.count(newer_id) <= 9
    assert claimed.count(older_id) == 16 - claimed.count(newer_id)


def test_waiting_work_ages_so_low_priority_does_not_starve(sessions):
    with unit_of_work(sessions) as session:
        _queued_batch(session, name="busy", priority=6, documents=40)
        starving_id = _queued_batch(session, name="starving", priority=1, documents=1)
    start = utcnow()
    # One claim a minute; the starving batch gains a level every 5 minutes of waiting
    # and draws level with busy (which is served every minute) after 25.
    claimed = [
        _claim(sessions, now=start + timedelta(minutes=minute))[0].batch_id for minute in range(27)
    ]
    assert claimed.index(starving_id) == 25
    assert claimed.count(starving_id) == 1


def test_time_spent_as_a_draft_does_not_count_as_waiting(sessions):
    long_ago = utcnow() - timedelta(hours=2)
    with unit_of_work(sessions) as session:
        busy_id = _queued_batch(session, name="busy", priority=6, documents=20)
        draft_id = _queued_batch(session, name="draft", priority=5, status="draft", documents=2)
    with unit_of_work(sessions) as session:
        session.execute(
            sa.update(JobBatch)
            .where(JobBatch.id == draft_id)
            .values(created_at=long_ago, updated_at=long_ago)
        )
    assert draft_id not in _batches(_claim(sessions, limit=5))  # not runnable yet
    with unit_of_work(sessions) as session:
        lifecycle.start_batch(session, batch_id=draft_id)
    start = utcnow()
    # Two hours as a draft would be 24 levels of aging; from the start it is none.
    claimed = [
        _claim(sessions, now=start + timedelta(minutes=minute))[0].batch_id for minute in range(6)
    ]
    assert claimed[:5] == [busy_id] * 5
    assert claimed[5] == draft_id  # 5 minutes after the start: one level, level with busy


def test_time_spent_paused_does_not_count_as_waiting(sessions):
    with unit_of_work(sessions) as session:
        busy_id = _queued_batch(session, name="busy", priority=6, documents=20)
        paused_id = _queued_batch(session, name="paused", priority=5, documents=2)
    with unit_of_work(sessions) as session:
        lifecycle.pause_batch(session, batch_id=paused_id)
    with unit_of_work(sessions) as session:
        long_ago = utcnow() - timedelta(hours=2)
        session.execute(
            sa.update(JobBatch)
            .where(JobBatch.id == paused_id)
            .values(created_at=long_ago, updated_at=long_ago, last_claimed_at=long_ago)
        )
    with unit_of_work(sessions) as session:
        lifecycle.resume_batch(session, batch_id=paused_id)
    assert _batches(_claim(sessions, limit=3)) == [busy_id] * 3


def test_paused_cancelled_and_draft_batches_and_paused_jobs_are_never_claimed(sessions):
    with unit_of_work(sessions) as session:
        for status in ("paused", "cancelled", "draft", "completed"):
            make_job(session, batch=make_batch(session, name=status, status=status), documents=2)
        running = make_batch(session, name="running", priority=1)
        paused_job = make_job(session, batch=running, documents=3)
        paused_job.status = "paused"
        runnable_job = make_job(session, batch=running, documents=2)
        for status in ("paused", "cancelled"):
            make_job(session, documents=2).status = status  # jobs without a batch
        runnable_job_id = runnable_job.id
    claimed = _claim(sessions, limit=50)
    assert [item.job_id for item in claimed] == [runnable_job_id] * 2
    assert _claim(sessions, limit=50) == []


def test_items_not_yet_due_are_skipped(sessions):
    now = utcnow()
    with unit_of_work(sessions) as session:
        make_job(session, batch=make_batch(session), documents=3)
        later = session.execute(sa.select(WorkItem.id).limit(2)).scalars().all()
        session.execute(
            sa.update(WorkItem)
            .where(WorkItem.id.in_(later))
            .values(next_attempt_at=now + timedelta(hours=1))
        )
    first = _claim(sessions, limit=5, now=now)
    assert len(first) == 1 and first[0].id not in later
    assert _claim(sessions, limit=5, now=now + timedelta(minutes=30)) == []
    assert {i.id for i in _claim(sessions, limit=5, now=now + timedelta(hours=2))} == set(later)


def test_items_without_a_batch_are_claimed(sessions):
    with unit_of_work(sessions) as session:
        loose = make_job(session, documents=3)  # priority 5, no batch
        high = _queued_batch(session, name="high", priority=9, documents=2)
        low = _queued_batch(session, name="low", priority=2, documents=1)
        loose_id = loose.id
    claimed = _claim(sessions, limit=10)
    assert _batches(claimed) == [high, high, None, None, None, low]
    assert {item.job_id for item in claimed if item.batch_id is None} == {loose_id}
    with unit_of_work(sessions) as session:
        job = session.get(GradingJob, loose_id)
        assert job is not None and job.status == "processing" and job.started_at is not None


def test_a_claim_does_not_come_back_empty_when_the_first_batchs_rows_are_locked(sessions):
    if not _is_postgres(sessions):
        pytest.skip("row locks: PostgreSQL only (SQLite has one writer)")
    with unit_of_work(sessions) as session:
        first = _queued_batch(session, name="first", priority=9, documents=2)
        second = _queued_batch(session, name="second", priority=2, documents=2)
    engine = sessions.kw["bind"]
    with engine.connect() as other:  # another claimer, mid-claim on the first batch
        other.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
        locked = other.execute(
            sa.select(WorkItem.id).where(WorkItem.batch_id == first).with_for_update()
        ).all()
        assert len(locked) == 2
        with unit_of_work(sessions) as session:
            session.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            claimed = claim(session, owner="w2", limit=3, lease_seconds=300, now=utcnow())
        assert _batches(claimed) == [second, second]
        other.rollback()
    assert _batches(_claim(sessions, limit=3)) == [first, first]
