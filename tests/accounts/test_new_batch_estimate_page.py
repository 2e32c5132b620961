"""The new-batch form's estimate: an "Estimate cost" button that, without JavaScript,
brings the form back as typed with the estimate of the batch it describes (and
creates nothing); the place app.js fills live beside the buttons."""

from __future__ import annotations

import html

from tests.accounts.conftest import browser_as, new_batch_form
from tests.trust.corpus import docx_with, white
from tests.trust.test_trust_pipeline import PLANTED

ESSAY = ("files", ("alice.txt", b"Alice argues that engines changed towns.", "text/plain"))
BROKEN = ("files", ("broken.pdf", b"%PDF-1.4\nnot really a pdf", "application/pdf"))


def _form(page: str, **fields) -> dict:
    """The form as "Estimate cost" posts it."""
    return new_batch_form(
        page, **{"prompt": "Grade the argument & the evidence.", "action": "estimate", **fields}
    )


def _batches(team) -> int:
    return team.as_role("owner").get("/api/batches").json()["total"]


def test_the_form_has_a_live_estimate_place_beside_its_buttons(team):
    page = browser_as(team, "ana").get("/batches/new").text

    assert '<div aria-live="polite" data-estimate-output="/api/batches/estimate">' in page
    assert 'name="action" value="estimate" formnovalidate' in page
    assert "<script>" not in page  # app.js only: the CSP forbids inline scripts


def test_estimate_cost_shows_the_estimate_and_keeps_what_was_typed(team):
    ana = browser_as(team, "ana")
    page = ana.get("/batches/new").text
    before = _batches(team)

    answer = ana.post(
        "/batches/new", data=_form(page, budget="0.000001", tags="term 2"), files=[ESSAY, BROKEN]
    )

    assert answer.status_code == 200, answer.text
    text = html.unescape(answer.text)
    assert 'value="Year 9 essays"' in text and 'value="term 2"' in text
    assert ">Grade the argument & the evidence.</textarea>" in text
    assert "<td>openai:gpt-4o-mini" in text and '<th scope="row">Total</th><td>1</td>' in text
    assert '"broken.pdf" is an incomplete PDF' in text  # left out, with the reason
    assert "passes the budget of $0.000001:" in text  # a budget that is not zero, shown so
    assert "choose the documents (and a marking scheme file) again" in text
    assert "Please correct the fields" not in text
    assert _batches(team) == before  # nothing created


def test_an_estimate_that_cannot_be_made_says_why_in_its_place(team):
    ana = browser_as(team, "ana")
    page = ana.get("/batches/new").text

    answer = ana.post("/batches/new", data=_form(page, prompt=""), files=[ESSAY])

    assert answer.status_code == 400
    assert '<p class="error">The grading prompt is empty' in answer.text
    assert "Please correct the fields" not in answer.text


def test_a_budget_the_batch_would_refuse_is_refused_by_the_estimate_too(team):
    ana = browser_as(team, "ana")
    page = ana.get("/batches/new").text

    for budget in ("-5", "inf"):
        answer = ana.post("/batches/new", data=_form(page, budget=budget), files=[ESSAY])

        assert answer.status_code == 400, answer.text
        assert '<p class="error">settings.budget must be an amount in USD' in answer.text


def test_the_estimate_button_needs_the_csrf_token(team):
    ana = browser_as(team, "ana")
    page = ana.get("/batches/new").text

    answer = ana.post("/batches/new", data=_form(page, csrf_token="forged"), files=[ESSAY])

    assert answer.status_code == 403


def test_the_estimate_names_the_documents_held_for_review(team):
    ana = browser_as(team, "ana")
    page = ana.get("/batches/new").text
    planted = docx_with(planted=PLANTED, style=white)
    held = ("files", ("planted.docx", planted, "application/octet-stream"))

    answer = ana.post(
        "/batches/new", data=_form(page, hidden_instructions="hold"), files=[ESSAY, held]
    )

    assert answer.status_code == 200, answer.text
    assert '<th scope="row">Total</th><td>1 <small>(and 1 held)</small></td>' in answer.text
    assert "Held for review, so not counted" in answer.text
    assert "hidden instructions were found in them: planted.docx." in answer.text
    # The batch made from the same form says the same.
    form = {**_form(page, hidden_instructions="hold"), "action": ""}
    created = ana.post("/batches/new", data=form, files=[ESSAY, held])
    assert created.status_code == 201, created.text
    assert '<th scope="row">Total</th><td>1 <small>(and 1 held)</small></td>' in created.text
    assert "Held for review, so not counted" in created.text
