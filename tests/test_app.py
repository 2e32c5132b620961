"""The web application: health, pages, errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from grading_app.app import create_app
from grading_app.config import Settings
from grading_app.upgrade.schema import upgrade_schema
from grading_app.upgrade.serving import SchemaNotCurrent
from tests.conftest import sign_in_admin
from tests.upgrade.helpers import build_legacy


def _client(url: str) -> TestClient:
    return TestClient(create_app(Settings(database_url=url)), base_url="http://localhost")


def test_health_reports_database_and_schema_revision(database_url):
    upgrade_schema(database_url, write=lambda _: None)
    with _client(database_url) as client:
        response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "reachable"
    assert body["schema_current"] is True
    assert body["revision"] == body["head"]


def test_health_says_when_a_legacy_database_needs_the_upgrade(sqlite_url):
    build_legacy(sqlite_url, "G6")
    with _client(sqlite_url) as client:
        response = client.get("/health")
        page = client.get("/", headers={"accept": "text/html"})
    assert response.status_code == 503
    assert response.json()["schema_current"] is False
    assert "needs upgrade" in page.text


def test_health_of_an_unreachable_database_hides_the_password():
    url = "postgresql+psycopg://app:hunter2@127.0.0.1:1/grading"
    with _client(url) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
    assert "hunter2" not in response.text


def test_api_on_an_unreachable_database_answers_503_saying_what_to_do(caplog):
    """The driver's message names the server ("connection to server at 127.0.0.1, port
    1 failed"): neither the answer nor the log repeats the host, port or password."""
    url = "postgresql+psycopg://app:hunter2@127.0.0.1:1/grading"
    with TestClient(
        create_app(Settings(database_url=url)),
        raise_server_exceptions=False,
        base_url="http://localhost",
    ) as c:
        listing = c.get("/api/batches")
        creating = c.post("/api/batches", json={"name": "Year 9"})
    for response in (listing, creating):
        assert response.status_code == 503
        detail = response.json()["detail"]
        assert "The database could not complete this request" in detail
        assert "cannot be reached" in detail and "DATABASE_URL" in detail
        assert "try again" in detail
        for secret in ("hunter2", "127.0.0.1", "port 1", ":1/"):
            assert secret not in response.text
    assert "cannot be reached" in caplog.text
    for secret in ("hunter2", "127.0.0.1", "port 1", ":1/"):
        assert secret not in caplog.text


def test_serve_refuses_a_database_that_is_not_current(sqlite_url):
    build_legacy(sqlite_url, "G3")
    with pytest.raises(SchemaNotCurrent, match="migrate_batch_system.py"):
        create_app(Settings(database_url=sqlite_url), require_current_schema=True)


def test_home_page_and_api_docs(sqlite_url):
    upgrade_schema(sqlite_url, write=lambda _: None)
    with _client(sqlite_url) as client:
        home = client.get("/")
        docs = client.get("/docs")
        css = client.get("/static/app.css")
        schema = client.get("/openapi.json")
    assert home.status_code == 200 and "current" in home.text
    assert docs.status_code == 200 and css.status_code == 200
    assert "/health" in schema.json()["paths"]


def test_settings_accept_postgres_urls_as_hosting_providers_write_them():
    settings = Settings(database_url="postgres://u:p@db.example/grading")
    assert settings.database_url == "postgresql+psycopg://u:p@db.example/grading"


def test_batch_api_controls_and_clear_errors(sessions, database_url):
    from grading_app.db import unit_of_work
    from tests.factories import make_batch, make_job

    with unit_of_work(sessions) as session:
        batch = make_batch(session, name="Term 1 essays", priority=7)
        make_job(session, batch=batch, documents=2)
        batch_id = batch.id
    with _client(database_url) as client:
        sign_in_admin(client)
        listed = client.get("/api/batches", params={"status": "pending"}).json()["items"]
        assert [b["id"] for b in listed] == [batch_id] and listed[0]["total_items"] == 2
        assert client.post(f"/api/batches/{batch_id}/pause").json()["status"] == "paused"
        again = client.post(f"/api/batches/{batch_id}/pause")
        assert again.status_code == 409 and "Term 1 essays" in again.json()["detail"]
        assert client.post(f"/api/batches/{batch_id}/resume").json()["status"] == "pending"
        assert client.post(f"/api/batches/{batch_id}/cancel").json()["status"] == "cancelled"
        missing = client.get("/api/batches/nope")
        assert missing.status_code == 404 and "nope" in missing.json()["detail"]
        bad = client.get("/api/batches", params={"status": "bogus"})
        assert bad.status_code == 422 and "Unknown status 'bogus'" in bad.json()["detail"]
        assert client.post(f"/api/batches/{batch_id}/retry-failed").status_code == 409


def test_serve_grades_queued_work_in_process_and_exports(
    sessions, database_url, llm, provider_env, monkeypatch
):
    """`grading-app serve` runs in-process workers: queued work gets graded, the job
    shows progress, its analytics compare the models, and its CSV streams out."""
    from grading_app.db import unit_of_work
    from grading_app.providers.targets import Target
    from tests.factories import make_batch, make_job

    for key, value in provider_env.items():
        monkeypatch.setenv(key, value)
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        targets = [Target("openai", "gpt-fake"), Target("claude", "claude-fake")]
        job = make_job(session, batch=batch, documents=3, targets=targets)
        batch_id, job_id = batch.id, job.id
    settings = Settings(database_url=database_url, worker_concurrency=2)
    with TestClient(
        create_app(settings, start_workers=True), base_url="http://localhost"
    ) as client:
        import time

        sign_in_admin(client)

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if client.get(f"/api/batches/{batch_id}").json()["status"] == "completed":
                break
            time.sleep(0.1)
        view = client.get(f"/api/jobs/{job_id}").json()
        figures = client.get(f"/api/jobs/{job_id}/analytics").json()
        export = client.get(f"/api/jobs/{job_id}/results.csv")
        paused = client.post(f"/api/jobs/{job_id}/pause")
        missing = client.get("/api/jobs/nope/results.csv")
    assert view["status"] == "completed" and view["completed_items"] == 6
    assert view["models"] == ["openai:gpt-fake", "claude:claude-fake"]
    assert figures["agreement"]["documents_compared"] == 3
    lines = export.text.strip().splitlines()
    assert export.status_code == 200 and len(lines) == 4
    assert lines[0].startswith("student_id,document,status,error,openai:gpt-fake score")
    assert paused.status_code == 409
    assert missing.status_code == 404


def test_schema_check_leaves_a_legacy_sqlite_file_exactly_as_it_was(tmp_path):
    """The check runs before the application's engine, whose connections turn on WAL: a
    legacy database must reach the upgrade unchanged."""
    path = tmp_path / "grading_app.db"
    build_legacy(f"sqlite:///{path}", "G6")
    before = path.read_bytes()

    with pytest.raises(SchemaNotCurrent, match="migrate_batch_system.py"):
        create_app(Settings(database_url=f"sqlite:///{path}"), require_current_schema=True)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grading_app.db"]  # no -wal, -shm


def test_serving_a_missing_or_empty_database_creates_it_at_head(database_url, tmp_path):
    """The database fixture is empty (SQLite: no file yet; PostgreSQL: no tables)."""
    with TestClient(
        create_app(Settings(database_url=database_url), require_current_schema=True),
        base_url="http://localhost",
    ) as client:
        health = client.get("/health")
        sign_in_admin(client)
        created = client.post("/api/batches", json={"name": "Year 9"})
    assert health.status_code == 200 and health.json()["revision"] == health.json()["head"]
    assert created.status_code == 201


def test_serving_a_database_an_older_release_of_this_app_stamped_says_db_upgrade(sqlite_url):
    from grading_app.upgrade.schema import downgrade_schema

    upgrade_schema(sqlite_url, write=lambda _: None)
    downgrade_schema(sqlite_url, "0004_grading_results", write=lambda _: None)
    with pytest.raises(SchemaNotCurrent, match="0004_grading_results.*`grading-app db upgrade`"):
        create_app(Settings(database_url=sqlite_url), require_current_schema=True)
