"""A job's detail is a typed read of stored counters: it never touches its documents or
grades, so a page polling it costs the same for 10 documents or 100,000."""

from __future__ import annotations

import re

import sqlalchemy as sa

from grading_app.db import unit_of_work
from tests.factories import make_batch, make_outcome
from tests.reports.helpers import CLAUDE, GPT, add_job, grade_all


def test_job_detail_reads_no_documents_or_grades(client, sessions):
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        job_id = add_job(
            session,
            batch=batch,
            name="Compared",
            targets=[GPT, CLAUDE],
            documents=[f"essay_{i}.txt" for i in range(5)],
        )
    grade_all(sessions, lambda item: make_outcome(score=60 if item.model == GPT.model else 70))
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement.lower())

    engine = client.app.state.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get(f"/api/jobs/{job_id}")
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["id"] == job_id and job["status"] == "completed"
    assert (job["total_items"], job["completed_items"], job["progress"]) == (10, 10, 1.0)
    assert job["models"] == [GPT.label, CLAUDE.label] and job["prompt"]
    assert "agreement" not in job  # analytics: /api/jobs/{id}/analytics
    tables = {
        table
        for statement in statements
        for table in re.findall(r"\b(?:from|join)\s+(\w+)", statement)
    }
    # The job itself, and who may see it (the token, its user, the batch's owner).
    assert "grading_jobs" in tables
    assert tables <= {"grading_jobs", "job_batches", "batch_shares", "access_tokens", "users"}


def test_job_endpoints_declare_their_response_models(client):
    paths = client.get("/openapi.json").json()["paths"]

    def schema(path: str, method: str) -> str:
        content = paths[path][method]["responses"]["200"]["content"]["application/json"]
        return content["schema"]["$ref"].rsplit("/", 1)[-1]

    assert schema("/api/jobs/{job_id}", "get") == "JobDetailOut"
    for action in ("pause", "resume", "cancel"):
        assert schema(f"/api/jobs/{{job_id}}/{action}", "post") == "JobDetailOut"
    assert schema("/api/jobs/{job_id}/retry-failed", "post") == "JobRetryOut"
    assert schema("/api/analytics", "get") == "Dashboard"
    assert schema("/api/batches/{batch_id}/analytics", "get") == "ScopeAnalytics"
    export = paths["/api/batches/{batch_id}/export"]["get"]
    assert {p["name"] for p in export["parameters"]} == {"batch_id", "format", "id_pattern"}
    assert "application/zip" in export["responses"]["200"]["content"]
