"""Changing a template in the real browser and making a batch from it: a default is
read-only (duplicate it), the copy's page shows a mistake beside its field and keeps
what was typed, the saved template fills a new batch, whose grading fields lock once it
starts; the dashboard lists the file refused at upload. Each state checked with axe-core
at both sizes and photographed."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import check_state, sign_in
from tests.e2e.live_server import LiveServer

PASSWORD = "a teacher's long password"
TEMPLATE = "Year 9 essay template"
PROMPT = "Grade the Year 9 essay: quote the essay in each justification."


@pytest.fixture
def teacher(page: Page, server: LiveServer, monkeypatch) -> Page:
    # Providers as a server would have them configured (no call is made: no workers).
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-anthropic")
    server.add_user("head", PASSWORD)
    server.add_user("ana", PASSWORD)
    sign_in(page, server.url, "ana", PASSWORD)
    return page


def test_edit_a_template_then_make_a_batch_from_it(teacher: Page, server: LiveServer) -> None:
    teacher.goto(server.url + "/templates")
    teacher.get_by_role("link", name="View Academic Essay Grading").click()
    expect(teacher.get_by_text("This is a default template and is read-only.")).to_be_visible()
    expect(teacher.get_by_role("button", name="Save template")).to_have_count(0)
    check_state(teacher, "template-01-default-read-only")

    teacher.get_by_label("Name of the copy").fill(TEMPLATE)
    teacher.get_by_role("button", name="Duplicate to change").click()
    expect(teacher.get_by_role("status")).to_contain_text(f"Copied as {TEMPLATE}")
    teacher.get_by_role("link", name=f"Edit {TEMPLATE}").click()
    expect(teacher.get_by_role("heading", name=f"Edit template: {TEMPLATE}")).to_be_visible()
    check_state(teacher, "template-02-edit")

    teacher.get_by_label("Grading instructions").fill(PROMPT)
    teacher.get_by_label("Temperature (0 to 2; empty: the provider's default)").fill("warm")
    teacher.get_by_label("openai:gpt-4o-mini").check()
    teacher.get_by_role("button", name="Save template").click()
    expect(teacher.get_by_text("Give a number")).to_be_visible()
    expect(teacher.get_by_label("Grading instructions")).to_have_value(PROMPT)
    expect(teacher.get_by_label("openai:gpt-4o-mini")).to_be_checked()
    check_state(teacher, "template-03-field-error")

    teacher.get_by_label("Temperature (0 to 2; empty: the provider's default)").fill("0.4")
    teacher.get_by_role("button", name="Save template").click()
    expect(teacher.get_by_role("status")).to_have_text(f"Saved the template {TEMPLATE}")
    expect(teacher.get_by_label("Grading instructions")).to_have_value(PROMPT)

    teacher.goto(server.url + "/batches/new")
    teacher.get_by_label("Name", exact=True).fill("Year 9 from the template")
    teacher.get_by_label("Start from a template").select_option(label=TEMPLATE)
    teacher.get_by_label("Documents (.docx, .pdf, .txt, .md, or a .zip of them)").set_input_files(
        [
            {"name": "alice.txt", "mimeType": "text/plain", "buffer": b"Alice argues well."},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.7 no"},
        ]
    )
    teacher.get_by_label("Start grading now (otherwise the batch stays a draft)").check()
    teacher.get_by_role("button", name="Create batch").click()
    teacher.get_by_role("link", name="Open the batch").click()
    expect(teacher.get_by_role("heading", name="Year 9 from the template")).to_be_visible()
    # The template's prompt, shown in the grading fields, locked now that it has started.
    expect(teacher.get_by_label("Grading instructions")).to_have_value(PROMPT)
    expect(teacher.get_by_label("Grading instructions")).to_be_disabled()
    expect(teacher.get_by_text("this batch is pending")).to_be_visible()
    check_state(teacher, "template-04-batch-from-template")

    teacher.goto(server.url + "/dashboard")
    expect(teacher.get_by_role("heading", name="Documents refused at upload")).to_be_visible()
    expect(teacher.get_by_role("link", name="broken.pdf")).to_be_visible()
    check_state(teacher, "template-05-dashboard-refused")
    teacher.get_by_role("link", name="broken.pdf").click()
    expect(teacher.get_by_text("broken.pdf").first).to_be_visible()


def test_a_drafts_prompt_and_models_from_its_page(teacher: Page, server: LiveServer) -> None:
    teacher.goto(server.url + "/batches/new")
    teacher.get_by_label("Name", exact=True).fill("Year 8 draft")
    teacher.get_by_label("Or write the grading instructions").fill("Grade it.")
    teacher.get_by_role("button", name="Create batch").click()
    teacher.get_by_role("link", name="Open the batch").click()
    expect(teacher.get_by_label("Grading instructions")).to_be_enabled()

    teacher.get_by_label("Grading instructions").fill("Grade it against the rubric.")
    teacher.get_by_label(
        "Other models of the configured providers (provider:model, one per line)"
    ).fill("nobody:model-x")
    teacher.get_by_role("button", name="Save changes").click()
    expect(teacher.get_by_text("the provider nobody is not configured")).to_be_visible()
    expect(teacher.get_by_label("Grading instructions")).to_have_value(
        "Grade it against the rubric."
    )
    check_state(teacher, "batch-edit-field-error")

    teacher.get_by_label(
        "Other models of the configured providers (provider:model, one per line)"
    ).fill("")
    teacher.get_by_label("claude:claude-sonnet-5-5").check()
    teacher.get_by_role("button", name="Save changes").click()
    expect(teacher.get_by_role("status")).to_have_text("Saved")
    expect(teacher.get_by_label("Grading instructions")).to_have_value(
        "Grade it against the rubric."
    )
    expect(teacher.get_by_label("claude:claude-sonnet-5-5")).to_be_checked()
