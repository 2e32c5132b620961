"""What a user sends the API is checked the same way everywhere, refused with one
sentence a person can act on, and timestamps go out with their time zone. Every test
runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.deps import request_too_large
from grading_app.models import GradingJob
from grading_app.processing.settings import DEFAULT_SETTINGS
from tests.factories import make_batch

MB = 1024 * 1024
ESSAY = [("files", ("essay.txt", b"An essay on engines.", "text/plain"))]


def _detail(response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["detail"]


def _new_batch(client, **fields) -> dict:
    response = client.post("/api/batches", json={"name": "Year 9 essays", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_every_list_refuses_a_negative_offset_and_batches_page_by_it(client, sessions):
    with unit_of_work(sessions) as session:
        ids = [make_batch(session, name=f"Batch {i}", priority=i).id for i in (3, 2, 1)]
    batch = _new_batch(client, models=["openai:m1"], prompt="Grade it.")
    job = client.post(f"/api/batches/{batch['id']}/jobs", files=ESSAY).json()["job"]
    for url in (
        "/api/batches",
        f"/api/batches/{batch['id']}/jobs",
        f"/api/jobs/{job['id']}/submissions",
    ):
        message = _detail(client.get(url, params={"offset": -1}), 422)
        assert (
            message == "Invalid request: offset (query): Input should be greater than or equal to 0"
        )
    page = client.get("/api/batches", params={"offset": 2, "limit": 2}).json()
    assert [b["id"] for b in page["items"]] == ids[1:] and page["total"] == 4


def test_a_model_without_a_provider_is_refused_alike_by_batches_and_jobs(client, sessions):
    refused_batch = _detail(
        client.post("/api/batches", json={"name": "x", "models": ["bogus"]}), 422
    )
    batch = _new_batch(client, models=["openai:m1"], prompt="Grade it.")
    url = f"/api/batches/{batch['id']}/jobs"
    refused_job = _detail(client.post(url, data={"models": "bogus"}, files=ESSAY), 422)
    in_a_list = _detail(client.post(url, data={"models": "openai:m1, bogus"}, files=ESSAY), 422)
    for message in (refused_batch, refused_job, in_a_list):
        assert "Model 'bogus' needs a provider: write it as provider:model" in message
        assert "known providers: openai, openrouter, claude, lm_studio, ollama" in message
    with unit_of_work(sessions, read_only=True) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(GradingJob)) == 0

    accepted = client.post(url, data={"models": "anthropic:c1"}, files=ESSAY)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["job"]["models"] == ["claude:c1"]


def test_batch_settings_are_checked_and_laid_over_the_defaults(client, sessions):
    typo = _detail(_post_settings(client, {"max_retrys": 2}), 422)
    assert "Unknown setting 'max_retrys' (did you mean 'max_retries'?)" in typo
    unknown = _detail(_post_settings(client, {"bogus": 1}), 422)
    assert unknown.startswith("Invalid request: settings (body): Unknown setting 'bogus'")
    assert all(key in unknown for key in DEFAULT_SETTINGS)
    ranges = _detail(_post_settings(client, {"timeout_seconds": -5, "concurrency": 0}), 422)
    assert "settings.timeout_seconds (body): Input should be greater than 0" in ranges
    assert "settings.concurrency (body): Input should be greater than or equal to 1" in ranges
    assert "valid integer" in _detail(_post_settings(client, {"max_retries": "2"}), 422)
    assert client.get("/api/batches").json()["total"] == 0

    plain = _new_batch(client, settings={"max_retries": 1})
    assert plain["batch_settings"] == {**DEFAULT_SETTINGS, "max_retries": 1}
    assert _new_batch(client)["batch_settings"] == DEFAULT_SETTINGS
    # A template's processing rules, not the defaults, lie under what is sent.
    research = _new_batch(client, template="Research Paper Analysis", settings={"max_retries": 5})
    assert research["batch_settings"]["max_retries"] == 5
    assert research["batch_settings"]["concurrency"] == 2


def _post_settings(client, settings: dict):
    return client.post("/api/batches", json={"name": "x", "settings": settings})


def test_settings_already_stored_are_read_whatever_keys_they_hold(client, sessions):
    with unit_of_work(sessions) as session:
        batch_id = make_batch(session, settings={"auto_assign": True, "max_retrys": 2}).id
    read = client.get(f"/api/batches/{batch_id}")
    assert read.status_code == 200
    assert read.json()["batch_settings"] == {"auto_assign": True, "max_retrys": 2}


def test_a_body_that_is_not_json_gets_a_readable_message(client):
    broken = client.post(
        "/api/batches", content=b'{"name": "x",', headers={"content-type": "application/json"}
    )
    message = _detail(broken, 422)
    assert message.startswith("The request body is not valid JSON: ")
    assert "at character 13" in message and "(body)" not in message


def test_the_oversized_request_message_names_the_limit_the_readme_gives():
    message = request_too_large(260 * MB, max_upload_bytes=16 * MB).message
    assert message.startswith(
        "This upload is 260 MB, more than the 256 MB one request may carry "
        "(16 × MAX_UPLOAD_MB; each file may be up to 16 MB)."
    )
    streamed = request_too_large(None, max_upload_bytes=16 * MB).message
    assert streamed.startswith("This upload is over the 256 MB one request may carry")


def test_timestamps_go_out_in_utc_and_come_in_with_any_offset(client):
    batch = _new_batch(
        client, deadline="2025-06-30T19:00:00+02:00", models=["openai:m1"], prompt="Grade it."
    )
    assert batch["deadline"] == "2025-06-30T17:00:00Z"
    assert client.get(f"/api/batches/{batch['id']}").json()["deadline"] == "2025-06-30T17:00:00Z"
    assert client.get("/api/batches").json()["items"][0]["deadline"] == "2025-06-30T17:00:00Z"
    assert batch["created_at"].endswith("Z")
    naive = _new_batch(client, deadline="2025-06-30T17:00:00")
    assert naive["deadline"] == "2025-06-30T17:00:00Z"

    upload = client.post(f"/api/batches/{batch['id']}/jobs", files=ESSAY).json()
    job_id = upload["job"]["id"]
    assert upload["job"]["created_at"].endswith("Z")
    assert client.get(f"/api/jobs/{job_id}").json()["created_at"].endswith("Z")
    listed = client.get(f"/api/batches/{batch['id']}/jobs").json()["items"][0]
    assert listed["created_at"].endswith("Z")
    submission = client.get(f"/api/jobs/{job_id}/submissions").json()["items"][0]
    assert submission["created_at"].endswith("Z")
