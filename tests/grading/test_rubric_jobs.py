"""A job whose marking scheme is a structured rubric, graded by a real worker against the
fake vendor: answers that follow the rubric are stored in its terms, one that does not is
repaired, one that still does not fails with the reason. SQLite and PostgreSQL."""

from __future__ import annotations

import json

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import GradeResult, WorkItem, WorkItemState
from tests.documents.factories import make_docx
from tests.fakes import Fault
from tests.processing.helpers import grade_everything

RUBRIC = {
    "criteria": [
        {"name": "Thesis", "max_score": 20},
        {"name": "Evidence", "max_score": 40},
        {"name": "Structure", "max_score": 25},
        {"name": "Style", "max_score": 15},
    ]
}
# 3 criteria out of 30, where the scheme has 4 out of 100.
MISMATCH = json.dumps(
    {
        "overall_score": 21,
        "max_score": 30,
        "criteria": [
            {"name": n, "score": 7, "max_score": 10, "justification": "ok"}
            for n in ("Content", "Structure", "Clarity")
        ],
        "feedback": "Fine.",
    }
)


def test_rubric_answers_are_checked_repaired_or_failed_with_the_reason(
    client, sessions, llm, provider_env
):
    scheme = client.post("/api/marking-schemes", json={"name": "Essay rubric", "rubric": RUBRIC})
    batch = client.post(
        "/api/batches",
        json={
            "name": "Rubric essays",
            "prompt": "Grade the essay.",
            "models": ["openai:follows", "openai:repaired", "openai:stubborn"],
            "saved_marking_scheme_id": scheme.json()["id"],
        },
    ).json()
    llm.script("repaired", [Fault.content(MISMATCH)])
    llm.script("stubborn", [], then=Fault.content(MISMATCH))
    created = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"start": "true"},
        files=[("files", ("essay.txt", b"An essay on the water cycle.", "text/plain"))],
    )
    assert created.status_code == 201, created.text

    grade_everything(sessions, provider_env)

    # Every request carried the rubric's schema.
    for request in llm.requests:
        schema = request.body["response_format"]["json_schema"]["schema"]
        assert schema["properties"]["max_score"]["enum"] == [100]
    assert llm.count("follows") == 1 and llm.count("repaired") == 2 and llm.count("stubborn") == 2
    with unit_of_work(sessions, read_only=True) as session:
        items = {
            item.model: item
            for item in session.scalars(sa.select(WorkItem).where(WorkItem.batch_id == batch["id"]))
        }
        results = {
            (r.model, r.status): r
            for r in session.scalars(sa.select(GradeResult).where(GradeResult.model.is_not(None)))
        }
    for model in ("follows", "repaired"):
        assert items[model].state == WorkItemState.COMPLETED
        grade = results[(model, "completed")]
        assert [c["name"] for c in grade.criteria] == ["Thesis", "Evidence", "Structure", "Style"]
        assert [c["max_score"] for c in grade.criteria] == [20, 40, 25, 15]
        assert grade.max_score == 100
    assert MISMATCH in results[("repaired", "completed")].raw_response
    stubborn = items["stubborn"]
    assert stubborn.state == WorkItemState.FAILED
    assert "does not follow the marking scheme" in stubborn.last_error
    assert "scores 3 criteria where the marking scheme has 4" in stubborn.last_error
    failed = results[("stubborn", "failed")]
    assert failed.error_message == stubborn.last_error and MISMATCH in failed.raw_response


def test_a_free_text_scheme_takes_the_answer_as_it_comes(client, sessions, llm, provider_env):
    batch = client.post(
        "/api/batches",
        json={"name": "Free text", "prompt": "Grade the essay.", "models": ["openai:m1"]},
    ).json()
    llm.script("m1", [Fault.content(MISMATCH)])
    created = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"start": "true"},
        files=[
            ("files", ("essay.txt", b"An essay.", "text/plain")),
            ("marking_scheme", ("scheme.txt", b"Thesis 20, Evidence 40, Style 40", "text/plain")),
        ],
    )
    assert created.status_code == 201, created.text

    grade_everything(sessions, provider_env)

    assert llm.count("m1") == 1  # no repair
    with unit_of_work(sessions, read_only=True) as session:
        result = session.scalars(sa.select(GradeResult)).one()
    assert result.status == "completed" and result.max_score == 30 and len(result.criteria) == 3


def test_a_docx_rubric_uploaded_with_a_job_drives_its_grades(client, sessions, llm, provider_env):
    table = (("Criterion", "Points"), ("Argument", "6"), ("Evidence", "4"))
    batch = client.post(
        "/api/batches",
        json={"name": "Docx rubric", "prompt": "Grade the essay.", "models": ["openai:m1"]},
    ).json()
    created = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"start": "true"},
        files=[
            ("files", ("essay.txt", b"An essay.", "text/plain")),
            ("marking_scheme", ("rubric.docx", make_docx(table=table), "x/y")),
        ],
    )
    assert created.status_code == 201, created.text

    grade_everything(sessions, provider_env)

    with unit_of_work(sessions, read_only=True) as session:
        result = session.scalars(sa.select(GradeResult)).one()
    assert result.status == "completed" and result.max_score == 10
    assert [(c["name"], c["max_score"]) for c in result.criteria] == [
        ("Argument", 6),
        ("Evidence", 4),
    ]
