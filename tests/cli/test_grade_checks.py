"""`grading-app grade` from a user walkthrough: --out checked first, a failed export
said in one line, a template applied in full, unreadable documents counted, batch
names, and each document's warnings."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.documents.factories import make_docx
from tests.fakes.llm_server import Fault

GRADING_APP = str(Path(sys.executable).with_name("grading-app"))


def _env(provider_env: dict[str, str], tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(provider_env)
    env["DATABASE_URL"] = database_url
    env["UPLOAD_DIR"] = str(tmp_path / "uploads")
    env["COLUMNS"] = "200"  # Rich tables at full width, so a row reads as one line
    return env


def _grade(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [GRADING_APP, "grade", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _essays(folder: Path, count: int) -> None:
    folder.mkdir()
    for index in range(count):
        (folder / f"essay_{index}.txt").write_text(f"Essay {index} argues point {index}.")


def _chat_calls(llm) -> int:
    return sum(1 for r in llm.requests if r.path.endswith("/chat/completions"))


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("missing/dir/grades.csv", "Error: --out missing/dir/grades.csv: the folder missing/dir "),
        ("essays", "Error: --out essays is a folder"),
    ],
)
def test_out_is_checked_before_anything_is_graded(
    sqlite_url, tmp_path, llm, provider_env, out, message
):
    _essays(tmp_path / "essays", 2)
    (tmp_path / "prompt.txt").write_text("Grade it.")
    env = _env(provider_env, tmp_path, sqlite_url)

    result = _grade(
        tmp_path, env, "essays", "--prompt", "prompt.txt", "--model", "openai:m", "--out", out
    )

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert _chat_calls(llm) == 0
    assert not (tmp_path / "grading_app.db").exists()  # not even the database was touched
    assert not (tmp_path / "uploads").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_failed_export_is_one_line_and_the_same_command_exports_again(
    sqlite_url, tmp_path, llm, provider_env
):
    _essays(tmp_path / "essays", 3)
    (tmp_path / "prompt.txt").write_text("Grade it.")
    env = _env(provider_env, tmp_path, sqlite_url)
    args = ("essays", "--prompt", "prompt.txt", "--model", "openai:m")

    full = _grade(tmp_path, env, *args, "--out", "/dev/full")  # every write: ENOSPC

    assert full.returncode == 1, full.stdout + full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr
    assert lines[0].startswith("Error: Could not write /dev/full: No space left on device.")
    assert "stored in the database" in lines[0] and "run the same command again" in lines[0]
    assert re.search(r"/api/jobs/[0-9a-f-]+/results\.csv", lines[0])
    assert _chat_calls(llm) == 3

    again = _grade(tmp_path, env, *args, "--out", "grades.csv")

    assert again.returncode == 0, again.stdout + again.stderr
    assert "Resuming batch" in again.stdout
    rows = list(csv.DictReader((tmp_path / "grades.csv").open(encoding="utf-8")))
    assert len(rows) == 3 and all(row["status"] == "completed" for row in rows)
    assert _chat_calls(llm) == 3  # exported again, nothing graded twice


def test_a_template_gives_its_temperature_settings_and_id(sqlite_url, tmp_path, llm, provider_env):
    from grading_app.upgrade.schema import upgrade_schema

    upgrade_schema(sqlite_url, write=lambda _: None)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as connection:
        # Values no default shares, so only the template can have put them there.
        connection.execute(
            sa.text(
                "UPDATE batch_templates SET default_settings = :defaults, "
                "processing_rules = :rules WHERE name = 'Academic Essay Grading'"
            ),
            {
                "defaults": '{"temperature": 0.7, "max_tokens": 1234, "priority": 8, '
                '"tags": ["essay"]}',
                "rules": '{"max_retries": 5, "timeout_seconds": 90}',
            },
        )
        template_id = connection.execute(
            sa.text("SELECT id FROM batch_templates WHERE name = 'Academic Essay Grading'")
        ).scalar_one()
    _essays(tmp_path / "essays", 2)
    env = _env(provider_env, tmp_path, sqlite_url)

    result = _grade(
        tmp_path, env, "essays", "--template", "academic essay grading", "--model", "openai:m"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    with engine.connect() as connection:
        batch = connection.execute(
            sa.text(
                "SELECT id, template_id, temperature, max_tokens, priority, batch_settings, "
                "created_by FROM job_batches"
            )
        ).one()
        job = connection.execute(
            sa.text("SELECT temperature, max_tokens FROM grading_jobs WHERE batch_id = :id"),
            {"id": batch.id},
        ).one()
        usage = connection.execute(
            sa.text("SELECT usage_count FROM batch_templates WHERE id = :id"), {"id": template_id}
        ).scalar_one()
    engine.dispose()
    settings = json.loads(batch.batch_settings)
    assert batch.template_id == template_id and batch.created_by == "grading-app grade"
    assert batch.temperature == 0.7 and batch.max_tokens == 1234 and batch.priority == 8
    assert settings["max_retries"] == 5 and settings["timeout_seconds"] == 90
    assert settings["cli_fingerprint"]  # the same command still finds it to resume
    assert job.temperature == 0.7 and job.max_tokens == 1234
    assert usage == 1
    calls = [r.body for r in llm.requests if r.path.endswith("/chat/completions")]
    assert len(calls) == 2 and {body.get("temperature") for body in calls} == {0.7}


def test_the_summary_counts_unreadable_documents(sqlite_url, tmp_path, llm, provider_env):
    folder = tmp_path / "essays"
    folder.mkdir()
    (folder / "good.txt").write_text("A readable essay.")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really a pdf")
    (folder / "empty.docx").write_bytes(b"")
    (tmp_path / "prompt.txt").write_text("Grade it.")
    env = _env(provider_env, tmp_path, sqlite_url)

    result = _grade(tmp_path, env, "essays", "--prompt", "prompt.txt", "--model", "openai:m")

    assert result.returncode == 2, result.stdout + result.stderr
    header = next(line for line in result.stdout.splitlines() if "unreadable" in line)
    assert re.findall(r"[a-z][a-z ]*[a-z]", header) == [
        "items",
        "graded",
        "failed",
        "unreadable documents",
    ]
    row = next(line for line in result.stdout.splitlines() if re.search(r"│\s*\d", line))
    assert re.findall(r"\d+", row) == ["1", "1", "0", "2"]


def test_batch_names_count_files_and_a_single_file_is_named(tmp_path):
    from grading_app.cli.from_files import batch_name, collect_files

    _essays(tmp_path / "one", 1)
    _essays(tmp_path / "two", 2)
    single = tmp_path / "two" / "essay_1.txt"

    def name(*paths: Path) -> str:
        return batch_name(list(paths), collect_files(paths))

    assert name(tmp_path / "one") == "one (1 file)"
    assert name(tmp_path / "two") == "two (2 files)"
    assert name(single) == "essay_1.txt"
    assert name(tmp_path / "one" / "essay_0.txt", single) == "one (2 files)"


def test_each_documents_warnings_are_printed(sqlite_url, tmp_path, llm, provider_env):
    (tmp_path / "essay.pdf").write_bytes(make_docx(paragraphs=["A Word essay saved as .pdf."]))
    (tmp_path / "prompt.txt").write_text("Grade it.")
    env = _env(provider_env, tmp_path, sqlite_url)

    result = _grade(tmp_path, env, "essay.pdf", "--prompt", "prompt.txt", "--model", "openai:m")

    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("Warning")]
    assert warnings == [
        'Warning "essay.pdf" is named .pdf but its content is a Word document; it was read '
        "as a Word document."
    ]
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as connection:
        name = connection.execute(sa.text("SELECT batch_name FROM job_batches")).scalar_one()
    engine.dispose()
    assert name == "essay.pdf"


def test_a_text_file_named_docx_is_reported_not_graded(sqlite_url, tmp_path, llm, provider_env):
    (tmp_path / "essay.docx").write_text("Plain text, named as a Word document.")
    (tmp_path / "prompt.txt").write_text("Grade it.")
    env = _env(provider_env, tmp_path, sqlite_url)

    result = _grade(tmp_path, env, "essay.docx", "--prompt", "prompt.txt", "--model", "openai:m")

    assert result.returncode == 2, result.stdout + result.stderr
    assert '"essay.docx" is not a .docx file' in " ".join(result.stdout.split())
    assert _chat_calls(llm) == 0
    with (tmp_path / "results.csv").open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["status"] == "failed" and "is not a .docx file" in row["error"]


def test_warnings_without_the_file_name_get_it_in_front(tmp_path):
    import io

    from rich.console import Console

    from grading_app.cli.grade import _print_warnings
    from grading_app.jobs.uploads import PreparedDocument

    output = io.StringIO()
    document = PreparedDocument(
        original_filename="report [final].pdf",
        warnings=("Page 2 could not be read and was skipped.",),
    )

    _print_warnings([document], Console(file=output, width=40))

    assert output.getvalue().splitlines() == [
        "Warning report [final].pdf: Page 2 could not be read and was skipped."
    ]


def test_a_rerun_grades_failed_items_again_and_says_why_they_failed(
    sqlite_url, tmp_path, llm, provider_env
):
    _essays(tmp_path / "essays", 2)
    (tmp_path / "prompt.txt").write_text("Grade it.")
    env = _env(provider_env, tmp_path, sqlite_url)
    command = ("essays", "--prompt", "prompt.txt", "--model", "openai:m1")
    llm.script("m1", [Fault.status(404, "model not found")])  # the first call only

    first = _grade(tmp_path, env, *command)

    assert first.returncode == 2, first.stdout + first.stderr
    failed = [line for line in first.stdout.splitlines() if line.startswith("Failed ")]
    assert len(failed) == 1 and "(openai:m1): " in failed[0] and "model not found" in failed[0]

    kept = _grade(tmp_path, env, *command, "--keep-failed")

    assert kept.returncode == 2 and _chat_calls(llm) == 2
    assert "1 of 2 items graded; 1 failed item kept as failed (--keep-failed)" in kept.stdout

    again = _grade(tmp_path, env, *command)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "Resuming batch 'essays (2 files)': 1 of 2 items graded; 1 failed item queued again" in (
        again.stdout
    )
    assert _chat_calls(llm) == 3 and "Failed " not in again.stdout
    with (tmp_path / "results.csv").open(newline="") as handle:
        assert [row["status"] for row in csv.DictReader(handle)] == ["completed", "completed"]


def test_a_template_without_a_prompt_asks_for_one(sqlite_url, tmp_path, llm, provider_env):
    from grading_app.upgrade.schema import upgrade_schema

    upgrade_schema(sqlite_url, write=lambda _: None)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO batch_templates (id, name, description, job_structure) VALUES "
                "('t1', 'Lab reports', 'For the physics lab reports.', '{}')"
            )
        )
    engine.dispose()
    _essays(tmp_path / "essays", 1)
    env = _env(provider_env, tmp_path, sqlite_url)

    result = _grade(tmp_path, env, "essays", "--template", "Lab reports", "--model", "openai:m")

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: Template 'Lab reports' has no grading prompt; grade with --prompt FILE instead"
    )
    assert _chat_calls(llm) == 0
