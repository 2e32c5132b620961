"""The new-batch form's live estimate in the real browser, on SQLite and PostgreSQL:
choosing documents and a model shows each model's tokens and cost beside the buttons
(an unreadable file left out with its reason), a budget below it warns, and the batch
then starts. Checked with axe-core and photographed at 1400x900 and 800x1000."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import check_state, sign_in
from tests.e2e.live_server import LiveServer

PASSWORD = "a teacher's long password"
MODEL = "openai:gpt-4o-mini"


@pytest.fixture(scope="module")
def server(grading_server: LiveServer) -> LiveServer:
    return grading_server


def test_the_estimate_appears_as_documents_and_a_model_are_chosen_then_the_batch_starts(
    page: Page, server: LiveServer
) -> None:
    server.add_user("head", PASSWORD)
    server.add_user("ana", PASSWORD)
    sign_in(page, server.url, "ana", PASSWORD)
    page.goto(server.url + "/batches/new")
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
    expect(estimate).to_contain_text("passes the budget of $0.0000")
    check_state(page, "new-batch-estimate")

    page.get_by_label("Budget (USD)").fill("")
    expect(estimate).not_to_contain_text("passes the budget")
    page.get_by_label("Start grading now (otherwise the batch stays a draft)").check()
    page.get_by_role("button", name="Create batch").click()
    expect(
        page.get_by_role("heading", name="Batch created: Year 9 persuasive essays")
    ).to_be_visible()
    expect(page.get_by_role("heading", name="Estimated cost")).to_be_visible()
