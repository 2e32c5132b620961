"""The `grading-app` command as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from grading_app import migrations
from tests.upgrade.helpers import build_legacy

GRADING_APP = str(Path(sys.executable).with_name("grading-app"))


def _run(*args: str, cwd: Path, url: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    if url:
        env["DATABASE_URL"] = url
    return subprocess.run(
        [GRADING_APP, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_db_commands_on_a_new_database(tmp_path):
    upgraded = _run("db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "grading_app.db").exists()  # relative to the working directory
    current = _run("db", "current", cwd=tmp_path)
    assert f"Schema: {migrations.head_revision()} (head)" in current.stdout
    history = _run("db", "history", cwd=tmp_path)
    assert (
        "0001_legacy_baseline" in history.stdout and "0002_enhanced_batch_system" in history.stdout
    )
    check = _run("db", "check", cwd=tmp_path)
    assert check.returncode == 0 and "matches" in check.stdout


def test_db_current_describes_a_legacy_database(tmp_path):
    build_legacy(f"sqlite:///{tmp_path / 'grading_app.db'}", "G4")
    current = _run("db", "current", cwd=tmp_path)
    assert "legacy G4" in current.stdout
    upgraded = _run("db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 1
    assert "migrate-batch-system" in upgraded.stderr and "Traceback" not in upgraded.stderr


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    result = _run("db", "current", cwd=tmp_path, url="postgresql://x:pw@127.0.0.1:1/db")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert "pw@" not in result.stderr
    missing = _run("db", "current", cwd=tmp_path)
    assert missing.returncode == 1 and "No database file" in missing.stderr
    bad = _run("db", "upgrade", cwd=tmp_path, url="mysql://x@localhost/db")
    assert bad.returncode == 1 and "supports sqlite and postgresql" in bad.stderr


def test_migrate_subcommand_matches_the_script(tmp_path):
    build_legacy(f"sqlite:///{tmp_path / 'grading_app.db'}", "G6")
    result = _run("db", "migrate-batch-system", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "🔍 Dry run complete" in result.stdout
