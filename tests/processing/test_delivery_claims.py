"""Live claims keep off the items a vendor's batch API takes (delivery batch_api, or
auto while the deadline leaves the vendor its window)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from grading_app.db import unit_of_work
from grading_app.models import utcnow
from grading_app.processing.claim import claim
from grading_app.processing.delivery import (
    BATCH_API_WINDOW,
    DEADLINE_MARGIN,
    Delivery,
    uses_batch_api,
)
from grading_app.providers.targets import Target
from tests.factories import make_batch, make_job


def _claim_all(sessions, now=None):
    with unit_of_work(sessions) as session:
        return claim(session, owner="w1", limit=100, lease_seconds=300, now=now or utcnow())


def _batch(sessions, *, delivery, deadline=None, targets=None, documents=2) -> str:
    with unit_of_work(sessions) as session:
        batch = make_batch(session, settings={"delivery": delivery}, deadline=deadline)
        make_job(session, batch=batch, documents=documents, targets=targets)
        return batch.id


def test_the_rule():
    now = utcnow()
    room = BATCH_API_WINDOW + DEADLINE_MARGIN
    assert uses_batch_api(Delivery.BATCH_API, deadline=now, now=now)
    assert not uses_batch_api(Delivery.LIVE, deadline=None, now=now)
    assert uses_batch_api(Delivery.AUTO, deadline=None, now=now)
    assert uses_batch_api(Delivery.AUTO, deadline=now + room + timedelta(minutes=1), now=now)
    assert not uses_batch_api(Delivery.AUTO, deadline=now + room - timedelta(minutes=1), now=now)


def test_batch_api_items_are_not_claimed_live(sessions):
    batch_id = _batch(sessions, delivery="batch_api")
    live_id = _batch(sessions, delivery="live")
    assert {item.batch_id for item in _claim_all(sessions)} == {live_id}
    assert batch_id != live_id


def test_providers_without_a_batch_api_are_claimed_live_in_a_batch_api_batch(sessions):
    targets = [Target("openai", "gpt-fake"), Target("openrouter", "some/model")]
    _batch(sessions, delivery="batch_api", targets=targets, documents=3)
    claimed = _claim_all(sessions)
    assert len(claimed) == 3  # the openrouter ones


@pytest.mark.parametrize(
    ("hours", "claimed"),
    [(None, 0), (48, 0), (24, 2), (2, 2)],
)
def test_auto_goes_live_when_the_deadline_comes_close(sessions, hours, claimed):
    now = utcnow()
    deadline = None if hours is None else now + timedelta(hours=hours)
    _batch(sessions, delivery="auto", deadline=deadline)
    assert len(_claim_all(sessions, now=now)) == claimed


def test_unreadable_settings_mean_live(sessions):
    with unit_of_work(sessions) as session:
        batch = make_batch(session, settings={"delivery": "pigeon"})
        make_job(session, batch=batch, documents=2)
    assert len(_claim_all(sessions)) == 2
