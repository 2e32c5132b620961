"""The plain schema commands: `grading-app db upgrade`, `downgrade`, `current`, `check`.

A new or version-stamped database is brought to head here, under the same lock as the
guided upgrade; a legacy one is refused, since only the guided upgrade backs it up
first (`runner.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from grading_app import migrations
from grading_app.db import SQLITE_BEGIN_OPTION, make_engine, sqlite_path
from grading_app.migrations.report import Reporter, reporting_to
from grading_app.models import LEGACY_TABLES
from grading_app.upgrade.database_url import to_engine_url
from grading_app.upgrade.detect import DatabaseState, count_rows, inspect_database
from grading_app.upgrade.runner import (
    UpgradeOptions,
    UpgradeRefused,
    check_sqlite_version,
    explain,
    lock_postgresql,
    refuse_unless_upgradable,
)
from grading_app.upgrade.verify import UpgradeFailed, schema_drift


def upgrade_schema(database_url: str, write: Callable[[str], None] = print) -> str:
    """Bring a new or version-stamped database to head; refuse legacy ones, which need
    the guided upgrade with its backup. Returns the revision reached."""
    url = to_engine_url(database_url)
    if url.get_backend_name() == "sqlite":
        check_sqlite_version()
    engine = make_engine(url, for_upgrade=True, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**{SQLITE_BEGIN_OPTION: "EXCLUSIVE"})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    lock_postgresql(connection, UpgradeOptions(database_url), write)
                state = inspect_database(connection)
                if state.is_newer:
                    refuse_unless_upgradable(state)
                if state.is_legacy:
                    raise UpgradeRefused(
                        f"This database was created by an earlier release ({state.describe()}). "
                        "Upgrade it with `grading-app db migrate-batch-system` (or `python "
                        "migrate_batch_system.py`), which backs it up first"
                    )
                if not state.is_empty and not state.is_ours:
                    refuse_unless_upgradable(state)
                reporter = Reporter()
                with reporting_to(reporter):
                    migrations.upgrade(connection)
                revision = migrations.current_revision(connection)
    except DBAPIError as exc:
        raise explain(exc, url, UpgradeOptions(database_url)) from exc
    finally:
        engine.dispose()
    for warning in reporter.warnings:
        write(f"⚠️  {warning}")
    if reporter.changes:
        write(f"✓ Database upgraded to {revision} ({len(reporter.changes)} changes)")
    else:
        write(f"✓ Database already at {revision}")
    assert revision is not None
    return revision


def downgrade_schema(
    database_url: str,
    target: str = migrations.BASELINE_REVISION,
    write: Callable[[str], None] = print,
) -> str | None:
    """Take the schema back to `target` (default: the legacy G6 baseline), keeping every
    legacy row; the row counts are compared and the downgrade rolled back if any differ."""
    url = to_engine_url(database_url)
    engine = make_engine(url, for_upgrade=True, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**{SQLITE_BEGIN_OPTION: "EXCLUSIVE"})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    lock_postgresql(connection, UpgradeOptions(database_url), write)
                state = inspect_database(connection)
                if state.revision is None:
                    raise UpgradeRefused(
                        "The database has no schema revision; nothing to downgrade"
                    )
                refuse_unless_upgradable(state)
                if target not in migrations.known_revisions():
                    raise UpgradeRefused(
                        f"Unknown revision {target!r}; see `grading-app db history`"
                    )
                tables = [t for t in LEGACY_TABLES if t in state.tables]
                before = count_rows(connection, tables)
                migrations.downgrade(connection, target)
                after = count_rows(connection, tables)
                if before != after:
                    raise UpgradeFailed(
                        f"Row counts would change ({before} -> {after}); rolled back"
                    )
                revision = migrations.current_revision(connection)
    except DBAPIError as exc:
        raise explain(exc, url, UpgradeOptions(database_url)) from exc
    finally:
        engine.dispose()
    write(
        f"✓ Database downgraded to {revision}; row counts unchanged "
        f"({sum(before.values())} rows in {len(before)} tables)"
    )
    return revision


def read_state(database_url: str) -> DatabaseState:
    """Inspect without changing anything; connection failures become a clear message."""
    return _read(database_url, inspect_database)


def read_drift(database_url: str) -> dict[str, list[str]]:
    return _read(database_url, schema_drift)


def _read(database_url: str, reader: Callable[[sa.Connection], Any]) -> Any:
    url = to_engine_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None and not path.exists():
            raise UpgradeRefused(
                f"No database file at {path}; create one with `grading-app db upgrade`"
            )
    engine = make_engine(url, for_upgrade=True, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return reader(connection)
    except DBAPIError as exc:
        raise explain(exc, url, UpgradeOptions(database_url)) from exc
    finally:
        engine.dispose()
