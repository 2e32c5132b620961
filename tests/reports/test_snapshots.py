"""Analytics kept for a settled batch or job (reports/snapshots.py): served again while
nothing changed, measured afresh after anything the application does to the scope, and
always the same figures as measuring anew, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.jobs.service import add_documents_to_job
from grading_app.jobs.submissions import delete_submission
from grading_app.jobs.uploads import PreparedDocument
from grading_app.lifecycle import service as lifecycle
from grading_app.models import Submission, utcnow
from grading_app.reports import analytics, snapshots
from grading_app.reports.prices import PriceTable
from grading_app.reports.scope import ScopeKind, load_scope
from tests.factories import make_batch, make_job, make_outcome
from tests.reports.helpers import GradedBatch, grade_all, graded_batch

NO_OVERRIDES = PriceTable.of({})
AUTH_FAILED = "Anthropic authentication failed (401): invalid x-api-key"


def _kept_and_fresh(
    sessions, kind: ScopeKind, scope_id: str, *, criteria: bool = True
) -> tuple[dict, dict]:
    """The figures served (kept or measured) and measured anew, at the same moment."""
    now = utcnow()
    with unit_of_work(sessions, read_only=True) as session:
        scope = load_scope(session, kind=kind, scope_id=scope_id)
        kept = snapshots.scope_analytics(
            session, scope, prices=NO_OVERRIDES, now=now, criteria=criteria
        )
        fresh = analytics.scope_analytics(
            session, scope, prices=NO_OVERRIDES, now=now, criteria=criteria
        )
    # (generated_at: the moment asked for, the same in both)
    return kept.model_dump(exclude={"generated_at"}), fresh.model_dump(exclude={"generated_at"})


def _served(sessions, kind: ScopeKind, scope_id: str) -> tuple[dict, snapshots.Stats]:
    """The figures served, checked against measuring anew, and whether they were kept."""
    before = snapshots.stats()
    kept, fresh = _kept_and_fresh(sessions, kind, scope_id)
    assert kept == fresh
    after = snapshots.stats()
    return kept, snapshots.Stats(after.hits - before.hits, after.misses - before.misses)


def test_a_settled_batch_is_measured_once_then_served(sessions):
    graded = graded_batch(sessions)
    first, measured = _served(sessions, "batch", graded.batch_id)
    again, served = _served(sessions, "batch", graded.batch_id)
    assert measured == snapshots.Stats(hits=0, misses=1)
    assert served == snapshots.Stats(hits=1, misses=0)
    assert again == first
    assert first["counts"]["items"]["completed"] == 8 and first["agreement"]["pairs"]
    # A summary without criteria (the XLSX export's) is served from the same snapshot.
    before = snapshots.stats()
    kept, fresh = _kept_and_fresh(sessions, "batch", graded.batch_id, criteria=False)
    assert kept == fresh and all(model["criteria"] == [] for model in kept["models"])
    assert snapshots.stats().hits == before.hits + 1
    # A job of the batch is a scope of its own.
    _, job_measured = _served(sessions, "job", graded.compared_job_id)
    assert job_measured.misses == 1


def test_prices_and_the_time_are_applied_afresh(sessions):
    graded = graded_batch(sessions)
    _served(sessions, "batch", graded.batch_id)
    priced = PriceTable.of({"openai:gpt-4o": (1000.0, 1000.0)})
    with unit_of_work(sessions, read_only=True) as session:
        scope = load_scope(session, kind="batch", scope_id=graded.batch_id)
        now = utcnow()
        kept = snapshots.scope_analytics(session, scope, prices=priced, now=now)
        fresh = analytics.scope_analytics(session, scope, prices=priced, now=now)
    assert kept.model_dump() == fresh.model_dump()
    [gpt] = [m for m in kept.models if m.label == "openai:gpt-4o"]
    assert gpt.cost is not None and gpt.cost.price_source == "GRADING_APP_PRICES"


def test_a_scope_with_work_open_is_measured_every_time(sessions):
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        make_job(session, batch=batch, documents=4)
        batch_id = batch.id
    grade_all(sessions, lambda _: make_outcome(score=50), at_most=2)  # two remain queued
    first, measured = _served(sessions, "batch", batch_id)
    _, again = _served(sessions, "batch", batch_id)
    assert measured.misses == 1 and again.misses == 1
    grade_all(sessions, lambda _: make_outcome(score=90))
    settled, measured = _served(sessions, "batch", batch_id)
    assert measured.misses == 1 and settled != first
    assert settled["counts"]["items"]["completed"] == 4


def _retry_then_graded(sessions, graded: GradedBatch) -> None:
    with unit_of_work(sessions) as session:
        assert lifecycle.retry_failed_job(session, job_id=graded.compared_job_id) == 1
    grade_all(sessions, lambda _: make_outcome(score=20, latency_ms=999))


def _retry_then_failed_otherwise(sessions, graded: GradedBatch) -> None:
    # The counters end as they were (the item failed before, and fails again): only
    # the cause of its failure differs.
    with unit_of_work(sessions) as session:
        assert lifecycle.retry_failed_job(session, job_id=graded.compared_job_id) == 1
    grade_all(sessions, lambda _: AUTH_FAILED)


def _retry_one_document(sessions, graded: GradedBatch) -> None:
    with unit_of_work(sessions) as session:
        submission_id = session.scalar(
            sa.select(Submission.id).where(
                Submission.job_id == graded.single_job_id,
                Submission.original_filename == "essay_1.txt",
            )
        )
        assert lifecycle.retry_failed_submission(session, submission_id=submission_id) == 1
    grade_all(sessions, lambda _: make_outcome(score=15, max_score=20))


def _delete_a_document(sessions, graded: GradedBatch) -> None:
    with unit_of_work(sessions) as session:
        submission_id = session.scalar(
            sa.select(Submission.id).where(
                Submission.job_id == graded.compared_job_id,
                Submission.original_filename == "essay_0.txt",
            )
        )
        delete_submission(session, submission_id=submission_id)


@pytest.mark.parametrize(
    "change",
    [
        _retry_then_graded,
        _retry_then_failed_otherwise,
        _retry_one_document,
        _delete_a_document,
    ],
)
@pytest.mark.parametrize("kind", ["batch", "job"])
def test_a_change_to_the_scope_is_measured_afresh(
    sessions, kind: ScopeKind, change: Callable[..., None]
):
    graded = graded_batch(sessions)
    scope_id = graded.batch_id if kind == "batch" else graded.compared_job_id
    if change is _retry_one_document and kind == "job":
        scope_id = graded.single_job_id
    before, _ = _served(sessions, kind, scope_id)
    _, served = _served(sessions, kind, scope_id)
    assert served.hits == 1

    change(sessions, graded)

    after, measured = _served(sessions, kind, scope_id)  # the same as measuring anew
    assert measured == snapshots.Stats(hits=0, misses=1)
    assert after != before
    again, served = _served(sessions, kind, scope_id)
    assert served.hits == 1 and again == after


def test_a_job_added_to_the_batch_is_seen(sessions):
    graded = graded_batch(sessions)
    before, _ = _served(sessions, "batch", graded.batch_id)
    with unit_of_work(sessions) as session:
        batch = lifecycle.get_batch(session, batch_id=graded.batch_id)
        make_job(session, batch=batch, documents=2, queue=False)
    after, measured = _served(sessions, "batch", graded.batch_id)
    assert measured.misses == 1
    assert sum(after["counts"]["documents"].values()) == 2 + sum(
        before["counts"]["documents"].values()
    )


def test_a_document_added_to_a_job_not_yet_queued_is_seen(sessions):
    with unit_of_work(sessions) as session:
        batch = make_batch(session, status="draft")
        job_id = make_job(session, batch=batch, documents=2, queue=False).id
    before, _ = _served(sessions, "job", job_id)
    _, served = _served(sessions, "job", job_id)
    assert served.hits == 1
    late = PreparedDocument("late.txt", "stored_late.txt", "txt", 100, "A late essay.")
    with unit_of_work(sessions) as session:
        add_documents_to_job(session, job_id=job_id, documents=[late])
    after, measured = _served(sessions, "job", job_id)
    assert measured.misses == 1
    assert sum(after["counts"]["documents"].values()) == 3
    assert sum(before["counts"]["documents"].values()) == 2
