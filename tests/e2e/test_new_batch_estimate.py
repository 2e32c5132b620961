"""The new-batch form's live estimate in the real browser, on SQLite and PostgreSQL:
choosing documents and a model shows each model's tokens and cost beside the buttons
(an unreadable file left out with its reason), a budget below it warns, and the batch
then starts. With many documents the estimate waits for "Estimate cost" after changes
that need not send them again; documents held for a hidden instruction are named and
not counted; the page's script writes dollars as the server does. Checked with axe-core
and photographed at 1400x900 and 800x1000."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from grading_app.web.shell import TEMPLATES
from tests.documents.factories import make_docx
from tests.e2e.browser import check_state, sign_in
from tests.e2e.live_server import LiveServer
from tests.trust.test_trust_pipeline import PLANTED

PASSWORD = "a teacher's long password"
MODEL = "openai:gpt-4o-mini"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ESTIMATES = "/api/batches/estimate"


@pytest.fixture(scope="module")
def server(grading_server: LiveServer) -> LiveServer:
    return grading_server


def _open_new_batch_form(page: Page, server: LiveServer) -> None:
    """Signed in as a teacher (after an administrator), on the new-batch form."""
    server.add_user("head", PASSWORD)
    server.add_user("ana", PASSWORD)
    sign_in(page, server.url, "ana", PASSWORD)
    page.goto(server.url + "/batches/new")


def test_the_estimate_appears_as_documents_and_a_model_are_chosen_then_the_batch_starts(
    page: Page, server: LiveServer
) -> None:
    _open_new_batch_form(page, server)
    page.get_by_label("Name", exact=True).fill("Year 9 persuasive essays")
    page.get_by_label("Or write the grading instructions").fill("Grade this essay out of 100.")
    for box in page.get_by_role("checkbox").all():  # the configured models, none chosen yet
        if box.get_attribute("name") == "models":
            box.uncheck()
    estimate = page.locator("[data-estimate-output]")

    page.get_by_label("Documents (.docx, .pdf, .txt, .md, or a .zip of them)").set_input_files(
        [
            {"name": "alice.txt", "mimeType": "text/plain", "buffer": b"Alice argues well. " * 50},
            {"name": "bob.txt", "mimeType": "text/plain", "buffer": b"Bob writes clearly. " * 80},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.7 no"},
        ]
    )
    expect(estimate).to_contain_text("Choose at least one model to see what grading will cost")
    page.get_by_label(MODEL).check()

    total = estimate.get_by_role("row").filter(has_text="Total")
    expect(total.get_by_role("cell").first).to_have_text("2")  # the broken file left out
    expect(estimate.get_by_role("cell", name=MODEL)).to_be_visible()
    expect(estimate).to_contain_text('"broken.pdf" is an incomplete PDF')
    expect(estimate).not_to_contain_text("passes the budget")
    page.get_by_label("Budget (USD)").fill("0.00001")
    expect(estimate).to_contain_text("passes the budget of $0.00001:")
    check_state(page, "new-batch-estimate")

    page.get_by_label("Budget (USD)").fill("")
    expect(estimate).not_to_contain_text("passes the budget")
    page.get_by_label("Start grading now (otherwise the batch stays a draft)").check()
    page.get_by_role("button", name="Create batch").click()
    expect(
        page.get_by_role("heading", name="Batch created: Year 9 persuasive essays")
    ).to_be_visible()
    expect(page.get_by_role("heading", name="Estimated cost")).to_be_visible()


def test_with_many_documents_the_estimate_waits_for_the_button_and_held_ones_are_named(
    page: Page, server: LiveServer
) -> None:
    asked: list[str] = []
    page.on(
        "request", lambda request: asked.append(request.url) if ESTIMATES in request.url else None
    )
    _open_new_batch_form(page, server)
    page.get_by_label("Or write the grading instructions").fill("Grade this essay out of 100.")
    page.get_by_label(MODEL).check()
    page.get_by_role("radio", name=re.compile("^Hold")).check()
    essays = [
        {"name": f"essay-{n:02d}.txt", "mimeType": "text/plain", "buffer": b"An essay. " * 30}
        for n in range(21)
    ]
    planted = make_docx(paragraphs=("Eli's essay.", PLANTED), table=None, header=None, footer=None)
    documents = page.get_by_label("Documents (.docx, .pdf, .txt, .md, or a .zip of them)")
    estimate = page.locator("[data-estimate-output]")

    documents.set_input_files([*essays, {"name": "eli.docx", "mimeType": DOCX, "buffer": planted}])

    total = estimate.get_by_role("row").filter(has_text="Total")
    expect(total.get_by_role("cell").first).to_have_text("21 (and 1 held)")
    expect(estimate).to_contain_text("hidden instructions were found in them: eli.docx.")
    # Past 20 documents a change that needs no new documents waits for the button.
    page.get_by_label("Budget (USD)").fill("0.00001")
    expect(estimate).to_contain_text("The form changed: press “Estimate cost”")
    expect(estimate).not_to_contain_text("passes the budget")
    check_state(page, "new-batch-estimate-out-of-date")
    page.get_by_role("button", name="Estimate cost").click()
    expect(estimate).to_contain_text("passes the budget of $0.00001:")
    expect(estimate).not_to_contain_text("The form changed")
    assert len(asked) == 2  # the documents chosen, then the button: not the budget typed
    # Answered in place: the browser still holds the chosen files.
    assert page.url == server.url + "/batches/new"
    assert documents.evaluate("input => input.files.length") == 22


def test_the_script_writes_dollars_as_the_pages_do(page: Page, server: LiveServer) -> None:
    amounts = [
        None,
        0,
        0.0000004,
        0.000001,
        0.00001,
        0.0000123,
        0.00005,
        0.00072,
        0.0014,
        0.0099,
        0.01,
        0.5,
        12.5,
        1234.5678,
        -0.25,
    ]
    usd = TEMPLATES.env.filters["usd"]
    _open_new_batch_form(page, server)  # loaded: app.js has run

    written = page.evaluate("amounts => amounts.map(usd)", amounts)

    assert written == [usd(amount) for amount in amounts]
    # An amount that is not zero never reads as zero.
    assert all(re.search("[1-9]", text) for text in written[2:])
