"""A teacher's journey in the real browser, on SQLite and on PostgreSQL, the app grading
through the fake vendor: a batch from a template with a .docx, a .pdf, a .txt and a
corrupt file (each file's outcome), started, paused and resumed, its progress reaching
100% without a reload, a document's grade, the CSV gradebook; the list with a search and
bulk actions (tags, archiving two batches), the dashboard, sharing a batch with another
teacher who could not open it before, a job's documents, one document, an access token,
providers, library and templates. Each state is checked with axe-core at 1400x900 and
800x1000 and photographed."""

from __future__ import annotations

import csv
import re
import threading

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.documents.factories import make_docx, make_pdf
from tests.e2e.browser import assert_focus_visible, check_state, sign_in, tab_to
from tests.e2e.live_server import LiveServer

PASSWORD = "a teacher's long password"
MODEL = "openai:gpt-4o-mini"
# Grading through the fake vendor takes well under a second per document; the page
# polls every 3 s. Generous, so a loaded CI machine does not fail the test.
GRADED_WITHIN_MS = 60_000


@pytest.fixture(scope="module")
def server(grading_server: LiveServer) -> LiveServer:
    """Every test of this module runs on SQLite and on PostgreSQL, the app grading."""
    return grading_server


@pytest.fixture
def teacher(page: Page, server: LiveServer) -> Page:
    server.add_user("head", PASSWORD)  # the first user: the administrator
    server.add_user("ana", PASSWORD)
    server.add_user("ben", PASSWORD)
    sign_in(page, server.url, "ana", PASSWORD)
    return page


def switch_user(page: Page, server: LiveServer, username: str) -> None:
    page.get_by_role("banner").get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Username")).to_be_visible()
    sign_in(page, server.url, username, PASSWORD)


def _create_batch(page: Page, server: LiveServer, name: str) -> None:
    page.goto(server.url + "/batches/new")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Tags (comma-separated)").fill("english, mock")
    page.get_by_label("Or write the grading instructions").fill("Grade this essay out of 100.")
    page.get_by_label(MODEL).check()
    page.get_by_label("Documents (.docx, .pdf, .txt, .md, or a .zip of them)").set_input_files(
        [
            {"name": "alice.txt", "mimeType": "text/plain", "buffer": b"Alice argues well."},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.7 no"},
        ]
    )
    page.get_by_label("Start grading now (otherwise the batch stays a draft)").check()
    page.get_by_role("button", name="Create batch").click()


def _file_row(page: Page, filename: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=filename, exact=True))


def _graded(page: Page, batch_name: str) -> Locator:
    """The batch's page, left open: its progress bar once it says 100%."""
    progress = page.get_by_role("progressbar", name=f"Progress of {batch_name}")
    expect(progress).to_have_attribute("aria-valuenow", "100", timeout=GRADED_WITHIN_MS)
    return progress


def test_a_batch_from_a_template_graded_while_the_teacher_watches(
    teacher: Page, server: LiveServer
) -> None:
    assert server.vendor is not None
    # Every grading call waits at the vendor until the gate opens: the batch stays in
    # progress while it is paused and resumed, whatever the machine's speed.
    gate = threading.Event()
    server.vendor.gate = gate
    try:
        _template_batch_started(teacher, server)
        _paused_resumed_and_graded(teacher, gate)
    finally:
        gate.set()
        server.vendor.gate = None
    score = _a_document_and_its_grade(teacher)
    _the_csv_gradebook(teacher, score)


def _template_batch_started(teacher: Page, server: LiveServer) -> None:
    teacher.goto(server.url + "/batches/new")
    expect(teacher.get_by_role("heading", name="New batch")).to_be_visible()
    check_state(teacher, "journey-01-new-batch")
    create = teacher.get_by_role("button", name="Create batch")
    tab_to(teacher, create, most=40)
    assert_focus_visible(create)

    teacher.get_by_label("Name", exact=True).fill("Year 9 essays")
    teacher.get_by_label("Start from a template").select_option(label="Academic Essay Grading")
    teacher.get_by_label(MODEL).check()
    teacher.get_by_label("Documents (.docx, .pdf, .txt, .md, or a .zip of them)").set_input_files(
        [
            {
                "name": "bea.docx",
                "mimeType": "application/vnd.openxmlformats-officedocument"
                ".wordprocessingml.document",
                "buffer": make_docx(paragraphs=("Bea compares two poems with care.",)),
            },
            {
                "name": "carl.pdf",
                "mimeType": "application/pdf",
                "buffer": make_pdf(("Carl writes about the causes of the war.",)),
            },
            {"name": "alice.txt", "mimeType": "text/plain", "buffer": b"Alice argues well."},
            {"name": "corrupt.docx", "mimeType": "application/zip", "buffer": b"PK\x03\x04 torn"},
        ]
    )
    teacher.get_by_label("Start grading now (otherwise the batch stays a draft)").check()
    teacher.get_by_role("button", name="Create batch").click()

    expect(teacher.get_by_role("heading", name="Batch created: Year 9 essays")).to_be_visible()
    expect(teacher.get_by_text("3 queued of 4")).to_be_visible()
    for filename in ("bea.docx", "carl.pdf", "alice.txt"):
        expect(_file_row(teacher, filename)).to_contain_text("queued")
    expect(_file_row(teacher, "corrupt.docx")).to_contain_text("failed:")
    check_state(teacher, "journey-02-batch-created")
    teacher.get_by_role("link", name="Open the batch").click()
    expect(teacher.get_by_role("heading", name="Year 9 essays")).to_be_visible()
    # The template's settings came with it.
    expect(teacher.get_by_text("tags: essay academic")).to_be_visible()


def _paused_resumed_and_graded(teacher: Page, gate: threading.Event) -> None:
    expect(teacher.get_by_role("progressbar", name="Progress of Year 9 essays")).to_be_visible()
    expect(teacher.get_by_role("link", name="Download CSV")).to_be_visible()
    check_state(teacher, "journey-03-batch-page")

    teacher.get_by_role("button", name="Pause").click()
    expect(teacher.get_by_role("status").filter(has_text="Pause: done")).to_be_visible()
    expect(teacher.get_by_text("Status: paused")).to_be_visible()
    teacher.get_by_role("button", name="Resume").click()
    expect(teacher.get_by_role("status").filter(has_text="Resume: done")).to_be_visible()
    expect(teacher.get_by_role("button", name="Pause")).to_be_visible()

    # From here the page must follow the grading by itself: a reload would lose this.
    teacher.evaluate("() => { window.stillTheSamePage = true; }")
    gate.set()
    _graded(teacher, "Year 9 essays")
    # The corrupt file never became work to grade: it fails the batch's documents only.
    expect(teacher.get_by_text("3 graded of 3")).to_be_visible()
    expect(teacher.get_by_text("Status: completed with errors")).to_be_visible()
    assert teacher.evaluate("() => window.stillTheSamePage") is True, "the page was reloaded"


def _a_document_and_its_grade(teacher: Page) -> str:
    """Opens alice.txt from the job's documents; returns the score its page shows."""
    teacher.reload()
    teacher.get_by_role("region", name="Jobs").get_by_role("link").first.click()
    teacher.get_by_role("link", name="alice.txt").click()
    # The text region: the quotes given as evidence repeat it beside the grade.
    expect(teacher.get_by_label("Text of alice.txt")).to_contain_text("Alice argues well.")
    grade = teacher.get_by_role("heading", name=re.compile(f"^{MODEL}: "))
    expect(grade).to_have_text(re.compile(rf"^{MODEL}:\s+\d+(\.\d+)? / \d+\s*$"))
    expect(teacher.get_by_text("graded by gpt-4o-mini")).to_be_visible()
    match = re.search(r":\s+(\S+) /", grade.inner_text())
    assert match is not None
    teacher.go_back()
    teacher.get_by_role("link", name="← The batch").click()
    return match.group(1)


def _the_csv_gradebook(teacher: Page, score: str) -> None:
    with teacher.expect_download() as downloading:
        teacher.get_by_role("link", name="Download CSV").click()
    path = downloading.value.path()
    with open(path, newline="", encoding="utf-8-sig") as gradebook:
        rows = {row["document"]: row for row in csv.DictReader(gradebook)}
    assert sorted(rows) == ["alice.txt", "bea.docx", "carl.pdf", "corrupt.docx"]
    for name in ("alice.txt", "bea.docx", "carl.pdf"):
        assert rows[name]["status"] == "completed", rows[name]
        assert rows[name]["score"] and rows[name]["max_score"], rows[name]
    assert float(rows["alice.txt"]["score"]) == float(score)
    assert rows["corrupt.docx"]["status"] == "failed"
    assert rows["corrupt.docx"]["error"], rows["corrupt.docx"]


def test_a_shared_batch_is_seen_by_the_other_teacher_only_once_shared(
    teacher: Page, server: LiveServer
) -> None:
    teacher.goto(server.url + "/batches/new")
    teacher.get_by_label("Name", exact=True).fill("Ana's private essays")
    teacher.get_by_label("Or write the grading instructions").fill("Grade out of 10.")
    teacher.get_by_role("button", name="Create batch").click()
    teacher.get_by_role("link", name="Open the batch").click()
    batch_url = teacher.url

    switch_user(teacher, server, "ben")
    response = teacher.goto(batch_url)
    assert response is not None and response.status == 404
    expect(teacher.get_by_text("No batch with id")).to_be_visible()
    teacher.goto(server.url + "/batches")
    expect(teacher.get_by_role("link", name="Ana's private essays")).to_have_count(0)

    switch_user(teacher, server, "ana")
    teacher.goto(batch_url)
    teacher.get_by_label("Share with (username)").fill("ben")
    teacher.get_by_role("button", name="Share batch").click()
    expect(teacher.get_by_role("status")).to_have_text("Shared with ben (view)")
    check_state(teacher, "journey-12-batch-shared")

    switch_user(teacher, server, "ben")
    teacher.goto(server.url + "/batches")
    teacher.get_by_role("link", name="Ana's private essays").click()
    expect(teacher.get_by_role("heading", name="Ana's private essays")).to_be_visible()
    expect(teacher.get_by_role("button", name="Start batch")).to_have_count(0)  # view only


def test_two_finished_batches_archived_at_once(teacher: Page, server: LiveServer) -> None:
    for name in ("Term 1 archive", "Term 2 archive"):
        _create_batch(teacher, server, name)
        teacher.get_by_role("link", name="Open the batch").click()
        _graded(teacher, name)
    teacher.goto(server.url + "/batches")
    teacher.get_by_label("Search").fill("archive")
    teacher.get_by_role("button", name="Apply filters").click()
    teacher.get_by_label("Select Term 1 archive").check()
    teacher.get_by_label("Select Term 2 archive").check()
    teacher.get_by_label("Action", exact=True).select_option("archive")
    teacher.get_by_role("button", name="Apply to selected batches").click()
    expect(teacher.get_by_text("archive: 2 done, 0 skipped.")).to_be_visible()
    check_state(teacher, "journey-13-bulk-archived")


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
    # The text region: the quotes given as evidence repeat it beside the grade.
    expect(teacher.get_by_label("Text of alice.txt")).to_contain_text("Alice argues well.")
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
