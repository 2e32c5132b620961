"""Clients without credentials, from the server's own machine or from elsewhere."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from grading_app.accounts import credentials, users
from grading_app.accounts.principal import Role
from grading_app.app import create_app
from grading_app.config import Settings
from grading_app.db import unit_of_work

PASSWORD = "a long enough password"
LOCAL = ("127.0.0.1", 50000)


@pytest.fixture
def make_client(sessions, database_url) -> Iterator[Callable[..., TestClient]]:
    """TestClients on one app and database (at head); none signed in."""
    application = create_app(Settings(database_url=database_url))
    opened: list[TestClient] = []

    def make(*, address: tuple[str, int] = LOCAL, base_url: str = "http://127.0.0.1") -> TestClient:
        client = TestClient(application, base_url=base_url, client=address)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def anonymous(make_client) -> TestClient:
    return make_client()


def add_user(client: TestClient, username: str, role: Role = Role.TEACHER) -> str:
    """A user made in the database directly; returns a token of theirs."""
    with unit_of_work(client.app.state.sessionmaker) as session:  # type: ignore[attr-defined]
        if users.any_user_exists(session):
            user = users.create_user(session, username=username, password=PASSWORD, role=role)
        else:
            user = users.create_first_admin(session, username=username, password=PASSWORD)
        return credentials.create_token(session, user, name="t").token


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> dict:
    response = client.post("/api/auth/sign-in", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


class Team:
    """An administrator (root), a batch owner (ana), a colleague her batches are shared
    with to view (vic) and one to edit (eddie), and another teacher (otto); each has a
    client sending their token. `none` sends nothing; `revoked` a revoked token of ana's."""

    ROLES = ("owner", "viewer", "editor", "other", "admin", "none", "revoked")

    def __init__(self, application) -> None:
        self.application = application
        self.tokens: dict[str, str] = {}
        probe = TestClient(application, base_url="http://127.0.0.1", client=LOCAL)
        for role, name, kind in (
            ("admin", "root", Role.ADMIN),
            ("owner", "ana", Role.TEACHER),
            ("viewer", "vic", Role.TEACHER),
            ("editor", "eddie", Role.TEACHER),
            ("other", "otto", Role.TEACHER),
        ):
            self.tokens[role] = add_user(probe, name, kind)
        revoked = self.as_role("owner").post("/api/tokens", json={"name": "old"}).json()
        self.as_role("owner").delete(f"/api/tokens/{revoked['id']}")
        self.tokens["revoked"] = revoked["token"]

    def as_role(self, role: str) -> TestClient:
        client = TestClient(self.application, base_url="http://127.0.0.1", client=LOCAL)
        if role in self.tokens:
            client.headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return client

    def shared_batch(self, **fields) -> str:
        """A batch of ana's with one job of two documents, shared with vic and eddie."""
        from tests.batches.helpers import batch_with_job

        owner = self.as_role("owner")
        batch_id, _ = batch_with_job(owner, **fields)
        for user, permission in (("vic", "view"), ("eddie", "edit")):
            response = owner.post(
                f"/api/batches/{batch_id}/shares", json={"user": user, "permission": permission}
            )
            assert response.status_code == 201, response.text
        return batch_id


@pytest.fixture
def team(sessions, database_url, provider_env, monkeypatch, tmp_path) -> Team:
    for key, value in provider_env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(database_url=database_url, upload_dir=tmp_path / "uploads")
    return Team(create_app(settings))


def browser_as(team: Team, username: str) -> TestClient:
    """A client signed in through the start page's form, as a browser is (cookie)."""
    client = team.as_role("none")
    response = client.post("/sign-in", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return client


def csrf_of(page: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def new_batch_form(page: str, **fields) -> dict:
    """What the new batch page posts: a name, a prompt and one model, with `fields`
    added or changed."""
    return {
        "csrf_token": csrf_of(page),
        "name": "Year 9 essays",
        "prompt": "Grade it.",
        "models": ["openai:gpt-4o-mini"],
        **fields,
    }


def edit_batch_form(page: str, *, fieldset: str, **fields) -> dict:
    """What the batch edit page posts with one of its fieldsets offered ("cost",
    "trust", "grading"): the batch's name and scheduling fields, with `fields` added
    or changed."""
    return {
        "csrf_token": csrf_of(page),
        "name": "Year 9 essays",
        "priority": "5",
        "tags": "",
        "max_retries": "3",
        f"{fieldset}_fields": "1",
        **fields,
    }
