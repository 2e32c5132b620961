"""Bad settings are told in one line each, naming the variable, never a secret; and
`db history` describes every revision in a whole sentence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from grading_app import migrations
from grading_app.config import Settings, describe_invalid_settings

GRADING_APP = str(Path(sys.executable).with_name("grading-app"))
APP_PY = Path(__file__).resolve().parents[1] / "app.py"
PUBLIC_BIND = (
    "Error: HOST=0.0.0.0 would let other machines reach this server, and no account exists "
    "yet to protect it. Create the administrator first (grading-app users create-admin), "
    "then serve again; or serve on 127.0.0.1."
)


def _run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_said(result: subprocess.CompletedProcess, *lines: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == list(lines)
    for noise in ("Traceback", "errors.pydantic.dev", "input_value", "type=", "validation error"):
        assert noise not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "env", "lines"),
    [
        (["serve"], {"HOST": "0.0.0.0"}, [PUBLIC_BIND]),
        (["serve", "--host", "0.0.0.0"], {}, [PUBLIC_BIND]),
        (
            ["serve"],
            {"PORT": "abc"},
            ["Error: PORT=abc is not accepted: give a whole number from 1 to 65535"],
        ),
        (
            ["serve"],
            {"PORT": "abc", "SIGN_IN_MAX_FAILURES": "maybe"},
            [
                "Error: PORT=abc is not accepted: give a whole number from 1 to 65535",
                "Error: SIGN_IN_MAX_FAILURES=maybe is not accepted: give a whole number "
                "from 1 to 1000",
            ],
        ),
        (
            ["grade", "a.txt", "--prompt", "a.txt", "--model", "openai:m"],
            {"MAX_UPLOAD_MB": "abc"},
            ["Error: MAX_UPLOAD_MB=abc is not accepted: give a whole number from 1 to 1024"],
        ),
        (
            ["worker"],
            {"LEASE_SECONDS": "-1"},
            [
                "Error: LEASE_SECONDS=-1 is not accepted: give a number greater than 0, or "
                "leave it unset"
            ],
        ),
    ],
)
def test_bad_settings_are_one_line_each(tmp_path, args, env, lines):
    (tmp_path / "a.txt").write_text("An essay.")

    result = _run([GRADING_APP, *args], tmp_path, **env)

    _assert_said(result, *lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # nothing was started


def test_python_app_py_says_the_same(tmp_path):
    port = _run([sys.executable, str(APP_PY)], tmp_path, PORT="abc")
    host = _run([sys.executable, str(APP_PY), "--host", "0.0.0.0"], tmp_path)

    _assert_said(port, "Error: PORT=abc is not accepted: give a whole number from 1 to 65535")
    _assert_said(host, PUBLIC_BIND)


def test_a_refused_value_that_may_hold_a_secret_is_masked(tmp_path):
    url = _run([GRADING_APP, "serve"], tmp_path, PORT="postgresql://me:hunter2@db/grading")

    _assert_said(
        url,
        "Error: PORT=postgresql://me:***@db/grading is not accepted: give a whole number "
        "from 1 to 65535",
    )

    class WithSecrets(Settings):
        webhook_token: int = 0
        smtp_password: int = 0

    with pytest.raises(ValidationError) as refused:
        WithSecrets(webhook_token="tok-123", smtp_password="pa55")  # type: ignore[arg-type]
    lines = describe_invalid_settings(refused.value, model=WithSecrets)
    assert lines == [
        "WEBHOOK_TOKEN=*** is not accepted: give a whole number",
        "SMTP_PASSWORD=*** is not accepted: give a whole number",
    ]


def test_db_history_describes_each_revision_in_a_whole_sentence(tmp_path):
    for revision in migrations.script_directory().walk_revisions():
        first_line = (revision.doc or "").splitlines()[0]
        assert first_line.endswith("."), (revision.revision, first_line)

    history = _run([GRADING_APP, "db", "history"], tmp_path)

    assert history.returncode == 0, history.stderr
    assert (
        "Processing model: work items, one per submission and model, and their indexes."
        in history.stdout
    )
