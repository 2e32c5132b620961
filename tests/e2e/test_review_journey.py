"""A reviewer's journey in the real browser, on SQLite and on PostgreSQL, the app grading
through the fake vendor: a document whose grade quotes a sentence that is not in it goes
to the review queue; its page highlights the quotes that are; the teacher overrides the
score and the queue is empty. Each state is checked with axe-core and photographed."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import check_state, sign_in
from tests.e2e.live_server import LiveServer

PASSWORD = "a reviewer's long password"
MODEL = "openai:gpt-4o-mini"
GRADED_WITHIN_MS = 60_000
# The fake vendor quotes six words of the document per criterion and, asked so by
# INVENT-A-QUOTE, a sentence that is nowhere in it.
ESSAY = (
    "Dora writes that rivers shape the towns beside them, and that <b>trade</b> follows "
    "the water. INVENT-A-QUOTE She ends with the harbour of her own town."
)


@pytest.fixture(scope="module")
def server(grading_server: LiveServer) -> LiveServer:
    return grading_server


def test_a_doubtful_grade_is_reviewed_from_the_queue(page: Page, server: LiveServer) -> None:
    server.add_user("head", PASSWORD)  # the first user: the administrator
    server.add_user("rita", PASSWORD)
    sign_in(page, server.url, "rita", PASSWORD)

    page.goto(server.url + "/batches/new")
    page.get_by_label("Name", exact=True).fill("River essays")
    page.get_by_label("Or write the grading instructions").fill("Grade this essay.")
    page.get_by_label(MODEL).check()
    page.get_by_label("Grade boundaries (percentages, comma-separated, e.g. 40, 50, 70)").fill("")
    page.get_by_label("Documents (.docx, .pdf, .txt, .md, or a .zip of them)").set_input_files(
        [{"name": "dora.txt", "mimeType": "text/plain", "buffer": ESSAY.encode()}]
    )
    page.get_by_label("Start grading now (otherwise the batch stays a draft)").check()
    page.get_by_role("button", name="Create batch").click()
    page.get_by_role("link", name="Open the batch").click()
    progress = page.get_by_role("progressbar", name="Progress of River essays")
    expect(progress).to_have_attribute("aria-valuenow", "100", timeout=GRADED_WITHIN_MS)

    page.reload()
    waiting = page.get_by_role("link", name="Review queue: 1 document(s) waiting for review")
    expect(waiting).to_be_visible()
    waiting.click()
    expect(page.get_by_role("heading", name="Review queue: River essays")).to_be_visible()
    expect(page.get_by_text("not found in the document")).to_be_visible()
    check_state(page, "review-01-queue")

    page.get_by_role("link", name="dora.txt").click()
    text = page.get_by_label("Text of dora.txt")
    highlighted = text.locator("mark.quote-verified").first
    expect(highlighted).to_be_visible()
    expect(highlighted).to_have_attribute("title", re.compile("Content|Structure|Clarity"))
    expect(text).to_contain_text("<b>trade</b>")  # the document's own markup, as text
    expect(
        page.get_by_text(re.compile("unverified: not found in the document")).first
    ).to_be_visible()
    check_state(page, "review-02-document")

    page.get_by_label(re.compile(r"^Overall score")).fill("40")
    page.get_by_role("button", name="Override").click()
    expect(page.get_by_text("above the grade's maximum")).to_be_visible()
    check_state(page, "review-03-refused")

    page.get_by_label(re.compile(r"^Overall score")).fill("21.5")
    page.get_by_label("Comment").fill("The harbour paragraph earns more.")
    page.get_by_role("button", name="Override").click()
    expect(page.get_by_role("status").filter(has_text="Grade overridden")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^overridden$"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"^21\.5 / 30"))).to_be_visible()
    check_state(page, "review-04-overridden")

    page.get_by_role("link", name="← The job's documents").click()
    page.get_by_role("link", name="← The batch").click()
    page.get_by_role("link", name="Review queue: 0 document(s) waiting for review").click()
    expect(page.get_by_text("Nothing is waiting for review in this batch.")).to_be_visible()
    check_state(page, "review-05-queue-empty")
