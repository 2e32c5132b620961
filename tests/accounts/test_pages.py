"""The start page's forms: create the administrator on a fresh install, sign in, sign out."""

from __future__ import annotations

from tests.accounts.conftest import PASSWORD, add_user


def test_the_first_visit_creates_the_administrator(anonymous):
    page = anonymous.get("/")
    assert "Create the administrator" in page.text and 'action="/setup"' in page.text

    mismatch = anonymous.post(
        "/setup", data={"username": "head", "password": PASSWORD, "password_again": "other"}
    )
    assert mismatch.status_code == 400
    assert "The two passwords differ" in mismatch.text and 'value="head"' in mismatch.text

    made = anonymous.post(
        "/setup",
        data={"username": "head", "password": PASSWORD, "password_again": PASSWORD},
        follow_redirects=False,
    )
    assert made.status_code == 303 and "HttpOnly" in made.headers["set-cookie"]
    home = anonymous.get("/")
    assert "Signed in as head (administrator)" in home.text
    assert anonymous.get("/api/auth/me").json()["user"]["role"] == "admin"


def test_setup_is_not_offered_to_another_machine(make_client):
    remote = make_client(address=("192.0.2.7", 40000))
    page = remote.get("/")
    assert 'action="/setup"' not in page.text
    assert "grading-app users create-admin" in page.text
    refused = remote.post(
        "/setup", data={"username": "eve", "password": PASSWORD, "password_again": PASSWORD}
    )
    assert refused.status_code == 403


def test_sign_in_and_out_with_the_forms(anonymous, make_client):
    add_user(anonymous, "ana")
    wrong = anonymous.post("/sign-in", data={"username": "ana", "password": "nope"})
    assert wrong.status_code == 401
    assert "Wrong username or password" in wrong.text and 'value="ana"' in wrong.text

    anonymous.post("/sign-in", data={"username": "ana", "password": PASSWORD})
    home = anonymous.get("/")
    assert "Signed in as ana" in home.text
    cookie = anonymous.cookies.get("grading_session")

    forged = anonymous.post("/sign-out", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    token = home.text.split('name="csrf_token" value="')[1].split('"')[0]
    anonymous.post("/sign-out", data={"csrf_token": token})
    assert "Sign in" in anonymous.get("/").text
    replay = make_client()
    replay.cookies.set("grading_session", cookie)
    assert replay.get("/api/auth/me").status_code == 401


def test_a_cross_site_sign_in_form_is_refused(anonymous):
    add_user(anonymous, "ana")
    response = anonymous.post(
        "/sign-in",
        data={"username": "ana", "password": PASSWORD},
        headers={"Origin": "http://evil.example"},
    )
    assert response.status_code == 403
    assert anonymous.cookies.get("grading_session") is None


def test_user_text_on_the_page_is_escaped(anonymous):
    response = anonymous.post("/sign-in", data={"username": "<script>x</script>", "password": "p"})
    assert "<script>x</script>" not in response.text and "&lt;script&gt;" in response.text
