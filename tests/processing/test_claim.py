"""Claiming: priority, deadline, fairness, aging, pause, and never twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa

from grading_app.batches import service as batches
from grading_app.db import unit_of_work
from grading_app.models import WorkItem, utcnow
from grading_app.processing.claim import claim, reap_expired_leases
from tests.factories import make_batch, make_job


def _claim(sessions, limit=1, owner="w1", lease=300, batch_id=None):
    with unit_of_work(sessions) as session:
        return claim(
            session, owner=owner, limit=limit, lease_seconds=lease, now=utcnow(), batch_id=batch_id
        )


def test_higher_priority_batches_go_first(sessions):
    with unit_of_work(sessions) as session:
        low = make_batch(session, name="low", priority=2)
        high = make_batch(session, name="high", priority=9)
        mid = make_batch(session, name="mid", priority=5)
        for batch in (low, high, mid):
            make_job(session, batch=batch, documents=1)
        order = [high.id, mid.id, low.id]
    claimed = [_claim(sessions)[0].batch_id for _ in range(3)]
    assert claimed == order
    assert _claim(sessions) == []


def test_soonest_deadline_first_among_equal_priority(sessions):
    now = utcnow()
    with unit_of_work(sessions) as session:
        later = make_batch(session, name="later", deadline=now + timedelta(days=3))
        none = make_batch(session, name="no deadline")
        sooner = make_batch(session, name="sooner", deadline=now + timedelta(hours=2))
        for batch in (later, none, sooner):
            make_job(session, batch=batch, documents=1)
        expected = [sooner.id, later.id, none.id]
    assert [_claim(sessions)[0].batch_id for _ in range(3)] == expected


def test_equal_priority_batches_take_turns(sessions):
    with unit_of_work(sessions) as session:
        first = make_batch(session, name="first")
        make_job(session, batch=first, documents=4)
        second = make_batch(session, name="second")
        make_job(session, batch=second, documents=4)
        ids = (first.id, second.id)
    claimed = [item.batch_id for item in _claim(sessions, limit=4)]
    assert sorted(claimed) == sorted([ids[0], ids[0], ids[1], ids[1]])


def test_waiting_work_ages_so_low_priority_does_not_starve(sessions):
    with unit_of_work(sessions) as session:
        busy = make_batch(session, name="busy", priority=6)
        make_job(session, batch=busy, documents=5)
        starving = make_batch(session, name="starving", priority=1)
        make_job(session, batch=starving, documents=1)
        busy.last_claimed_at = utcnow()
        starving.last_claimed_at = starving.created_at = utcnow() - timedelta(hours=1)
        starving_id = starving.id
    assert _claim(sessions)[0].batch_id == starving_id


def test_paused_batches_are_not_claimed_until_resumed(sessions):
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        make_job(session, batch=batch, documents=2)
        batch_id = batch.id
    with unit_of_work(sessions) as session:
        batches.pause_batch(session, batch_id=batch_id)
    assert _claim(sessions, limit=5) == []
    with unit_of_work(sessions) as session:
        batches.resume_batch(session, batch_id=batch_id)
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
        other = make_batch(session, name="other", priority=10)
        make_job(session, batch=other, documents=2)
        mine = make_batch(session, name="mine", priority=1)
        make_job(session, batch=mine, documents=2)
        mine_id = mine.id
    claimed = _claim(sessions, limit=5, batch_id=mine_id)
    assert {item.batch_id for item in claimed} == {mine_id} and len(claimed) == 2
