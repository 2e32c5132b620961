"""An application over real HTTP (TestClient) on a real database, with the providers
pointed at the fake LLM vendor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from grading_app.app import create_app
from grading_app.config import Settings


@pytest.fixture
def upload_dir(tmp_path):
    return tmp_path / "uploads"


@pytest.fixture
def client(sessions, database_url, upload_dir, provider_env, monkeypatch) -> Iterator[TestClient]:
    """The API with a 1 MB upload limit; no workers (tests run one when they want)."""
    for key in ("OPENROUTER_API_KEY", "CLAUDE_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in provider_env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(database_url=database_url, upload_dir=upload_dir, max_upload_mb=1)
    with TestClient(create_app(settings)) as test_client:
        yield test_client
