"""Every API route, asked by each kind of user, answers what access control says.

Roles: the item's owner (ana), a colleague it is shared with to view (vic) and to edit
(eddie), another teacher (otto), an administrator, no credentials, and a revoked token.
"Allowed" means the request got past access control: any answer but 401, 403 and 404
(a 409 for a state that does not allow the action is fine), and never a 5xx.

A route missing from ROUTES fails the test: a new route must say who may use it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from grading_app.app import create_app
from grading_app.config import Settings
from tests.accounts.conftest import PASSWORD, Team

ALLOWED = "allowed"
ESSAY = [("files", ("essay.txt", b"An essay about rivers and towns.", "text/plain"))]
SCHEME = [("file", ("scheme.txt", b"Content 10 points. Style 10 points.", "text/plain"))]


def expected(need: str, role: str) -> int | str:
    """What `role` gets from a route that needs `need`."""
    if need == "public":
        return ALLOWED
    if role in ("none", "revoked"):
        return 401
    if need == "signed_in":
        return ALLOWED
    if need == "admin":
        return ALLOWED if role == "admin" else 403
    if need == "mine":  # a private item of ana's: nobody else even sees it
        return ALLOWED if role in ("owner", "admin") else 404
    levels = {"owner": 3, "admin": 3, "editor": 2, "viewer": 1, "other": 0}
    required = {"view": 1, "edit": 2, "own": 3}[need]
    if levels[role] == 0:
        return 404
    return ALLOWED if levels[role] >= required else 403


class World:
    """Items of ana's the requests name; `fresh` ones are made anew for each request
    (those a request deletes)."""

    def __init__(self, team: Team) -> None:
        self.team = team
        self.ana = team.as_role("owner")
        self._batch: str | None = None

    def new_batch(self) -> str:
        return self.team.shared_batch()

    def batch(self) -> str:
        if self._batch is None:
            self._batch = self.new_batch()
        return self._batch

    def job(self, batch_id: str | None = None) -> str:
        batch_id = batch_id or self.batch()
        return self.ana.get(f"/api/batches/{batch_id}/jobs").json()["items"][0]["id"]

    def submission(self, batch_id: str | None = None) -> str:
        job = self.job(batch_id)
        return self.ana.get(f"/api/jobs/{job}/submissions").json()["items"][0]["id"]

    def prompt(self) -> str:
        body = {"name": f"P {uuid.uuid4()}", "prompt_text": "Grade it."}
        return self.ana.post("/api/prompts", json=body).json()["id"]

    def scheme(self) -> str:
        body = {"name": f"S {uuid.uuid4()}", "content": "Content 10 points."}
        return self.ana.post("/api/marking-schemes", json=body).json()["id"]

    def template(self) -> str:
        body = {"name": f"T {uuid.uuid4()}", "is_public": False}
        return self.ana.post("/api/templates", json=body).json()["id"]

    def token(self) -> str:
        return self.ana.post("/api/tokens", json={"name": "spare"}).json()["id"]

    def user(self) -> str:
        admin = self.team.as_role("admin")
        body = {"username": f"u{uuid.uuid4().hex[:10]}", "password": PASSWORD}
        return admin.post("/api/users", json=body).json()["id"]


@dataclass(frozen=True)
class Route:
    need: str
    # World -> (path, keyword arguments of the request)
    make: Callable[[World], tuple[str, dict[str, Any]]]
    fresh: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def at(template: str, **kwargs: Any) -> Callable[[World], tuple[str, dict[str, Any]]]:
    """A path whose {placeholders} name World items (batch, job, submission, ...)."""

    def make(world: World) -> tuple[str, dict[str, Any]]:
        names = {
            name: getattr(world, kind)()
            for name, kind in PLACEHOLDERS.items()
            if "{" + name + "}" in template
        }
        return template.format(**names), kwargs

    return make


PLACEHOLDERS = {
    "batch_id": "batch",
    "job_id": "job",
    "submission_id": "submission",
    "prompt_id": "prompt",
    "scheme_id": "scheme",
    "template_id": "template",
    "token_id": "token",
    "user_id": "user",
}


def fresh_batch_path(suffix: str = "", **kwargs: Any) -> Callable[[World], tuple[str, dict]]:
    def make(world: World) -> tuple[str, dict[str, Any]]:
        return f"/api/batches/{world.new_batch()}{suffix}", kwargs

    return make


def fresh_submission(world: World) -> tuple[str, dict[str, Any]]:
    return f"/api/submissions/{world.submission(world.new_batch())}", {}


def _unique(prefix: str) -> Callable[[World], tuple[str, dict[str, Any]]]:
    def make(world: World) -> tuple[str, dict[str, Any]]:
        return prefix, {"json": {"name": f"T {uuid.uuid4()}"}}

    return make


def _new_user(world: World) -> tuple[str, dict[str, Any]]:
    return "/api/users", {"json": {"username": f"n{uuid.uuid4().hex[:10]}", "password": PASSWORD}}


B = "/api/batches/{batch_id}"
J = "/api/jobs/{job_id}"
ROUTES: dict[tuple[str, str], Route] = {
    # accounts
    ("GET", "/api/auth/setup"): Route("public", at("/api/auth/setup")),
    ("POST", "/api/auth/setup"): Route(
        "public", at("/api/auth/setup", json={"username": "late", "password": PASSWORD})
    ),
    ("POST", "/api/auth/sign-in"): Route(
        "public", at("/api/auth/sign-in", json={"username": "ana", "password": PASSWORD})
    ),
    ("POST", "/api/auth/sign-out"): Route("signed_in", at("/api/auth/sign-out")),
    ("GET", "/api/auth/me"): Route("signed_in", at("/api/auth/me")),
    ("POST", "/api/account/password"): Route(
        "signed_in",
        at("/api/account/password", json={"current_password": "x", "new_password": PASSWORD}),
    ),
    ("GET", "/api/tokens"): Route("signed_in", at("/api/tokens")),
    ("POST", "/api/tokens"): Route("signed_in", at("/api/tokens", json={"name": "t"})),
    ("DELETE", "/api/tokens/{token_id}"): Route("mine", at("/api/tokens/{token_id}")),
    ("GET", "/api/users"): Route("admin", at("/api/users")),
    ("POST", "/api/users"): Route("admin", _new_user),
    ("PATCH", "/api/users/{user_id}"): Route(
        "admin", at("/api/users/{user_id}", json={"display_name": "Renamed"})
    ),
    ("POST", "/api/users/{user_id}/password"): Route(
        "admin", at("/api/users/{user_id}/password", json={"new_password": "a new password!"})
    ),
    ("GET", "/api/audit"): Route("admin", at("/api/audit")),
    # batches
    ("GET", "/api/batches"): Route("signed_in", at("/api/batches")),
    ("POST", "/api/batches"): Route("signed_in", at("/api/batches", json={"name": "Mine"})),
    ("POST", "/api/batches/bulk"): Route(
        "signed_in",
        lambda w: (
            "/api/batches/bulk",
            {"json": {"action": "add_tags", "tags": ["x"], "ids": [w.batch()]}},
        ),
    ),
    ("POST", "/api/batches/estimate"): Route(
        "signed_in",
        at("/api/batches/estimate", files=ESSAY, data={"models": "openai:m1", "prompt": "Go"}),
    ),
    ("GET", B): Route("view", at(B)),
    ("PATCH", B): Route("edit", at(B, json={"description": "Changed"})),
    ("DELETE", B): Route("own", fresh_batch_path(), fresh=True),
    ("POST", B + "/duplicate"): Route("view", at(B + "/duplicate")),
    ("GET", B + "/jobs"): Route("view", at(B + "/jobs")),
    ("GET", B + "/provider-batches"): Route("view", at(B + "/provider-batches")),
    ("GET", B + "/estimate"): Route("view", at(B + "/estimate")),
    ("POST", B + "/jobs"): Route("edit", at(B + "/jobs", files=ESSAY)),
    **{
        ("POST", f"{B}/{verb}"): Route("edit", at(f"{B}/{verb}"))
        for verb in ("start", "pause", "resume", "cancel", "retry-failed", "archive")
    },
    ("GET", B + "/shares"): Route("view", at(B + "/shares")),
    ("POST", B + "/shares"): Route(
        "own", fresh_batch_path("/shares", json={"user": "otto"}), fresh=True
    ),
    ("DELETE", B + "/shares/{username}"): Route("own", fresh_batch_path("/shares/vic"), fresh=True),
    ("GET", B + "/analytics"): Route("view", at(B + "/analytics")),
    ("GET", B + "/export"): Route("view", at(B + "/export", params={"format": "csv"})),
    # jobs and documents
    ("GET", J): Route("view", at(J)),
    ("GET", J + "/submissions"): Route("view", at(J + "/submissions")),
    ("POST", J + "/submissions"): Route("edit", at(J + "/submissions", files=ESSAY)),
    **{
        ("POST", f"{J}/{verb}"): Route("edit", at(f"{J}/{verb}"))
        for verb in ("pause", "resume", "cancel", "retry-failed")
    },
    ("GET", J + "/analytics"): Route("view", at(J + "/analytics")),
    ("GET", J + "/export"): Route("view", at(J + "/export", params={"format": "json"})),
    ("GET", J + "/results.csv"): Route("view", at(J + "/results.csv")),
    ("GET", "/api/submissions/{submission_id}"): Route(
        "view", at("/api/submissions/{submission_id}")
    ),
    ("DELETE", "/api/submissions/{submission_id}"): Route("edit", fresh_submission, fresh=True),
    ("POST", "/api/submissions/{submission_id}/retry"): Route(
        "edit", at("/api/submissions/{submission_id}/retry")
    ),
    # review (a 409 for a document not graded yet, or a batch still open, is past access)
    ("GET", "/api/submissions/{submission_id}/review"): Route(
        "view", at("/api/submissions/{submission_id}/review")
    ),
    ("POST", "/api/submissions/{submission_id}/review"): Route(
        "edit", at("/api/submissions/{submission_id}/review", json={"action": "accept"})
    ),
    ("GET", B + "/review-queue"): Route("view", at(B + "/review-queue")),
    ("POST", B + "/release"): Route("edit", at(B + "/release", json={})),
    ("POST", B + "/roster"): Route(
        "edit", at(B + "/roster", files={"file": ("class.txt", b"Jane Smith\n", "text/plain")})
    ),
    # library and templates
    ("GET", "/api/prompts"): Route("signed_in", at("/api/prompts")),
    ("POST", "/api/prompts"): Route(
        "signed_in", at("/api/prompts", json={"name": "P", "prompt_text": "Grade it."})
    ),
    ("GET", "/api/prompts/{prompt_id}"): Route("mine", at("/api/prompts/{prompt_id}")),
    ("PATCH", "/api/prompts/{prompt_id}"): Route(
        "mine", at("/api/prompts/{prompt_id}", json={"category": "essays"})
    ),
    ("DELETE", "/api/prompts/{prompt_id}"): Route("mine", at("/api/prompts/{prompt_id}"), True),
    ("GET", "/api/marking-schemes"): Route("signed_in", at("/api/marking-schemes")),
    ("POST", "/api/marking-schemes"): Route(
        "signed_in", at("/api/marking-schemes", json={"name": "S", "content": "10 points."})
    ),
    ("POST", "/api/marking-schemes/upload"): Route(
        "signed_in", at("/api/marking-schemes/upload", files=SCHEME)
    ),
    ("GET", "/api/marking-schemes/{scheme_id}"): Route(
        "mine", at("/api/marking-schemes/{scheme_id}")
    ),
    ("PATCH", "/api/marking-schemes/{scheme_id}"): Route(
        "mine", at("/api/marking-schemes/{scheme_id}", json={"category": "essays"})
    ),
    ("DELETE", "/api/marking-schemes/{scheme_id}"): Route(
        "mine", at("/api/marking-schemes/{scheme_id}"), True
    ),
    ("GET", "/api/templates"): Route("signed_in", at("/api/templates")),
    ("POST", "/api/templates"): Route("signed_in", _unique("/api/templates")),
    ("GET", "/api/templates/{template_id}"): Route("mine", at("/api/templates/{template_id}")),
    ("PATCH", "/api/templates/{template_id}"): Route(
        "mine", at("/api/templates/{template_id}", json={"category": "essays"})
    ),
    ("DELETE", "/api/templates/{template_id}"): Route(
        "mine", at("/api/templates/{template_id}"), True
    ),
    ("POST", "/api/templates/{template_id}/duplicate"): Route(
        "mine",
        lambda w: (
            f"/api/templates/{w.template()}/duplicate",
            {"json": {"name": f"C {uuid.uuid4()}"}},
        ),
    ),
    # reports
    ("GET", "/api/analytics"): Route("signed_in", at("/api/analytics")),
    ("GET", "/api/prices"): Route("signed_in", at("/api/prices")),
    ("PUT", "/api/prices/{provider}/{model}"): Route(
        "admin",
        at("/api/prices/ollama/llama3", json={"input_per_million": 0, "output_per_million": 0}),
    ),
    # (After the PUT above: the administrator's price is there to remove.)
    ("DELETE", "/api/prices/{provider}/{model}"): Route("admin", at("/api/prices/ollama/llama3")),
}


def _documented_routes() -> set[tuple[str, str]]:
    paths = create_app(Settings(database_url="sqlite://")).openapi()["paths"]
    return {
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if path.startswith("/api/")
    }


def test_every_route_is_in_the_matrix():
    documented = _documented_routes()
    assert documented - ROUTES.keys() == set(), "routes without an access rule"
    assert ROUTES.keys() - documented == set(), "rules for routes that do not exist"


def test_the_access_matrix(team):
    world = World(team)
    clients = {role: team.as_role(role) for role in Team.ROLES}
    wrong: list[str] = []
    for (method, template), route in ROUTES.items():
        for role in Team.ROLES:
            path, kwargs = route.make(world)
            # A fresh client: a sign-in must not change the next request's credentials.
            client = clients[role] if not template.startswith("/api/auth/") else team.as_role(role)
            response = client.request(method, path, **kwargs)
            want = expected(route.need, role)
            got = response.status_code
            ok = got < 500 and (got not in (401, 403, 404) if want == ALLOWED else got == want)
            if not ok:
                wrong.append(
                    f"{method} {template} as {role}: {got}, expected {want} ({response.text[:120]})"
                )
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("role", ["viewer", "editor", "other"])
def test_a_public_template_is_seen_and_used_by_everyone_but_changed_by_its_owner(team, role):
    owner = team.as_role("owner")
    body = {"name": f"Shared {uuid.uuid4()}", "is_public": True}
    template = owner.post("/api/templates", json=body).json()["id"]
    client = team.as_role(role)
    assert client.get(f"/api/templates/{template}").status_code == 200
    assert (
        client.post("/api/batches", json={"name": "x", "template_id": template}).status_code == 201
    )
    assert client.patch(f"/api/templates/{template}", json={"category": "x"}).status_code == 403
    assert client.delete(f"/api/templates/{template}").status_code == 403
