"""Every page with the keyboard alone: Tab visits each control in turn, each shows the
focus (an outline or a ring), none is off-screen or hidden when focused, and Tab never
gets stuck (it comes back round to the page). A batch with a document gives the batch,
job and document pages something to show."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import sign_in
from tests.e2e.live_server import LiveServer, grading_live_server

PASSWORD = "a long password for the keyboard"
# More presses than any page has controls: the focus must have come round by then. The
# providers page has the most: the price table, six fields and a button per model.
MOST_PRESSES = 400
FOCUSED = """() => {
    const element = document.activeElement;
    if (!element || element === document.body) return null;
    const style = getComputedStyle(element);
    const box = element.getBoundingClientRect();
    return {
        key: [element.tagName, element.id || '', element.getAttribute('name') || '',
              element.getAttribute('href') || '', (element.textContent || '').trim().slice(0, 40),
              (element.value || '').slice(0, 20), box.top + ',' + box.left].join('|'),
        ring: (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0)
              || style.boxShadow !== 'none',
        shown: box.width > 0 && box.height > 0 && style.visibility !== 'hidden',
        inView: box.bottom > 0 && box.top < window.innerHeight
                && box.right > 0 && box.left < window.innerWidth,
    };
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app with providers configured (the fake vendor) and workers, on SQLite."""
    with grading_live_server(tmp_path_factory.mktemp("e2e-keyboard")) as running:
        yield running


@pytest.fixture(scope="module")
def batch_page(server: LiveServer, browser) -> str:
    """A draft batch with one document, made through the new-batch form; its page."""
    server.add_user("head", PASSWORD)
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, server.url, "head", PASSWORD)
    page.goto(server.url + "/batches/new")
    page.get_by_label("Name", exact=True).fill("Keyboard batch")
    page.get_by_label("Or write the grading instructions").fill("Grade this essay out of 100.")
    page.get_by_label("openai:gpt-4o-mini").check()
    page.get_by_label("Documents (.docx, .pdf, .txt, .md, or a .zip of them)").set_input_files(
        [{"name": "essay.txt", "mimeType": "text/plain", "buffer": b"An essay on rivers."}]
    )
    page.get_by_role("button", name="Create batch").click()
    expect(page.get_by_role("heading", name=re.compile("Batch created"))).to_be_visible()
    page.goto(server.url + "/batches")
    page.get_by_role("link", name="Keyboard batch").first.click()
    expect(page.get_by_role("heading", name="Keyboard batch")).to_be_visible()
    url = page.url
    context.close()
    return url


def _walk(page: Page) -> list[dict]:
    """Press Tab until the focus comes back to an element already visited (round the
    page) or leaves the page; what each press focused."""
    seen: list[dict] = []
    keys: set[str] = set()
    for _ in range(MOST_PRESSES):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None:
            if seen:
                return seen  # past the last control, back to the page itself
            continue
        if focused["key"] in keys:
            return seen
        keys.add(focused["key"])
        seen.append(focused)
    raise AssertionError(f"the focus did not come round after {MOST_PRESSES} presses of Tab")


def _links(page: Page, pattern: str) -> str:
    href = page.locator(f"a[href*='{pattern}']").first.get_attribute("href")
    assert href, f"no link to {pattern}"
    return href


def test_every_page_is_walked_with_tab_showing_the_focus(
    page: Page, server: LiveServer, batch_page: str
) -> None:
    sign_in(page, server.url, "head", PASSWORD)
    page.goto(batch_page)
    batch_path = batch_page.removeprefix(server.url)
    job_path = _links(page, "/jobs/")
    page.goto(server.url + job_path)
    document_path = _links(page, "/documents/")
    paths = [
        "/dashboard",
        "/batches",
        "/batches/new",
        batch_path,
        batch_path + "/analytics",
        job_path,
        document_path,
        "/templates",
        "/library",
        "/providers",
        "/account",
        "/admin/users",
        "/admin/audit",
    ]
    problems: list[str] = []
    for path in paths:
        response = page.goto(server.url + path)
        assert response is not None and response.ok, f"{path}: {response and response.status}"
        visited = _walk(page)
        if len(visited) < 3:
            problems.append(f"{path}: only {len(visited)} controls reached with Tab")
        for focused in visited:
            name = focused["key"].split("|")
            what = f"{path}: {name[0].lower()} {name[4] or name[3] or name[2] or name[1]!r}"
            if not focused["shown"]:
                problems.append(f"{what} takes the focus but is not shown")
            elif not focused["ring"]:
                problems.append(f"{what} has the focus but does not show it")
            elif not focused["inView"]:
                problems.append(f"{what} has the focus but is scrolled out of view")
    assert not problems, "\n".join(problems)
