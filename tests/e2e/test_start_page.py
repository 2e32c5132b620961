"""The start page in a real browser: the first run (create the administrator), signing
out and in, a wrong password, the keyboard alone; axe-core and screenshots of each state
at 1400×900 and 800×1000, and no console error or CSP refusal throughout."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import check_state
from tests.e2e.live_server import LiveServer

ADMIN = "head.teacher"
PASSWORD = "correct horse battery"


def signed_in_heading(page: Page, username: str = ADMIN):
    return page.get_by_role("heading", name=f"Signed in as {username}")


def test_first_run_creates_the_administrator_then_signs_out_and_in(
    page: Page, fresh_server: LiveServer
) -> None:
    page.goto(fresh_server.url + "/")
    expect(page.get_by_role("heading", name="Create the administrator")).to_be_visible()
    check_state(page, "start-01-create-administrator")

    page.get_by_label("Username").fill(ADMIN)
    page.get_by_label("Password", exact=False).first.fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create administrator").click()

    expect(signed_in_heading(page)).to_have_text(f"Signed in as {ADMIN} (administrator)")
    assert page.url == fresh_server.url + "/"
    check_state(page, "start-02-signed-in")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(signed_in_heading(page)).to_have_count(0)
    check_state(page, "start-03-sign-in")

    page.get_by_label("Username").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(signed_in_heading(page)).to_be_visible()


@pytest.fixture
def admin(server: LiveServer) -> str:
    server.add_user(ADMIN, PASSWORD)
    return ADMIN


def test_a_wrong_password_is_said_beside_the_form_keeping_the_username(
    page: Page, server: LiveServer, admin: str
) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Username").fill(admin)
    page.get_by_label("Password").fill("not the password at all")
    with page.expect_response(server.url + "/sign-in") as answer:
        page.get_by_role("button", name="Sign in").click()

    assert answer.value.status == 401

    form = page.locator("form[action='/sign-in']")
    expect(form.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Username")).to_have_value(admin)
    expect(page.get_by_label("Password")).to_have_value("")
    expect(signed_in_heading(page)).to_have_count(0)
    check_state(page, "start-04-wrong-password")
