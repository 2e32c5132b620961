"""The new-batch form: details, library items, models of configured providers only,
documents with each file's outcome, start now or keep as a draft."""

from __future__ import annotations

import re

from tests.accounts.conftest import browser_as, csrf_of


def test_the_form_offers_configured_providers_and_ones_own_library(team):
    team.as_role("owner").post(
        "/api/prompts", json={"name": "Ana's prompt", "prompt_text": "Grade."}
    )
    team.as_role("other").post(
        "/api/prompts", json={"name": "Otto's prompt", "prompt_text": "Grade."}
    )
    page = browser_as(team, "ana").get("/batches/new").text
    assert 'value="openai:' in page and 'value="claude:' in page  # keys set for both
    assert "Ana&#39;s prompt" in page and "Otto" not in page
    assert "Academic Essay Grading" in page  # a default template


def test_creating_a_batch_with_documents_shows_each_files_outcome(team):
    browser = browser_as(team, "ana")
    page = browser.get("/batches/new").text
    response = browser.post(
        "/batches/new",
        data={
            "csrf_token": csrf_of(page),
            "name": "Year 9 essays",
            "tags": "english, mock",
            "priority": "7",
            "prompt": "Grade this essay out of 100.",
            "models": ["openai:gpt-4o-mini"],
            "deadline": "2031-06-30T17:00",
            "tz_offset": "-120",  # the browser is two hours ahead of UTC
            "start": "1",
        },
        files=[
            ("files", ("alice.txt", b"Alice argues that engines changed towns.", "text/plain")),
            ("files", ("broken.pdf", b"%PDF-1.7 this is not a PDF", "application/pdf")),
        ],
    )
    assert response.status_code == 201, response.text
    assert "Batch created: Year 9 essays" in response.text
    assert "1 queued of 2" in response.text and "failed:" in response.text
    batch_id = re.search(r'href="/batches/([0-9a-f-]{36})"', response.text).group(1)
    batch = team.as_role("owner").get(f"/api/batches/{batch_id}").json()
    assert batch["status"] == "pending" and batch["priority"] == 7
    assert batch["tags"] == ["english", "mock"] and batch["deadline"] == "2031-06-30T15:00:00Z"


def test_a_mistake_keeps_what_was_typed_and_creates_nothing(team):
    browser = browser_as(team, "ana")
    page = browser.get("/batches/new").text
    response = browser.post(
        "/batches/new",
        data={
            "csrf_token": csrf_of(page),
            "name": "Year 9 essays",
            "priority": "11",
            "other_models": "nowhere:model-x",
            "prompt": "Keep this text",
        },
    )
    assert response.status_code == 400
    assert 'id="priority-error"' in response.text
    assert "nowhere is not configured" in response.text
    assert 'value="Year 9 essays"' in response.text and "Keep this text" in response.text
    assert team.as_role("owner").get("/api/batches").json()["total"] == 0


def test_without_files_the_batch_is_a_draft(team):
    browser = browser_as(team, "ana")
    page = browser.get("/batches/new").text
    response = browser.post(
        "/batches/new",
        data={"csrf_token": csrf_of(page), "name": "Later", "models": ["openai:gpt-4o-mini"]},
    )
    assert response.status_code == 201 and "draft" in response.text
