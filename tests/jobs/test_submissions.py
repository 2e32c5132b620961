"""One document over HTTP: read it whole, retry the models that failed it, delete it
(its job's and batch's counters and statuses follow)."""

from __future__ import annotations

from grading_app.db import unit_of_work
from grading_app.grading.service import Usage
from grading_app.models import WorkItem
from grading_app.processing import service as processing
from tests.batches.helpers import ESSAYS, add_job, claim_items, new_batch
from tests.factories import make_outcome

ONE_ESSAY = [("files", ("alice.txt", b"Alice argues that engines changed towns.", "text/plain"))]


def _complete(sessions, item, score: float = 70) -> None:
    with unit_of_work(sessions) as session:
        processing.complete_item(
            session,
            item_id=item.id,
            owner="w1",
            outcome=make_outcome(score=score),
            single_model=False,
        )


def _fail(sessions, item, *, answered: bool) -> None:
    usage = Usage(raw_text="{not json", prompt_tokens=80, completion_tokens=5, latency_ms=40)
    with unit_of_work(sessions) as session:
        processing.fail_item(
            session,
            item_id=item.id,
            owner="w1",
            error="the answer is not JSON",
            usage=usage if answered else None,
        )


def _two_models_one_failed(client, sessions) -> tuple[dict, str]:
    """A running batch whose document openai graded and claude failed."""
    batch = new_batch(client, models=["openai:m1", "anthropic:c1"])
    upload = add_job(client, batch["id"], files=ONE_ESSAY, start="true")
    items = {item.id: item for item in claim_items(sessions)}
    with unit_of_work(sessions, read_only=True) as session:
        by_provider = {session.get(WorkItem, i).provider: item for i, item in items.items()}
    _complete(sessions, by_provider["openai"])
    _fail(sessions, by_provider["claude"], answered=True)
    return batch, upload["files"][0]["submission_id"]


def test_a_document_is_read_whole(client, sessions):
    _, submission_id = _two_models_one_failed(client, sessions)

    document = client.get(f"/api/submissions/{submission_id}").json()

    assert document["original_filename"] == "alice.txt"
    assert document["extracted_text"] == "Alice argues that engines changed towns."
    assert document["status"] == "completed"
    [grade] = document["grades"]
    assert grade["provider"] == "openai" and grade["model"] == "m1"
    assert (grade["score"], grade["max_score"]) == (70, 100)
    assert grade["criteria"][0]["name"] == "Argument"
    assert grade["raw_response"].startswith("{")
    assert (grade["prompt_tokens"], grade["completion_tokens"], grade["latency_ms"]) == (
        100,
        50,
        12,
    )
    assert grade["legacy"] is False and grade["created_at"].endswith("Z")
    [failed] = document["failed_items"]
    assert failed["provider"] == "claude" and failed["model"] == "c1"
    assert failed["error"] == "the answer is not JSON" and failed["attempts"] == 1
    assert failed["raw_response"] == "{not json" and failed["prompt_tokens"] == 80
    missing = client.get("/api/submissions/nope")
    assert missing.status_code == 404 and missing.json()["detail"] == "No document with id nope"


def test_one_document_is_retried_for_the_models_that_failed_it(client, sessions):
    batch, submission_id = _two_models_one_failed(client, sessions)
    assert client.get(f"/api/batches/{batch['id']}").json()["status"] == "completed_with_errors"

    retried = client.post(f"/api/submissions/{submission_id}/retry")

    assert retried.status_code == 200, retried.text
    assert retried.json()["requeued"] == 1
    assert retried.json()["submission"]["failed_items"] == []
    after = client.get(f"/api/batches/{batch['id']}").json()
    assert after["status"] == "processing" and after["failed_items"] == 0
    [item] = claim_items(sessions)
    _complete(sessions, item)
    assert client.get(f"/api/batches/{batch['id']}").json()["status"] == "completed"
    again = client.post(f"/api/submissions/{submission_id}/retry")
    assert again.status_code == 409
    assert again.json()["detail"] == "Document 'alice.txt' has no failed items to retry"


def test_retrying_is_refused_where_its_job_would_be(client, sessions):
    batch = new_batch(client)
    upload = add_job(
        client,
        batch["id"],
        files=[*ESSAYS, ("files", ("empty.txt", b"", "text/plain"))],
        start="true",
    )
    unreadable = upload["files"][2]["submission_id"]
    never = client.post(f"/api/submissions/{unreadable}/retry")
    assert never.status_code == 409
    assert never.json()["detail"].startswith("Document 'empty.txt' was never graded (")
    assert never.json()["detail"].endswith("; upload it again")
    failed = claim_items(sessions, limit=1)[0]
    _fail(sessions, failed, answered=False)
    assert client.post(f"/api/jobs/{upload['job']['id']}/cancel").status_code == 200
    with unit_of_work(sessions, read_only=True) as session:
        failed_document = session.get(WorkItem, failed.id).submission_id
    cancelled = client.post(f"/api/submissions/{failed_document}/retry")
    assert cancelled.status_code == 409
    assert cancelled.json()["detail"] == (
        "Cannot retry the failed items of job 'Mock exams': it is cancelled"
    )
    assert client.post("/api/submissions/nope/retry").status_code == 404


def test_deleting_a_queued_document_moves_the_counters(client, sessions, upload_dir):
    batch = new_batch(client, models=["openai:m1", "anthropic:c1"])
    upload = add_job(client, batch["id"], start="true")
    doomed = upload["files"][1]["submission_id"]
    files_before = set(upload_dir.iterdir())

    deleted = client.delete(f"/api/submissions/{doomed}")

    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["files_removed"] == 1
    assert len(set(upload_dir.iterdir())) == len(files_before) - 1
    job = client.get(f"/api/jobs/{upload['job']['id']}").json()
    assert (job["total_submissions"], job["total_items"]) == (1, 2)
    assert client.get(f"/api/batches/{batch['id']}").json()["total_items"] == 2
    assert client.get(f"/api/submissions/{doomed}").status_code == 404
    assert client.delete(f"/api/submissions/{doomed}").status_code == 404


def test_deleting_the_last_open_document_finishes_its_job_and_batch(client, sessions):
    batch = new_batch(client)
    upload = add_job(client, batch["id"], start="true")
    first = claim_items(sessions, limit=1)[0]
    _complete(sessions, first)
    with unit_of_work(sessions, read_only=True) as session:
        graded = session.get(WorkItem, first.id).submission_id
    waiting = next(f["submission_id"] for f in upload["files"] if f["submission_id"] != graded)

    assert client.delete(f"/api/submissions/{waiting}").status_code == 200

    job = client.get(f"/api/jobs/{upload['job']['id']}").json()
    assert job["status"] == "completed" and job["total_items"] == job["completed_items"] == 1
    after = client.get(f"/api/batches/{batch['id']}").json()
    assert after["status"] == "completed" and after["completed_jobs"] == 1


def test_deleting_the_failed_document_leaves_a_clean_finish(client, sessions):
    batch = new_batch(client)
    upload = add_job(client, batch["id"], start="true")
    good, bad = claim_items(sessions)
    _complete(sessions, good)
    _fail(sessions, bad, answered=False)
    assert client.get(f"/api/batches/{batch['id']}").json()["status"] == "completed_with_errors"
    with unit_of_work(sessions, read_only=True) as session:
        failed_document = session.get(WorkItem, bad.id).submission_id

    assert client.delete(f"/api/submissions/{failed_document}").status_code == 200

    job = client.get(f"/api/jobs/{upload['job']['id']}").json()
    assert job["status"] == "completed"
    assert (job["failed_items"], job["failed_submissions"], job["total_submissions"]) == (0, 0, 1)
    after = client.get(f"/api/batches/{batch['id']}").json()
    assert after["status"] == "completed" and after["completed_jobs"] == 1
    assert (after["total_items"], after["completed_items"], after["failed_items"]) == (1, 1, 0)


def test_a_document_being_graded_is_not_deleted(client, sessions):
    batch = new_batch(client)
    upload = add_job(client, batch["id"], files=ONE_ESSAY, start="true")
    claim_items(sessions)
    submission_id = upload["files"][0]["submission_id"]
    refused = client.delete(f"/api/submissions/{submission_id}")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        "Cannot delete document 'alice.txt': it is being graded right now; try again once "
        "that has finished"
    )
    assert client.get(f"/api/submissions/{submission_id}").status_code == 200
