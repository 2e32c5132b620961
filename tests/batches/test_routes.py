"""Batch and job control over HTTP: each action answers with the new state, an illegal
one with 409 and a message naming what blocks it, an unknown id with 404."""

from __future__ import annotations

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import WorkItem, utcnow
from grading_app.processing import service
from grading_app.processing.claim import claim
from tests.factories import make_batch, make_job


def _batch_with_job(sessions, *, documents=2):
    with unit_of_work(sessions) as session:
        batch = make_batch(session, name="Mock exams", status="draft")
        job = make_job(session, batch=batch, documents=documents)
        return batch.id, job.id


def _fail_everything(sessions):
    with unit_of_work(sessions) as session:
        items = claim(session, owner="w1", limit=100, lease_seconds=300, now=utcnow())
    for item in items:
        with unit_of_work(sessions) as session:
            service.fail_item(session, item_id=item.id, owner="w1", error="model not found")


def test_a_batch_goes_through_its_life_over_http(client, sessions):
    batch_id, job_id = _batch_with_job(sessions)
    url = f"/api/batches/{batch_id}"

    assert client.post(f"{url}/start").json()["status"] == "pending"
    assert client.post(f"{url}/pause").json()["status"] == "paused"
    refused = client.post(f"{url}/pause")
    assert refused.status_code == 409
    assert refused.json()["detail"] == "Cannot pause batch 'Mock exams': it is paused"
    assert client.post(f"{url}/resume").json()["status"] == "pending"
    _fail_everything(sessions)
    failed = client.get(url).json()
    assert failed["status"] == "failed" and failed["progress"] == 1.0

    retried = client.post(f"{url}/retry-failed").json()
    assert retried["requeued"] == 2 and retried["batch"]["status"] == "processing"
    assert retried["batch"]["failed_items"] == 0
    _fail_everything(sessions)
    assert client.post(f"{url}/archive").json()["status"] == "archived"
    assert client.post(f"{url}/retry-failed").status_code == 409
    assert client.post("/api/batches/nope/pause").status_code == 404


def test_a_job_is_paused_resumed_cancelled_and_retried_over_http(client, sessions):
    batch_id, job_id = _batch_with_job(sessions, documents=3)
    client.post(f"/api/batches/{batch_id}/start")
    url = f"/api/jobs/{job_id}"

    assert client.post(f"{url}/pause").json()["status"] == "paused"
    with unit_of_work(sessions) as session:  # a paused job's items are not claimed
        assert claim(session, owner="w1", limit=10, lease_seconds=300, now=utcnow()) == []
    assert client.post(f"{url}/resume").json()["status"] == "pending"
    nothing_failed = client.post(f"{url}/retry-failed")
    assert (
        nothing_failed.status_code == 409 and "no failed items" in nothing_failed.json()["detail"]
    )

    _fail_everything(sessions)
    job = client.get(url).json()
    assert job["status"] == "failed" and job["failed_items"] == 3
    retried = client.post(f"{url}/retry-failed").json()
    assert retried["requeued"] == 3 and retried["status"] == "processing"
    cancelled = client.post(f"{url}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["total_items"] == 0
    with unit_of_work(sessions) as session:
        states = set(session.scalars(sa.select(WorkItem.state)))
    assert states == {"cancelled"}
    assert client.post(f"{url}/resume").status_code == 409
    assert client.post("/api/jobs/nope/cancel").status_code == 404


def test_starting_an_empty_batch_is_a_409_saying_how_to_add_documents(client):
    batch = client.post("/api/batches", json={"name": "Year 9 essays"}).json()

    refused = client.post(f"/api/batches/{batch['id']}/start")

    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "has no documents to grade" in detail
    assert f"POST /api/batches/{batch['id']}/jobs" in detail and "start=true" in detail
    assert client.get(f"/api/batches/{batch['id']}").json()["status"] == "draft"


def test_start_true_with_only_unreadable_files_settles_instead_of_hanging(client):
    batch = client.post("/api/batches", json={"name": "Year 9 essays"}).json()

    created = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"prompt": "Grade it.", "models": "openai:m1", "start": "true"},
        files=[("files", ("empty.txt", b"", "text/plain"))],
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["queued_items"] == 0 and body["files"][0]["status"] == "failed"
    assert body["batch_status"] == "failed" and body["job"]["status"] == "failed"
    assert client.get(f"/api/batches/{batch['id']}").json()["failed_jobs"] == 1


def test_start_true_with_readable_files_starts_the_batch(client):
    batch = client.post("/api/batches", json={"name": "Year 9 essays"}).json()

    created = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"prompt": "Grade it.", "models": "openai:m1", "start": "true"},
        files=[("files", ("essay.txt", b"An essay.", "text/plain"))],
    )

    assert created.status_code == 201, created.text
    assert created.json()["batch_status"] == "pending" and created.json()["queued_items"] == 1


def test_a_job_of_only_unreadable_files_in_a_running_batch_ends_at_once(client):
    batch = client.post("/api/batches", json={"name": "Year 9 essays"}).json()
    form = {"prompt": "Grade it.", "models": "openai:m1"}
    client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={**form, "start": "true"},
        files=[("files", ("essay.txt", b"An essay.", "text/plain"))],
    )

    added = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data=form,
        files=[("files", ("empty.txt", b"", "text/plain"))],
    )

    assert added.status_code == 201, added.text
    assert added.json()["job"]["status"] == "failed"
    assert added.json()["batch_status"] == "pending"  # the first job is still to grade
