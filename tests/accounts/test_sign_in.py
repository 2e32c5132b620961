"""First-run setup, sign-in, sessions, CSRF, throttling, sign-out (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import User, UserSession
from tests.accounts.conftest import PASSWORD, add_user, sign_in


def test_a_fresh_install_asks_for_the_administrator_and_serves_nothing_else(anonymous):
    refused = anonymous.get("/api/batches")
    assert refused.status_code == 401
    assert "grading-app users create-admin" in refused.json()["detail"]
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.get("/api/auth/setup").json() == {
        "setup_required": True,
        "setup_allowed_here": True,
    }


def test_setup_creates_the_admin_once_and_signs_them_in(anonymous, make_client):
    created = anonymous.post("/api/auth/setup", json={"username": "Ana", "password": PASSWORD})
    assert created.status_code == 201, created.text
    assert created.json()["user"]["username"] == "ana"
    assert created.json()["user"]["role"] == "admin"
    cookie = created.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert anonymous.get("/api/batches").status_code == 200  # the cookie signs in

    again = make_client().post("/api/auth/setup", json={"username": "bob", "password": PASSWORD})
    assert again.status_code == 409
    assert make_client().get("/api/auth/setup").json()["setup_required"] is False


def test_setup_is_refused_from_another_machine(make_client):
    remote = make_client(address=("192.0.2.7", 40000))
    refused = remote.post("/api/auth/setup", json={"username": "eve", "password": PASSWORD})
    assert refused.status_code == 403
    assert "grading-app users create-admin" in refused.json()["detail"]
    assert remote.get("/api/auth/setup").json()["setup_allowed_here"] is False


def test_passwords_are_stored_as_argon2id_hashes(anonymous, sessions):
    add_user(anonymous, "ana")
    with unit_of_work(sessions) as session:
        stored = session.scalar(sa.select(User.password_hash))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_a_weak_password_is_refused_saying_why(anonymous):
    response = anonymous.post("/api/auth/setup", json={"username": "ana", "password": "short"})
    assert response.status_code == 400
    assert "at least 10 characters" in response.json()["detail"]


def test_a_cookie_write_needs_the_csrf_token(anonymous):
    add_user(anonymous, "ana")
    session = sign_in(anonymous, "ana")
    without = anonymous.post("/api/batches", json={"name": "Year 9"})
    assert without.status_code == 403 and "X-CSRF-Token" in without.json()["detail"]
    wrong = anonymous.post("/api/batches", json={"name": "Year 9"}, headers={"X-CSRF-Token": "x"})
    assert wrong.status_code == 403
    right = anonymous.post(
        "/api/batches", json={"name": "Year 9"}, headers={"X-CSRF-Token": session["csrf_token"]}
    )
    assert right.status_code == 201, right.text
    assert anonymous.get("/api/auth/me").json()["csrf_token"] == session["csrf_token"]


def test_sign_out_ends_the_session_on_the_server(anonymous, make_client):
    add_user(anonymous, "ana")
    session = sign_in(anonymous, "ana")
    stolen = anonymous.cookies.get("grading_session")
    out = anonymous.post("/api/auth/sign-out", headers={"X-CSRF-Token": session["csrf_token"]})
    assert out.status_code == 204
    replay = make_client()
    replay.cookies.set("grading_session", stolen)
    assert replay.get("/api/batches").status_code == 401


def test_signing_in_replaces_the_session_the_browser_came_with(anonymous, sessions):
    """Session fixation: a cookie planted before sign-in is worth nothing after it."""
    add_user(anonymous, "ana")
    sign_in(anonymous, "ana")
    planted = anonymous.cookies.get("grading_session")
    sign_in(anonymous, "ana")
    assert anonymous.cookies.get("grading_session") != planted
    with unit_of_work(sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(UserSession)) == 1


def test_a_forged_cookie_is_refused(anonymous):
    add_user(anonymous, "ana")
    sign_in(anonymous, "ana")
    secret, _, _ = anonymous.cookies.get("grading_session").partition(".")
    anonymous.cookies.clear()
    anonymous.cookies.set("grading_session", f"{secret}.forged")
    assert anonymous.get("/api/batches").status_code == 401


def test_wrong_password_and_unknown_user_read_the_same(anonymous):
    add_user(anonymous, "ana")
    wrong = anonymous.post("/api/auth/sign-in", json={"username": "ana", "password": "nope"})
    unknown = anonymous.post("/api/auth/sign-in", json={"username": "zed", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "Wrong username or password"}


def test_repeated_failures_lock_the_account_whether_or_not_it_exists(anonymous):
    add_user(anonymous, "ana")
    for name in ("ana", "zed"):
        for _ in range(5):
            anonymous.post("/api/auth/sign-in", json={"username": name, "password": "nope"})
    locked = anonymous.post("/api/auth/sign-in", json={"username": "ana", "password": PASSWORD})
    ghost = anonymous.post("/api/auth/sign-in", json={"username": "zed", "password": PASSWORD})
    assert locked.status_code == ghost.status_code == 429
    assert locked.json()["detail"].split(":")[0] == ghost.json()["detail"].split(":")[0]
    assert int(locked.headers["retry-after"]) > 0


def test_failures_from_one_address_lock_that_address(make_client):
    other = make_client(address=("192.0.2.9", 1234))
    add_user(other, "ana")
    attacker = make_client(address=("192.0.2.66", 1234))
    for number in range(20):  # a different name each time: no account lock
        attacker.post("/api/auth/sign-in", json={"username": f"u{number}", "password": "nope"})
    blocked = attacker.post("/api/auth/sign-in", json={"username": "ana", "password": PASSWORD})
    assert blocked.status_code == 429
    sign_in(other, "ana")  # someone else, elsewhere, is not affected


def test_cookies_are_secure_behind_https(make_client):
    client = make_client(base_url="https://127.0.0.1")
    add_user(client, "ana")
    response = client.post("/api/auth/sign-in", json={"username": "ana", "password": PASSWORD})
    assert "Secure" in response.headers["set-cookie"]


def test_a_deactivated_user_is_signed_out_everywhere(anonymous, make_client):
    admin = make_client()
    admin.headers["Authorization"] = f"Bearer {add_user(admin, 'root')}"
    token = add_user(anonymous, "ana")
    sign_in(anonymous, "ana")
    ana_id = next(u["id"] for u in admin.get("/api/users").json() if u["username"] == "ana")
    assert admin.patch(f"/api/users/{ana_id}", json={"is_active": False}).status_code == 200
    assert anonymous.get("/api/batches").status_code == 401
    bearer = make_client()
    assert (
        bearer.get("/api/batches", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )


def test_an_expired_session_is_refused(anonymous, sessions):
    add_user(anonymous, "ana")
    sign_in(anonymous, "ana")
    with unit_of_work(sessions) as session:
        session.execute(sa.update(UserSession).values(expires_at=datetime(2000, 1, 1)))
    response = anonymous.get("/api/batches")
    assert response.status_code == 401 and "sign in again" in response.json()["detail"]
