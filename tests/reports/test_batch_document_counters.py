"""Batches count their documents through triggers on grading_jobs (migration 0014): the
sums must equal their jobs' counters whatever writes them. On SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import GradingJob, JobBatch
from tests.factories import make_batch, make_job
from tests.reports.helpers import graded_batch

COUNTERS = ("total_submissions", "processed_submissions", "failed_submissions")


def stored_and_summed(session) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Each batch's stored counters (and job count) and the sums of its jobs'."""
    sums = {
        row[0]: tuple(int(v) for v in row[1:])
        for row in session.execute(
            sa.select(
                GradingJob.batch_id,
                *(sa.func.coalesce(sa.func.sum(getattr(GradingJob, c)), 0) for c in COUNTERS),
                sa.func.count(),
            )
            .where(GradingJob.batch_id.is_not(None))
            .group_by(GradingJob.batch_id)
        )
    }
    return {
        row[0]: (tuple(row[1:]), sums.get(row[0], (0, 0, 0, 0)))
        for row in session.execute(
            sa.select(JobBatch.id, *(getattr(JobBatch, c) for c in COUNTERS), JobBatch.job_count)
        )
    }


def assert_counters_agree(sessions) -> None:
    with unit_of_work(sessions, read_only=True) as session:
        for batch_id, (stored, summed) in stored_and_summed(session).items():
            assert stored == summed, batch_id


def test_grading_uploads_moves_and_deletions_keep_the_batch_sums(sessions):
    graded = graded_batch(sessions)  # real grading: documents graded and one failed
    with unit_of_work(sessions, read_only=True) as session:
        batch = session.get(JobBatch, graded.batch_id)
        assert batch is not None
        assert batch.total_submissions == 6 and batch.processed_submissions == 5
        assert batch.failed_submissions == 1
    assert_counters_agree(sessions)

    with unit_of_work(sessions) as session:
        first = make_batch(session, name="First")
        second = make_batch(session, name="Second")
        moved = make_job(session, batch=first, documents=4)
        kept = make_job(session, batch=first, documents=2)
        alone = make_job(session, batch=None, documents=5)
        ids = (first.id, second.id, moved.id, kept.id, alone.id)
    assert_counters_agree(sessions)

    first_id, second_id, moved_id, kept_id, alone_id = ids
    with unit_of_work(sessions) as session:
        # A job's counters change, a job moves to another batch, a batchless job joins one.
        session.execute(
            sa.update(GradingJob)
            .where(GradingJob.id == kept_id)
            .values(processed_submissions=1, failed_submissions=1)
        )
        session.execute(
            sa.update(GradingJob).where(GradingJob.id == moved_id).values(batch_id=second_id)
        )
        session.execute(
            sa.update(GradingJob).where(GradingJob.id == alone_id).values(batch_id=first_id)
        )
    assert_counters_agree(sessions)
    with unit_of_work(sessions, read_only=True) as session:
        first_row, second_row = session.get(JobBatch, first_id), session.get(JobBatch, second_id)
        assert first_row is not None and second_row is not None
        assert (first_row.total_submissions, first_row.processed_submissions) == (7, 1)
        assert second_row.total_submissions == 4
        assert (first_row.job_count, second_row.job_count) == (2, 1)

    with unit_of_work(sessions) as session:
        # Deleting a job (its documents first, as the application does) takes its share.
        session.execute(sa.text("DELETE FROM submissions WHERE job_id = :id"), {"id": moved_id})
        session.execute(sa.text("DELETE FROM work_items WHERE job_id = :id"), {"id": moved_id})
        session.execute(sa.delete(GradingJob).where(GradingJob.id == moved_id))
    assert_counters_agree(sessions)
    with unit_of_work(sessions, read_only=True) as session:
        second_row = session.get(JobBatch, second_id)
        assert second_row is not None and second_row.total_submissions == 0
        assert second_row.job_count == 0


def test_the_dashboard_totals_documents_from_the_batch_counters(client, sessions):
    graded_batch(sessions)
    with unit_of_work(sessions) as session:
        make_job(session, batch=None, documents=2)  # a job without a batch counts too
    totals = client.get("/api/analytics").json()["totals"]
    assert totals["documents"] == 6 + 2 and totals["jobs"] == 3
    assert totals["graded_documents"] == 5 and totals["failed_documents"] == 1
