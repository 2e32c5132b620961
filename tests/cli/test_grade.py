"""`grading-app grade` as a teacher runs it: real .docx and .pdf files, a CSV out,
Ctrl-C and resume."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from grading_app.migrations.default_templates import DEFAULT_TEMPLATES
from tests.documents.factories import make_docx, make_pdf
from tests.fakes.llm_server import CRITERIA, document_of, expected_grade

GRADING_APP = str(Path(sys.executable).with_name("grading-app"))


def _env(
    provider_env: dict[str, str], tmp_path: Path, database_url: str | None = None
) -> dict[str, str]:
    """The teacher's environment; without `database_url`, the default SQLite file."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("DATABASE_URL", None)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(provider_env)
    env["UPLOAD_DIR"] = str(tmp_path / "uploads")
    return env


def _class_set(folder: Path) -> None:
    folder.mkdir()
    (folder / "ada.docx").write_bytes(make_docx(paragraphs=["Ada argues that engines compute."]))
    (folder / "bob.pdf").write_bytes(make_pdf(pages=["Bob's essay, page one.", "Page two."]))
    (folder / "cy.txt").write_text("Cy writes a short plain-text essay.", encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really a pdf")
    (folder / ".hidden.txt").write_text("not graded")


def test_grades_a_folder_and_writes_the_csv(database_url, tmp_path, llm, provider_env):
    _class_set(tmp_path / "essays")
    (tmp_path / "prompt.txt").write_text("Grade this essay out of 100.")
    result = subprocess.run(
        [
            GRADING_APP,
            "grade",
            "essays",
            "--prompt",
            "prompt.txt",
            "--model",
            "openai:gpt-fake",
            "--model",
            "claude:claude-fake",
            "--out",
            "grades.csv",
        ],
        cwd=tmp_path,
        env=_env(provider_env, tmp_path, database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr  # one unreadable file
    assert "broken.pdf" in result.stdout and "Traceback" not in result.stderr
    rows = list(csv.DictReader((tmp_path / "grades.csv").open(encoding="utf-8")))
    by_name = {row["document"]: row for row in rows}
    assert set(by_name) == {"ada.docx", "bob.pdf", "cy.txt", "broken.pdf"}
    assert by_name["broken.pdf"]["status"] == "failed" and by_name["broken.pdf"]["error"]
    graded = {
        document_of(r.body["messages"][-1]["content"]): r
        for r in llm.requests
        if r.path.endswith("/chat/completions")
    }
    for name in ("ada.docx", "bob.pdf", "cy.txt"):
        text = next(t for t in graded if name.split(".")[0].capitalize() in t)
        expected = expected_grade("gpt-fake", text)
        row = by_name[name]
        assert row["status"] == "completed"
        assert float(row["openai:gpt-fake score"]) == expected["overall_score"]
        assert row["openai:gpt-fake feedback"] == expected["feedback"]
        assert row["claude:claude-fake score"] != ""
        assert row["spread_percentage_points"] != ""
    assert "Model agreement over 3 documents" in result.stdout
    # Uploaded copies are stored under generated names, never the user's.
    stored = list((tmp_path / "uploads").iterdir())
    # (uuid4 hex, which may spell "ada" by chance: compare the whole name)
    assert len(stored) == 3 and all(
        re.fullmatch(r"[0-9a-f]{32}\.(docx|pdf|txt)", p.name) for p in stored
    )
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM submissions").scalar() == 4
        # Graded all it could read; broken.pdf could not be: finished with errors.
        status = connection.exec_driver_sql("SELECT status FROM job_batches").scalar()
        assert status == "completed_with_errors"
    engine.dispose()


def test_ctrl_c_then_the_same_command_resumes(database_url, tmp_path, llm, provider_env):
    llm.latency = 0.4
    folder = tmp_path / "essays"
    folder.mkdir()
    for index in range(12):
        (folder / f"essay_{index:02}.txt").write_text(f"Essay {index}: a unique argument {index}.")
    command = [
        GRADING_APP,
        "grade",
        "essays",
        "--template",
        "Academic Essay Grading",
        "--provider",
        "openai",
        "--model",
        "gpt-fake",
        "--concurrency",
        "2",
    ]
    env = _env(provider_env, tmp_path, database_url)
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 60
    while llm.count("gpt-fake") < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "run the same command again to resume" in output
    done_before = llm.count("gpt-fake")
    assert 4 <= done_before < 12

    resumed = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resuming batch" in resumed.stdout
    calls = Counter(
        document_of(r.body["messages"][-1]["content"])
        for r in llm.requests
        if r.path.endswith("/chat/completions")
    )
    assert len(calls) == 12 and set(calls.values()) == {1}  # nothing graded twice
    rows = list(csv.DictReader((tmp_path / "results.csv").open(encoding="utf-8")))
    assert len(rows) == 12 and all(row["status"] == "completed" for row in rows)
    # Per-criterion columns: the template's rubric, which the answers had to follow.
    essay = next(t for t in DEFAULT_TEMPLATES if t["name"] == "Academic Essay Grading")
    criteria = [c["name"] for c in essay["job_structure"]["criteria"]]
    assert all(name in rows[0] for name in criteria), list(rows[0])
    assert not any(name in rows[0] for name in CRITERIA)


def test_clear_errors_for_bad_arguments(tmp_path, provider_env):
    env = _env(provider_env, tmp_path)
    (tmp_path / "a.txt").write_text("An essay.")
    cases = [
        (["grade", "a.txt", "--model", "openai:m"], "exactly one of --template"),
        (["grade", "nowhere", "--prompt", "a.txt", "--model", "openai:m"], "No such file"),
        (["grade", "a.txt", "--prompt", "a.txt"], "at least one --model"),
        (["grade", "a.txt", "--prompt", "a.txt", "--model", "m"], "needs a provider"),
        (["grade", "a.txt", "--template", "Nope", "--model", "openai:m"], "No template named"),
        (["grade", "a.txt", "--prompt", "a.txt", "--model", "mystery:m"], "mystery"),
    ]
    for args, message in cases:
        result = subprocess.run(
            [GRADING_APP, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_each_file_is_read_once_and_never_inside_a_transaction(
    database_url, tmp_path, llm, provider_env, monkeypatch
):
    """The CLI reads, validates and stores each document before its one short insert
    transaction, and stores exactly the bytes it validated."""
    import io

    from rich.console import Console

    from grading_app.cli import grade as grade_command
    from grading_app.config import Settings
    from grading_app.jobs import uploads
    from tests.jobs.helpers import assert_no_transaction_open

    for key, value in provider_env.items():
        monkeypatch.setenv(key, value)
    _class_set(tmp_path / "essays")
    (tmp_path / "prompt.txt").write_text("Grade this essay out of 100.")
    (tmp_path / "rubric.txt").write_text("Argument: 10 marks.")
    validated: dict[str, bytes] = {}
    real_extract, real_store = uploads.extract_text, uploads.store_upload
    real_extract_file = grade_command.extract_file

    def extract(data, *, filename, max_bytes):
        assert_no_transaction_open(database_url)
        assert filename not in validated  # read once
        validated[filename] = data
        return real_extract(data, filename=filename, max_bytes=max_bytes)

    def store(data, **kwargs):
        assert any(data is bytes_ for bytes_ in validated.values())  # the validated bytes
        return real_store(data, **kwargs)

    def extract_file(path, **kwargs):
        assert_no_transaction_open(database_url)
        return real_extract_file(path, **kwargs)

    monkeypatch.setattr(uploads, "extract_text", extract)
    monkeypatch.setattr(uploads, "store_upload", store)
    monkeypatch.setattr(grade_command, "extract_file", extract_file)
    request = grade_command.GradeRequest(
        paths=[tmp_path / "essays"],
        template=None,
        prompt_file=tmp_path / "prompt.txt",
        scheme_file=tmp_path / "rubric.txt",
        provider=None,
        models=["openai:gpt-fake"],
        out=tmp_path / "grades.csv",
        name=None,
        concurrency=2,
        database_url=database_url,
    )
    settings = Settings(database_url=database_url, upload_dir=tmp_path / "uploads")
    output = io.StringIO()

    code = grade_command.run_grade(request, settings=settings, console=Console(file=output))

    assert code == 2, output.getvalue()  # broken.pdf could not be read
    assert sorted(validated) == ["ada.docx", "bob.pdf", "broken.pdf", "cy.txt"]
    rows = list(csv.DictReader((tmp_path / "grades.csv").open(encoding="utf-8")))
    assert sorted(r["status"] for r in rows) == ["completed"] * 3 + ["failed"]
    assert len(list((tmp_path / "uploads").iterdir())) == 3
