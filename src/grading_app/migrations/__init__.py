"""Alembic, driven from code: the legacy baseline first, then each change.

Every command runs on a connection the caller opened and began, so a whole upgrade is
one transaction (see `grading_app.upgrade`).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from grading_app.migrations.search_index import ensure_search_index

BASELINE_REVISION = "0001_legacy_baseline"
ENHANCED_BATCH_SYSTEM_REVISION = "0002_enhanced_batch_system"
VERSION_TABLE = "alembic_version"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(Path(__file__).parent / "versions"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    return {revision.revision for revision in script_directory().walk_revisions()}


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection, target: str = "head") -> None:
    command.upgrade(alembic_config(connection), target)


def downgrade(connection: Connection, target: str = BASELINE_REVISION) -> None:
    command.downgrade(alembic_config(connection), target)


def recheck_enhanced_batch_system(connection: Connection) -> None:
    """On a database at head, repeat the Enhanced Batch System's idempotent steps
    (revision 0002's `recheck`): what `migrate_batch_system.py` does on a second run."""
    script = script_directory().get_revision(ENHANCED_BATCH_SYSTEM_REVISION)
    assert script is not None
    with Operations.context(MigrationContext.configure(connection)):
        script.module.recheck()
        ensure_search_index()  # the recheck may have dropped it to retype a column
