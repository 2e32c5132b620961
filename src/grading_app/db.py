"""Engines and sessions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, CursorResult, make_url
from sqlalchemy.orm import Session, sessionmaker

from grading_app.errors import BadRequest, DatabaseUnavailable

# Execution option read by the SQLite "begin" hook: "" (deferred), "IMMEDIATE" or
# "EXCLUSIVE". The batch-system upgrade begins IMMEDIATE: it is the only writer, and its
# backup can still read the database from a second connection (SQLite's backup
# API refuses a source connection that is in a write transaction, and EXCLUSIVE would
# lock that reader out in rollback-journal mode). `db upgrade`/`db downgrade`, which make
# no backup, begin EXCLUSIVE.
SQLITE_BEGIN_OPTION = "sqlite_begin"


def parse_url(database_url: str) -> URL:
    try:
        url = make_url(database_url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise BadRequest(f"DATABASE_URL is not a database URL: {mask_url(database_url)}") from exc
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise BadRequest(
            f"DATABASE_URL uses '{url.get_backend_name()}'; Grading App supports sqlite and "
            "postgresql"
        )
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def mask_url(database_url: str | URL) -> str:
    """The URL with any password replaced by ***, safe for logs, output and files.

    Both places a URL can carry a secret are masked: the user:password part and query
    parameters such as `?password=` or `?sslpassword=` (libpq reads both from the query,
    https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS).
    """
    import re
    from urllib.parse import quote_plus

    # Query keys whose values are secrets, or may be: masking a harmless one costs nothing.
    secret_key = re.compile(r"pass|pwd|secret|token|credential|api_?key|auth", re.IGNORECASE)
    try:
        url = database_url if isinstance(database_url, URL) else make_url(database_url)
    except Exception:
        return "<unparseable database URL>"
    text = url.set(query={}).render_as_string(hide_password=True)
    if not url.query:
        return text
    pairs = []
    for key, values in url.query.items():
        for value in (values,) if isinstance(values, str) else values:
            shown = "***" if secret_key.search(key) else quote_plus(value, safe="/:")
            pairs.append(f"{quote_plus(key)}={shown}")
    return f"{text}?{'&'.join(pairs)}"


def sqlite_path(url: URL) -> Path | None:
    """The absolute path of a SQLite file database, or None for memory/non-SQLite URLs.

    A relative path resolves against the current working directory, as the migration
    guide promises (`sqlite:///grading_app.db` is the file where you run the command).
    """
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):
        database = database[len("file:") :]
    return Path(database).expanduser().resolve()


def lenient_json_loads(text: str) -> Any:
    """Legacy SQLite rows may hold text that is not JSON at all; hand it back as-is
    rather than failing the whole query that reads it."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def make_engine(
    database_url: str | URL,
    *,
    busy_timeout_ms: int = 30_000,
    for_upgrade: bool = False,
    statement_timeout_s: float | None = None,
    **kwargs: Any,
) -> Engine:
    """Create an engine configured for this application.

    SQLite: we emit BEGIN ourselves, because Python's sqlite3 driver does not begin a
    transaction before DDL and would commit each CREATE/ALTER on its own
    (https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl).
    The application turns foreign keys on and uses WAL; the upgrade leaves the journal
    mode alone and turns foreign keys off, since a table rebuild with foreign keys on
    would cascade or fail on the DROP TABLE of a parent.
    """
    url = parse_url(database_url) if not isinstance(database_url, URL) else database_url
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
            json_deserializer=lenient_json_loads,
            **kwargs,
        )
        _configure_sqlite(engine, url, busy_timeout_ms=busy_timeout_ms, for_upgrade=for_upgrade)
        return engine
    connect_args: dict[str, Any] = {
        "connect_timeout": 10,
        "application_name": "grading-app",
        # psycopg prepares a statement run five times on a connection, and PostgreSQL
        # then may plan it once for any parameters (a generic plan): a page of a job's
        # documents at an offset came to sort the whole job (30 ms at 100,000 documents
        # instead of 1) once the same query had run a few times. Planned with its
        # values each time, every query gets the plan its values call for.
        "prepare_threshold": None,
        # No JIT compilation: PostgreSQL decides on it from the planner's estimates, and
        # a report's JSON functions are estimated at 100 rows per grade. At 100,000
        # documents the gradebook's columns took 4 s, all but 20 ms of it compiling.
        "options": "-c jit=off",
    }
    if statement_timeout_s:
        # A statement waiting on a lock (or running away) is cancelled by the server
        # rather than holding its request, and a worker thread, for ever.
        milliseconds = max(1, round(statement_timeout_s * 1000))
        connect_args["options"] += f" -c statement_timeout={milliseconds}"
    return create_engine(
        url,
        connect_args=connect_args,
        pool_pre_ping=True,
        json_deserializer=lenient_json_loads,
        **kwargs,
    )


def _configure_sqlite(engine: Engine, url: URL, *, busy_timeout_ms: int, for_upgrade: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # driver autocommit; "begin" below takes over
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute(f"PRAGMA foreign_keys = {'OFF' if for_upgrade else 'ON'}")
        if not for_upgrade:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    # The application writes from many threads; a deferred transaction that reads and
    # then writes can fail with SQLITE_BUSY without waiting, so it takes the write lock
    # up front. WAL keeps readers of other connections unblocked meanwhile.
    default_mode = "" if for_upgrade else "IMMEDIATE"
    # Threads of one process queue for SQLite's write lock on a Python lock first: SQLite
    # itself makes a blocked writer sleep and poll (1, 2, 5 ... 100 ms between tries,
    # https://www.sqlite.org/c3ref/busy_timeout.html), which left the lock idle most of
    # the time under many grading threads. Other processes still meet busy_timeout.
    writer_lock = None if for_upgrade else _process_write_lock(url)
    lock_wait = busy_timeout_ms / 1000

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, default_mode)
        if mode not in ("", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"unknown SQLite begin mode {mode!r}")
        if writer_lock is not None and mode:
            if not writer_lock.acquire(timeout=lock_wait):
                raise DatabaseUnavailable(
                    f"The database stayed locked by another writer for {lock_wait:g} s"
                )
            connection.info[_HOLDS_WRITER_LOCK] = writer_lock
        try:
            connection.exec_driver_sql(f"BEGIN {mode}".strip())
        except BaseException:
            _release_writer_lock(connection.info)
            raise

    if writer_lock is None:
        return
    # Released once COMMIT/ROLLBACK has run (the "commit" event fires before it, and a
    # waiting thread would meet the lock still held by SQLite). The dialect instance is
    # this engine's own, and the pool's reset on check-in goes through it too.
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            _release_writer_lock(_info_of(dbapi_connection))

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            _release_writer_lock(_info_of(dbapi_connection))

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    # An invalidated connection is not rolled back: it must not keep the lock.
    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            _release_writer_lock(record.info)


_HOLDS_WRITER_LOCK = "grading_app_writer_lock"
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _process_write_lock(url: URL) -> threading.Lock | None:
    """One lock per SQLite file per process, shared by every engine on that file."""
    path = sqlite_path(url)
    if path is None:
        return None
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(str(path), threading.Lock())


def _info_of(pooled_connection: Any) -> dict[Any, Any]:
    try:
        return pooled_connection.info  # type: ignore[no-any-return]
    except NotImplementedError:  # the engine's first-connect probe has no info dict
        return {}


def _release_writer_lock(info: dict[Any, Any]) -> None:
    lock = info.pop(_HOLDS_WRITER_LOCK, None)
    if lock is not None:
        lock.release()


# SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html) and what
# they mean to the person whose request failed.
_SQLSTATE_REASONS = {
    "57014": "a statement ran longer than STATEMENT_TIMEOUT_SECONDS allows, most likely "
    "waiting for a lock another request or process holds",
    "55P03": "a row or table it needed was locked by another request or process",
    "40P01": "it deadlocked with another request at the same moment",
    "40001": "it conflicted with another request at the same moment",
    "53300": "the database server has no free connections",
    "57P01": "the database server is shutting down or restarting",
}


def database_error_reason(error: BaseException) -> str:
    """Why the database failed a request, in words safe to show and log: never the
    driver's message for a connection, which names the server's host and port."""
    original = getattr(error, "orig", None) or error
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate in _SQLSTATE_REASONS:
        return _SQLSTATE_REASONS[sqlstate]
    if type(original).__module__.startswith("psycopg"):
        if sqlstate is None or sqlstate.startswith("08"):
            return (
                "the database server cannot be reached; check that it is running and that "
                "DATABASE_URL points to it"
            )
        return f"the database server refused it (SQLSTATE {sqlstate})"
    if isinstance(original, sqlite3.Error):
        message = str(original).strip().splitlines()
        if message and "locked" in message[0]:
            return "the database file stayed locked by another writer"
        return f"SQLite: {message[0]}" if message else "SQLite failed"
    return type(original).__name__


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session], *, read_only: bool = False) -> Iterator[Session]:
    """One transaction at the edge of a request, task or command: commit on success.

    `read_only` transactions on SQLite begin DEFERRED, so they do not queue for the
    write lock that writers take up front (see make_engine).
    """
    session = factory()
    if read_only:
        session.connection(execution_options={SQLITE_BEGIN_OPTION: ""})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def rows_affected(result: Any) -> int:
    """How many rows an UPDATE or DELETE changed (typed: sessions return a plain Result)."""
    return cast("CursorResult[Any]", result).rowcount or 0
