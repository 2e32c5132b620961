"""The upgrade is safe: it backs up, locks, runs atomically, refuses what it must, and
survives a kill, a concurrent run and a busy table."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time

import pytest
import sqlalchemy as sa
from alembic import op

from grading_app import migrations
from grading_app.migrations.report import Reporter
from grading_app.upgrade import backup as backups
from grading_app.upgrade.runner import HANG_AT_ENV, UpgradeFailed, UpgradeRefused
from grading_app.upgrade.schema import upgrade_schema
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


# --- backups -----------------------------------------------------------------------------


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


def test_postgresql_without_pg_dump_requires_no_backup(postgres_url, tmp_path, monkeypatch):
    build_legacy(postgres_url, "G6")
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump here
    with pytest.raises(UpgradeRefused, match="pg_dump is not on PATH.*--no-backup"):
        upgrade(postgres_url, tmp_path, backup=True)
    assert revision_of(postgres_url) is None

    upgrade(postgres_url, tmp_path, backup=False)
    assert revision_of(postgres_url) == migrations.head_revision()

    # At head nothing needs a backup, so a re-run does not ask for pg_dump.
    result, lines = upgrade(postgres_url, tmp_path, backup=True)
    assert result.backup is None
    assert "💾 Backup: not needed, the schema is already current" in lines
    code, output = run_migrate(url=postgres_url, cwd=tmp_path, env={"PATH": str(tmp_path)})
    assert code == 0, output


def test_pg_dump_failing_rolls_back_and_says_why(postgres_url, tmp_path, monkeypatch):
    build_legacy(postgres_url, "G6")
    fake = tmp_path / "bin" / "pg_dump"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'pg_dump: error: server version mismatch' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    schema, data = schema_snapshot(postgres_url), data_snapshot(postgres_url)

    with pytest.raises(UpgradeFailed, match="pg_dump failed.*server version mismatch"):
        upgrade(postgres_url, tmp_path, backup=True)

    assert revision_of(postgres_url) is None
    assert schema_snapshot(postgres_url) == schema and data_snapshot(postgres_url) == data
    assert not list(tmp_path.glob("grading_app_backup_*"))
    info = json.loads((tmp_path / "migration_backup_info.json").read_text())
    assert info["status"] == "failed" and "pg_dump failed" in info["error"]


def test_backup_that_fails_its_check_rolls_everything_back(sqlite_url, tmp_path, monkeypatch):
    build_legacy(sqlite_url, "G6")
    schema, data = schema_snapshot(sqlite_url), data_snapshot(sqlite_url)

    def short_of_one(path, tables):
        counts = real_counts(path, tables)
        return {**counts, "submissions": counts["submissions"] - 1}

    real_counts = backups._sqlite_counts
    monkeypatch.setattr(backups, "_sqlite_counts", short_of_one)

    with pytest.raises(UpgradeFailed, match="does not hold the same rows.*submissions"):
        upgrade(sqlite_url, tmp_path, backup=True)

    assert revision_of(sqlite_url) is None
    assert schema_snapshot(sqlite_url) == schema and data_snapshot(sqlite_url) == data
    assert not list(tmp_path.glob("grading_app_backup_*"))  # no unverified copy left


def test_sqlite_backup_is_the_database_file_byte_for_byte(sqlite_url, tmp_path):
    build_legacy(sqlite_url, "G6")
    database = tmp_path / "grading_app.db"
    original = hashlib.sha256(database.read_bytes()).hexdigest()

    result, lines = upgrade(sqlite_url, tmp_path, backup=True)

    assert result.backup is not None and result.backup.method == backups.FILE_COPY
    assert result.backup.sha256 == original  # the database as the upgrade found it
    assert any(line.endswith(", file copy)") for line in lines if "Backup written" in line)
    info = json.loads((tmp_path / "migration_backup_info.json").read_text())
    assert info["backup"]["method"] == "file copy" and info["backup"]["sha256"] == original
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("method", ["file copy", "SQLite online backup API"])
def test_the_backup_is_as_private_as_the_database_in_any_folder(tmp_path, method):
    folder = tmp_path / "Class #3 100%"  # characters a file: URI must escape
    folder.mkdir()
    path = folder / "grading_app.db"
    build_legacy(f"sqlite:///{path}", "G6")
    path.chmod(0o600)
    reader = None
    if method != backups.FILE_COPY:  # a reader holding a WAL checkpoint back
        writer = _wal_database_with_a_row_only_in_the_wal(path, build=False)
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM job_batches").fetchone()
        writer.execute("UPDATE job_batches SET description = 'newer' WHERE id = 'wal-only'")
        writer.close()
    try:
        result, _ = upgrade(f"sqlite:///{path}", tmp_path, backup=True)
    finally:
        if reader is not None:
            reader.close()

    assert result.backup is not None and result.backup.method == method
    assert result.backup.path.parent == folder
    assert result.backup.path.stat().st_mode & 0o777 == 0o600


def test_the_postgresql_backup_is_readable_by_its_owner_only(postgres_url, tmp_path, monkeypatch):
    build_legacy(postgres_url, "G6")
    monkeypatch.chdir(tmp_path)  # pg_dump writes its backup here
    previous = os.umask(0o022)  # the usual umask: new files readable by everyone
    try:
        result, _ = upgrade(postgres_url, tmp_path, backup=True)
    finally:
        os.umask(previous)

    assert result.backup is not None and result.backup.path.suffix == ".sql"
    assert "COPY public.submissions" in result.backup.path.read_text()
    assert result.backup.path.stat().st_mode & 0o777 == 0o600


def test_file_copy_on_a_file_system_without_copy_file_range(sqlite_url, tmp_path, monkeypatch):
    """Some network and FUSE file systems refuse copy_file_range (EXDEV, EOPNOTSUPP...),
    or stop part way; the backup is still the whole database."""
    build_legacy(sqlite_url, "G6")
    original = hashlib.sha256((tmp_path / "grading_app.db").read_bytes()).hexdigest()
    calls = []
    real_copy_range = os.copy_file_range

    def refuses_after_one_page(source, target, count):
        calls.append(count)
        if len(calls) == 1:
            return real_copy_range(source, target, 4096)
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(backups.os, "copy_file_range", refuses_after_one_page, raising=False)
    result, _ = upgrade(sqlite_url, tmp_path, backup=True)

    assert len(calls) == 2
    assert result.backup is not None and result.backup.method == backups.FILE_COPY
    assert result.backup.sha256 == original


def test_a_copy_a_killed_upgrade_left_behind_is_removed(sqlite_url, tmp_path):
    build_legacy(sqlite_url, "G6")
    abandoned = tmp_path / "grading_app_backup_20250101_120000.db.partial"
    abandoned.write_bytes(b"\0" * 4096)
    an_hour_ago = time.time() - 3600
    os.utime(abandoned, (an_hour_ago, an_hour_ago))
    recent = tmp_path / "grading_app_backup_20250101_130000.db.partial"
    recent.write_bytes(b"\0" * 4096)  # may still be written by someone: left alone
    unrelated = tmp_path / "notes_backup_20250101_120000.db.partial"
    unrelated.write_bytes(b"mine")
    os.utime(unrelated, (an_hour_ago, an_hour_ago))

    result, _ = upgrade(sqlite_url, tmp_path, backup=True)

    assert result.backup is not None
    assert not abandoned.exists()
    assert recent.exists() and unrelated.exists()


@pytest.fixture
def small_disk(tmp_path):
    """A real file system of 2 MB (tmpfs), where mounting one is allowed (root)."""
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_disk_too_full_for_the_backup_is_said_before_copying(small_disk, tmp_path):
    path = small_disk / "grading_app.db"
    build_legacy(f"sqlite:///{path}", "G6")
    with sqlite3.connect(path) as padding:  # the database takes most of the 2 MB disk
        padding.execute("CREATE TABLE notes_of_my_own (body TEXT)")
        padding.execute("INSERT INTO notes_of_my_own VALUES (?)", ("x" * 1_200_000,))
    before = path.read_bytes()

    code, output = run_migrate(url=f"sqlite:///{path}", cwd=tmp_path)

    assert code == 1
    assert "Not enough free space" in output and "--no-backup" in output
    assert "Traceback" not in output
    assert path.read_bytes() == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["grading_app.db"]


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


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://someone:pw@localhost/grading", "DATABASE_URL uses 'mysql'; Grading App supports"),
        ("not a url", "DATABASE_URL is not a database URL (e.g. sqlite:///grading_app.db"),
    ],
)
def test_refuses_an_unusable_database_url_in_one_line(tmp_path, url, message):
    code, output = run_migrate(url=url, cwd=tmp_path)
    assert code == 1
    failures = [line for line in output.splitlines() if line.startswith("❌")]
    assert failures == [f"❌ Migration failed: {failures[0].split(': ', 1)[1]}"]
    assert message in failures[0]
    assert "Traceback" not in output and ":pw@" not in output
    assert not list(tmp_path.iterdir())  # no info file, nothing else


def test_refuses_a_file_that_is_not_sqlite(tmp_path):
    path = tmp_path / "grading_app.db"
    path.write_bytes(b"Quarterly report, not a database. " * 200)
    before = path.read_bytes()

    code, output = run_migrate(url=None, cwd=tmp_path)

    assert code == 1, output
    assert f"❌ Migration failed: {path} is not a usable SQLite database" in output
    assert "Traceback" not in output and "DatabaseError" not in output
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grading_app.db"]


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_settings_the_upgrade_does_not_need_do_not_stop_it(tmp_path, where):
    """Old deployments set HOST=0.0.0.0 and other values this release would not accept;
    the upgrade reads DATABASE_URL only."""
    build_legacy(f"sqlite:///{tmp_path / 'grading_app.db'}", "G6")
    odd = {"HOST": "0.0.0.0", "PORT": "abc", "MAX_UPLOAD_MB": "0"}
    if where == ".env":
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in odd.items()))
        odd = {}

    code, output = run_migrate(url=None, cwd=tmp_path, env=odd)

    assert code == 0, output
    assert "🎉 Enhanced Batch System Migration Completed Successfully!" in output


def test_database_url_from_a_dot_env_file(tmp_path):
    build_legacy(f"sqlite:///{tmp_path / 'legacy.db'}", "G6")
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///legacy.db\nHOST=0.0.0.0\n")

    code, output = run_migrate("--no-backup", url=None, cwd=tmp_path)

    assert code == 0, output
    assert "📊 Database URL: sqlite:///legacy.db" in output
    assert revision_of(f"sqlite:///{tmp_path / 'legacy.db'}") == migrations.head_revision()


def test_refuses_sqlite_older_than_3_35(sqlite_url, tmp_path, monkeypatch):
    build_legacy(sqlite_url, "G6")
    before = data_snapshot(sqlite_url)
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")

    with pytest.raises(UpgradeRefused, match=r"SQLite 3\.31\.1; Grading App needs SQLite 3\.35"):
        upgrade(sqlite_url, tmp_path)
    with pytest.raises(UpgradeRefused, match="needs SQLite 3.35"):
        upgrade_schema(f"sqlite:///{tmp_path / 'new.db'}", write=lambda _: None)

    assert data_snapshot(sqlite_url) == before
    assert revision_of(sqlite_url) is None


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
    # The first run holds its transaction open, schema changed, until the test lets it
    # go: the others overlap it however slowly each process starts.
    release = tmp_path / "release-first-run"
    first = migrate_command(
        "--no-backup",
        url=database_url,
        cwd=tmp_path,
        env={HANG_AT_ENV: f"after-schema@{release}"},
    )
    waiting = None
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
        assert first.poll() is None  # the first was still holding on throughout
        # One that waits runs after the first, and finds nothing left to do.
        waiting = migrate_command(
            "--no-backup", "--lock-wait", "120", url=database_url, cwd=tmp_path
        )
        _wait_for_line(waiting, "📊 Database URL")  # started, and about to wait
        release.touch()
        rest, _ = first.communicate(timeout=120)
        assert first.returncode == 0, rest
        output, _ = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, output
        assert f"📊 Schema: revision {migrations.head_revision()} (current)" in output
        assert "  ✓ " not in output.split("✅ Verifying migration...")[0]  # no change made
    finally:
        release.touch()
        for process in (first, waiting):
            if process is not None and process.poll() is None:
                process.kill()
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
    """A parent-table rebuild with foreign keys on would delete or orphan child rows:
    here the rows of a table of the user's own that cascades from job_batches."""
    path = tmp_path / "grading_app.db"
    url = f"sqlite:///{path}"
    build_legacy(url, "G6")
    execute(
        url,
        "CREATE TABLE batch_notes (id INTEGER PRIMARY KEY, "
        "batch_id VARCHAR(36) REFERENCES job_batches (id) ON DELETE CASCADE, note TEXT)",
        "INSERT INTO batch_notes (batch_id, note) SELECT id, 'keep me' FROM job_batches",
    )
    notes = scalar(url, "SELECT COUNT(*) FROM batch_notes")
    jobs = scalar(url, "SELECT COUNT(*) FROM grading_jobs")

    result, lines = upgrade(url, tmp_path)

    assert "  ✓ Added foreign key: job_batches.template_id → batch_templates.id" in lines
    assert notes == 9 and scalar(url, "SELECT COUNT(*) FROM batch_notes") == notes
    assert scalar(url, "SELECT COUNT(*) FROM grading_jobs") == jobs
    assert result.row_counts_after["batch_notes"] == notes  # every table is counted
    assert any(line.split() == ["batch_notes", "9", "→", "9"] for line in lines)


def test_a_changed_foreign_key_of_ours_fails_like_db_check(tmp_path):
    """Verification and `grading-app db check` agree: a difference from the models (here
    an ON DELETE CASCADE added by hand) fails the upgrade, which changes nothing."""
    path = tmp_path / "grading_app.db"
    url = f"sqlite:///{path}"
    build_legacy(url, "G6")
    connection = sqlite3.connect(path)
    sql = connection.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'grading_jobs'"
    ).fetchone()[0]
    cascading = sql.replace(
        "REFERENCES job_batches (id)", "REFERENCES job_batches (id) ON DELETE CASCADE"
    )
    assert cascading != sql
    connection.executescript(
        "PRAGMA writable_schema = ON;"
        f"UPDATE sqlite_master SET sql = '{cascading}' WHERE name = 'grading_jobs';"
        "PRAGMA writable_schema = OFF;"
    )
    connection.close()
    schema, data = schema_snapshot(url), data_snapshot(url)

    with pytest.raises(UpgradeFailed, match="still differs.*modify_fk grading_jobs"):
        upgrade(url, tmp_path)

    assert schema_snapshot(url) == schema and data_snapshot(url) == data
    assert revision_of(url) is None


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


def test_a_lost_row_fails_the_verification_and_rolls_everything_back(
    database_url, tmp_path, monkeypatch
):
    """If any step lost a row, the before/after row counts catch it and nothing stays."""
    build_legacy(database_url, "G6")
    schema, data = schema_snapshot(database_url), data_snapshot(database_url)
    section = Reporter.section

    def section_that_loses_a_row(self, title):
        section(self, title)
        if title.startswith("📈"):  # a step of revision 0004, deep inside the upgrade
            op.get_bind().execute(
                sa.text("DELETE FROM grade_results WHERE id = (SELECT MIN(id) FROM grade_results)")
            )

    monkeypatch.setattr(Reporter, "section", section_that_loses_a_row)

    with pytest.raises(
        UpgradeFailed, match="Row counts changed during the upgrade: grade_results 16 → 15"
    ):
        upgrade(database_url, tmp_path)

    assert schema_snapshot(database_url) == schema
    assert data_snapshot(database_url) == data
    assert revision_of(database_url) is None


def test_busy_table_retry_succeeds_on_a_later_attempt(postgres_url, tmp_path):
    build_legacy(postgres_url, "G6")
    holder = sa.create_engine(postgres_url)
    connection = holder.connect()
    transaction = connection.begin()
    connection.exec_driver_sql("SELECT COUNT(*) FROM job_batches")  # blocks ALTER TABLE
    release = threading.Timer(1.0, transaction.rollback)
    release.start()
    try:
        result, lines = upgrade(postgres_url, tmp_path, lock_timeout_seconds=0.3, lock_attempts=3)
    finally:
        release.join()
        connection.close()
        holder.dispose()

    assert "⏳ Tables are busy (attempt 1 of 3); retrying in 2 s" in lines
    assert revision_of(postgres_url) == migrations.head_revision()
    # The changes of the attempt that was rolled back are not counted twice.
    assert result.changes.count("Created batch_templates table") == 1
    assert schema_snapshot(postgres_url) == fresh_head_snapshot("postgresql")


def _wal_database_with_a_row_only_in_the_wal(path, *, build=True):
    """A G6 database in WAL mode whose newest committed row is still in the -wal file,
    and the connection that wrote it (open, so the -wal stays)."""
    if build:
        build_legacy(f"sqlite:///{path}", "G6")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute(
        "INSERT INTO job_batches (id, batch_name, provider, prompt) "
        "VALUES ('wal-only', 'Only in the WAL', 'openrouter', 'Grade')"
    )
    assert path.with_name(path.name + "-wal").stat().st_size > 0
    return writer


def _batch_names(path) -> set[str]:
    copy = sqlite3.connect(path)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {row[0] for row in copy.execute("SELECT batch_name FROM job_batches")}
    finally:
        copy.close()


def test_sqlite_backup_of_a_wal_database_holds_rows_not_yet_checkpointed(tmp_path):
    """In WAL mode committed rows may live only in the -wal file. The backup checkpoints
    them into the database first, so the file copy holds them."""
    path = tmp_path / "grading_app.db"
    writer = _wal_database_with_a_row_only_in_the_wal(path)
    try:
        result, _ = upgrade(f"sqlite:///{path}", tmp_path, backup=True)
    finally:
        writer.close()
    assert result.backup is not None and result.backup.method == backups.FILE_COPY
    assert "Only in the WAL" in _batch_names(result.backup.path)


def test_sqlite_backup_uses_the_backup_api_when_a_reader_holds_the_checkpoint_back(tmp_path):
    """A reader whose snapshot predates the newest rows keeps SQLite from checkpointing
    them, so the database file alone is not the database: the online backup API copies
    it, the rows from the -wal included."""
    path = tmp_path / "grading_app.db"
    build_legacy(f"sqlite:///{path}", "G6")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("PRAGMA journal_mode = WAL")
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM job_batches").fetchone()  # snapshot taken here
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute(
        "INSERT INTO job_batches (id, batch_name, provider, prompt) "
        "VALUES ('wal-only', 'Only in the WAL', 'openrouter', 'Grade')"
    )
    try:
        result, lines = upgrade(f"sqlite:///{path}", tmp_path, backup=True)
    finally:
        reader.close()
        writer.close()
    assert result.backup is not None and result.backup.method == backups.ONLINE_BACKUP_API
    assert any("SQLite online backup API)" in line for line in lines)
    assert "Only in the WAL" in _batch_names(result.backup.path)
    assert result.backup.sha256 == hashlib.sha256(result.backup.path.read_bytes()).hexdigest()


def test_tables_of_the_users_own_are_counted_and_backed_up(database_url, tmp_path, monkeypatch):
    build_legacy(database_url, "G6")
    execute(
        database_url,
        'CREATE TABLE "Class notes" (id INTEGER PRIMARY KEY, note TEXT)',
        "INSERT INTO \"Class notes\" (id, note) VALUES (1, 'Term 1'), (2, 'Term 2')",
    )
    monkeypatch.chdir(tmp_path)  # pg_dump writes its backup here

    result, lines = upgrade(database_url, tmp_path, backup=True)

    assert result.backup is not None and result.backup.row_counts["Class notes"] == 2
    assert result.row_counts_before["Class notes"] == result.row_counts_after["Class notes"] == 2
    assert scalar(database_url, 'SELECT COUNT(*) FROM "Class notes"') == 2
