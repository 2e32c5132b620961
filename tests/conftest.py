"""Fixtures: every database test runs on a real SQLite file and on a fresh real PostgreSQL
database; the LLM vendor is the fake one over real HTTP; the API through TestClient."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

POSTGRES_ADMIN_URL = os.environ.get(
    "GRADING_APP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _postgres_available() -> str | None:
    engine = sa.create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except sa.exc.OperationalError as exc:
        return str(exc.orig).splitlines()[0]
    finally:
        engine.dispose()


_POSTGRES_PROBLEM = _postgres_available()


def _admin_engine() -> sa.Engine:
    return sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")


def create_postgres_database() -> str:
    name = f"ga_test_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine()
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return (
        sa.engine.make_url(POSTGRES_ADMIN_URL)
        .set(database=name)
        .render_as_string(hide_password=False)
    )


def drop_postgres_database(url: str) -> None:
    name = sa.engine.make_url(url).database
    engine = _admin_engine()
    with engine.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    if _POSTGRES_PROBLEM:
        if os.environ.get("GRADING_APP_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required but unreachable: {_POSTGRES_PROBLEM}")
        pytest.skip(f"PostgreSQL unreachable: {_POSTGRES_PROBLEM}")
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'grading_app.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'grading_app.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@contextmanager
def _sessions_at_head(url: str):
    from grading_app.db import make_engine, make_sessionmaker
    from grading_app.upgrade.schema import upgrade_schema

    upgrade_schema(url, write=lambda _: None)
    engine = make_engine(url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@pytest.fixture
def sessions(database_url):
    """A sessionmaker on a database at head (SQLite file or fresh PostgreSQL database)."""
    with _sessions_at_head(database_url) as sessionmaker:
        yield sessionmaker


@pytest.fixture
def pg_sessions(postgres_url):
    """A sessionmaker on a fresh PostgreSQL database at head, for what only PostgreSQL
    does (row locks, concurrent writers)."""
    with _sessions_at_head(postgres_url) as sessionmaker:
        yield sessionmaker


@pytest.fixture
def llm():
    """The fake LLM vendor over real HTTP on 127.0.0.1."""
    from tests.fakes.llm_server import FakeLLMServer

    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def provider_env(llm) -> dict[str, str]:
    """Environment that points the openai and claude providers at the fake vendor."""
    return {
        "OPENAI_API_KEY": "sk-test-openai",
        "OPENAI_BASE_URL": llm.openai_base_url,
        "ANTHROPIC_API_KEY": "sk-test-anthropic",
        "ANTHROPIC_BASE_URL": llm.anthropic_base_url,
    }


@pytest.fixture
def upload_dir(tmp_path):
    return tmp_path / "uploads"


@pytest.fixture
def client(sessions, database_url, upload_dir, provider_env, monkeypatch) -> Iterator[TestClient]:
    """The API over real HTTP (TestClient) on a real database, providers pointed at the
    fake vendor, a 1 MB upload limit; no workers (tests run one when they want)."""
    from grading_app.app import create_app
    from grading_app.config import Settings

    for key in ("OPENROUTER_API_KEY", "CLAUDE_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in provider_env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(database_url=database_url, upload_dir=upload_dir, max_upload_mb=1)
    with TestClient(create_app(settings), base_url="http://localhost") as test_client:
        sign_in_admin(test_client)
        yield test_client


ADMIN_PASSWORD = "admin password for tests"


def sign_in_admin(client: TestClient, *, username: str = "admin") -> str:
    """Make `client` send an administrator's access token on every request; the first
    administrator is created on first use (adopting rows from before accounts)."""
    from grading_app.accounts import credentials, users
    from grading_app.db import unit_of_work

    with unit_of_work(client.app.state.sessionmaker) as session:  # type: ignore[attr-defined]
        user = users.find_user(session, username)
        if user is None:
            user = users.create_first_admin(session, username=username, password=ADMIN_PASSWORD)
        token = credentials.create_token(session, user, name="tests").token
    client.headers["Authorization"] = f"Bearer {token}"
    return token


@contextmanager
def empty_redis_database(url: str) -> Iterator[str]:
    """A Redis database emptied before and after the test; skips (or fails, when
    GRADING_APP_REQUIRE_REDIS is set) if Redis is unreachable."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("GRADING_APP_REQUIRE_REDIS"):
            pytest.fail(f"Redis is required but unreachable: {exc}")
        pytest.skip(f"Redis unreachable: {exc}")
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()


def admin_token(database_url: str) -> str:
    """An administrator's access token, made in the database directly (the first
    administrator is created on first use): for tests of a server in another process."""
    from grading_app.accounts import credentials, users
    from grading_app.db import make_engine, make_sessionmaker, unit_of_work

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            user = users.find_user(session, "admin") or users.create_first_admin(
                session, username="admin", password=ADMIN_PASSWORD
            )
            return credentials.create_token(session, user, name="tests").token
    finally:
        engine.dispose()
