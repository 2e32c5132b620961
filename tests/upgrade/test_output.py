"""What the upgrade prints and records: the guide's output, line for line, and
migration_backup_info.json with its history, never a password."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from grading_app import migrations
from grading_app.db import mask_url
from grading_app.upgrade.backup import libpq_connection
from grading_app.upgrade.database_url import to_engine_url
from tests import legacy_db
from tests.upgrade.helpers import build_legacy, kind_of, revision_of, run_migrate, upgrade

RULE = "=" * 60
# The guide's "Enhanced JobBatch Table" list, in its order.
GUIDE_COLUMNS = (
    "updated_at",
    "priority",
    "tags",
    "models_to_compare",
    "batch_settings",
    "auto_assign_jobs",
    "total_jobs",
    "completed_jobs",
    "failed_jobs",
    "deadline",
    "started_at",
    "completed_at",
    "estimated_completion",
    "template_id",
    "created_by",
    "shared_with",
    "saved_prompt_id",
    "saved_marking_scheme_id",
)

# The guide's "Expected Output", copied line for line (seed/000_90f4536ee22330f7.txt);
# "[... more columns ...]" stands for the rest of the guide's column list, and "Found X
# existing batches" for the legacy database's nine.
GUIDE_OUTPUT = [
    "🚀 Starting Enhanced Batch System Migration",
    RULE,
    "📊 Database Type: {kind}",
    "📊 Database URL: {url}",
    "",
    "🏗️ Creating batch_templates table...",
    "  ✓ Created batch_templates table",
    "",
    "📋 Migrating job_batches table...",
    *(f"  ✓ Added column: job_batches.{column}" for column in GUIDE_COLUMNS),
    "",
    "🔄 Updating batch status values...",
    "  ✓ Set updated_at timestamps for existing batches",
    "",
    "📝 Creating default batch templates...",
    "  ✓ Created template: Academic Essay Grading",
    "  ✓ Created template: Business Report Review",
    "  ✓ Created template: Research Paper Analysis",
    "  ✓ Created template: Creative Writing Assessment",
    "",
    "✅ Verifying migration...",
    "  ✓ All required tables exist",
    "  ✓ All required columns exist",
    "  ✓ Found 4 batch templates",
    f"  ✓ Found {len(legacy_db.EXPECTED_BATCH_STATUS)} existing batches",
    "",
    RULE,
    "🎉 Enhanced Batch System Migration Completed Successfully!",
    RULE,
]

# A second run: every guide section again, with what it found in place.
SECOND_RUN_OUTPUT = [
    "🚀 Starting Enhanced Batch System Migration",
    "🏗️ Creating batch_templates table...",
    "  - batch_templates table already exists",
    "📋 Migrating job_batches table...",
    *(f"  - Column job_batches.{column} already exists" for column in GUIDE_COLUMNS),
    "🔄 Updating batch status values...",
    "  - Batch status values already updated; the application keeps them now",
    "📝 Creating default batch templates...",
    "  - Template Academic Essay Grading already exists",
    "  - Template Business Report Review already exists",
    "  - Template Research Paper Analysis already exists",
    "  - Template Creative Writing Assessment already exists",
    "🔗 Adding foreign key relationships...",
    "  - Foreign keys of job_batches already exist",
    "✅ Verifying migration...",
    "  ✓ All required tables exist",
    "  ✓ All required columns exist",
    "  ✓ Found 4 batch templates",
    "🎉 Enhanced Batch System Migration Completed Successfully!",
]


def assert_lines_in_order(output: str, expected: list[str]) -> None:
    """Each expected line appears as a whole line of `output`, in this order."""
    lines = output.splitlines()
    position = 0
    for wanted in expected:
        try:
            position = lines.index(wanted, position) + 1
        except ValueError:
            raise AssertionError(
                f"line {wanted!r} not found (in order) in the output:\n{output}"
            ) from None


@pytest.fixture(params=["sqlite", "postgresql"])
def guide_database(request, tmp_path):
    """A G1 legacy database and DATABASE_URL as a user writes it (None: the default)."""
    if request.param == "sqlite":
        build_legacy(f"sqlite:///{tmp_path / 'grading_app.db'}", "G1")
        yield None, "sqlite:///grading_app.db"
        return
    from tests.conftest import fresh_postgres_database

    with fresh_postgres_database() as url:
        build_legacy(url, "G1")
        plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
        yield plain, plain


def test_guide_command_prints_the_guide_output(guide_database, tmp_path):
    url, shown = guide_database
    kind = "sqlite" if url is None else "postgresql"

    code, output = run_migrate(url=url, cwd=tmp_path)  # the guide's command, in its folder

    assert code == 0, output
    expected = [line.format(kind=kind, url=shown) for line in GUIDE_OUTPUT]
    assert_lines_in_order(output, expected)
    assert "+psycopg" not in output and "Traceback" not in output
    assert "⚠️" not in output

    info = json.loads((tmp_path / "migration_backup_info.json").read_text())
    assert info["status"] == "completed"
    assert info["database_url"] == shown
    assert info["revision_before"] is None
    assert info["revision_after"] == migrations.head_revision()
    assert "Set updated_at timestamps for existing batches" in info["changes"]
    backup = Path(info["backup"]["file"])
    assert backup.parent == tmp_path and backup.name.startswith("grading_app_backup_")
    assert hashlib.sha256(backup.read_bytes()).hexdigest() == info["backup"]["sha256"]
    assert info["latest_backup"]["file"] == info["backup"]["file"]
    assert info["previous_runs"] == []

    code, output = run_migrate(url=url, cwd=tmp_path)

    assert code == 0, output
    assert_lines_in_order(output, SECOND_RUN_OUTPUT)
    assert "  ✓ Added" not in output and "  ✓ Created" not in output
    again = json.loads((tmp_path / "migration_backup_info.json").read_text())
    assert again["changes"] == [] and again["backup"] is None
    # The real migration's record is still there, backup and checksum included.
    assert again["previous_runs"][0]["changes"] == info["changes"]
    assert again["previous_runs"][0]["backup"] == info["backup"]
    assert again["latest_backup"]["sha256"] == info["backup"]["sha256"]


def test_info_file_keeps_a_bounded_history_newest_first(sqlite_url, tmp_path):
    build_legacy(sqlite_url, "G6")
    info_path = tmp_path / "migration_backup_info.json"
    # A file written by the previous version of this tool: one run, no history.
    older = [
        {"date": f"2026-01-{day:02d}T00:00:00+00:00", "status": "completed"} for day in range(1, 26)
    ]
    info_path.write_text(json.dumps({**older[0], "previous_runs": older[1:]}))

    first, _ = upgrade(sqlite_url, tmp_path, backup=True, info_path=info_path)
    upgrade(sqlite_url, tmp_path, backup=True, info_path=info_path)

    info = json.loads(info_path.read_text())
    assert info["changes"] == []
    history = info["previous_runs"]
    assert len(history) == 20
    assert history[0]["revision_before"] is None and history[0]["changes"] == first.changes
    assert history[1] == older[0] and history[2] == older[1]
    assert "previous_runs" not in history[0]
    assert info["latest_backup"]["file"] == str(first.backup.path)


def test_an_unreadable_info_file_is_kept_aside(sqlite_url, tmp_path):
    build_legacy(sqlite_url, "G6")
    info_path = tmp_path / "migration_backup_info.json"
    info_path.write_text("{ not json")

    _, lines = upgrade(sqlite_url, tmp_path, info_path=info_path)

    kept = list(tmp_path.glob("migration_backup_info.json.unreadable-*"))
    assert len(kept) == 1 and kept[0].read_text() == "{ not json"
    assert any("could not be read" in line for line in lines)
    assert json.loads(info_path.read_text())["status"] == "completed"


def test_mask_url_hides_passwords_in_userinfo_and_query():
    assert mask_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    masked = mask_url(
        "postgresql://u@h/db?sslmode=require&password=s3cret&sslpassword=k3y&token=t0k&pwd=x"
    )
    assert masked == (
        "postgresql://u@h/db?sslmode=require&password=***&sslpassword=***&token=***&pwd=***"
    )
    assert mask_url("sqlite:///grading_app.db") == "sqlite:///grading_app.db"
    assert mask_url("not a url") == "<unparseable database URL>"


def test_password_in_the_query_string_is_never_printed_or_written(
    postgres_url, tmp_path, monkeypatch
):
    build_legacy(postgres_url, "G6")
    monkeypatch.chdir(tmp_path)
    # Trust authentication ignores the password; it must appear nowhere we write.
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://") + (
        "?password=s3cret-q&application_name=upgrade-test"
    )
    info_path = tmp_path / "migration_backup_info.json"

    code, output = run_migrate(url=url, cwd=tmp_path)

    assert code == 0, output
    assert "s3cret-q" not in output and "password=***" in output
    info_text = info_path.read_text()
    assert "s3cret-q" not in info_text
    assert json.loads(info_text)["database_url"].endswith(
        "?password=***&application_name=upgrade-test"
    )
    dump = Path(json.loads(info_text)["backup"]["file"])
    assert "s3cret-q" not in dump.read_text()


def test_user_password_is_masked_and_goes_to_pg_dump_by_environment(
    postgres_url, tmp_path, monkeypatch
):
    build_legacy(postgres_url, "G6")
    monkeypatch.chdir(tmp_path)
    with_password = postgres_url.replace("postgres@", "postgres:s3cret-pw@")
    info_path = tmp_path / "migration_backup_info.json"

    result, lines = upgrade(with_password, tmp_path, backup=True, info_path=info_path)

    assert result.backup is not None
    assert "s3cret-pw" not in info_path.read_text() and "s3cret-pw" not in "\n".join(lines)
    assert "***" in json.loads(info_path.read_text())["database_url"]


def test_pg_dump_connection_keeps_the_query_and_hides_secrets():
    url = to_engine_url(
        "postgresql://app:pw@db.example:5433/grading?sslmode=require"
        "&host=/var/run/postgresql&application_name=it's&prepare_threshold=5&password=q"
    )
    dsn, secrets = libpq_connection(url)
    assert "sslmode='require'" in dsn
    assert "host='/var/run/postgresql'" in dsn  # the query wins, as it does for the driver
    assert "application_name='it\\'s'" in dsn
    assert "port='5433'" in dsn and "user='app'" in dsn and "dbname='grading'" in dsn
    assert "prepare_threshold" not in dsn  # a driver option pg_dump would refuse
    assert "pw" not in dsn.replace("password", "") and "password" not in dsn
    assert secrets == {"PGPASSWORD": "pw"}


def test_pg_dump_uses_connection_settings_from_the_query(postgres_url, tmp_path, monkeypatch):
    """The URL's port is wrong and its query corrects it: the driver and pg_dump must both
    read the query, or one of them connects to nothing."""
    build_legacy(postgres_url, "G6")
    monkeypatch.chdir(tmp_path)
    url = to_engine_url(postgres_url)
    wrong_port = url.set(port=1, query={"port": str(url.port or 5432), "sslmode": "disable"})

    result, _ = upgrade(wrong_port.render_as_string(hide_password=False), tmp_path, backup=True)

    assert result.backup is not None and "COPY public.submissions" in result.backup.path.read_text()
    assert revision_of(postgres_url) == migrations.head_revision()
    assert kind_of(postgres_url) == "postgresql"
