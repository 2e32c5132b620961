"""Account and administration pages: password, tokens (shown once), users, the audit trail."""

from __future__ import annotations

import re

from tests.accounts.conftest import PASSWORD, browser_as, csrf_of


def test_a_token_is_shown_once_and_can_be_revoked(team):
    ana = browser_as(team, "ana")
    page = ana.get("/account").text
    created = ana.post("/account/tokens", data={"csrf_token": csrf_of(page), "name": "laptop"})
    assert created.status_code == 201
    token = re.search(r'id="new-token" readonly value="(gat_[^"]+)"', created.text).group(1)
    assert (
        team.as_role("none")
        .get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        .status_code
        == 200
    )
    later = ana.get("/account").text
    assert token not in later and "laptop" in later
    token_id = re.search(r'action="/account/tokens/([^/]+)/revoke"', later).group(1)
    ana.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_of(later)})
    assert (
        team.as_role("none")
        .get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        .status_code
        == 401
    )


def test_changing_the_password_says_what_is_wrong(team):
    ana = browser_as(team, "ana")
    page = ana.get("/account").text
    wrong = ana.post(
        "/account/password",
        data={
            "csrf_token": csrf_of(page),
            "current_password": "not it",
            "new_password": "a brand new password",
            "new_password_again": "a brand new password",
        },
    )
    assert wrong.status_code == 400 and 'id="current_password-error"' in wrong.text
    done = ana.post(
        "/account/password",
        data={
            "csrf_token": csrf_of(page),
            "current_password": PASSWORD,
            "new_password": "a brand new password",
            "new_password_again": "a brand new password",
        },
    )
    assert "Password changed" in done.text
    _browser_ok = team.as_role("none").post(
        "/sign-in", data={"username": "ana", "password": "a brand new password"}
    )
    assert "Signed in as ana" in _browser_ok.text


def test_administrators_manage_users_and_read_the_audit_trail(team):
    root = browser_as(team, "root")
    page = root.get("/admin/users").text
    assert "eddie" in page and "Users" in page
    made = root.post(
        "/admin/users",
        data={
            "csrf_token": csrf_of(page),
            "username": "newbie",
            "password": PASSWORD,
            "role": "teacher",
        },
    )
    assert "User newbie created" in made.text
    weak = root.post(
        "/admin/users", data={"csrf_token": csrf_of(page), "username": "weak", "password": "x"}
    )
    assert (
        weak.status_code == 400
        and 'id="password-error"' in weak.text
        and 'value="weak"' in weak.text
    )
    newbie = re.search(r'<label for="role-([0-9a-f-]+)">Role of newbie', made.text)
    assert newbie
    root.post(
        f"/admin/users/{newbie.group(1)}",
        data={"csrf_token": csrf_of(page), "new_password": "reset password 123"},
    )
    signed = team.as_role("none").post(
        "/sign-in", data={"username": "newbie", "password": "reset password 123"}
    )
    assert "Signed in as newbie" in signed.text
    trail = root.get("/admin/audit", params={"actor": "root"}).text
    assert "create user" in trail and "reset password" in trail


def test_teachers_are_kept_out_of_administration(team):
    ana = browser_as(team, "ana")
    assert ana.get("/admin/users").status_code == 403
    assert ana.get("/admin/audit").status_code == 403
    assert 'href="/admin/users"' not in ana.get("/dashboard").text


def test_the_providers_page_shows_configuration_never_keys_and_checks(team):
    ana = browser_as(team, "ana")
    page = ana.get("/providers")
    assert page.status_code == 200
    assert "OPENAI_API_KEY" in page.text and "sk-test-openai" not in page.text
    assert "Check OpenAI" not in page.text  # administrators only
    assert "openai:gpt-4o-mini" in page.text  # the price table
    root = browser_as(team, "root")
    listing = root.get("/providers").text
    checked = root.post("/providers/openai/check", data={"csrf_token": csrf_of(listing)})
    assert checked.status_code == 200
    assert re.search(r'role="status" class="ok">OK: ', checked.text), checked.text[-2000:]
    refused = ana.post("/providers/openai/check", data={"csrf_token": csrf_of(page.text)})
    assert "Only an administrator" in refused.text


def test_an_administrator_edits_the_price_table_and_a_teacher_reads_it(team):
    root = browser_as(team, "root")
    page = root.get("/providers").text
    assert 'aria-label="Input of openai:gpt-4o"' in page and "Add the price" in page
    token = csrf_of(page)
    form = {"csrf_token": token, "form": "openai:gpt-4o", "provider": "openai"}
    figures = {"input_per_million": "-2", "output_per_million": "ten", "model": "gpt-4o"}
    refused = root.post("/providers/prices", data={**form, **figures})
    assert refused.status_code == 400
    # Each error beside its field, and what was entered kept.
    assert re.search(r'id="price-\d+-input_per_million-error">[^<]*0 or more', refused.text)
    assert re.search(r'id="price-\d+-output_per_million-error">enter a number', refused.text)
    assert 'value="ten"' in refused.text

    figures = {"model": "gpt-4o", "input_per_million": "1", "output_per_million": "4"}
    saved = root.post("/providers/prices", data={**form, **figures, "batch_discount": "0.5"})
    assert saved.status_code == 200 and "Price of openai:gpt-4o saved" in saved.text
    assert "Remove the administrator's price of openai:gpt-4o" in saved.text
    new = {"csrf_token": token, "form": "new", "provider": "ollama", "model": "*"}
    added = root.post(
        "/providers/prices", data={**new, "input_per_million": "0", "output_per_million": "0"}
    )
    assert "<code>ollama:*</code>" in added.text

    ana = browser_as(team, "ana")
    read = ana.get("/providers").text
    assert "<code>openai:gpt-4o</code>" in read and "Add the price" not in read
    assert 'aria-label="Input of openai:gpt-4o"' not in read
    teacher_form = {**form, "csrf_token": csrf_of(read), **figures}
    assert ana.post("/providers/prices", data=teacher_form).status_code == 403

    removed = root.post(
        "/providers/prices/remove",
        data={"csrf_token": token, "provider": "openai", "model": "gpt-4o"},
    )
    assert "the default applies" in removed.text
    assert "Remove the administrator's price of openai:gpt-4o" not in removed.text
