"""A lock held elsewhere costs a request a bounded wait and a 503 that says what
happened, never a hang: STATEMENT_TIMEOUT_SECONDS on PostgreSQL, the busy timeout on
SQLite. The lock holder is a connection the test controls."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from fastapi.testclient import TestClient

from grading_app.app import create_app
from grading_app.config import Settings
from grading_app.db import parse_url, sqlite_path
from grading_app.upgrade.schema import upgrade_schema
from tests.conftest import sign_in_admin


@contextmanager
def batches_table_locked(database_url: str) -> Iterator[None]:
    """Another connection holds a lock that keeps every writer of job_batches waiting."""
    path = sqlite_path(parse_url(database_url))
    if path is not None:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # SQLite's one write lock
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as holder:
            holder.exec_driver_sql("LOCK TABLE job_batches IN ACCESS EXCLUSIVE MODE")
            try:
                yield
            finally:
                holder.rollback()
    finally:
        engine.dispose()


def test_a_request_meeting_a_held_lock_answers_503_instead_of_hanging(database_url):
    upgrade_schema(database_url, write=lambda _: None)
    settings = Settings(
        database_url=database_url, statement_timeout_seconds=0.2, sqlite_busy_timeout_ms=200
    )
    application = create_app(settings)
    outcome: dict[str, object] = {}
    with TestClient(application, base_url="http://localhost") as client:
        assert client.get("/health").status_code == 200  # connected before the lock
        sign_in_admin(client)
        assert client.get("/api/batches").status_code == 200  # the token's first use noted
        with batches_table_locked(database_url):
            request = threading.Thread(
                target=lambda: outcome.setdefault(
                    "response", client.post("/api/batches", json={"name": "Year 9"})
                )
            )
            request.start()
            request.join(timeout=60)  # a hang would be minutes; the timeout is 0.2 s
            hung = request.is_alive()
        request.join()
        after = client.post("/api/batches", json={"name": "Year 9"})
    assert not hung, "the request waited on the lock instead of timing out"
    response = outcome["response"]
    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    assert "Nothing was saved; try again" in detail
    if application.state.engine.dialect.name == "postgresql":
        assert "STATEMENT_TIMEOUT_SECONDS" in detail
    else:
        assert "locked by another writer" in detail
    assert after.status_code == 201  # the lock gone, the same request works


def test_postgresql_connections_carry_the_statement_timeout(postgres_url):
    upgrade_schema(postgres_url, write=lambda _: None)
    application = create_app(Settings(database_url=postgres_url, statement_timeout_seconds=2.5))
    with application.state.engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "2500ms"
    application.state.engine.dispose()
    unlimited = create_app(Settings(database_url=postgres_url, statement_timeout_seconds=0))
    with unlimited.state.engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
    unlimited.state.engine.dispose()
