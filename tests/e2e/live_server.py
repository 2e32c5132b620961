"""The real application on a real uvicorn server, as `grading-app serve` starts it, for a
real browser to talk to: a fresh SQLite database, no workers, 127.0.0.1 on a free port."""

from __future__ import annotations

import json
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
from tests.served import served

HEALTH_DEADLINE_SECONDS = 30.0


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings
    application: Any

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
def live_server(folder: Path) -> Iterator[LiveServer]:
    """Serve the application on a new SQLite database in `folder` until the block ends."""
    database_url = f"sqlite:///{folder / 'grading_app.db'}"
    settings = Settings(
        database_url=database_url, upload_dir=folder / "uploads", worker_concurrency=0
    )
    # As `grading-app serve` does: the missing database is created at the current schema.
    prepare_database_for_serving(database_url, write=lambda _: None)
    application = create_app(settings)
    with served(application) as url:
        wait_until_healthy(url)
        yield LiveServer(url=url, settings=settings, application=application)
