"""The upgrade is safe: it backs up, locks, runs atomically, refuses what it must, and
survives a kill, a concurrent run and a busy table."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import time

import pytest
import sqlalchemy as sa

from grading_app import migrations
from grading_app.upgrade.runner import HANG_AT_ENV, UpgradeFailed, UpgradeRefused
from tests import legacy_db
from tests.schema_snapshot import data_snapshot, schema_snapshot
from tests.upgrade.helpers import (
    build_legacy,
    execute,
    fresh_head_snapshot,
    kind_of,
    migrate_command,
    revision_of,
    run_migrate,
    scalar,
    upgrade,
)


def _wait_for_line(process, marker: str, timeout: float = 60) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} never printed; output: {''.join(seen)}")


# --- the guide's command and output ----------------------------------------------------


def test_guide_command_prints_the_guide_output(tmp_path):
    url = f"sqlite:///{tmp_path / 'grading_app.db'}"
    build_legacy(url, "G1")

    code, output = run_migrate(url=None, cwd=tmp_path)  # default URL, relative to cwd

    assert code == 0, output
    expected_in_order = [
        "🚀 Starting Enhanced Batch System Migration",
        "📊 Database Type: sqlite",
        "📊 Database URL: sqlite:///grading_app.db",
        "🏗️ Creating batch_templates table...",
        "  ✓ Created batch_templates table",
        "📋 Migrating job_batches table...",
        "  ✓ Added column: job_batches.updated_at",
        "  ✓ Added column: job_batches.priority",
        "  ✓ Added column: job_batches.tags",
        "🔄 Updating batch status values...",
        "  ✓ Set updated_at timestamps for existing batches",
        "📝 Creating default batch templates...",
        "  ✓ Created template: Academic Essay Grading",
        "  ✓ Created template: Business Report Review",
        "  ✓ Created template: Research Paper Analysis",
        "  ✓ Created template: Creative Writing Assessment",
        "✅ Verifying migration...",
        "  ✓ All required tables exist",
        "  ✓ All required columns exist",
        "  ✓ Found 4 batch templates",
        f"  ✓ Found {len(legacy_db.EXPECTED_BATCH_STATUS)} existing batches",
        "🎉 Enhanced Batch System Migration Completed Successfully!",
    ]
    position = 0
    for expected in expected_in_order:
        position = output.index(expected, position)

    info = json.loads((tmp_path / "migration_backup_info.json").read_text())
    assert info["status"] == "completed"
    assert info["revision_before"] is None
    assert info["revision_after"] == migrations.head_revision()
    assert info["row_counts_before"] == info["row_counts_after"]
    assert "Added column: job_batches.priority" in info["changes"]
    backup = tmp_path / info["backup"]["file"]
    assert backup.parent == tmp_path and backup.name.startswith("grading_app_backup_")
    assert hashlib.sha256(backup.read_bytes()).hexdigest() == info["backup"]["sha256"]

    code, output = run_migrate(url=None, cwd=tmp_path)
    assert code == 0, output
    assert "  ✓ Added" not in output and "nothing to change" in output


def test_sqlite_backup_is_a_verified_copy_of_the_legacy_database(sqlite_url, tmp_path):
    build_legacy(sqlite_url, "G5")
    before = data_snapshot(sqlite_url)

    result, lines = upgrade(sqlite_url, tmp_path, backup=True)

    assert result.backup is not None
    path = result.backup.path
    assert path.parent == tmp_path
    assert path.name.startswith("grading_app_backup_") and path.suffix == ".db"
    assert data_snapshot(f"sqlite:///{path}") == before  # the legacy database, untouched
    assert revision_of(f"sqlite:///{path}") is None
    assert result.backup.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert any(line.startswith("  ✓ Backup verified") for line in lines)


def test_postgresql_backup_with_pg_dump_and_masked_password(postgres_url, tmp_path, monkeypatch):
    build_legacy(postgres_url, "G6")
    monkeypatch.chdir(tmp_path)
    # Trust authentication ignores the password; it must appear nowhere we write.
    with_password = postgres_url.replace("postgres@", "postgres:s3cret-pw@")
    info_path = tmp_path / "migration_backup_info.json"

    result, lines = upgrade(with_password, tmp_path, backup=True, info_path=info_path)

    assert result.backup is not None
    dump = result.backup.path.read_text()
    assert result.backup.path.parent == tmp_path and result.backup.path.suffix == ".sql"
    assert "COPY public.submissions" in dump
    assert "batch_templates" not in dump  # taken before the upgrade changed anything
    info_text = info_path.read_text()
    assert "s3cret-pw" not in info_text and "s3cret-pw" not in "\n".join(lines)
    assert "***" in json.loads(info_text)["database_url"]


def test_postgresql_without_pg_dump_requires_no_backup(postgres_url, tmp_path, monkeypatch):
    build_legacy(postgres_url, "G6")
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump here
    with pytest.raises(UpgradeRefused, match="pg_dump is not on PATH.*--no-backup"):
        upgrade(postgres_url, tmp_path, backup=True)
    assert revision_of(postgres_url) is None

    upgrade(postgres_url, tmp_path, backup=False)
    assert revision_of(postgres_url) == migrations.head_revision()


# --- refusals --------------------------------------------------------------------------


def test_refuses_missing_sqlite_file(tmp_path):
    code, output = run_migrate(url="sqlite:///nowhere.db", cwd=tmp_path)
    assert code == 1
    assert f"No database file at {tmp_path / 'nowhere.db'}" in output
    assert "Traceback" not in output
    assert not (tmp_path / "nowhere.db").exists()


def test_refuses_unreachable_postgresql(tmp_path):
    url = "postgresql://someone:topsecret@127.0.0.1:1/grading"
    code, output = run_migrate(url=url, cwd=tmp_path)
    assert code == 1
    assert "❌ Migration failed: Cannot use the database" in output
    assert "topsecret" not in output and "Traceback" not in output


def test_refuses_a_database_of_another_application(database_url, tmp_path):
    execute(database_url, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(UpgradeRefused, match="does not look like a Grading App database"):
        upgrade(database_url, tmp_path)
    assert sa.inspect(sa.create_engine(database_url)).get_table_names() == ["customers"]


def test_refuses_an_empty_database(database_url, tmp_path):
    execute(database_url, "SELECT 1")
    with pytest.raises(UpgradeRefused, match="empty.*grading-app db upgrade"):
        upgrade(database_url, tmp_path)


def test_refuses_a_database_from_a_newer_release(database_url, tmp_path):
    build_legacy(database_url, "G6")
    upgrade(database_url, tmp_path)
    execute(database_url, "UPDATE alembic_version SET version_num = '0099_from_the_future'")
    schema = schema_snapshot(database_url)
    with pytest.raises(UpgradeRefused, match="0099_from_the_future.*newer release"):
        upgrade(database_url, tmp_path)
    assert schema_snapshot(database_url) == schema


def test_refuses_a_read_only_sqlite_database(tmp_path):
    path = tmp_path / "grading_app.db"
    build_legacy(f"sqlite:///{path}", "G6")
    before = path.read_bytes()
    read_only_url = f"sqlite:///file:{path}?mode=ro&uri=true"
    with pytest.raises(UpgradeRefused, match="read-only"):
        upgrade(read_only_url, tmp_path)
    assert path.read_bytes() == before
    if os.geteuid() != 0:  # root writes through file permissions
        path.chmod(0o444)
        with pytest.raises(UpgradeRefused, match="read-only"):
            upgrade(f"sqlite:///{path}", tmp_path)


# --- atomicity, kill, concurrency, busy tables -------------------------------------------


@pytest.mark.parametrize("point", ["after-lock", "after-schema"])
def test_killed_mid_upgrade_leaves_database_unchanged(database_url, tmp_path, point):
    build_legacy(database_url, "G4")
    schema, data = schema_snapshot(database_url), data_snapshot(database_url)

    process = migrate_command(
        "--no-backup", url=database_url, cwd=tmp_path, env={HANG_AT_ENV: point}
    )
    try:
        output = _wait_for_line(process, f"[hang] {point}")
        if point == "after-schema":
            assert any("Added column: job_batches.priority" in line for line in output)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()

    deadline = time.monotonic() + 30  # PostgreSQL notices the dead client's socket
    while kind_of(database_url) == "postgresql" and time.monotonic() < deadline:
        if not scalar(
            database_url,
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'grading-app'",
        ):
            break
        time.sleep(0.2)
    assert schema_snapshot(database_url) == schema
    assert data_snapshot(database_url) == data
    assert revision_of(database_url) is None

    result, _ = upgrade(database_url, tmp_path)
    assert revision_of(database_url) == migrations.head_revision()
    assert schema_snapshot(database_url) == fresh_head_snapshot(kind_of(database_url))


def test_concurrent_runs_do_not_interleave(database_url, tmp_path):
    build_legacy(database_url, "G6")
    first = migrate_command(
        "--no-backup", url=database_url, cwd=tmp_path, env={HANG_AT_ENV: "after-schema:4"}
    )
    try:
        _wait_for_line(first, "[hang] after-schema")
        # A second run that will not wait long enough exits with a clear message.
        code, output = run_migrate(
            "--no-backup",
            "--lock-wait",
            "0.5",
            url=database_url,
            cwd=tmp_path,
            env={"GRADING_APP_INFO": "x"},
        )
        assert code == 1, output
        assert "Another upgrade" in output or "in use by another process" in output
        assert "Traceback" not in output
        # One that waits runs after the first, and finds nothing left to do.
        code, output = run_migrate("--no-backup", url=database_url, cwd=tmp_path)
        assert code == 0, output
        assert "nothing to change" in output
        rest, _ = first.communicate(timeout=60)
        assert first.returncode == 0, rest
    finally:
        if first.poll() is None:
            first.kill()
    templates = scalar(database_url, "SELECT COUNT(*) FROM batch_templates")
    assert templates == 4


def test_busy_postgresql_table_times_out_instead_of_queueing(postgres_url, tmp_path):
    build_legacy(postgres_url, "G6")
    holder = sa.create_engine(postgres_url)
    with holder.connect() as connection:
        transaction = connection.begin()
        # A long-running reader: its lock blocks ALTER TABLE job_batches.
        connection.exec_driver_sql("SELECT COUNT(*) FROM job_batches")
        try:
            with pytest.raises(UpgradeRefused, match="stayed locked.*2 attempts"):
                upgrade(postgres_url, tmp_path, lock_timeout_seconds=0.3, lock_attempts=2)
        finally:
            transaction.rollback()
    holder.dispose()
    assert revision_of(postgres_url) is None
    upgrade(postgres_url, tmp_path)
    assert revision_of(postgres_url) == migrations.head_revision()


def test_sqlite_rebuild_does_not_cascade_to_children(tmp_path):
    """A parent-table rebuild with foreign keys on would delete or orphan child rows."""
    path = tmp_path / "grading_app.db"
    url = f"sqlite:///{path}"
    build_legacy(url, "G6")
    connection = sqlite3.connect(path)
    # Make grading_jobs cascade from job_batches, as some hand-edited databases do.
    sql = connection.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'grading_jobs'"
    ).fetchone()[0]
    cascading = sql.replace(
        "REFERENCES job_batches (id)", "REFERENCES job_batches (id) ON DELETE CASCADE"
    )
    assert cascading != sql
    connection.executescript(
        "PRAGMA writable_schema = ON;"
        "UPDATE sqlite_master SET sql = "
        f"'{cascading}'"
        " WHERE name = 'grading_jobs';"
        "PRAGMA writable_schema = OFF;"
    )
    connection.close()
    jobs = scalar(url, "SELECT COUNT(*) FROM grading_jobs")
    submissions = scalar(url, "SELECT COUNT(*) FROM submissions")

    result, lines = upgrade(url, tmp_path)

    assert "  ✓ Added foreign key: job_batches.template_id → batch_templates.id" in lines
    assert scalar(url, "SELECT COUNT(*) FROM grading_jobs") == jobs
    assert scalar(url, "SELECT COUNT(*) FROM submissions") == submissions


def test_failure_during_the_upgrade_rolls_everything_back(database_url, tmp_path):
    """A problem found at the end (a clashing table of the user's) undoes every step."""
    build_legacy(database_url, "G6")
    schema, data = schema_snapshot(database_url), data_snapshot(database_url)
    execute(database_url, "CREATE TABLE work_items (id INTEGER)")

    with pytest.raises(
        UpgradeFailed, match="missing after the upgrade: work_items|rejected a change"
    ):
        upgrade(database_url, tmp_path)

    execute(database_url, "DROP TABLE work_items")
    assert schema_snapshot(database_url) == schema
    assert data_snapshot(database_url) == data
    assert revision_of(database_url) is None


def test_sqlite_backup_of_a_wal_database_holds_rows_not_yet_checkpointed(tmp_path):
    """In WAL mode committed rows may live only in the -wal file; a plain file copy would
    miss them, so the backup must use SQLite's backup API there."""
    path = tmp_path / "grading_app.db"
    url = f"sqlite:///{path}"
    build_legacy(url, "G6")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("PRAGMA wal_autocheckpoint = 0")
    holder.execute(
        "INSERT INTO job_batches (id, batch_name, provider, prompt) "
        "VALUES ('wal-only', 'Only in the WAL', 'openrouter', 'Grade')"
    )
    try:
        assert (tmp_path / "grading_app.db-wal").stat().st_size > 0
        result, _ = upgrade(url, tmp_path, backup=True)
    finally:
        holder.close()
    assert result.backup is not None
    copy = sqlite3.connect(result.backup.path)
    try:
        names = {row[0] for row in copy.execute("SELECT batch_name FROM job_batches")}
    finally:
        copy.close()
    assert "Only in the WAL" in names
