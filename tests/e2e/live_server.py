"""The real application on a real uvicorn server, as `grading-app serve` starts it, for a
real browser to talk to: a fresh database (SQLite, or a PostgreSQL database the caller
made), no workers unless asked for, 127.0.0.1 on a free port."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import Any

from grading_app.accounts import users
from grading_app.accounts.principal import Role
from grading_app.app import create_app
from grading_app.config import Settings
from grading_app.db import unit_of_work
from grading_app.upgrade.serving import prepare_database_for_serving
from tests.fakes.llm_server import FakeLLMServer
from tests.served import served

HEALTH_DEADLINE_SECONDS = 30.0


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings
    application: Any
    # The fake LLM vendor the app grades through, when it has workers.
    vendor: FakeLLMServer | None = None

    def add_user(self, username: str, password: str, role: Role = Role.TEACHER) -> None:
        """A user made in the database directly (the first one an administrator), for
        tests that start past the first-run setup."""
        with unit_of_work(self.application.state.sessionmaker) as session:
            if users.find_user(session, username) is not None:
                return
            if users.any_user_exists(session):
                users.create_user(session, username=username, password=password, role=role)
            else:
                users.create_first_admin(session, username=username, password=password)


def wait_until_healthy(base_url: str) -> dict[str, Any]:
    """Ask /health until it says ok; connection refusals are retried until the deadline
    (each retry is a blocking request, not a sleep)."""
    deadline = monotonic() + HEALTH_DEADLINE_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=5) as response:
                body: dict[str, Any] = json.load(response)
            if body.get("status") == "ok":
                return body
            problem = f"/health answered {body}"
        except urllib.error.HTTPError as exc:
            problem = f"/health answered {exc.code}: {exc.read()[:300]!r}"
        except OSError as exc:
            problem = f"/health unreachable: {exc}"
        if monotonic() > deadline:
            raise AssertionError(f"the live server never became healthy: {problem}")


@contextmanager
def live_server(
    folder: Path, *, database_url: str | None = None, workers: int = 0
) -> Iterator[LiveServer]:
    """Serve the application until the block ends, on `database_url` (an empty database)
    or else a new SQLite database in `folder`; uploads go to `folder`. With `workers`,
    the app grades as `grading-app serve` does, through the providers the environment
    configures when the block starts (point them at tests/fakes)."""
    database_url = database_url or f"sqlite:///{folder / 'grading_app.db'}"
    settings = Settings(
        database_url=database_url, upload_dir=folder / "uploads", worker_concurrency=workers
    )
    # As `grading-app serve` does: the missing database is created at the current schema.
    prepare_database_for_serving(database_url, write=lambda _: None)
    application = create_app(settings, start_workers=workers > 0)
    with served(application) as url:
        wait_until_healthy(url)
        yield LiveServer(url=url, settings=settings, application=application)


# What the developer's own environment might add: other providers, other default models.
OTHER_PROVIDER_KEYS = (
    "OPENROUTER_API_KEY",
    "CLAUDE_API_KEY",
    "OPENAI_MODEL",
    "CLAUDE_MODEL",
    "ANTHROPIC_MODEL",
)


@contextmanager
def vendor_environment(vendor: FakeLLMServer) -> Iterator[None]:
    """The openai and anthropic providers pointed at the fake vendor in os.environ (where
    the workers and the pages read them), restored when the block ends."""
    values = {
        "OPENAI_API_KEY": "sk-test-openai",
        "OPENAI_BASE_URL": vendor.openai_base_url,
        "ANTHROPIC_API_KEY": "sk-test-anthropic",
        "ANTHROPIC_BASE_URL": vendor.anthropic_base_url,
    }
    saved = {key: os.environ.get(key) for key in (*values, *OTHER_PROVIDER_KEYS)}
    for key in OTHER_PROVIDER_KEYS:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def grading_live_server(
    folder: Path, *, database_url: str | None = None, workers: int = 2
) -> Iterator[LiveServer]:
    """The app that grades: workers on, providers pointed at a fake vendor of its own
    (`server.vendor`, scriptable: latency, faults, a gate that holds requests)."""
    with (
        FakeLLMServer() as vendor,
        vendor_environment(vendor),
        live_server(folder, database_url=database_url, workers=workers) as running,
    ):
        yield LiveServer(
            url=running.url,
            settings=running.settings,
            application=running.application,
            vendor=vendor,
        )
