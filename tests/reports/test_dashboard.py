"""The dashboard over the API: totals, batches by status, batches in progress with their
ETA, deadlines at risk and recent failures. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import JobBatch, utcnow
from grading_app.reports.prices import PRICES_AS_OF
from tests.factories import make_batch, make_job
from tests.reports.helpers import RATE_LIMITED, graded_batch


def test_dashboard_totals_progress_risks_and_failures(client, sessions):
    now = utcnow()
    graded = graded_batch(sessions)  # finished: 8 items completed, 2 failed
    with unit_of_work(sessions) as session:
        late = make_batch(session, name="Late", priority=9, deadline=now - timedelta(hours=1))
        make_job(session, batch=late, documents=2)
        slow = make_batch(
            session, name="Slow", status="processing", deadline=now + timedelta(hours=1)
        )
        make_job(session, batch=slow, documents=3)
        slow.estimated_completion = now + timedelta(hours=2)
        paused = make_batch(
            session, name="Paused", status="paused", deadline=now + timedelta(days=2)
        )
        make_job(session, batch=paused, documents=1)
        on_time = make_batch(session, name="On time", deadline=now + timedelta(days=3))
        make_job(session, batch=on_time, documents=1)
        make_batch(session, name="Draft", status="draft")
        ids = {b.batch_name: b.id for b in (late, slow, paused, on_time)}

    response = client.get("/api/analytics")

    assert response.status_code == 200, response.text
    body = response.json()
    totals = body["totals"]
    assert totals["batches"] == 6 and totals["jobs"] == 6
    assert totals["documents"] == 6 + 2 + 3 + 1 + 1
    assert totals["graded_documents"] == 5 and totals["failed_documents"] == 1
    assert (totals["items"], totals["completed_items"], totals["failed_items"]) == (17, 8, 2)
    statuses = body["batches_by_status"]
    assert statuses["completed_with_errors"] == 1 and statuses["pending"] == 2
    assert statuses["processing"] == 1 and statuses["paused"] == 1 and statuses["draft"] == 1
    assert statuses["archived"] == 0

    in_progress = [b["name"] for b in body["in_progress"]]
    assert in_progress[0] == "Late"  # priority 9 first
    assert set(in_progress) == {"Late", "Slow", "Paused", "On time"}
    slow_row = next(b for b in body["in_progress"] if b["name"] == "Slow")
    assert slow_row["total_items"] == 3 and slow_row["progress"] == 0.0
    assert slow_row["estimated_completion"].endswith("Z")

    risks = {r["id"]: r["reason"] for r in body["deadlines_at_risk"]}
    assert risks == {
        ids["Late"]: "the deadline has passed",
        ids["Slow"]: "estimated to finish after the deadline at the current rate",
        ids["Paused"]: "paused",
    }

    failures = body["recent_failures"]
    assert len(failures) == 2
    causes = {f["model"]: (f["cause"], f["batch_id"], f["document"]) for f in failures}
    assert causes["claude-sonnet-4"] == ("rate_limit", graded.batch_id, "essay_3.txt")
    assert causes["mystery-model"][0] == "invalid_answer"
    assert next(f["error"] for f in failures if f["model"] == "claude-sonnet-4") == RATE_LIMITED


def test_dashboard_of_an_empty_database(client):
    body = client.get("/api/analytics").json()
    assert body["totals"]["batches"] == 0 and body["totals"]["documents"] == 0
    assert body["in_progress"] == [] and body["deadlines_at_risk"] == []
    assert body["recent_failures"] == []


def test_batch_and_job_analytics_over_the_api(client, sessions):
    graded = graded_batch(sessions)
    with unit_of_work(sessions) as session:
        session.execute(
            sa.update(JobBatch)
            .where(JobBatch.id == graded.batch_id)
            .values(deadline=utcnow() + timedelta(days=1))
        )

    batch = client.get(f"/api/batches/{graded.batch_id}/analytics")
    job = client.get(f"/api/jobs/{graded.compared_job_id}/analytics")
    missing = client.get("/api/batches/nope/analytics")

    assert batch.status_code == 200 and job.status_code == 200
    figures = batch.json()
    assert figures["scope"] == "batch" and figures["counts"]["items"]["completed"] == 8
    assert figures["eta"]["on_track"] is True and figures["eta"]["deadline"].endswith("Z")
    labels = [m["label"] for m in figures["models"]]
    assert labels == ["claude:claude-sonnet-4", "openai:gpt-4o", "openai:mystery-model"]
    gpt = figures["models"][1]
    assert gpt["scores"]["median"] == 60 and gpt["cost"]["prices_as_of"] == PRICES_AS_OF.isoformat()
    assert figures["models"][2]["cost"] is None
    assert job.json()["agreement"]["documents_compared"] == 3
    assert job.json()["eta"]["deadline"] == figures["eta"]["deadline"]  # the batch's
    assert missing.status_code == 404
