"""Helpers for the browser tests: Debian's Chromium, axe-core from its PyPI package,
screenshots a person can open, and the problems a page must not show (console errors,
uncaught exceptions, Content-Security-Policy refusals, requests leaving the server)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    ConsoleMessage,
    Error,
    Locator,
    Page,
    Request,
    Response,
    expect,
)

# Debian's package; Playwright's own browser downloads are never used (no internet).
CHROMIUM = Path(os.environ.get("GRADING_APP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

WIDE = {"width": 1400, "height": 900}
TABLET = {"width": 800, "height": 1000}
VIEWPORTS = (WIDE, TABLET)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
BLOCKING_IMPACTS = ("serious", "critical")
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def require_chromium() -> None:
    """Skip when the browser is missing, or fail when CI says it must be there."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    reason = f"{CHROMIUM} not found: install Debian's chromium package for the browser tests"
    if os.environ.get("GRADING_APP_REQUIRE_BROWSER"):
        pytest.fail(f"the browser is required (GRADING_APP_REQUIRE_BROWSER): {reason}")
    pytest.skip(reason)


def _axe_source() -> str:
    # Read from the installed axe-playwright-python package, never a copy in this repo.
    return (resources.files("axe_playwright_python") / "axe.min.js").read_text("utf-8")


def check_accessibility(page: Page) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now; fail on any serious or critical violation.
    Returns the minor and moderate ones, for a test that wants to look at them."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    violations: list[dict[str, Any]] = results["violations"]
    blocking = [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]
    if blocking:
        lines = [f"axe-core found {len(blocking)} serious or critical violation(s) on {page.url}:"]
        for violation in blocking:
            targets = ", ".join(" ".join(node["target"]) for node in violation["nodes"])
            lines.append(
                f"- {violation['id']} ({violation['impact']}): {violation['help']}; at {targets}"
            )
        raise AssertionError("\n".join(lines))
    return violations


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as test-artifacts/screenshots/NAME-WIDTHxHEIGHT.png."""
    size = page.viewport_size or WIDE
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    path = SCREENSHOTS / f"{safe}-{size['width']}x{size['height']}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_no_sideways_scrolling(page: Page) -> None:
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    size = page.viewport_size
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at {size}"


def check_state(page: Page, name: str) -> None:
    """One state of a page at both supported sizes: axe-core, no sideways scrolling,
    and a screenshot of each; the page is left at the size it had."""
    original = page.viewport_size or WIDE
    for size in VIEWPORTS:
        page.set_viewport_size(size)
        check_accessibility(page)
        assert_no_sideways_scrolling(page)
        screenshot(page, name)
    page.set_viewport_size(original)


def is_focused(locator: Locator) -> bool:
    return bool(locator.evaluate("element => element === document.activeElement"))


def assert_focus_visible(target: Locator) -> None:
    """The focused element shows it (WCAG 2.4.7): an outline or a shadow ring."""
    style = target.evaluate(
        """element => {
            const style = getComputedStyle(element);
            return {focused: element === document.activeElement,
                    outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0,
                    shadow: style.boxShadow !== 'none'};
        }"""
    )
    assert style["focused"], f"{target} does not have the focus"
    assert style["outline"] or style["shadow"], f"{target} has the focus but does not show it"


def tab_to(page: Page, target: Locator, *, most: int = 25) -> int:
    """Press Tab from where the focus is until `target` has it; returns how many presses.
    Fails if it is not reached within `most` presses (not keyboard-reachable)."""
    for presses in range(1, most + 1):
        page.keyboard.press("Tab")
        if is_focused(target):
            return presses
    raise AssertionError(f"{target} not reached with {most} presses of Tab")


def is_local(url: str) -> bool:
    """The app's own origin (or data in the page): what a page may load."""
    parts = urlsplit(url)
    return parts.scheme in ("data", "about", "blob") or parts.hostname in LOCAL_HOSTS


@dataclass
class BrowserProblems:
    """What went wrong in the browser during a test; the page fixture fails the test if
    anything is left here at its end (a test expecting a problem takes it out)."""

    found: list[str] = field(default_factory=list)
    documents: set[str] = field(default_factory=set)

    def console(self, message: ConsoleMessage) -> None:
        # Chromium reports CSP refusals ("Refused to load ...") as console errors too.
        if message.type != "error":
            return
        # Chromium asks for /favicon.ico on its own, at a moment of its choosing, and the
        # app has none (404): counting it would make tests pass or fail by timing.
        source = message.location.get("url", "")
        if urlsplit(source).path == "/favicon.ico":
            return
        if message.text.startswith("Failed to load resource") and not is_local(source):
            return  # already counted, as a request outside the app
        # A page answered with 4xx (a form shown again with its error) is logged as a
        # failed load; its status is the test's to check. A failed asset still counts.
        if message.text.startswith("Failed to load resource") and source in self.documents:
            return
        self.found.append(f"console error: {message.text} ({message.location})")

    def page_error(self, error: Error) -> None:
        self.found.append(f"uncaught exception: {error}")

    def response(self, response: Response) -> None:
        if response.status >= 500:
            self.found.append(f"server error: {response.status} for {response.url}")

    def request(self, request: Request) -> None:
        if request.resource_type == "document":
            self.documents.add(request.url)
        # Every asset from the app itself: no CDN, nothing else on the network.
        if not is_local(request.url):
            self.found.append(f"request outside the app: {request.method} {request.url}")

    def take(self, pattern: str) -> list[str]:
        """Remove and return the problems matching `pattern` (a regular expression)."""
        taken = [p for p in self.found if re.search(pattern, p)]
        self.found = [p for p in self.found if p not in taken]
        return taken


def sign_in(page: Page, base_url: str, username: str, password: str) -> None:
    """Sign in through the start page's form, as a person would; for tests of pages
    behind it (the session cookie then stays with the page's context)."""
    page.goto(base_url + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=f"Signed in as {username}")).to_be_visible()
