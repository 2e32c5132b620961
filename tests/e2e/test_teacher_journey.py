"""A teacher's journey in the real browser: a new batch with documents (one unreadable),
its page, the list with a search and a bulk action, the dashboard, a job's documents,
one document, and an access token; each state checked with axe-core at 1400x900 and
800x1000 and photographed."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import assert_focus_visible, check_state, sign_in, tab_to
from tests.e2e.live_server import LiveServer

PASSWORD = "a teacher's long password"


@pytest.fixture
def teacher(page: Page, server: LiveServer, monkeypatch) -> Page:
    # Providers as a server would have them configured (no call is made: no workers).
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-anthropic")
    server.add_user("head", PASSWORD)
    server.add_user("ana", PASSWORD)
    sign_in(page, server.url, "ana", PASSWORD)
    return page


def _create_batch(page: Page, server: LiveServer, name: str) -> None:
    page.goto(server.url + "/batches/new")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Tags (comma-separated)").fill("english, mock")
    page.get_by_label("Or write the grading instructions").fill("Grade this essay out of 100.")
    page.get_by_label("openai:gpt-4o-mini").check()
    page.get_by_label("Documents (.docx, .pdf, .txt, .md, or a .zip of them)").set_input_files(
        [
            {"name": "alice.txt", "mimeType": "text/plain", "buffer": b"Alice argues well."},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.7 no"},
        ]
    )
    page.get_by_label("Start grading now (otherwise the batch stays a draft)").check()
    page.get_by_role("button", name="Create batch").click()


def test_a_new_batch_from_the_form_to_its_page(teacher: Page, server: LiveServer) -> None:
    teacher.goto(server.url + "/batches/new")
    expect(teacher.get_by_role("heading", name="New batch")).to_be_visible()
    check_state(teacher, "journey-01-new-batch")
    create = teacher.get_by_role("button", name="Create batch")
    tab_to(teacher, create, most=40)
    assert_focus_visible(create)

    _create_batch(teacher, server, "Year 9 essays")
    expect(teacher.get_by_role("heading", name="Batch created: Year 9 essays")).to_be_visible()
    expect(teacher.get_by_text("1 queued of 2")).to_be_visible()
    expect(teacher.get_by_role("cell", name="broken.pdf", exact=True)).to_be_visible()
    check_state(teacher, "journey-02-batch-created")

    teacher.get_by_role("link", name="Open the batch").click()
    expect(teacher.get_by_role("heading", name="Year 9 essays")).to_be_visible()
    expect(teacher.get_by_role("progressbar", name="Progress of Year 9 essays")).to_be_visible()
    expect(teacher.get_by_role("button", name="Pause")).to_be_visible()
    expect(teacher.get_by_role("link", name="Download CSV")).to_be_visible()
    check_state(teacher, "journey-03-batch-page")

    teacher.get_by_role("button", name="Pause").click()
    expect(teacher.get_by_role("status").filter(has_text="Pause: done")).to_be_visible()
    expect(teacher.get_by_role("button", name="Resume")).to_be_visible()


def test_the_list_search_and_a_bulk_action(teacher: Page, server: LiveServer) -> None:
    _create_batch(teacher, server, "Mock exam essays")
    teacher.goto(server.url + "/batches")
    teacher.get_by_label("Search").fill("Mock exam")
    teacher.get_by_role("button", name="Apply filters").click()
    expect(teacher.get_by_role("link", name="Mock exam essays")).to_be_visible()
    check_state(teacher, "journey-04-batch-list")

    teacher.get_by_label("Select Mock exam essays").check()
    teacher.get_by_label("Action", exact=True).select_option("add_tags")
    teacher.get_by_label("Tags (for add or remove tags)").fill("checked")
    teacher.get_by_role("button", name="Apply to selected batches").click()
    expect(teacher.get_by_text("add_tags: 1 done, 0 skipped.")).to_be_visible()

    teacher.goto(server.url + "/dashboard")
    expect(teacher.get_by_role("heading", name="In progress")).to_be_visible()
    check_state(teacher, "journey-05-dashboard")


def test_a_document_and_an_access_token(teacher: Page, server: LiveServer) -> None:
    _create_batch(teacher, server, "Year 10 essays")
    teacher.get_by_role("link", name="Open the batch").click()
    teacher.get_by_role("link", name="Year 10 essays").last.click()
    expect(teacher.get_by_role("link", name="alice.txt")).to_be_visible()
    check_state(teacher, "journey-06-job-documents")
    teacher.get_by_role("link", name="alice.txt").click()
    expect(teacher.get_by_text("Alice argues well.")).to_be_visible()
    check_state(teacher, "journey-07-document")

    teacher.goto(server.url + "/account")
    teacher.get_by_label("Token name (what it is for)").fill("laptop")
    teacher.get_by_role("button", name="Create token").click()
    expect(teacher.get_by_label("Token", exact=True)).to_have_value(re.compile(r"^gat_"))
    check_state(teacher, "journey-08-account")


def test_the_providers_page(teacher: Page, server: LiveServer) -> None:
    teacher.goto(server.url + "/providers")
    expect(teacher.get_by_role("heading", name="Configured here")).to_be_visible()
    check_state(teacher, "journey-09-providers")


def test_the_library_with_a_rubric(teacher: Page, server: LiveServer) -> None:
    teacher.goto(server.url + "/library")
    teacher.get_by_label("Name", exact=True).last.fill("Argument essay")
    teacher.get_by_label("Criterion 1", exact=True).fill("Thesis")
    teacher.get_by_label("Maximum points of criterion 1").fill("10")
    teacher.get_by_role("button", name="Save marking scheme").click()
    expect(teacher.get_by_role("status")).to_have_text("Saved the marking scheme Argument essay")
    check_state(teacher, "journey-10-library")


def test_the_templates_page(teacher: Page, server: LiveServer) -> None:
    teacher.goto(server.url + "/templates")
    expect(teacher.get_by_role("button", name="Copy Academic Essay Grading")).to_be_visible()
    teacher.get_by_role("button", name="Copy Academic Essay Grading").click()
    expect(teacher.get_by_role("status")).to_contain_text("yours to change")
    check_state(teacher, "journey-11-templates")
