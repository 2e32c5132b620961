"""POST /api/batches/{id}/duplicate: the same configuration as a new draft, and on
request the same documents, queued for the same or other models."""

from __future__ import annotations

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import GradingJob, MarkingScheme, Submission
from tests.batches.helpers import add_job, claim_items, fail_items, item_models, new_batch

SCHEME = ("marking_scheme", ("rubric.txt", b"Argument: 10 marks.", "text/plain"))
UNREADABLE = ("files", ("empty.txt", b"", "text/plain"))


def _duplicate(client, batch_id: str, status: int = 201, **body):
    response = client.post(f"/api/batches/{batch_id}/duplicate", json=body)
    assert response.status_code == status, response.text
    return response.json()


def _documents(sessions, batch_id: str) -> list[tuple]:
    with unit_of_work(sessions, read_only=True) as session:
        return list(
            session.execute(
                sa.select(
                    Submission.original_filename,
                    Submission.status,
                    Submission.extracted_text,
                    Submission.filename,
                )
                .join(GradingJob, GradingJob.id == Submission.job_id)
                .where(GradingJob.batch_id == batch_id)
                .order_by(Submission.original_filename)
            )
        )


def test_the_configuration_is_copied_as_a_new_draft(client, sessions):
    original = new_batch(
        client,
        name="Year 9 essays",
        description="Term 1",
        priority=8,
        tags=["english"],
        deadline="2025-07-01T10:00:00Z",
        settings={"max_retries": 1},
        models=["openai:m1", "anthropic:c1"],
        prompt="Grade the thesis.",
        temperature=0.2,
        max_tokens=800,
        template="Academic Essay Grading",
    )
    add_job(client, original["id"], start="true")

    copy = _duplicate(client, original["id"])

    assert copy["id"] != original["id"]
    assert copy["batch_name"] == "Year 9 essays (copy)"
    assert copy["status"] == "draft" and copy["total_jobs"] == 0 and copy["total_items"] == 0
    for field in (
        "description",
        "priority",
        "tags",
        "deadline",
        "batch_settings",
        "models_to_compare",
        "prompt",
        "temperature",
        "max_tokens",
        "template_id",
    ):
        assert copy[field] == original[field], field
    assert client.get(f"/api/batches/{original['id']}").json()["status"] == "pending"
    named = _duplicate(client, original["id"], name="Resit")
    assert named["batch_name"] == "Resit"
    assert client.post(f"/api/batches/{original['id']}/duplicate").status_code == 201


def test_documents_are_copied_with_their_text_and_files_for_other_models(
    client, sessions, upload_dir
):
    original = new_batch(client, name="Mocks")
    job = add_job(client, original["id"], files=[*_essays(), UNREADABLE, SCHEME], start="true")
    fail_items(sessions, claim_items(sessions, limit=1))  # a failed grade is graded again
    assert job["queued_items"] == 2

    copy = _duplicate(client, original["id"], include_documents=True, models=["openai:m2"])

    assert copy["status"] == "draft" and copy["total_jobs"] == 1
    assert copy["models_to_compare"] == ["openai:m2"]
    assert copy["total_items"] == 2
    before, after = _documents(sessions, original["id"]), _documents(sessions, copy["id"])
    assert [row[0] for row in after] == [row[0] for row in before]
    assert [row[2] for row in after] == [row[2] for row in before]
    assert [row[1] for row in after] == ["pending", "pending", "failed"]
    for old, new in zip(before, after, strict=True):
        if old.filename:
            assert new.filename != old.filename
            assert (upload_dir / new.filename).read_bytes() == (
                upload_dir / old.filename
            ).read_bytes()
    [copied_job] = client.get(f"/api/batches/{copy['id']}/jobs").json()["items"]
    assert copied_job["models"] == ["openai:m2"]
    assert copied_job["total_submissions"] == 3 and copied_job["failed_submissions"] == 1
    assert item_models(sessions, job_id=copied_job["id"]) == [("openai", "m2", "queued")] * 2
    with unit_of_work(sessions, read_only=True) as session:
        scheme = session.execute(
            sa.select(MarkingScheme)
            .join(GradingJob, GradingJob.marking_scheme_id == MarkingScheme.id)
            .where(GradingJob.id == copied_job["id"])
        ).scalar_one()
        assert scheme.content == "Argument: 10 marks."
        assert (upload_dir / scheme.filename).is_file()

    # Each batch owns its files: deleting the original leaves the copy's.
    client.post(f"/api/batches/{original['id']}/cancel")
    assert client.delete(f"/api/batches/{original['id']}").status_code == 200
    for row in _documents(sessions, copy["id"]):
        if row.filename:
            assert (upload_dir / row.filename).is_file()
    # And the copy grades once started.
    client.post(f"/api/batches/{copy['id']}/start")
    assert {item.batch_id for item in claim_items(sessions)} == {copy["id"]}


def test_without_other_models_each_job_keeps_its_own(client, sessions):
    original = new_batch(client, models=["openai:m1"])
    add_job(client, original["id"])
    add_job(client, original["id"], models="anthropic:c1,openai:m3")

    copy = _duplicate(client, original["id"], include_documents=True)

    jobs = client.get(f"/api/batches/{copy['id']}/jobs").json()["items"]
    assert sorted(tuple(job["models"]) for job in jobs) == [
        ("claude:c1", "openai:m3"),
        ("openai:m1",),
    ]
    assert copy["total_items"] == 2 + 4 and copy["models_to_compare"] == ["openai:m1"]


def test_bad_requests(client, sessions):
    original = new_batch(client)
    assert _duplicate(client, "nope", 404)["detail"] == "No batch with id nope"
    assert "models" in _duplicate(client, original["id"], 400, models=[])["detail"]
    assert "needs a provider" in _duplicate(client, original["id"], 422, models=["m1"])["detail"]
    assert "colour" in _duplicate(client, original["id"], 422, colour="red")["detail"]
    assert client.get("/api/batches").json()["total"] == 1


def _essays() -> list:
    return [
        ("files", (f"{who}.txt", f"{who} argues a point with evidence.".encode(), "text/plain"))
        for who in ("alice", "bob")
    ]
