"""DELETE /api/batches/{id}: the batch goes with its jobs, documents, grades, work items,
marking schemes and stored files, and nothing else; refused while it may be graded."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.db import unit_of_work
from grading_app.models import (
    GradeResult,
    GradingJob,
    JobBatch,
    MarkingScheme,
    Submission,
    WorkItem,
)
from grading_app.processing import service as processing
from tests.batches.helpers import add_job, claim_items, fail_items, new_batch
from tests.factories import make_outcome

SCHEME = (
    "marking_scheme",
    ("rubric.txt", b"Argument: 10 marks. Evidence: 10 marks.", "text/plain"),
)


def _graded_batch(client, sessions, name: str) -> dict:
    """A batch with two jobs (one with its own marking scheme), one document graded,
    one failed, the rest queued; then cancelled, so that it may be deleted."""
    batch = new_batch(client, name=name)
    add_job(client, batch["id"], files=[*_essays(name), SCHEME], start="true")
    add_job(client, batch["id"], files=_essays(name + " part 2"))
    graded, failed = claim_items(sessions, limit=2)
    with unit_of_work(sessions) as session:
        processing.complete_item(
            session, item_id=graded.id, owner="w1", outcome=make_outcome(), single_model=True
        )
    fail_items(sessions, [failed])
    assert client.post(f"/api/batches/{batch['id']}/cancel").status_code == 200
    return batch


def _essays(name: str) -> list:
    return [
        ("files", (f"{name} {who}.txt", f"{who} writes about {name}.".encode(), "text/plain"))
        for who in ("alice", "bob")
    ]


def _counts(session: Session, batch_id: str) -> dict[str, int]:
    jobs = sa.select(GradingJob.id).where(GradingJob.batch_id == batch_id)
    documents = sa.select(Submission.id).where(Submission.job_id.in_(jobs))
    schemes = sa.select(GradingJob.marking_scheme_id).where(GradingJob.batch_id == batch_id)

    def count(table, where) -> int:
        return session.scalar(sa.select(sa.func.count()).select_from(table).where(where))

    return {
        "batch": count(JobBatch, JobBatch.id == batch_id),
        "jobs": count(GradingJob, GradingJob.batch_id == batch_id),
        "documents": count(Submission, Submission.id.in_(documents)),
        "results": count(GradeResult, GradeResult.submission_id.in_(documents)),
        "items": count(WorkItem, WorkItem.batch_id == batch_id),
        "schemes": count(MarkingScheme, MarkingScheme.id.in_(schemes)),
    }


def _stored(session: Session, batch_id: str) -> set[str]:
    jobs = sa.select(GradingJob.id).where(GradingJob.batch_id == batch_id)
    names = set(session.scalars(sa.select(Submission.filename).where(Submission.job_id.in_(jobs))))
    names |= set(
        session.scalars(
            sa.select(MarkingScheme.filename)
            .join(GradingJob, GradingJob.marking_scheme_id == MarkingScheme.id)
            .where(GradingJob.batch_id == batch_id)
        )
    )
    return names


def test_a_batch_goes_with_everything_in_it_and_nothing_else(client, sessions, upload_dir):
    doomed = _graded_batch(client, sessions, "doomed")
    kept = _graded_batch(client, sessions, "kept")
    with unit_of_work(sessions, read_only=True) as session:
        before = _counts(session, doomed["id"])
        kept_before = _counts(session, kept["id"])
        doomed_files, kept_files = _stored(session, doomed["id"]), _stored(session, kept["id"])
    assert before == {"batch": 1, "jobs": 2, "documents": 4, "results": 1, "items": 4, "schemes": 1}
    assert len(doomed_files) == 5 and all((upload_dir / f).is_file() for f in doomed_files)

    response = client.delete(f"/api/batches/{doomed['id']}")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": doomed["id"],
        "batch_name": "doomed",
        "jobs": 2,
        "submissions": 4,
        "files_removed": 5,
    }
    with unit_of_work(sessions, read_only=True) as session:
        assert set(_counts(session, doomed["id"]).values()) == {0}
        assert session.scalar(sa.select(sa.func.count()).select_from(MarkingScheme)) == 1
        assert _counts(session, kept["id"]) == kept_before
    assert not any((upload_dir / f).exists() for f in doomed_files)
    assert all((upload_dir / f).is_file() for f in kept_files)
    assert client.get(f"/api/batches/{doomed['id']}").status_code == 404
    assert client.delete(f"/api/batches/{doomed['id']}").status_code == 404
    assert client.get("/api/batches").json()["total"] == 1


@pytest.mark.parametrize("status", ["pending", "processing"])
def test_a_batch_that_workers_may_take_from_is_refused(client, sessions, status):
    batch = new_batch(client)
    add_job(client, batch["id"], start="true")
    if status == "processing":
        claim_items(sessions, limit=1)
    refused = client.delete(f"/api/batches/{batch['id']}")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"Cannot delete batch 'Mock exams': it is {status}; pause or cancel it first"
    )
    assert client.get(f"/api/batches/{batch['id']}").status_code == 200


def test_a_paused_batch_waits_for_the_documents_being_graded(client, sessions, upload_dir):
    batch = new_batch(client)
    add_job(client, batch["id"], start="true")
    [running] = claim_items(sessions, limit=1)
    client.post(f"/api/batches/{batch['id']}/pause")

    refused = client.delete(f"/api/batches/{batch['id']}")

    assert refused.status_code == 409
    assert "1 of its documents are being graded right now" in refused.json()["detail"]
    fail_items(sessions, [running])
    assert client.delete(f"/api/batches/{batch['id']}").status_code == 200
    assert not any(upload_dir.iterdir())


def test_a_draft_goes_too(client, sessions, upload_dir):
    batch = new_batch(client)
    add_job(client, batch["id"])
    assert client.delete(f"/api/batches/{batch['id']}").json()["files_removed"] == 2
    assert not any(upload_dir.iterdir())


def test_a_file_another_row_still_names_is_kept(client, sessions, upload_dir):
    doomed = new_batch(client, name="doomed")
    add_job(client, doomed["id"])
    kept = new_batch(client, name="kept")
    kept_job = add_job(client, kept["id"])["job"]["id"]
    with unit_of_work(sessions) as session:
        shared = _stored(session, doomed["id"]).pop()
        # As rows of an earlier release may: two documents naming one stored file.
        session.execute(
            sa.update(Submission).where(Submission.job_id == kept_job).values(filename=shared)
        )
    assert client.delete(f"/api/batches/{doomed['id']}").json()["files_removed"] == 1
    assert (upload_dir / shared).is_file()


def test_files_stay_when_the_commit_fails(client, sessions, upload_dir, monkeypatch):
    batch = new_batch(client)
    add_job(client, batch["id"])
    files = set(upload_dir.iterdir())

    def refuse(self):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(Session, "commit", refuse)
    with pytest.raises(RuntimeError):
        client.delete(f"/api/batches/{batch['id']}")
    monkeypatch.undo()

    assert set(upload_dir.iterdir()) == files and len(files) == 2
    assert client.get(f"/api/batches/{batch['id']}").status_code == 200
