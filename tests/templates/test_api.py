"""Batch templates over real HTTP: the four read-only defaults, templates of one's own
(created, changed, duplicated, deleted), a batch's configuration saved as a template,
and batches made from templates. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from grading_app.db import unit_of_work
from grading_app.migrations.default_templates import DEFAULT_TEMPLATES
from grading_app.models import GradingJob, MarkingScheme

DEFAULT_NAMES = sorted(t["name"] for t in DEFAULT_TEMPLATES)
CRITERIA = [
    {
        "name": "Method",
        "max_score": 30,
        "levels": [{"label": "Strong", "points": 30, "descriptor": "Controls every variable"}],
    },
    {"name": "Results", "max_score": 20},
]


def _created(response, status: int = 201) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _template(client, **fields) -> dict:
    body = {
        "name": "Lab report",
        "category": "science",
        "created_by": "ms.okafor",
        "default_settings": {"priority": 8, "temperature": 0.3, "tags": ["lab", " lab "]},
        "job_structure": {"prompt": "Grade the lab report.", "criteria": CRITERIA},
        "processing_rules": {"max_retries": 2, "timeout_seconds": 60},
        **fields,
    }
    return _created(client.post("/api/templates", json=body))


def _defaults(client) -> dict[str, dict]:
    listed = client.get("/api/templates", params={"limit": 100}).json()["items"]
    return {t["name"]: t for t in listed if t["is_default"]}


def test_the_default_templates_are_listed_read_only_and_never_deleted(client):
    listed = client.get("/api/templates").json()
    assert listed["total"] == 4
    assert sorted(t["name"] for t in listed["items"]) == DEFAULT_NAMES
    assert all(t["is_default"] and t["created_by"] == "system" for t in listed["items"])
    essay = _defaults(client)["Academic Essay Grading"]
    assert len(essay["job_structure"]["criteria"]) == 5 and essay["usage_count"] == 0

    for response in (
        client.patch(f"/api/templates/{essay['id']}", json={"description": "Mine now"}),
        client.patch(f"/api/templates/{essay['id']}", json={"name": "Essays"}),
        client.delete(f"/api/templates/{essay['id']}"),
    ):
        assert response.status_code == 409, response.text
        detail = response.json()["detail"]
        assert "default template" in detail and "duplicate it to change it" in detail
        assert f"/api/templates/{essay['id']}/duplicate" in detail
    assert client.get(f"/api/templates/{essay['id']}").json() == essay
    # Neither a default's name nor its mark goes to another template.
    taken = client.post("/api/templates", json={"name": "academic essay  GRADING"})
    assert taken.status_code == 409 and "default template" in taken.json()["detail"]
    marked = client.post("/api/templates", json={"name": "Mine", "created_by": "System"})
    assert marked.status_code == 400 and "default templates" in marked.json()["detail"]


def test_a_duplicate_of_a_default_is_a_template_to_change(client):
    essay = _defaults(client)["Academic Essay Grading"]

    copy = _created(client.post(f"/api/templates/{essay['id']}/duplicate"))

    assert copy["name"] == "Copy of Academic Essay Grading" and not copy["is_default"]
    assert copy["job_structure"] == essay["job_structure"] and copy["usage_count"] == 0
    assert copy["default_settings"] == essay["default_settings"]
    second = _created(client.post(f"/api/templates/{essay['id']}/duplicate", json={}))
    assert second["name"] == "Copy of Academic Essay Grading (2)"
    named = client.post(
        f"/api/templates/{essay['id']}/duplicate",
        json={"name": "Year 12 essays", "created_by": "jo"},
    )
    assert _created(named)["created_by"] == "jo"

    changed = client.patch(
        f"/api/templates/{copy['id']}",
        json={
            "description": "Our department's version",
            "job_structure": {"prompt": "Grade it our way.", "criteria": CRITERIA},
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["job_structure"]["prompt"] == "Grade it our way."
    assert changed.json()["description"] == "Our department's version"
    assert client.delete(f"/api/templates/{copy['id']}").status_code == 204
    assert client.get(f"/api/templates/{copy['id']}").status_code == 404


def test_own_templates_are_created_filtered_changed_and_checked(client):
    lab = _template(client)
    assert lab["default_settings"] == {"priority": 8, "temperature": 0.3, "tags": ["lab"]}
    assert lab["job_structure"]["criteria"][1] == {"name": "Results", "max_score": 20.0}
    assert lab["processing_rules"] == {"max_retries": 2, "timeout_seconds": 60}
    assert lab["is_public"] is True and not lab["is_default"]
    _template(client, name="Private notes", is_public=False, created_by="jo", category=None)

    def names(**params) -> list[str]:
        return [t["name"] for t in client.get("/api/templates", params=params).json()["items"]]

    assert names(q="LAB") == ["Lab report"]
    assert names(category="Science") == ["Lab report"]
    assert names(is_public=False) == ["Private notes"]
    assert names(created_by="jo") == ["Private notes"]
    assert client.get("/api/templates", params={"limit": 2}).json()["total"] == 6

    renamed = client.patch(f"/api/templates/{lab['id']}", json={"name": "Lab report (Y11)"})
    assert renamed.json()["name"] == "Lab report (Y11)"
    assert renamed.json()["job_structure"] == lab["job_structure"]  # untouched
    clash = client.patch(f"/api/templates/{lab['id']}", json={"name": "private NOTES"})
    assert clash.status_code == 409 and "already exists" in clash.json()["detail"]

    def refused(body: dict, status: int) -> str:
        response = client.post("/api/templates", json={"name": "Bad", **body})
        assert response.status_code == status, response.text
        return response.json()["detail"]

    assert "needs a name" in refused({"name": None}, 400)
    assert "priority" in refused({"default_settings": {"priority": 11}}, 422)
    assert "max_retries" in refused({"processing_rules": {"max_retries": 99}}, 422)
    assert "retries" in refused({"processing_rules": {"retries": 1}}, 422)
    assert "models" in refused({"default_settings": {"models": ["gpt-4o"]}}, 422)
    twice = [{"name": "Style", "max_score": 5}, {"name": "style", "max_score": 5}]
    assert "criterion 'style' appears twice" in refused({"job_structure": {"criteria": twice}}, 400)
    assert "above the criterion's maximum" in refused(
        {"job_structure": {"criteria": [{**CRITERIA[0], "max_score": 10}]}}, 400
    )
    assert "NUL" in refused({"description": "a\x00b"}, 422)
    assert client.get("/api/templates").json()["total"] == 6


def test_a_batch_from_a_template_takes_its_models_prompt_and_rubric(client, sessions):
    lab = _template(
        client,
        default_settings={"priority": 8, "models": ["openai:m1", "anthropic:c1"], "max_score": 100},
    )

    batch = _created(
        client.post("/api/batches", json={"name": "Y11 labs", "template_id": lab["id"]})
    )

    assert batch["models_to_compare"] == ["openai:m1", "claude:c1"] and batch["priority"] == 8
    assert batch["batch_settings"]["max_retries"] == 2
    assert client.get(f"/api/templates/{lab['id']}").json()["usage_count"] == 1
    job = _created(
        client.post(
            f"/api/batches/{batch['id']}/jobs",
            files=[("files", ("lab.txt", b"We measured the pendulum.", "text/plain"))],
        )
    )["job"]
    with unit_of_work(sessions, read_only=True) as session:
        scheme = session.get(MarkingScheme, session.get(GradingJob, job["id"]).marking_scheme_id)
        assert scheme.rubric["max_score"] == 100
        assert [c["name"] for c in scheme.rubric["criteria"]] == ["Method", "Results"]
        assert "Strong (30): Controls every variable" in scheme.content
    own_models = client.post(
        "/api/batches", json={"name": "Y11 labs", "template_id": lab["id"], "models": []}
    )
    assert _created(own_models)["models_to_compare"] is None  # the request's choice wins

    in_use = client.delete(f"/api/templates/{lab['id']}")
    assert in_use.status_code == 409
    assert "in use by 2 batches ('Y11 labs', 'Y11 labs')" in in_use.json()["detail"]


def test_a_batch_is_saved_as_a_template(client):
    scheme = _created(
        client.post(
            "/api/marking-schemes",
            json={"name": "Lab rubric", "rubric": {"criteria": CRITERIA, "max_score": 60}},
        )
    )
    batch = _created(
        client.post(
            "/api/batches",
            json={
                "name": "Y11 labs",
                "description": "Pendulum practical",
                "prompt": "Grade the practical write-up.",
                "models": ["openai:m1", "openai:m2"],
                "priority": 9,
                "tags": ["physics", "practical"],
                "temperature": 0.1,
                "max_tokens": 900,
                "settings": {"max_retries": 4},
                "saved_marking_scheme_id": scheme["id"],
            },
        )
    )

    saved = _created(client.post("/api/templates", json={"from_batch_id": batch["id"]}))

    assert saved["name"] == "Y11 labs template" and saved["description"] == "Pendulum practical"
    assert saved["default_settings"] == {
        "priority": 9,
        "temperature": 0.1,
        "max_tokens": 900,
        "max_score": 60,
        "tags": ["physics", "practical"],
        "models": ["openai:m1", "openai:m2"],
    }
    assert saved["job_structure"]["prompt"] == "Grade the practical write-up."
    assert [c["name"] for c in saved["job_structure"]["criteria"]] == ["Method", "Results"]
    assert saved["processing_rules"]["max_retries"] == 4
    assert "cli_fingerprint" not in saved["processing_rules"]

    # Fields sent win over the batch's; a second save of the same batch needs a new name.
    again = client.post(
        "/api/templates", json={"from_batch_id": batch["id"], "name": "Physics practicals"}
    )
    assert _created(again)["name"] == "Physics practicals"
    clash = client.post("/api/templates", json={"from_batch_id": batch["id"]})
    assert clash.status_code == 409
    missing = client.post("/api/templates", json={"from_batch_id": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]

    remade = _created(client.post("/api/batches", json={"name": "Y12", "template_id": saved["id"]}))
    assert remade["models_to_compare"] == ["openai:m1", "openai:m2"]
    assert remade["priority"] == 9 and remade["temperature"] == 0.1


def test_a_saved_prompt_and_marking_scheme_copied_into_a_template(client):
    template = _template(client)
    prompt = _created(client.post("/api/prompts", json={"name": "Lab", "prompt_text": "Mark."}))
    rubric = {"criteria": [{"name": "Method", "max_score": 4}, {"name": "Results", "max_score": 6}]}
    scheme = _created(
        client.post("/api/marking-schemes", json={"name": "Lab rubric", "rubric": rubric})
    )
    text_only = _created(
        client.post("/api/marking-schemes", json={"name": "Notes", "content": "Be fair."})
    )
    changed = client.patch(
        f"/api/templates/{template['id']}",
        json={"saved_prompt_id": prompt["id"], "saved_marking_scheme_id": scheme["id"]},
    ).json()
    assert changed["job_structure"]["prompt"] == "Mark."
    assert [c["name"] for c in changed["job_structure"]["criteria"]] == ["Method", "Results"]
    assert changed["default_settings"]["max_score"] == 10
    refused = client.patch(
        f"/api/templates/{template['id']}", json={"saved_marking_scheme_id": text_only["id"]}
    )
    assert refused.status_code == 400 and "no criteria to copy" in refused.json()["detail"]
    missing = client.patch(f"/api/templates/{template['id']}", json={"saved_prompt_id": "nope"})
    assert missing.status_code == 404
