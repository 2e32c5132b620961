"""The `grading-app` command as a user runs it."""

from __future__ import annotations

import json
import queue
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from grading_app import migrations
from tests.upgrade.helpers import build_legacy, revision_of

GRADING_APP = str(Path(sys.executable).with_name("grading-app"))
APP_PY = str(Path(__file__).resolve().parents[2] / "app.py")


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


def test_migrate_batch_system_subcommand_upgrades_for_real(tmp_path):
    url = f"sqlite:///{tmp_path / 'grading_app.db'}"
    build_legacy(url, "G6")

    result = _run("db", "migrate-batch-system", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "🎉 Enhanced Batch System Migration Completed Successfully!" in result.stdout
    assert revision_of(url) == migrations.head_revision()
    info = json.loads((tmp_path / "migration_backup_info.json").read_text())
    assert info["status"] == "completed" and Path(info["backup"]["file"]).exists()
    check = _run("db", "check", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_db_commands_read_database_url_and_nothing_else(tmp_path):
    """Settings of an older deployment that this release refuses (a PORT that is no
    number, say) do not stop the database commands."""
    url = f"sqlite:///{tmp_path / 'grading_app.db'}"
    build_legacy(url, "G6")
    (tmp_path / ".env").write_text("HOST=0.0.0.0\nPORT=abc\n")

    current = _run("db", "current", cwd=tmp_path)
    migrated = _run("db", "migrate-batch-system", "--no-backup", cwd=tmp_path)
    check = _run("db", "check", cwd=tmp_path)

    assert current.returncode == 0 and "legacy G6" in current.stdout, current.stderr
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert check.returncode == 0, check.stderr


def test_db_commands_refuse_a_bad_url_in_one_line(tmp_path):
    for args in (("db", "current"), ("db", "upgrade"), ("db", "check")):
        result = _run(*args, cwd=tmp_path, url="not a url")
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "Error: DATABASE_URL is not a database URL "
            "(e.g. sqlite:///grading_app.db or postgresql://user@host/dbname)"
        ]
    migrate = _run("db", "migrate-batch-system", cwd=tmp_path, url="mysql://u:pw@h/db")
    assert migrate.returncode == 1
    assert "❌ Migration failed: DATABASE_URL uses 'mysql'" in migrate.stdout
    assert "Traceback" not in migrate.stdout + migrate.stderr and ":pw@" not in migrate.stdout


def test_serve_on_a_legacy_database_says_what_to_run_without_touching_it(tmp_path):
    path = tmp_path / "grading_app.db"
    build_legacy(f"sqlite:///{path}", "G6")
    before = path.read_bytes()

    with _serving([GRADING_APP, "serve"], cwd=tmp_path) as (base, output):
        page = httpx.get(f"{base}/batches", headers={"accept": "text/html"}, timeout=30)
        api = httpx.get(f"{base}/api/batches", timeout=30)
        health = httpx.get(f"{base}/health", timeout=30)

    assert any("migrate_batch_system.py" in line for line in output)
    assert page.status_code == 503 and "This database needs an upgrade" in page.text
    assert "python migrate_batch_system.py" in page.text
    assert page.headers["content-security-policy"]  # the security headers, as always
    assert api.status_code == 503 and "migrate_batch_system.py" in api.json()["detail"]
    assert health.status_code == 503
    assert path.read_bytes() == before  # still in rollback-journal mode, not switched to WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grading_app.db"]


@pytest.mark.parametrize(
    "entry",
    [
        "from grading_app.cli.main import main as run",
        "from grading_app.cli.main import migrate_main as run",
    ],
)
def test_help_does_not_import_the_provider_sdks(entry):
    """Importing openai and anthropic takes seconds; `--help` must not pay for it."""
    script = (
        "import sys\n"
        f"{entry}\n"
        "sys.argv = ['x', '--help']\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('openai', 'anthropic') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _serving(command: list[str], *, cwd: Path) -> Iterator[tuple[str, list[str]]]:
    """Run a serve command until uvicorn says it is up; yield its base URL and output."""
    port = _free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "PORT": str(port)}
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    try:
        while True:
            line = lines.get(timeout=60)
            assert line is not None, "serve exited before it was up:\n" + "".join(seen)
            seen.append(line)
            if "Application startup complete" in line:
                break
        yield f"http://127.0.0.1:{port}", seen
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.mark.parametrize("entry", ["grading-app serve", "python app.py"])
def test_serve_in_an_empty_folder_creates_the_database_and_serves(tmp_path, entry):
    command = [GRADING_APP, "serve"] if entry == "grading-app serve" else [sys.executable, APP_PY]

    with _serving(command, cwd=tmp_path) as (base, output), httpx.Client(timeout=30) as http:
        health = http.get(f"{base}/health")
        refused = http.post(f"{base}/api/batches", json={"name": "Year 9"})
        # The first visit on the machine itself creates the administrator.
        admin = {"username": "teacher", "password": "first visit password"}
        setup = http.post(f"{base}/api/auth/setup", json=admin)
        csrf = {"X-CSRF-Token": setup.json()["csrf_token"]}
        created = http.post(f"{base}/api/batches", json={"name": "Year 9"}, headers=csrf)

    assert health.status_code == 200 and health.json()["schema_current"] is True
    assert refused.status_code == 401 and "create the administrator" in refused.text
    assert setup.status_code == 201, setup.text
    assert created.status_code == 201, created.text
    assert any("only this machine can connect" in line for line in output)
    assert any("Created a new database" in line for line in output)
    assert revision_of(f"sqlite:///{tmp_path / 'grading_app.db'}") == migrations.head_revision()


def test_serve_creates_over_an_empty_file_an_earlier_attempt_left(tmp_path):
    (tmp_path / "grading_app.db").touch()  # what a refused start used to leave

    with _serving([GRADING_APP, "serve"], cwd=tmp_path) as (base, _):
        health = httpx.get(f"{base}/health", timeout=30)

    assert health.status_code == 200


def test_serve_refusals_leave_no_file_behind(tmp_path):
    nowhere = _run("serve", cwd=tmp_path, url=f"sqlite:///{tmp_path / 'missing' / 'app.db'}")
    assert nowhere.returncode == 1 and "does not exist" in nowhere.stderr
    assert list(tmp_path.iterdir()) == []

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    before = other.read_bytes()
    foreign = _run("serve", cwd=tmp_path, url=f"sqlite:///{other}")
    assert foreign.returncode == 1 and "does not look like a Grading App database" in foreign.stderr
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]
