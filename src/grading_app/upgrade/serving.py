"""Before serving: create a missing or empty database, refuse any other that is not current.

A new user runs `python app.py` (or `grading-app serve`) in an empty folder and expects
it to work, so a database that does not exist yet, or exists with no tables, is created
at the current schema. Every other database is only looked at: a legacy one needs the
guided upgrade (with its backup), a version-stamped older one `grading-app db upgrade`.
A refusal leaves nothing behind: connecting to a SQLite path that does not exist would
create a 0-byte file, so a missing file is never opened just to look at it.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from grading_app import __version__, migrations
from grading_app.db import make_engine, mask_url, sqlite_path
from grading_app.errors import AppError
from grading_app.upgrade.database_url import to_engine_url
from grading_app.upgrade.detect import DatabaseState, inspect_database
from grading_app.upgrade.runner import check_sqlite_version
from grading_app.upgrade.schema import upgrade_schema


class SchemaNotCurrent(AppError):
    status_code = 503


class UpgradeNeeded(SchemaNotCurrent):
    """A database an upgrade brings to the current schema (an earlier release's, or an
    older schema of this one): the server shows a page saying what to run."""


def prepare_database_for_serving(database_url: str, write: Callable[[str], None]) -> str:
    """Make sure the database is at head, creating it if it is missing or empty.

    Returns the revision served; raises SchemaNotCurrent, saying what to run, otherwise.
    """
    url = to_engine_url(database_url)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        check_sqlite_version()  # before the file exists, so a refusal leaves none
        if not path.parent.is_dir():
            raise SchemaNotCurrent(
                f"The folder {path.parent} does not exist, so the database {path.name} "
                "cannot be created there; create the folder or set DATABASE_URL"
            )
        try:
            return _create(database_url, write, where=str(path))
        except BaseException:
            # Whatever created the file half way must not leave it for the next start
            # to mistake for a database.
            for leftover in (path, path.with_name(path.name + "-journal")):
                leftover.unlink(missing_ok=True)
            raise
    state = _inspect(url)
    if state.is_empty:
        return _create(database_url, write, where=str(path or mask_url(url)))
    _refuse_unless_current(state)
    assert state.revision is not None
    return state.revision


def _create(database_url: str, write: Callable[[str], None], *, where: str) -> str:
    revision = upgrade_schema(database_url, write=lambda _: None)
    write(f"✓ Created a new database at {where} (schema {revision})")
    return revision


def _inspect(url: sa.URL) -> DatabaseState:
    # An upgrade engine: the application's own engine would switch SQLite to WAL, and a
    # legacy database must reach the upgrade exactly as it was.
    engine = make_engine(url, for_upgrade=True, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return inspect_database(connection)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise SchemaNotCurrent(
            f"The database at {mask_url(url)} is unreachable "
            f"({reason[0] if reason else type(exc).__name__}); check DATABASE_URL"
        ) from exc
    finally:
        engine.dispose()


def _refuse_unless_current(state: DatabaseState) -> None:
    head = migrations.head_revision()
    if state.revision == head:
        return
    if state.is_legacy:
        raise UpgradeNeeded(
            f"This database was created by an earlier release ({state.describe()}). Run "
            "`python migrate_batch_system.py` (or `grading-app db migrate-batch-system`), "
            "which backs it up and upgrades it, then serve again"
        )
    if not state.is_ours:
        shown = ", ".join(sorted(state.tables)[:8])
        raise SchemaNotCurrent(
            "This does not look like a Grading App database (it has no job_batches, "
            f"grading_jobs and submissions tables; tables found: {shown}). Check DATABASE_URL"
        )
    if state.is_newer:
        raise SchemaNotCurrent(
            f"The database is at schema revision {state.revision}, which this release "
            f"(grading-app {__version__}) does not know: it was upgraded by a newer release"
        )
    raise UpgradeNeeded(
        f"The database schema is at revision {state.revision}; this release needs {head}. "
        "Run `grading-app db upgrade`, then serve again"
    )
