"""The Trust fieldset of the new batch and batch edit forms: redaction, what hidden
instructions do, the review queue's threshold, boundaries and margin; saved in the
batch settings, mistakes beside their fields with what was typed."""

from __future__ import annotations

import re

from tests.accounts.conftest import browser_as, edit_batch_form, new_batch_form

TRUST = {
    "redact_pii": "1",
    "hidden_instructions": "hold",
    "disagreement_threshold": "7.5",
    "grade_boundaries": "70%, 50, 40",
    "boundary_margin": "1",
}


def test_a_new_batch_takes_its_trust_settings(team):
    ana = browser_as(team, "ana")
    page = ana.get("/batches/new").text
    assert (
        "<legend>Trust</legend>" in page
        and 'name="hidden_instructions" value="flag" checked' in page
    )
    assert 'id="disagreement_threshold"' in page and 'value="10"' in page
    created = ana.post("/batches/new", data=new_batch_form(page, **TRUST))
    assert created.status_code == 201, created.text
    batch_id = re.search(r'href="/batches/([0-9a-f-]{36})"', created.text).group(1)
    settings = team.as_role("owner").get(f"/api/batches/{batch_id}").json()["batch_settings"]
    assert settings["redact_pii"] is True and settings["hidden_instructions"] == "hold"
    assert settings["disagreement_threshold"] == 7.5 and settings["boundary_margin"] == 1
    assert settings["grade_boundaries"] == [40, 50, 70]
    shown = ana.get(f"/batches/{batch_id}").text
    assert 'id="edit-redact_pii" name="redact_pii" value="1" checked' in shown
    assert 'value="hold" checked' in shown and 'value="40, 50, 70"' in shown

    plain = ana.post("/batches/new", data=new_batch_form(page, name="Plain"))
    plain_id = re.search(r'href="/batches/([0-9a-f-]{36})"', plain.text).group(1)
    stored = team.as_role("owner").get(f"/api/batches/{plain_id}").json()["batch_settings"]
    assert "redact_pii" not in stored and "hidden_instructions" not in stored  # defaults


def test_new_batch_trust_mistakes_are_shown_beside_the_fields(team):
    ana = browser_as(team, "ana")
    page = ana.get("/batches/new").text
    refused = ana.post(
        "/batches/new",
        data=new_batch_form(
            page, grade_boundaries="50, half", disagreement_threshold="200", boundary_margin="x"
        ),
    )
    assert refused.status_code == 400
    text = refused.text
    assert 'id="grade_boundaries-error"' in text and "&#39;half&#39; is not a percentage" in text
    assert 'id="boundary_margin-error"' in text and 'value="50, half"' in text
    assert team.as_role("owner").get("/api/batches").json()["total"] == 0
    ranged = ana.post("/batches/new", data=new_batch_form(page, disagreement_threshold="200"))
    assert ranged.status_code == 400 and 'id="disagreement_threshold-error"' in ranged.text
    assert "less than or equal to 100" in ranged.text and 'value="200"' in ranged.text


def test_editing_a_batch_changes_its_trust_settings(team):
    batch_id = team.shared_batch(name="Year 9 essays", settings={"max_retries": 3})
    eddie = browser_as(team, "eddie")
    page = eddie.get(f"/batches/{batch_id}").text
    assert 'id="edit-grade_boundaries"' in page
    saved = eddie.post(
        f"/batches/{batch_id}/edit", data=edit_batch_form(page, fieldset="trust", **TRUST)
    )
    assert "Saved" in saved.text
    settings = team.as_role("owner").get(f"/api/batches/{batch_id}").json()["batch_settings"]
    assert settings["redact_pii"] is True and settings["hidden_instructions"] == "hold"
    assert settings["grade_boundaries"] == [40, 50, 70] and settings["max_retries"] == 3
    # Unticked and back to flag: saved as such.
    page = saved.text
    cleared = eddie.post(
        f"/batches/{batch_id}/edit",
        data=edit_batch_form(
            page,
            fieldset="trust",
            hidden_instructions="flag",
            grade_boundaries="",
            boundary_margin="1",
            disagreement_threshold="7.5",
        ),
    )
    assert "Saved" in cleared.text
    settings = team.as_role("owner").get(f"/api/batches/{batch_id}").json()["batch_settings"]
    assert settings["redact_pii"] is False and settings["hidden_instructions"] == "flag"
    assert settings["grade_boundaries"] == []

    refused = eddie.post(
        f"/batches/{batch_id}/edit",
        data=edit_batch_form(
            page, fieldset="trust", boundary_margin="60", hidden_instructions="drop"
        ),
    )
    assert refused.status_code == 400
    assert 'id="boundary_margin-error"' in refused.text and 'value="60"' in refused.text
    assert 'id="hidden_instructions-error"' in refused.text


def test_a_viewer_may_not_change_trust_settings(team):
    batch_id = team.shared_batch(name="Year 9 essays")
    vic = browser_as(team, "vic")
    page = vic.get(f"/batches/{batch_id}").text
    assert 'name="redact_pii"' not in page
    refused = vic.post(
        f"/batches/{batch_id}/edit", data=edit_batch_form(page, fieldset="trust", redact_pii="1")
    )
    assert refused.status_code == 403
    settings = team.as_role("owner").get(f"/api/batches/{batch_id}").json()["batch_settings"]
    assert settings.get("redact_pii") is not True
