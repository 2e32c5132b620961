"""The Cost fieldset of the new batch and batch edit forms (delivery and budget), the
estimate beside the Start button and after creating a batch, and a budget pause's
reason on the batch page and in the list."""

from __future__ import annotations

import re

from grading_app.db import unit_of_work
from grading_app.models import JobBatch
from tests.accounts.conftest import browser_as, edit_batch_form, new_batch_form

ESSAY = ("files", ("alice.txt", b"Alice argues that engines changed towns.", "text/plain"))


def _batch_id(page: str) -> str:
    return re.search(r'href="/batches/([0-9a-f-]{36})"', page).group(1)


def test_a_new_batch_takes_delivery_and_budget_and_shows_its_estimate(team):
    ana = browser_as(team, "ana")
    page = ana.get("/batches/new").text
    assert "<legend>Cost</legend>" in page and '<select id="delivery" name="delivery"' in page
    assert '<option value="live" selected>Live: each document graded now' in page
    assert "Batch API: half price, graded within 24 hours" in page
    assert '<label for="budget">Budget (USD)</label>' in page

    created = ana.post(
        "/batches/new",
        data=new_batch_form(page, delivery="batch_api", budget="$12.50"),
        files=[ESSAY],
    )

    assert created.status_code == 201, created.text
    settings = team.as_role("owner").get(f"/api/batches/{_batch_id(created.text)}").json()
    assert settings["batch_settings"]["delivery"] == "batch_api"
    assert settings["batch_settings"]["budget"] == 12.5
    assert "Estimated cost" in created.text and "openai:gpt-4o-mini" in created.text
    assert "Budget $12.50, spent $0.00, left $12.50." in created.text

    plain = ana.post("/batches/new", data=new_batch_form(page, name="Plain"))
    stored = team.as_role("owner").get(f"/api/batches/{_batch_id(plain.text)}").json()
    assert "delivery" not in stored["batch_settings"] and "budget" not in stored["batch_settings"]


def test_new_batch_cost_mistakes_are_shown_beside_the_fields(team, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-test-openrouter")
    ana = browser_as(team, "ana")
    page = ana.get("/batches/new").text

    typed = ana.post("/batches/new", data=new_batch_form(page, budget="lots"))
    assert typed.status_code == 400 and 'id="budget-error"' in typed.text
    assert "&#39;lots&#39; is not an amount" in typed.text and 'value="lots"' in typed.text
    negative = ana.post("/batches/new", data=new_batch_form(page, budget="-5", delivery="auto"))
    assert negative.status_code == 400 and 'id="budget-error"' in negative.text
    assert "greater than 0" in negative.text and 'value="-5"' in negative.text
    assert '<option value="auto" selected>' in negative.text
    unknown = ana.post("/batches/new", data=new_batch_form(page, delivery="cheap"))
    assert unknown.status_code == 400 and 'id="delivery-error"' in unknown.text
    no_batch_api = ana.post(
        "/batches/new",
        data=new_batch_form(page, delivery="batch_api", models=["openrouter:openai/gpt-4o"]),
    )
    assert no_batch_api.status_code == 400 and 'id="delivery-error"' in no_batch_api.text
    assert "openrouter has none" in no_batch_api.text
    assert team.as_role("owner").get("/api/batches").json()["total"] == 0


def test_editing_a_batch_changes_delivery_and_budget(team):
    batch_id = team.shared_batch(name="Year 9 essays", settings={"budget": 5})
    eddie = browser_as(team, "eddie")
    page = eddie.get(f"/batches/{batch_id}").text
    assert '<select id="edit-delivery" name="delivery"' in page
    assert 'id="edit-budget" name="budget"' in page and 'value="5.00"' in page

    saved = eddie.post(
        f"/batches/{batch_id}/edit",
        data=edit_batch_form(page, fieldset="cost", delivery="auto", budget="8"),
    )
    assert "Saved" in saved.text
    settings = team.as_role("owner").get(f"/api/batches/{batch_id}").json()["batch_settings"]
    assert settings["delivery"] == "auto" and settings["budget"] == 8
    cleared = eddie.post(
        f"/batches/{batch_id}/edit",
        data=edit_batch_form(saved.text, fieldset="cost", delivery="auto"),
    )
    assert "Saved" in cleared.text
    settings = team.as_role("owner").get(f"/api/batches/{batch_id}").json()["batch_settings"]
    assert "budget" not in settings and settings["delivery"] == "auto"

    refused = eddie.post(
        f"/batches/{batch_id}/edit", data=edit_batch_form(page, fieldset="cost", budget="0")
    )
    assert refused.status_code == 400
    assert 'id="budget-error"' in refused.text and 'value="0"' in refused.text


def test_the_batch_page_shows_the_estimate_and_a_budget_pause(team, sessions):
    batch_id = team.shared_batch(name="Year 9 essays", settings={"budget": 5})
    ana = browser_as(team, "ana")

    draft = ana.get(f"/batches/{batch_id}").text
    assert 'id="estimate-title">Estimated cost' in draft
    assert "Budget $5.00, spent $0.00, left $5.00." in draft
    assert draft.index("Estimated cost") < draft.index(f"/batches/{batch_id}/do/start")

    reason = "Paused: the budget of $5.00 would be passed: $4.83 spent, about $0.21 more"
    team.as_role("owner").post(f"/api/batches/{batch_id}/start")
    with unit_of_work(sessions) as session:
        batch = session.get(JobBatch, batch_id)
        batch.status, batch.pause_reason, batch.spent_usd = "paused", reason, 4.83

    paused = ana.get(f"/batches/{batch_id}").text
    assert f'<p class="notice" role="alert" data-pause-reason>{reason}</p>' in paused
    assert "spent $4.83, left $0.17." in paused
    assert reason in ana.get("/batches").text


def test_the_estimate_is_for_those_who_may_see_the_batch(team):
    batch_id = team.shared_batch(name="Year 9 essays")

    assert team.as_role("viewer").get(f"/api/batches/{batch_id}/estimate").status_code == 200
    assert team.as_role("other").get(f"/api/batches/{batch_id}/estimate").status_code == 404
    assert team.as_role("none").get(f"/api/batches/{batch_id}/estimate").status_code == 401
