"""A template's page: editing one's own (saved through the API's service), errors beside
the fields with what was typed kept, the defaults and other teachers' read-only."""

from __future__ import annotations

import re

from grading_app.web.choices import configured_models
from tests.accounts.conftest import browser_as, csrf_of


def _own_template(team, name: str = "Year 9 essays", *, public: bool = False) -> str:
    response = team.as_role("owner").post(
        "/api/templates",
        json={
            "name": name,
            "is_public": public,
            "job_structure": {
                "prompt": "Grade the essay.",
                "criteria": [{"name": "Argument", "max_score": 10}],
            },
            "processing_rules": {"max_retries": 2, "on_failure": "continue"},
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


INPUTS = (
    "name",
    "category",
    "tags",
    "priority",
    "temperature",
    "max_tokens",
    "max_score",
    "max_retries",
    "retry_backoff_seconds",
    "timeout_seconds",
    "concurrency",
)


def _form(page: str, **changes: str) -> dict:
    """The edit form's fields as the page fills them, with `changes`."""
    fields = {"csrf_token": csrf_of(page)}
    for name in INPUTS:
        found = re.search(rf'<input id="{name}" name="{name}"[^>]* value="([^"]*)"', page)
        fields[name] = found.group(1) if found else ""
    for name in ("description", "prompt", "other_models"):
        found = re.search(rf'<textarea id="{name}" name="{name}"[^>]*>([^<]*)</textarea>', page)
        fields[name] = found.group(1) if found else ""
    return {**fields, **changes}


def test_editing_ones_template(team):
    template_id = _own_template(team)
    ana = browser_as(team, "ana")
    page = ana.get("/templates").text
    assert f'href="/templates/{template_id}" aria-label="Edit Year 9 essays"' in page
    page = ana.get(f"/templates/{template_id}").text
    assert "Edit template: Year 9 essays" in page and "Argument: up to 10 points" in page
    model = configured_models()[0]
    saved = ana.post(
        f"/templates/{template_id}/edit",
        data=_form(
            page,
            name="Year 9 mock essays",
            description="Mock exam, term 2",
            category="english",
            prompt="Grade the essay <firmly>.",
            models=model,
            priority="7",
            temperature="0.3",
            tags="mock, year 9",
            max_retries="4",
            require_structured_output="1",
        ),
    )
    assert saved.status_code == 200 and "Saved the template Year 9 mock essays" in saved.text
    assert "Grade the essay &lt;firmly&gt;." in saved.text
    stored = team.as_role("owner").get(f"/api/templates/{template_id}").json()
    assert stored["name"] == "Year 9 mock essays" and stored["is_public"] is False
    assert stored["category"] == "english"
    assert stored["default_settings"] == {
        "priority": 7,
        "temperature": 0.3,
        "tags": ["mock", "year 9"],
        "models": [model],
    }
    assert stored["job_structure"]["criteria"] == [{"name": "Argument", "max_score": 10.0}]
    assert stored["processing_rules"] == {
        "max_retries": 4,
        "on_failure": "continue",
        "require_structured_output": True,
    }


def test_a_saved_prompt_and_scheme_copied_in(team):
    template_id = _own_template(team)
    owner = team.as_role("owner")
    prompt = owner.post("/api/prompts", json={"name": "Strict", "prompt_text": "Be strict."})
    scheme = owner.post(
        "/api/marking-schemes",
        json={
            "name": "Two criteria",
            "rubric": {
                "criteria": [
                    {"name": "Thesis", "max_score": 5},
                    {"name": "Evidence", "max_score": 15},
                ]
            },
        },
    )
    assert prompt.status_code == 201 and scheme.status_code == 201, scheme.text
    ana = browser_as(team, "ana")
    page = ana.get(f"/templates/{template_id}").text
    assert "Strict" in page and "Two criteria" in page
    saved = ana.post(
        f"/templates/{template_id}/edit",
        data=_form(
            page,
            is_public="1",
            saved_prompt_id=prompt.json()["id"],
            saved_marking_scheme_id=scheme.json()["id"],
        ),
    )
    assert "Saved the template" in saved.text
    assert "Thesis: up to 5 points" in saved.text and "Be strict." in saved.text
    stored = owner.get(f"/api/templates/{template_id}").json()
    assert stored["job_structure"]["prompt"] == "Be strict."
    assert [c["name"] for c in stored["job_structure"]["criteria"]] == ["Thesis", "Evidence"]
    assert stored["default_settings"]["max_score"] == 20


def test_field_errors_keep_what_was_typed(team):
    template_id = _own_template(team)
    ana = browser_as(team, "ana")
    page = ana.get(f"/templates/{template_id}").text
    refused = ana.post(
        f"/templates/{template_id}/edit",
        data=_form(
            page,
            name="Kept name",
            prompt="My new instructions",
            temperature="hot",
            max_retries="99",
            other_models="nobody:model-x",
        ),
    )
    assert refused.status_code == 400
    text = refused.text
    assert 'id="temperature-error"' in text and "Give a number" in text
    assert 'id="max_retries-error"' in text and 'id="other_models-error"' in text
    assert "not configured on this server" in text
    assert 'value="Kept name"' in text and "My new instructions" in text
    assert 'value="hot"' in text and "nobody:model-x" in text
    assert team.as_role("owner").get(f"/api/templates/{template_id}").json()["name"] == (
        "Year 9 essays"
    )
    taken = _own_template(team, name="Taken")
    clash = ana.post(f"/templates/{taken}/edit", data=_form(page, name="Year 9 essays"))
    assert clash.status_code == 409 and "already exists" in clash.text
    assert 'value="Year 9 essays"' in clash.text


def test_defaults_and_other_teachers_templates_are_read_only(team):
    template_id = _own_template(team)
    otto = browser_as(team, "otto")
    listed = otto.get("/templates").text
    default_id = re.search(
        r'href="/templates/([^"]+)" aria-label="View Academic Essay Grading"', listed
    ).group(1)
    default = otto.get(f"/templates/{default_id}").text
    assert "default template and is read-only" in default and "Duplicate to change" in default
    assert "Save template" not in default and "<fieldset disabled" in default
    assert otto.post(f"/templates/{default_id}/edit", data=_form(default)).status_code == 403
    root = browser_as(team, "root")  # may change anything but a default (the service's 409)
    as_admin = root.get(f"/templates/{default_id}").text
    assert "Save template" not in as_admin
    refused = root.post(f"/templates/{default_id}/edit", data=_form(as_admin, name="Mine now"))
    assert refused.status_code == 409 and "read-only: duplicate it" in refused.text
    assert 'value="Mine now"' in refused.text
    public = _own_template(team, name="Shared essays", public=True)
    theirs = otto.get(f"/templates/{public}").text
    assert "Only its owner can change this template" in theirs
    forbidden = otto.post(f"/templates/{public}/edit", data=_form(theirs, name="Stolen"))
    assert forbidden.status_code == 403
    assert team.as_role("owner").get(f"/api/templates/{public}").json()["name"] == "Shared essays"
    assert otto.get(f"/templates/{template_id}").status_code == 404  # private, not his
    forged = otto.post(f"/templates/{public}/edit", data={"csrf_token": "forged"})
    assert forged.status_code == 403
