"""Exports and analytics of a database upgraded from earlier releases, whose grades are
text only (per-model `grade_results` rows in G2+, `submissions.grade` in G1)."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from fastapi.testclient import TestClient

from grading_app.app import create_app
from grading_app.config import Settings
from tests import legacy_db
from tests.conftest import sign_in_admin
from tests.reports.xlsx import read_workbook
from tests.upgrade.helpers import build_legacy, upgrade

BATCH_ID = legacy_db.BATCH_WITH_ERRORS_ID
COMPARING_JOB_ID = legacy_db._job_id(BATCH_ID, 0)
LEGACY_GRADE = legacy_db._GRADE_TEXT
LEGACY_MODELS = ["openrouter:openai/gpt-4o", "openrouter:anthropic/claude-3.5-sonnet"]


@pytest.fixture
def legacy_client(database_url, tmp_path):
    build_legacy(database_url, "G6")
    upgrade(database_url, tmp_path)
    with TestClient(
        create_app(Settings(database_url=database_url)), base_url="http://localhost"
    ) as client:
        sign_in_admin(client)
        yield client


def test_every_export_of_an_upgraded_batch_carries_the_legacy_grades(legacy_client):
    base = f"/api/batches/{BATCH_ID}/export"

    rows = list(csv.DictReader(io.StringIO(legacy_client.get(base).text)))
    body = json.loads(legacy_client.get(base, params={"format": "json"}).text)
    sheets = read_workbook(legacy_client.get(base, params={"format": "xlsx"}).content)
    archive = zipfile.ZipFile(io.BytesIO(legacy_client.get(base, params={"format": "zip"}).content))

    feedback_columns = [f"{label} feedback" for label in LEGACY_MODELS]
    assert all(column in rows[0] for column in feedback_columns)
    graded = [r for r in rows if r["status"] == "completed" and r[feedback_columns[0]]]
    assert graded and all(r[feedback_columns[0]] == LEGACY_GRADE for r in graded)
    assert all(r[f"{LEGACY_MODELS[0]} score"] == "" for r in graded)  # text, no number

    [comparing] = [job for job in body["jobs"] if job["id"] == COMPARING_JOB_ID]
    legacy_grades = [g for d in comparing["documents"] for g in d["grades"]]
    assert legacy_grades and all(g["legacy"] and g["score"] is None for g in legacy_grades)
    assert {g["feedback"] for g in legacy_grades} == {LEGACY_GRADE}

    header, *sheet_rows = sheets["Grades"]
    assert len(sheet_rows) == len(rows)
    column = header.index(feedback_columns[0])
    assert LEGACY_GRADE in {row[column] for row in sheet_rows if len(row) > column}

    names = archive.namelist()
    assert names[:2] == ["gradebook.csv", "summary.json"]
    assert len(names) == 2 + len(rows)
    texts = [archive.read(name).decode() for name in names[2:]]
    with_grade = [r for r in rows if LEGACY_GRADE in r.values()]
    assert sum(LEGACY_GRADE in text for text in texts) == len(with_grade) > len(graded)


def test_analytics_of_an_upgraded_batch_and_the_dashboard(legacy_client):
    batch = legacy_client.get(f"/api/batches/{BATCH_ID}/analytics")
    job = legacy_client.get(f"/api/jobs/{COMPARING_JOB_ID}/analytics")
    dashboard = legacy_client.get("/api/analytics")

    assert batch.status_code == 200, batch.text
    assert job.status_code == 200, job.text
    assert dashboard.status_code == 200, dashboard.text
    figures = batch.json()
    assert figures["status"] == "completed_with_errors"
    assert sum(figures["counts"]["documents"].values()) > 0
    # Text grades have no score to distribute or compare.
    assert figures["agreement"]["documents_compared"] == 0
    assert all(model["scores"]["count"] == 0 for model in figures["models"])
    assert dashboard.json()["totals"]["batches"] == len(legacy_db.EXPECTED_BATCH_STATUS)


def test_the_exports_of_a_first_release_database(database_url, tmp_path):
    build_legacy(database_url, "G1")
    upgrade(database_url, tmp_path)
    with TestClient(
        create_app(Settings(database_url=database_url)), base_url="http://localhost"
    ) as client:
        sign_in_admin(client)
        body = json.loads(
            client.get(f"/api/batches/{BATCH_ID}/export", params={"format": "json"}).text
        )
        rows = list(csv.DictReader(io.StringIO(client.get(f"/api/batches/{BATCH_ID}/export").text)))
    grades = [g for job in body["jobs"] for d in job["documents"] for g in d["grades"]]
    assert grades and {g["feedback"] for g in grades} == {LEGACY_GRADE}
    assert all(g["prompt_tokens"] is None and g["latency_ms"] is None for g in grades)
    assert any(LEGACY_GRADE in r.values() for r in rows)
