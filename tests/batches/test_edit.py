"""PATCH /api/batches/{id}: each field changes in the statuses where it makes sense,
and a 409 naming the status otherwise; grading changes reach the batch's jobs and their
queued work."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import (
    GradingJob,
    JobBatch,
    MarkingScheme,
    SavedMarkingScheme,
    SavedPrompt,
    utcnow,
)
from grading_app.processing.claim import claim
from tests.batches.helpers import add_job, batch_with_job, claim_items, item_models, new_batch
from tests.factories import make_batch, make_job


def _patch(client, batch_id: str, status: int = 200, **changes):
    response = client.patch(f"/api/batches/{batch_id}", json=changes)
    assert response.status_code == status, response.text
    return response.json()


@pytest.mark.parametrize(
    "status",
    ["draft", "pending", "processing", "paused", "completed", "failed", "cancelled"],
)
def test_labels_change_in_every_status_but_archived(client, sessions, status):
    with unit_of_work(sessions) as session:
        batch_id = make_batch(session, name="Mock exams", status=status).id

    changed = _patch(
        client,
        batch_id,
        name="  Mock exams, term 2 ",
        description="Resit",
        tags=["year 10", " english ", "year 10"],
        priority=8,
        deadline="2025-07-01T10:00:00+02:00",
    )

    assert changed["batch_name"] == "Mock exams, term 2"
    assert changed["description"] == "Resit"
    assert changed["tags"] == ["year 10", "english"]
    assert changed["priority"] == 8
    assert changed["deadline"] == "2025-07-01T08:00:00Z"
    assert changed["status"] == status
    assert client.get(f"/api/batches/{batch_id}").json() == changed
    cleared = _patch(client, batch_id, description=None, deadline=None, tags=None)
    assert cleared["description"] is None and cleared["deadline"] is None
    assert cleared["tags"] == []


def test_an_archived_batch_changes_no_more(client, sessions):
    with unit_of_work(sessions) as session:
        batch_id = make_batch(session, name="Old", status="archived").id
    refused = _patch(client, batch_id, 409, name="New")
    assert refused["detail"] == "Cannot change batch 'Old': it is archived"


def test_values_are_checked_like_a_new_batchs(client, sessions):
    with unit_of_work(sessions) as session:
        batch_id = make_batch(session).id
    assert "between 1 and 10, not 11" in _patch(client, batch_id, 400, priority=11)["detail"]
    assert "between 1 and 10, not None" in _patch(client, batch_id, 400, priority=None)["detail"]
    assert "needs a name" in _patch(client, batch_id, 400, name="  ")["detail"]
    assert (
        "at most 20 tags"
        in _patch(client, batch_id, 400, tags=[str(i) for i in range(21)])["detail"]
    )
    unknown = _patch(client, batch_id, 422, colour="red")["detail"]
    assert "colour" in unknown
    assert _patch(client, "nope", 404, name="x")["detail"] == "No batch with id nope"


def test_settings_merge_and_wait_for_a_running_batch_to_pause(client, sessions):
    with unit_of_work(sessions) as session:
        batch_id = make_batch(session, status="processing", settings={"max_retries": 2}).id
    refused = _patch(client, batch_id, 409, settings={"max_retries": 5})
    assert refused["detail"] == (
        "Cannot change the settings of batch 'Year 10 essays': it is processing; pause it first"
    )
    client.post(f"/api/batches/{batch_id}/pause")
    changed = _patch(client, batch_id, settings={"timeout_seconds": 30})
    assert changed["batch_settings"] == {"max_retries": 2, "timeout_seconds": 30}
    assert "max_retrys" in _patch(client, batch_id, 422, settings={"max_retrys": 1})["detail"]
    assert "max_retries" in _patch(client, batch_id, 422, settings={"max_retries": 99})["detail"]


def test_a_draft_regrades_its_jobs_with_new_models_and_prompt(client, sessions):
    batch_id, job_id = batch_with_job(client)
    assert item_models(sessions, job_id=job_id) == [("openai", "m1", "queued")] * 2

    changed = _patch(
        client,
        batch_id,
        models=["openai:m2", "anthropic:c1"],
        prompt="Grade the argument only.",
        temperature=0.1,
        max_tokens=500,
    )

    assert changed["models_to_compare"] == ["openai:m2", "claude:c1"]
    assert changed["total_items"] == 4
    assert item_models(sessions, job_id=job_id) == [
        ("claude", "c1", "queued"),
        ("claude", "c1", "queued"),
        ("openai", "m2", "queued"),
        ("openai", "m2", "queued"),
    ]
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["models"] == ["openai:m2", "claude:c1"] and job["total_items"] == 4
    with unit_of_work(sessions, read_only=True) as session:
        row = session.get(GradingJob, job_id)
        assert (row.prompt, row.temperature, row.max_tokens) == (
            "Grade the argument only.",
            0.1,
            500,
        )
    # Keeping one model and dropping the other.
    assert _patch(client, batch_id, models=["openai:m2"])["total_items"] == 2
    assert item_models(sessions, job_id=job_id) == [("openai", "m2", "queued")] * 2
    assert "Temperature" in _patch(client, batch_id, 400, temperature=3)["detail"]
    assert "needs a provider" in _patch(client, batch_id, 422, models=["m3"])["detail"]


def test_grading_changes_wait_until_before_anything_ran(client, sessions):
    batch_id, job_id = batch_with_job(client)
    client.post(f"/api/batches/{batch_id}/start")
    pending = _patch(client, batch_id, 409, models=["openai:m2"])["detail"]
    assert pending.startswith(
        "Cannot change the models of batch 'Mock exams': it is pending. These change only "
        "while a batch is a draft, or paused before any document was graded"
    )
    assert f"POST /api/batches/{batch_id}/duplicate" in pending

    client.post(f"/api/batches/{batch_id}/pause")  # paused before any claim
    assert _patch(client, batch_id, prompt="Shorter feedback.")["prompt"] == "Shorter feedback."

    client.post(f"/api/batches/{batch_id}/resume")
    assert len(claim_items(sessions, limit=1)) == 1
    client.post(f"/api/batches/{batch_id}/pause")
    paused = _patch(client, batch_id, 409, prompt="Other", max_tokens=10)["detail"]
    assert paused.startswith(
        "Cannot change the max_tokens, prompt of batch 'Mock exams': it is paused after "
        "grading began."
    )
    # Labels still change.
    assert _patch(client, batch_id, name="Mocks")["batch_name"] == "Mocks"


def test_a_saved_prompt_becomes_the_prompt_of_the_batch_and_its_jobs(client, sessions):
    batch_id, job_id = batch_with_job(client)
    with unit_of_work(sessions) as session:
        saved = SavedPrompt(name="Concise", prompt_text="Be concise.", usage_count=3)
        session.add(saved)
        session.flush()
        saved_id = saved.id
    missing = _patch(client, batch_id, 404, saved_prompt_id="nope")["detail"]
    assert missing == "No saved prompt with id nope"

    changed = _patch(client, batch_id, saved_prompt_id=saved_id)

    assert changed["saved_prompt_id"] == saved_id and changed["prompt"] == "Be concise."
    with unit_of_work(sessions, read_only=True) as session:
        job = session.get(GradingJob, job_id)
        assert (job.prompt, job.saved_prompt_id) == ("Be concise.", saved_id)
        used = session.get(SavedPrompt, saved_id)
        assert used.usage_count == 4 and used.last_used is not None
    scheme = _patch(client, batch_id, 404, saved_marking_scheme_id="nope")["detail"]
    assert scheme == "No saved marking scheme with id nope"


def test_a_saved_marking_scheme_replaces_the_scheme_of_the_batch_and_its_jobs(client, sessions):
    batch_id, job_id = batch_with_job(client)
    with unit_of_work(sessions) as session:
        saved = SavedMarkingScheme(
            name="Essay rubric", filename="", original_filename="", content="Argument: 10 marks"
        )
        session.add(saved)
        session.flush()
        saved_id = saved.id

    changed = _patch(client, batch_id, saved_marking_scheme_id=saved_id)

    assert changed["saved_marking_scheme_id"] == saved_id
    with unit_of_work(sessions, read_only=True) as session:
        job = session.get(GradingJob, job_id)
        assert job.saved_marking_scheme_id == saved_id
        copy = session.get(MarkingScheme, job.marking_scheme_id)
        assert copy.content == "Argument: 10 marks" and copy.id != saved_id


def test_a_new_priority_orders_the_very_next_claim(client, sessions):
    with unit_of_work(sessions) as session:
        low = make_batch(session, name="low", priority=3)
        high = make_batch(session, name="high", priority=5)
        for batch in (low, high):
            make_job(session, batch=batch, documents=2)
        low_id, high_id = low.id, high.id

    assert claim_items(sessions, limit=1)[0].batch_id == high_id
    _patch(client, low_id, priority=9)
    assert claim_items(sessions, limit=1)[0].batch_id == low_id
    with unit_of_work(sessions) as session:
        # The jobs' legacy copy of the priority follows.
        priorities = session.scalars(
            sa.select(GradingJob.priority).where(GradingJob.batch_id == low_id)
        )
        assert set(priorities) == {9}
        next_two = claim(session, owner="w2", limit=2, lease_seconds=60, now=utcnow())
    assert [item.batch_id for item in next_two] == [low_id, high_id]


def test_a_batch_without_models_keeps_its_jobs_models(client, sessions):
    batch_id, job_id = batch_with_job(client)
    changed = _patch(client, batch_id, models=[])
    assert changed["models_to_compare"] is None and changed["provider"] is None
    assert item_models(sessions, job_id=job_id) == [("openai", "m1", "queued")] * 2
    with unit_of_work(sessions, read_only=True) as session:
        assert session.get(JobBatch, batch_id).total_items == 2
    # A new job then names its models itself.
    refused = client.post(f"/api/batches/{batch_id}/jobs", files=[("files", ("c.txt", b"x"))])
    assert refused.status_code == 400 and "Choose at least one model" in refused.json()["detail"]
    assert add_job(client, batch_id, models="openai:m9")["job"]["models"] == ["openai:m9"]


def test_a_new_batch_patched_then_graded(client, sessions):
    batch = new_batch(client, models=["openai:m1"])
    _patch(client, batch["id"], models=["openai:m1", "openai:m2"])
    upload = add_job(client, batch["id"])
    assert upload["job"]["models"] == ["openai:m1", "openai:m2"]
    assert upload["queued_items"] == 4
