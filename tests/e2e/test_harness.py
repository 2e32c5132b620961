"""The browser-test harness catches what it is there to catch: an accessibility violation,
a Content-Security-Policy refusal, a request that leaves the app; and it serves the app."""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import Page

from tests.e2e.browser import BrowserProblems, check_accessibility, screenshot
from tests.e2e.live_server import LiveServer

ONE_PIXEL_GIF = "data:image/gif;base64,R0lGODlhAQABAAAAACwAAAAAAQABAAACAA=="


def test_the_live_server_is_the_real_app_on_a_current_database(server: LiveServer) -> None:
    with urllib.request.urlopen(server.url + "/health") as response:
        health = json.load(response)
    assert health["status"] == "ok"
    assert health["schema_current"] is True
    assert server.url.startswith("http://127.0.0.1:")


def test_an_image_without_a_text_alternative_fails_the_accessibility_check(page: Page) -> None:
    page.set_content(
        f'<!doctype html><html lang="en"><title>t</title><main><img src="{ONE_PIXEL_GIF}">'
        "</main></html>"
    )
    with pytest.raises(AssertionError, match=r"image-alt \(critical\).*; at img"):
        check_accessibility(page)


def test_a_script_the_policy_refuses_is_a_problem(
    page: Page, server: LiveServer, browser_problems: BrowserProblems
) -> None:
    page.goto(server.url + "/")
    with page.expect_console_message(lambda message: "Content Security Policy" in message.text):
        page.evaluate(
            """() => {
                const script = document.createElement('script');
                script.textContent = 'window.ran = true';
                document.body.append(script);
            }"""
        )
    assert page.evaluate("() => window.ran") is None
    assert browser_problems.take("inline script violates .*Content Security Policy"), (
        browser_problems.found
    )


def test_a_request_outside_the_app_is_refused_and_a_problem(
    page: Page, browser_problems: BrowserProblems
) -> None:
    outcome = page.evaluate(
        "() => fetch('https://cdn.example.org/library.js').then(() => 'loaded', () => 'refused')"
    )
    assert outcome == "refused"
    assert browser_problems.take(r"request outside the app: GET https://cdn\.example\.org/")


def test_screenshots_are_named_by_state_and_size(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    path = screenshot(page, "harness start page")
    assert path.name == "harness-start-page-1400x900.png"
    assert path.read_bytes().startswith(b"\x89PNG")
