"""`grading-app users ...` and `tokens ...` as an operator runs them, and the rule that a
public address is served only once an account exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from grading_app.app import create_app
from grading_app.cli.main import refuse_unprotected_public_bind
from grading_app.config import Settings
from grading_app.errors import AppError
from tests.upgrade.helpers import build_legacy, upgrade

GRADING_APP = str(Path(sys.executable).with_name("grading-app"))
PASSWORD = "operator chosen password"


def _run(*args: str, url: str, stdin: str = "", cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "DATABASE_URL": url, "COLUMNS": "200"}
    return subprocess.run(
        [GRADING_APP, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_operator_creates_accounts_and_a_token_that_the_api_accepts(database_url, tmp_path):
    admin = _run(
        "users",
        "create-admin",
        "Head",
        "--password-stdin",
        url=database_url,
        stdin=PASSWORD + "\n",
        cwd=tmp_path,
    )
    assert admin.returncode == 0, admin.stderr
    assert "Administrator head created" in admin.stdout
    teacher = _run(
        "users",
        "create",
        "ana",
        "--role",
        "teacher",
        "--password-stdin",
        url=database_url,
        stdin=PASSWORD + "\n",
        cwd=tmp_path,
    )
    assert teacher.returncode == 0, teacher.stderr
    listed = _run("users", "list", url=database_url, cwd=tmp_path)
    assert "head" in listed.stdout and "teacher" in listed.stdout

    issued = _run("tokens", "create", "ana", "--name", "laptop", url=database_url, cwd=tmp_path)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("gat_") and "shown once" in issued.stderr
    tokens = _run("tokens", "list", "ana", url=database_url, cwd=tmp_path)
    assert "laptop" in tokens.stdout and token not in tokens.stdout

    with TestClient(
        create_app(Settings(database_url=database_url)), base_url="http://localhost"
    ) as client:
        me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        signed = client.post("/api/auth/sign-in", json={"username": "HEAD", "password": PASSWORD})
    assert me.status_code == 200 and me.json()["user"]["username"] == "ana"
    assert signed.status_code == 200


def test_refusals_are_one_line_and_change_nothing(sqlite_url, tmp_path):
    weak = _run(
        "users", "create-admin", "--password-stdin", url=sqlite_url, stdin="short\n", cwd=tmp_path
    )
    assert weak.returncode == 1
    assert weak.stderr.strip().splitlines()[-1] == "Error: password: use at least 10 characters"
    no_admin = _run(
        "users", "create", "ana", "--password-stdin", url=sqlite_url, stdin=PASSWORD, cwd=tmp_path
    )
    assert no_admin.returncode == 1 and "users create-admin" in no_admin.stderr
    unknown = _run("tokens", "create", "nobody", url=sqlite_url, cwd=tmp_path)
    assert unknown.returncode == 1 and "No user named 'nobody'" in unknown.stderr
    assert "Traceback" not in weak.stderr + no_admin.stderr + unknown.stderr


def test_the_first_admin_owns_the_rows_of_an_upgraded_database(sqlite_url, tmp_path):
    build_legacy(sqlite_url, "G6")
    upgrade(sqlite_url, tmp_path)
    made = _run(
        "users", "create-admin", "--password-stdin", url=sqlite_url, stdin=PASSWORD, cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    assert "owns earlier items" in made.stdout
    import sqlite3

    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        ownerless = connection.execute(
            "SELECT (SELECT COUNT(*) FROM job_batches WHERE owner_id IS NULL)"
            " + (SELECT COUNT(*) FROM grading_jobs WHERE owner_id IS NULL)"
            " + (SELECT COUNT(*) FROM saved_prompts WHERE owner_id IS NULL)"
        ).fetchone()[0]
        system = connection.execute(
            "SELECT COUNT(*) FROM batch_templates WHERE created_by = 'system' AND owner_id IS NULL"
        ).fetchone()[0]
    assert ownerless == 0 and system == 4


def test_a_public_address_is_served_only_once_an_account_exists(sqlite_url, tmp_path):
    public = Settings(database_url=sqlite_url, host="0.0.0.0")
    with pytest.raises(AppError, match="users create-admin"):
        refuse_unprotected_public_bind(public)
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # nothing created
    _run("users", "create-admin", "--password-stdin", url=sqlite_url, stdin=PASSWORD, cwd=tmp_path)
    refuse_unprotected_public_bind(public)  # no longer refused
    refuse_unprotected_public_bind(Settings(database_url=sqlite_url, host="127.0.0.1"))
