"""The start page in a real browser: the first run (create the administrator), signing
out and in, a wrong password, the keyboard alone; axe-core and screenshots of each state
at 1400×900 and 800×1000, and no console error or CSP refusal throughout."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser import (
    TABLET,
    assert_focus_visible,
    check_state,
    is_focused,
    sign_in,
    tab_to,
)
from tests.e2e.live_server import LiveServer

ADMIN = "head.teacher"
PASSWORD = "correct horse battery"


def signed_in_heading(page: Page, username: str = ADMIN) -> Locator:
    return page.get_by_role("heading", name=f"Signed in as {username}")


def card_sign_out(page: Page) -> Locator:
    """The Sign out button, in the header of every page once signed in."""
    return page.get_by_role("banner").get_by_role("button", name="Sign out")


def test_first_run_creates_the_administrator_then_signs_out_and_in(
    page: Page, fresh_server: LiveServer
) -> None:
    page.goto(fresh_server.url + "/")
    expect(page.get_by_role("heading", name="Create the administrator")).to_be_visible()
    check_state(page, "start-01-create-administrator")

    page.get_by_label("Username").fill(ADMIN)
    page.get_by_label("Password (at least 10 characters)").fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create administrator").click()

    expect(signed_in_heading(page)).to_have_text(f"Signed in as {ADMIN} (administrator)")
    expect(page).to_have_url(fresh_server.url + "/")
    sign_out = card_sign_out(page)
    csrf = sign_out.locator("xpath=ancestor::form").locator("input[type=hidden][name=csrf_token]")
    expect(csrf).to_have_attribute("value", re.compile(r"\S{16,}"))
    check_state(page, "start-02-signed-in")

    sign_out.click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(signed_in_heading(page)).to_have_count(0)
    check_state(page, "start-03-sign-in")

    sign_in(page, fresh_server.url, ADMIN, PASSWORD)


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


def press_tab_to_next(page: Page, target: Locator) -> None:
    """One press of Tab must move the focus to `target`, visibly."""
    page.keyboard.press("Tab")
    assert is_focused(target), f"Tab did not move the focus to {target}"
    assert_focus_visible(target)


def test_the_keyboard_alone_sets_up_signs_out_and_signs_in(
    page: Page, fresh_server: LiveServer
) -> None:
    page.goto(fresh_server.url + "/")
    username = page.get_by_label("Username")
    tab_to(page, username)
    assert_focus_visible(username)
    page.keyboard.type(ADMIN)
    press_tab_to_next(page, page.get_by_label("Password (at least 10 characters)"))
    page.keyboard.type(PASSWORD)
    press_tab_to_next(page, page.get_by_label("Password again"))
    page.keyboard.type(PASSWORD)
    press_tab_to_next(page, page.get_by_role("button", name="Create administrator"))
    page.keyboard.press("Enter")
    expect(signed_in_heading(page)).to_be_visible()

    sign_out = card_sign_out(page)
    tab_to(page, sign_out)
    assert_focus_visible(sign_out)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    tab_to(page, page.get_by_label("Username"))
    page.keyboard.type(ADMIN)
    press_tab_to_next(page, page.get_by_label("Password"))
    page.keyboard.type(PASSWORD)
    press_tab_to_next(page, page.get_by_role("button", name="Sign in"))
    page.keyboard.press("Enter")
    expect(signed_in_heading(page)).to_be_visible()


@pytest.mark.parametrize("page", [TABLET], indirect=True, ids=["800x1000"])
def test_differing_passwords_are_refused_at_tablet_width_keeping_the_username(
    page: Page, fresh_server: LiveServer
) -> None:
    assert page.viewport_size == TABLET
    page.goto(fresh_server.url + "/")
    page.get_by_label("Username").fill(ADMIN)
    page.get_by_label("Password (at least 10 characters)").fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD + " but different")
    with page.expect_response(fresh_server.url + "/setup") as answer:
        page.get_by_role("button", name="Create administrator").click()

    assert answer.value.status == 400
    form = page.locator("form[action='/setup']")
    expect(form.get_by_role("alert")).to_have_text("The two passwords differ")
    expect(page.get_by_label("Username")).to_have_value(ADMIN)
    expect(page.get_by_role("heading", name="Create the administrator")).to_be_visible()
    check_state(page, "start-05-passwords-differ")
