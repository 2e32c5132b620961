"""Runs on a database already at head: they succeed, put back what went missing, and
repair what an earlier release of this tool left behind."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from grading_app.migrations.default_templates import DEFAULT_TEMPLATES
from grading_app.upgrade.runner import UpgradeRefused
from grading_app.upgrade.schema import read_drift
from tests.schema_snapshot import data_snapshot, schema_snapshot
from tests.upgrade.helpers import (
    build_legacy,
    execute,
    fresh_head_snapshot,
    kind_of,
    rows,
    scalar,
    upgrade,
)


def test_default_templates_deleted_or_renamed_at_head_are_made_again(database_url, tmp_path):
    build_legacy(database_url, "G6")
    upgrade(database_url, tmp_path)
    execute(
        database_url,
        "DELETE FROM batch_templates WHERE name = 'Business Report Review'",
        "UPDATE batch_templates SET name = 'My essays' WHERE name = 'Academic Essay Grading'",
    )

    result, lines = upgrade(database_url, tmp_path)

    assert result.changes == [
        "Created template: Academic Essay Grading",
        "Created template: Business Report Review",
    ]
    assert "  ✓ Created template: Business Report Review" in lines
    assert "  - Template Research Paper Analysis already exists" in lines
    names = sorted(row.name for row in rows(database_url, "SELECT name FROM batch_templates"))
    assert names == sorted([*(t["name"] for t in DEFAULT_TEMPLATES), "My essays"])
    ids = [row.id for row in rows(database_url, "SELECT id FROM batch_templates")]
    assert len(set(ids)) == 5  # the renamed template keeps its id; the new one has its own

    again, _ = upgrade(database_url, tmp_path)
    assert again.changes == []


def _as_an_earlier_release_left_it(url: str) -> None:
    """A database stamped at head whose enhanced columns an earlier release of this tool
    left as it found them: priority nullable without its default (NULL in some rows),
    tags as TEXT, batch_templates.is_public nullable."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            # That release had no triggers (0014's name job_batches, and SQLite's rebuild
            # could not rename the copy into place under them): set aside meanwhile.
            triggers = (
                list(
                    connection.exec_driver_sql(
                        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
                    )
                )
                if connection.dialect.name == "sqlite"
                else []
            )
            for name, _ in triggers:
                connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
            operations = Operations(MigrationContext.configure(connection))
            with operations.batch_alter_table("job_batches") as batch:
                batch.alter_column(
                    "priority", existing_type=sa.Integer(), nullable=True, server_default=None
                )
                batch.alter_column("tags", existing_type=sa.JSON(), type_=sa.Text())
            with operations.batch_alter_table("batch_templates") as batch:
                batch.alter_column("is_public", existing_type=sa.Boolean(), nullable=True)
            connection.execute(
                sa.text("UPDATE job_batches SET priority = NULL WHERE batch_name LIKE :like"),
                {"like": "Y%"},
            )
            for _, definition in triggers:
                connection.exec_driver_sql(definition)
    finally:
        engine.dispose()


def test_columns_an_earlier_release_left_unaligned_are_repaired_at_head(
    database_url, tmp_path, monkeypatch
):
    build_legacy(database_url, "G6")
    upgrade(database_url, tmp_path)
    _as_an_earlier_release_left_it(database_url)
    assert read_drift(database_url) != {"missing": [], "other": []}
    if kind_of(database_url) == "postgresql":
        monkeypatch.chdir(tmp_path)  # pg_dump writes its backup here

    result, lines = upgrade(database_url, tmp_path, backup=True)

    assert result.backup is not None  # the schema changes, so it is backed up first
    assert any(line.startswith("  ✓ Aligned column: job_batches.priority (") for line in lines)
    assert any(line.startswith("  ✓ Aligned column: job_batches.tags (type TEXT") for line in lines)
    assert any(line.startswith("  ✓ Aligned column: batch_templates.is_public (") for line in lines)
    assert schema_snapshot(database_url) == fresh_head_snapshot(kind_of(database_url))
    assert read_drift(database_url) == {"missing": [], "other": []}
    assert scalar(database_url, "SELECT COUNT(*) FROM job_batches WHERE priority IS NULL") == 0
    assert scalar(database_url, "SELECT COUNT(*) FROM job_batches WHERE priority = 5") == 9


def test_repair_at_head_on_postgresql_needs_pg_dump_or_no_backup(
    postgres_url, tmp_path, monkeypatch
):
    build_legacy(postgres_url, "G6")
    upgrade(postgres_url, tmp_path)
    _as_an_earlier_release_left_it(postgres_url)
    schema, data = schema_snapshot(postgres_url), data_snapshot(postgres_url)
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump here

    with pytest.raises(UpgradeRefused, match="pg_dump is not on PATH"):
        upgrade(postgres_url, tmp_path, backup=True)
    assert schema_snapshot(postgres_url) == schema and data_snapshot(postgres_url) == data

    upgrade(postgres_url, tmp_path, backup=False)
    assert schema_snapshot(postgres_url) == fresh_head_snapshot("postgresql")
