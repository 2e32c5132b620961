"""Access tokens, user administration, passwords, the audit trail, cross-site writes."""

from __future__ import annotations

import logging

from tests.accounts.conftest import PASSWORD, add_user, sign_in


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_is_shown_once_works_and_stops_when_revoked(anonymous, caplog):
    caplog.set_level(logging.DEBUG)
    first = add_user(anonymous, "ana")
    created = anonymous.post("/api/tokens", json={"name": "laptop"}, headers=_bearer(first))
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("gat_") and len(token) > 40

    assert anonymous.get("/api/batches", headers=_bearer(token)).status_code == 200
    listed = anonymous.get("/api/tokens", headers=_bearer(token))
    assert token not in listed.text and first not in listed.text
    laptop = next(t for t in listed.json() if t["name"] == "laptop")
    assert token.startswith(laptop["prefix"]) and laptop["last_used_at"] is not None

    revoked = anonymous.delete(f"/api/tokens/{laptop['id']}", headers=_bearer(first))
    assert revoked.status_code == 204
    after = anonymous.get("/api/batches", headers=_bearer(token))
    assert after.status_code == 401 and "revoked" in after.json()["detail"]
    assert token not in caplog.text and first not in caplog.text


def test_a_token_of_someone_else_cannot_be_revoked(anonymous):
    admin = add_user(anonymous, "root")
    ana = add_user(anonymous, "ana")
    ana_token_id = anonymous.get("/api/tokens", headers=_bearer(ana)).json()[0]["id"]
    bob = add_user(anonymous, "bob")
    assert anonymous.delete(f"/api/tokens/{ana_token_id}", headers=_bearer(bob)).status_code == 404
    assert (
        anonymous.delete(f"/api/tokens/{ana_token_id}", headers=_bearer(admin)).status_code == 204
    )


def test_a_malformed_authorization_header_is_a_401_saying_the_form(anonymous):
    add_user(anonymous, "ana")
    for header in ("Basic abc", "Bearer", "Bearer gat_unknown"):
        response = anonymous.get("/api/batches", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_only_admins_manage_users(anonymous):
    admin = add_user(anonymous, "root")
    teacher = add_user(anonymous, "ana")
    assert anonymous.get("/api/users", headers=_bearer(teacher)).status_code == 403
    new = {"username": "bob", "password": PASSWORD, "role": "teacher"}
    assert anonymous.post("/api/users", json=new, headers=_bearer(teacher)).status_code == 403
    created = anonymous.post("/api/users", json=new, headers=_bearer(admin))
    assert created.status_code == 201 and created.json()["role"] == "teacher"
    assert anonymous.post("/api/users", json=new, headers=_bearer(admin)).status_code == 409
    sign_in(anonymous, "bob")


def test_the_last_admin_cannot_be_demoted(anonymous):
    admin = add_user(anonymous, "root")
    me = anonymous.get("/api/auth/me", headers=_bearer(admin)).json()["user"]
    response = anonymous.patch(
        f"/api/users/{me['id']}", json={"role": "teacher"}, headers=_bearer(admin)
    )
    assert response.status_code == 409 and "only active administrator" in response.json()["detail"]


def test_an_admin_reset_ends_the_users_sessions(anonymous, make_client):
    admin = add_user(anonymous, "root")
    add_user(anonymous, "ana")
    browser = make_client()
    sign_in(browser, "ana")
    ana = next(
        u
        for u in anonymous.get("/api/users", headers=_bearer(admin)).json()
        if u["username"] == "ana"
    )
    reset = anonymous.post(
        f"/api/users/{ana['id']}/password",
        json={"new_password": "another long password"},
        headers=_bearer(admin),
    )
    assert reset.status_code == 204
    assert browser.get("/api/batches").status_code == 401
    sign_in(browser, "ana", "another long password")


def test_changing_your_password_keeps_this_session_and_ends_the_others(make_client):
    here, there = make_client(), make_client()
    add_user(here, "ana")
    session = sign_in(here, "ana")
    sign_in(there, "ana")
    wrong = here.post(
        "/api/account/password",
        json={"current_password": "not it", "new_password": "a brand new password"},
        headers={"X-CSRF-Token": session["csrf_token"]},
    )
    assert wrong.status_code == 400 and "current_password" in wrong.json()["detail"]
    changed = here.post(
        "/api/account/password",
        json={"current_password": PASSWORD, "new_password": "a brand new password"},
        headers={"X-CSRF-Token": session["csrf_token"]},
    )
    assert changed.status_code == 204
    assert here.get("/api/batches").status_code == 200
    assert there.get("/api/batches").status_code == 401


def test_the_audit_trail_records_who_did_what_for_admins_only(anonymous):
    admin = add_user(anonymous, "root")
    teacher = add_user(anonymous, "ana")
    anonymous.post(
        "/api/users", json={"username": "bob", "password": PASSWORD}, headers=_bearer(admin)
    )
    assert anonymous.get("/api/audit", headers=_bearer(teacher)).status_code == 403
    events = anonymous.get("/api/audit?action=create_user", headers=_bearer(admin)).json()
    assert events["total"] == 1
    assert events["items"][0]["actor"] == "root" and events["items"][0]["detail"] == {
        "role": "teacher"
    }


def test_a_cross_site_write_is_refused_even_with_credentials(anonymous):
    token = add_user(anonymous, "ana")
    evil = {"Origin": "http://evil.example", **_bearer(token)}
    refused = anonymous.post("/api/batches", json={"name": "x"}, headers=evil)
    assert refused.status_code == 403 and "Cross-site" in refused.json()["detail"]
    fetch = {"Sec-Fetch-Site": "cross-site", **_bearer(token)}
    assert anonymous.post("/api/batches", json={"name": "x"}, headers=fetch).status_code == 403
    own = {"Origin": "http://127.0.0.1", **_bearer(token)}
    assert anonymous.post("/api/batches", json={"name": "x"}, headers=own).status_code == 201
    # Reads are not writes: a cross-site GET is answered (and cannot carry the token).
    assert anonymous.get("/api/batches", headers=evil).status_code == 200


def test_a_cross_site_form_post_with_only_the_cookie_starts_nothing(anonymous):
    """The attack of the issue: another site posts a form to start paid grading."""
    add_user(anonymous, "ana")
    sign_in(anonymous, "ana")
    # No Origin (an old browser), no CSRF token: the cookie alone is not enough.
    response = anonymous.post("/api/batches", data={"name": "x", "start": "true"})
    assert response.status_code == 403
