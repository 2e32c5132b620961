"""The Enhanced Batch System upgrade: detect, lock, back up, apply, verify, report.

All of it runs in one transaction on one connection: a failure, a refusal or a kill at
any point leaves the database exactly as it was, and a re-run starts from scratch.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError

from grading_app import __version__, migrations
from grading_app.db import SQLITE_BEGIN_OPTION, make_engine, mask_url, sqlite_path
from grading_app.errors import AppError
from grading_app.migrations.report import Reporter, reporting_to
from grading_app.models import Base
from grading_app.upgrade import backup as backups
from grading_app.upgrade.database_url import to_engine_url
from grading_app.upgrade.detect import DatabaseState, count_rows, inspect_database
from grading_app.upgrade.record import record_run
from grading_app.upgrade.verify import UpgradeFailed, has_drift, schema_drift, verify_upgrade

RULE = "=" * 60
INFO_FILE = "migration_backup_info.json"
# Any constant works; it only has to be the same for every copy of this tool.
ADVISORY_LOCK_KEY = 0x6772_6164_696E_67  # "grading"
# Set by tests to hold the upgrade at a point so a process can be killed there.
HANG_AT_ENV = "GRADING_APP_UPGRADE_HANG_AT"
# UPDATE ... FROM (the upgrade's set-based counts) needs 3.33, RETURNING (the
# application's claims) 3.35 (https://www.sqlite.org/changes.html).
MIN_SQLITE_VERSION = (3, 35, 0)


class UpgradeRefused(AppError):
    """The upgrade will not start; the database was not touched."""

    status_code = 400


class _DryRunRollback(Exception):
    pass


@dataclass
class UpgradeOptions:
    database_url: str
    backup: bool = True
    dry_run: bool = False
    # How long to wait for another upgrade (or a running application) to let go.
    lock_wait_seconds: float = 30.0
    # PostgreSQL: how long one attempt waits for table locks, and how many attempts.
    lock_timeout_seconds: float = 5.0
    lock_attempts: int = 3
    info_path: Path = field(default_factory=lambda: Path(INFO_FILE))


@dataclass
class UpgradeResult:
    revision_before: str | None
    revision_after: str | None
    changes: list[str]
    row_counts_before: dict[str, int]
    row_counts_after: dict[str, int]
    backup: backups.Backup | None
    seconds: float
    dry_run: bool


def run_upgrade(options: UpgradeOptions, write: Callable[[str], None] = print) -> UpgradeResult:
    """Upgrade the database at `options.database_url` to the current schema."""
    started = time.monotonic()
    write("🚀 Starting Enhanced Batch System Migration")
    write(RULE)
    try:
        url = to_engine_url(options.database_url)
    except AppError as exc:
        _say_failed(write, exc.message, changed=False)
        raise UpgradeRefused(exc.message) from exc
    shown_url = mask_url(options.database_url)  # as the user wrote it, password masked
    write(f"📊 Database Type: {url.get_backend_name()}")
    write(f"📊 Database URL: {shown_url}")
    if options.dry_run:
        write("🔍 Dry run: showing what would change; nothing will be written")
    reporter = Reporter(write=write, dry_run=options.dry_run)
    info: dict[str, Any] = {
        "migration": "enhanced_batch_system",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "database_type": url.get_backend_name(),
        "database_url": shown_url,
        "tool_version": __version__,
    }
    try:
        result = _upgrade(url, options, reporter, write, started)
    except AppError as exc:
        refused = isinstance(exc, UpgradeRefused)
        _say_failed(write, exc.message, changed=not refused)
        if not options.dry_run and not refused:
            record_run(
                options.info_path,
                {
                    **info,
                    "status": "failed",
                    "error": exc.message,
                    "changes": [],
                    "duration_seconds": round(time.monotonic() - started, 3),
                },
                write,
            )
        raise
    if not options.dry_run:
        record_run(
            options.info_path, {**info, "status": "completed", **_result_info(result)}, write
        )
    write("")
    write(RULE)
    if options.dry_run:
        write(
            f"🔍 Dry run complete: {len(result.changes)} change(s) would be made; "
            "nothing was changed."
        )
    else:
        write("🎉 Enhanced Batch System Migration Completed Successfully!")
    write(RULE)
    return result


def _say_failed(write: Callable[[str], None], message: str, *, changed: bool) -> None:
    write("")
    write(f"❌ Migration failed: {message}")
    if changed:
        write("   The database was not changed: the whole upgrade runs in one transaction.")


def _upgrade(
    url: URL,
    options: UpgradeOptions,
    reporter: Reporter,
    write: Callable[[str], None],
    started: float,
) -> UpgradeResult:
    if url.get_backend_name() == "sqlite":
        check_sqlite_version()
        check_sqlite_file(url)
    engine = make_engine(
        url,
        for_upgrade=True,
        busy_timeout_ms=int(options.lock_wait_seconds * 1000),
        poolclass=sa.pool.NullPool,
    )
    try:
        attempts = options.lock_attempts if url.get_backend_name() == "postgresql" else 1
        for attempt in range(1, attempts + 1):
            try:
                return _attempt(engine, url, options, reporter, write, started)
            except OperationalError as exc:
                if not _is_lock_timeout(exc) or attempt == attempts:
                    raise
                wait = min(2**attempt, 10)
                write(f"⏳ Tables are busy (attempt {attempt} of {attempts}); retrying in {wait} s")
                reporter.changes.clear()
                reporter.skipped.clear()
                reporter.warnings.clear()
                time.sleep(wait)
        raise AssertionError("unreachable")
    except DBAPIError as exc:
        raise explain(exc, url, options) from exc
    finally:
        engine.dispose()


def _attempt(
    engine: sa.Engine,
    url: URL,
    options: UpgradeOptions,
    reporter: Reporter,
    write: Callable[[str], None],
    started: float,
) -> UpgradeResult:
    with engine.connect() as connection:
        # IMMEDIATE takes SQLite's write lock now, so a second upgrade (or any writer)
        # waits for us, while the backup below can still read the database from a
        # connection of its own (see SQLITE_BEGIN_OPTION in grading_app.db).
        connection = connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        transaction = connection.begin()
        try:
            try:
                result = _in_transaction(connection, url, options, reporter, write, started)
            except DBAPIError as exc:
                if isinstance(exc, OperationalError) and (
                    _is_lock_timeout(exc) or "locked" in str(exc.orig)
                ):
                    raise
                if "not a database" in str(exc.orig):
                    raise  # a refusal (see _explain), not a failed change
                first_line = str(exc.orig or exc).strip().splitlines()[0]
                raise UpgradeFailed(f"The database rejected a change: {first_line}") from exc
            if options.dry_run:
                raise _DryRunRollback
            transaction.commit()
            return result
        except _DryRunRollback:
            transaction.rollback()
            return result
        except BaseException:
            transaction.rollback()
            raise


def _in_transaction(
    connection: sa.Connection,
    url: URL,
    options: UpgradeOptions,
    reporter: Reporter,
    write: Callable[[str], None],
    started: float,
) -> UpgradeResult:
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        lock_postgresql(connection, options, write)
    else:
        _probe_sqlite_writable(connection)
    _hang_if_asked("after-lock")

    state = inspect_database(connection)
    refuse_unless_upgradable(state)
    head = migrations.head_revision()
    at_head = state.revision == head
    write(f"📊 Schema: {state.describe()}" + (" (current)" if at_head else ""))
    counts_before = count_rows(connection, _data_tables(connection))
    # At head only drift (left by an earlier release of this tool) changes the schema;
    # re-adding a deleted default template alone needs no backup.
    changes_schema = not at_head or has_drift(schema_drift(connection))

    pending = None
    if not options.backup:
        write("💾 Backup: skipped (--no-backup)")
    elif not changes_schema:
        write("💾 Backup: not needed, the schema is already current")
    elif options.dry_run:
        write(f"💾 Backup: {_backup_plan(url)}")
    else:
        pending = _make_backup(connection, url, counts_before, write)

    with reporting_to(reporter):
        if at_head:
            migrations.recheck_enhanced_batch_system(connection)
        else:
            migrations.upgrade(connection)
    _hang_if_asked("after-schema")

    counts_after = count_rows(connection, _data_tables(connection))
    verify_upgrade(connection, reporter, counts_before, counts_after, write)
    backup = _finish_backup(pending, write)
    return UpgradeResult(
        revision_before=state.revision,
        revision_after=migrations.current_revision(connection),
        changes=list(reporter.changes),
        row_counts_before=counts_before,
        row_counts_after=counts_after,
        backup=backup,
        seconds=time.monotonic() - started,
        dry_run=options.dry_run,
    )


def _data_tables(connection: sa.Connection) -> list[str]:
    """Every table but Alembic's version stamp, whose one row the verification checks."""
    return sorted(
        table
        for table in sa.inspect(connection).get_table_names()
        if table != migrations.VERSION_TABLE
    )


def _backup_plan(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return "would be written beside the database (grading_app_backup_YYYYMMDD_HHMMSS.db)"
    if shutil.which("pg_dump") is None:
        return "pg_dump is not on PATH: the real run needs it, or --no-backup"
    return "would be made with pg_dump (grading_app_backup_YYYYMMDD_HHMMSS.sql)"


def refuse_unless_upgradable(state: DatabaseState) -> None:
    if state.is_newer:
        raise UpgradeRefused(
            f"The database is at schema revision {state.revision}, which this release "
            f"(grading-app {__version__}) does not know: it was upgraded by a newer release. "
            "Use that release, or restore a backup made before it"
        )
    if state.is_empty:
        raise UpgradeRefused(
            "The database is empty: there is nothing to upgrade. To create a new database, "
            "run `grading-app db upgrade` (or `make run`)"
        )
    if not state.is_ours:
        shown = ", ".join(sorted(state.tables)[:8]) or "none"
        raise UpgradeRefused(
            "This does not look like a Grading App database (it has no job_batches, "
            f"grading_jobs and submissions tables; tables found: {shown}). Check DATABASE_URL"
        )


# --- locking -------------------------------------------------------------------------


def lock_postgresql(
    connection: sa.Connection, options: UpgradeOptions, write: Callable[[str], None]
) -> None:
    """One upgrade at a time (advisory lock), and never queue forever behind a busy table.

    lock_timeout bounds every wait for a table lock; without it an ALTER TABLE queued
    behind a long query also blocks every query that arrives after it
    (https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-LOCK-TIMEOUT).
    """
    timeout_ms = int(options.lock_timeout_seconds * 1000)
    connection.execute(sa.text(f"SET LOCAL lock_timeout = {timeout_ms}"))
    deadline = time.monotonic() + options.lock_wait_seconds
    told = False
    while not connection.execute(
        sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
    ).scalar_one():
        if time.monotonic() >= deadline:
            raise UpgradeRefused(
                "Another upgrade of this database is running; wait for it to finish, then "
                "run again (a second run will find nothing left to do)"
            )
        if not told:
            write("⏳ Another upgrade of this database is running; waiting for it to finish...")
            told = True
        time.sleep(0.25)
    tables = [
        table
        for table in sa.inspect(connection).get_table_names()
        if table in Base.metadata.tables or table == migrations.VERSION_TABLE
    ]
    if tables:
        # SHARE mode stops writers but lets pg_dump read; our own DDL upgrades it later.
        quoted = ", ".join(connection.dialect.identifier_preparer.quote(t) for t in tables)
        connection.execute(sa.text(f"LOCK TABLE {quoted} IN SHARE MODE"))


def _is_lock_timeout(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "55P03"  # lock_not_available


def _probe_sqlite_writable(connection: sa.Connection) -> None:
    """Fail now, not half way, if SQLite opened the file read-only."""
    version = connection.exec_driver_sql("PRAGMA user_version").scalar_one()
    try:
        connection.exec_driver_sql(f"PRAGMA user_version = {int(version)}")
    except OperationalError as exc:
        raise UpgradeRefused(
            f"The database is read-only ({exc.orig}); give this user write access to the "
            "file and its folder, then run again"
        ) from exc


def check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        needed = ".".join(str(part) for part in MIN_SQLITE_VERSION[:2])
        raise UpgradeRefused(
            f"This Python uses SQLite {sqlite3.sqlite_version}; Grading App needs SQLite "
            f"{needed} or newer (for UPDATE ... FROM and RETURNING). Use a Python built with "
            "a newer SQLite (python.org and pyenv builds of Python 3.11+ have one)"
        )


def check_sqlite_file(url: URL) -> None:
    path = sqlite_path(url)
    if path is None:
        raise UpgradeRefused(
            "DATABASE_URL points at an in-memory SQLite database; nothing to upgrade"
        )
    if not path.exists():
        raise UpgradeRefused(
            f"No database file at {path} (relative paths are taken from the current folder, "
            f"{Path.cwd()}). Run the upgrade where grading_app.db is, or set DATABASE_URL. "
            "To create a new database instead, run `grading-app db upgrade`"
        )
    for target, what in ((path, "file"), (path.parent, "folder")):
        if not os.access(target, os.W_OK):
            raise UpgradeRefused(
                f"The database {what} {target} is read-only for this user; SQLite needs to "
                "write the file and a journal beside it. Fix the permissions and run again"
            )


def explain(exc: DBAPIError, url: URL, options: UpgradeOptions) -> AppError:
    text = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite and "locked" in text:
        return UpgradeRefused(
            f"The database is in use by another process (waited {options.lock_wait_seconds:g} s): "
            "another upgrade or a running application. Stop it and run again"
        )
    if isinstance(exc, OperationalError) and _is_lock_timeout(exc):
        return UpgradeRefused(
            f"The tables stayed locked by other sessions through {options.lock_attempts} "
            "attempts; stop the application (and any long queries) and run again"
        )
    if "readonly" in text or "read-only" in text:
        return UpgradeRefused(f"The database is read-only ({text})")
    if sqlite and ("not a database" in text or "malformed" in text):
        return UpgradeRefused(
            f"{sqlite_path(url)} is not a usable SQLite database ({text}). Check DATABASE_URL"
        )
    return UpgradeRefused(f"Cannot use the database at {mask_url(url)}: {text}")


# --- backup --------------------------------------------------------------------------


def _make_backup(
    connection: sa.Connection, url: URL, counts: dict[str, int], write: Callable[[str], None]
) -> backups.PendingBackup:
    if connection.dialect.name == "postgresql" and shutil.which("pg_dump") is None:
        raise UpgradeRefused(
            "pg_dump is not on PATH, so no automatic backup can be made. Install the "
            "PostgreSQL client tools, or make your own backup and run again with --no-backup"
        )
    now = datetime.now()
    write("")
    write("💾 Backing up the database...")
    try:
        if connection.dialect.name == "sqlite":
            path = sqlite_path(url)
            assert path is not None
            destination = backups.timestamped_path(path.parent, path.stem, ".db", now)
            pending = backups.backup_sqlite(path, destination, counts)
        else:
            destination = backups.timestamped_path(Path.cwd(), "grading_app", ".sql", now)
            snapshot = backups.export_snapshot(connection)
            pending = backups.backup_postgresql(url, destination, snapshot, counts)
    except backups.BackupFailed as exc:
        raise UpgradeFailed(exc.message) from exc
    size = destination.stat().st_size
    write(f"  ✓ Backup written: {destination} ({_human_bytes(size)}, {pending.method})")
    return pending


def _finish_backup(
    pending: backups.PendingBackup | None, write: Callable[[str], None]
) -> backups.Backup | None:
    """Wait for the backup's checks; before the upgrade commits, never after."""
    if pending is None:
        return None
    try:
        backup = pending.finish()
    except backups.BackupFailed as exc:
        raise UpgradeFailed(exc.message) from exc
    write(
        f"  ✓ Backup verified: same row counts in {len(backup.row_counts)} tables, "
        f"SHA-256 {backup.sha256[:16]}…"
    )
    return backup


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


# --- reporting -----------------------------------------------------------------------


def _result_info(result: UpgradeResult) -> dict[str, Any]:
    backup = None
    if result.backup is not None:
        backup = {
            "file": str(result.backup.path),
            "sha256": result.backup.sha256,
            "size_bytes": result.backup.size_bytes,
            "seconds": round(result.backup.seconds, 3),
            "check_seconds": round(result.backup.check_seconds, 3),
            "method": result.backup.method,
            "verified": True,
        }
    return {
        "revision_before": result.revision_before,
        "revision_after": result.revision_after,
        "backup": backup,
        "row_counts_before": result.row_counts_before,
        "row_counts_after": result.row_counts_after,
        "changes": result.changes,
        "duration_seconds": round(result.seconds, 3),
    }


def _hang_if_asked(point: str) -> None:
    """Test hook: `GRADING_APP_UPGRADE_HANG_AT=after-schema[:seconds]` pauses here, and
    `after-schema@FILE` until FILE exists (a test's gate: no guessing how long)."""
    wanted = os.environ.get(HANG_AT_ENV, "")
    name, _, release = wanted.partition("@")
    name, _, seconds = name.partition(":")
    if name != point:
        return
    print(f"[hang] {point}", flush=True)
    if not release:
        time.sleep(float(seconds) if seconds else 3600)
        return
    deadline = time.monotonic() + 3600
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
