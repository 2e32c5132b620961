"""Work an earlier release left unfinished is graded when the user resumes it.

After the upgrade such jobs keep their `pending` or `processing` status and nothing is
queued for them (grading spends credit). Resuming the job or its batch queues the
documents no model graded: from the text the earlier release extracted, or from the
file it stored under UPLOAD_DIR.
"""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.models import GradeResult, GradingJob, JobBatch, Submission, WorkItem
from tests import legacy_db
from tests.conftest import sign_in_admin
from tests.documents.factories import make_docx
from tests.processing.helpers import grade_everything
from tests.upgrade.helpers import execute, upgrade

BATCH = "b0000000-0000-0000-0000-000000000001"
JOB = "j0000000-0000-0000-0000-000000000001"  # claude, with a model, processing
JOB_NO_MODEL = "j0000000-0000-0000-0000-000000000002"  # claude, no model, pending
WHEN = datetime(2024, 3, 1, 9, 30)
OLD_GRADE = "B+: a clear argument."


def _legacy_rows(url: str, upload_dir) -> dict[str, str]:
    """A G6 database with one batch of two unfinished jobs, and the upload folder the
    earlier release left. Returns submission id -> what it is."""
    legacy_db.create_legacy_schema(url, "G6")
    upload_dir.mkdir(parents=True)
    (upload_dir / "4f1c-stored.docx").write_bytes(
        make_docx(paragraphs=["Grace Hopper wrote the first compiler."], header=None)
    )
    (upload_dir / "9a2e-corrupt.docx").write_bytes(b"PK\x03\x04 not really a docx")
    submissions = {
        "s-graded": ("completed", "essay1.docx", "a.docx", "Text one.", OLD_GRADE),
        "s-has-text": ("processing", "essay2.docx", "b.docx", "Ada's essay text.", None),
        "s-file": ("pending", "Grace Hopper.docx", "4f1c-stored.docx", None, None),
        "s-corrupt": ("pending", "broken.docx", "9a2e-corrupt.docx", None, None),
        "s-gone": ("pending", "lost.docx", "0000-gone.docx", None, None),
    }
    statements = [
        "INSERT INTO job_batches (id, created_at, batch_name, status, provider, prompt) "
        f"VALUES ('{BATCH}', '{WHEN}', 'Spring term', 'processing', 'claude', 'Grade it')",
        "INSERT INTO grading_jobs (id, created_at, updated_at, job_name, status, "
        "total_submissions, processed_submissions, failed_submissions, provider, prompt, "
        f"model, batch_id) VALUES ('{JOB}', '{WHEN}', '{WHEN}', 'Essays', 'processing', "
        f"5, 1, 0, 'claude', 'Grade this essay', 'claude-3-5-sonnet', '{BATCH}')",
        "INSERT INTO grading_jobs (id, created_at, updated_at, job_name, status, "
        "total_submissions, processed_submissions, failed_submissions, provider, prompt, "
        f"model, batch_id) VALUES ('{JOB_NO_MODEL}', '{WHEN}', '{WHEN}', 'Reports', "
        f"'pending', 1, 0, 0, 'claude', 'Grade this report', NULL, '{BATCH}')",
        "INSERT INTO submissions (id, created_at, updated_at, filename, original_filename, "
        f"file_type, status, extracted_text, job_id) VALUES ('s-report', '{WHEN}', "
        f"'{WHEN}', 'r.txt', 'report.txt', 'docx', 'processing', 'A report.', "
        f"'{JOB_NO_MODEL}')",
    ]
    for submission_id, (status, original, stored, text, grade) in submissions.items():
        text_sql = "NULL" if text is None else "'" + text.replace("'", "''") + "'"
        grade_sql = "NULL" if grade is None else f"'{grade}'"
        statements.append(
            "INSERT INTO submissions (id, created_at, updated_at, filename, "
            "original_filename, file_type, status, extracted_text, grade, job_id) VALUES "
            f"('{submission_id}', '{WHEN}', '{WHEN}', '{stored}', '{original}', 'docx', "
            f"'{status}', {text_sql}, {grade_sql}, '{JOB}')"
        )
    execute(url, *statements)
    return {sid: row[0] for sid, row in submissions.items()}


@pytest.fixture
def legacy_app(database_url, tmp_path, provider_env, monkeypatch):
    """An upgraded legacy database served by the API, providers at the fake vendor."""
    from grading_app.app import create_app
    from grading_app.config import Settings

    upload_dir = tmp_path / "old_uploads"
    _legacy_rows(database_url, upload_dir)
    upgrade(database_url, tmp_path)
    for key, value in provider_env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(database_url=database_url, upload_dir=upload_dir, max_upload_mb=1)
    engine = make_engine(database_url)
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        sign_in_admin(client)
        yield client, make_sessionmaker(engine), upload_dir
    engine.dispose()


def test_the_upgrade_says_what_was_left_unfinished(database_url, tmp_path):
    _legacy_rows(database_url, tmp_path / "old_uploads")

    _, lines = upgrade(database_url, tmp_path)

    assert (
        "  ℹ️  2 jobs left unfinished by the earlier release (5 documents not graded): "
        "nothing is queued until you resume them (POST /api/jobs/ID/resume or "
        "/api/batches/ID/resume; see the README)"
    ) in lines


def _submissions(sessions, job_id: str) -> dict[str, Submission]:
    with unit_of_work(sessions, read_only=True) as session:
        rows = session.scalars(sa.select(Submission).where(Submission.job_id == job_id)).all()
        session.expunge_all()
        return {row.id: row for row in rows}


def test_the_upgrade_queues_nothing_and_resume_grades_what_was_left(legacy_app, provider_env, llm):
    client, sessions, _ = legacy_app
    with unit_of_work(sessions, read_only=True) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(WorkItem)) == 0
    assert client.get(f"/api/jobs/{JOB}").json()["status"] == "processing"

    response = client.post(f"/api/jobs/{JOB}/resume")
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "processing"
    # The document graded before, and the two readable ones now queued; the unreadable
    # ones are failed documents, not items, as for an upload.
    assert (job["total_items"], job["completed_items"], job["failed_submissions"]) == (3, 1, 2)

    documents = _submissions(sessions, JOB)
    # Read again from the earlier release's upload folder.
    assert "Grace Hopper wrote the first compiler." in documents["s-file"].extracted_text
    assert documents["s-corrupt"].status == "failed"
    assert "broken.docx" in documents["s-corrupt"].error_message
    assert documents["s-gone"].status == "failed"
    assert "0000-gone.docx" in documents["s-gone"].error_message
    assert "upload it again" in documents["s-gone"].error_message
    # What was graded before stays as it was.
    assert documents["s-graded"].status == "completed"
    assert documents["s-graded"].grade == OLD_GRADE

    grade_everything(sessions, provider_env)

    documents = _submissions(sessions, JOB)
    assert documents["s-has-text"].status == "completed"
    assert documents["s-file"].status == "completed"
    with unit_of_work(sessions, read_only=True) as session:
        graded = session.execute(
            sa.select(GradeResult.submission_id, GradeResult.model).where(
                GradeResult.work_item_id.is_not(None)
            )
        ).all()
    assert sorted(graded) == [
        ("s-file", "claude-3-5-sonnet"),
        ("s-has-text", "claude-3-5-sonnet"),
    ]
    job = client.get(f"/api/jobs/{JOB}").json()
    assert job["status"] == "completed_with_errors"  # two documents could not be read
    assert job["failed_submissions"] == 2 and job["processed_submissions"] == 3
    # The other legacy job was not asked for, so it was not graded.
    assert client.get(f"/api/jobs/{JOB_NO_MODEL}").json()["status"] == "pending"

    # Nothing is left to queue: a second resume is refused as for any running job.
    again = client.post(f"/api/jobs/{JOB}/resume")
    assert again.status_code == 409 and "it is completed_with_errors" in again.json()["detail"]


def test_resuming_the_batch_grades_every_unfinished_job_a_job_without_a_model_by_default(
    legacy_app, provider_env
):
    client, sessions, _ = legacy_app
    response = client.post(f"/api/batches/{BATCH}/resume")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processing"

    grade_everything(sessions, provider_env)

    with unit_of_work(sessions, read_only=True) as session:
        report_model = session.scalar(
            sa.select(WorkItem.model).where(WorkItem.submission_id == "s-report")
        )
        batch = session.get(JobBatch, BATCH)
        jobs = {job.id: job.status for job in session.scalars(sa.select(GradingJob))}
        assert batch is not None and batch.status == "completed_with_errors"
    assert report_model == "claude-sonnet-5-5"  # the provider's default model
    assert jobs == {JOB: "completed_with_errors", JOB_NO_MODEL: "completed"}


def test_resume_with_the_wrong_upload_folder_is_refused_and_changes_nothing(legacy_app, tmp_path):
    client, sessions, upload_dir = legacy_app
    for stored in upload_dir.iterdir():
        stored.rename(tmp_path / stored.name)  # as if UPLOAD_DIR named another folder

    response = client.post(f"/api/jobs/{JOB}/resume")

    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "None of the 3 files" in detail and "UPLOAD_DIR" in detail
    assert str(upload_dir.resolve()) in detail
    with unit_of_work(sessions, read_only=True) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(WorkItem)) == 0
    assert {s.status for s in _submissions(sessions, JOB).values()} == {
        "completed",
        "processing",
        "pending",
    }


def test_a_legacy_job_whose_provider_has_no_key_is_refused_with_the_reason(legacy_app, monkeypatch):
    client, sessions, _ = legacy_app
    monkeypatch.delenv("ANTHROPIC_API_KEY")

    response = client.post(f"/api/jobs/{JOB}/resume")

    assert response.status_code in (400, 409), response.text
    assert "ANTHROPIC_API_KEY" in response.json()["detail"]
    with unit_of_work(sessions, read_only=True) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(WorkItem)) == 0
    assert _submissions(sessions, JOB)["s-corrupt"].status == "pending"


# --- one scenario each: a small legacy database of the rows a test names ------------------


def _batch_row(batch_id: str, status: str) -> str:
    return (
        "INSERT INTO job_batches (id, created_at, batch_name, status, provider, prompt) "
        f"VALUES ('{batch_id}', '{WHEN}', 'Batch {batch_id[-2:]}', '{status}', 'claude', 'Go')"
    )


def _job_row(job_id: str, status: str, *, processed=0, failed=0, compare="NULL") -> str:
    return (
        "INSERT INTO grading_jobs (id, created_at, updated_at, job_name, status, "
        "total_submissions, processed_submissions, failed_submissions, provider, prompt, "
        f"model, batch_id, models_to_compare) VALUES ('{job_id}', '{WHEN}', '{WHEN}', "
        f"'Job {job_id[-2:]}', '{status}', 2, {processed}, {failed}, 'claude', 'Grade this', "
        f"'claude-3-5-sonnet', '{BATCH}', {compare})"
    )


def _document_row(submission_id: str, job_id: str, status: str, stored: str, text=None) -> str:
    text_sql = "NULL" if text is None else f"'{text}'"
    return (
        "INSERT INTO submissions (id, created_at, updated_at, filename, original_filename, "
        f"file_type, status, extracted_text, job_id) VALUES ('{submission_id}', '{WHEN}', "
        f"'{WHEN}', '{stored}', 'essay-{submission_id}.docx', 'docx', '{status}', {text_sql}, "
        f"'{job_id}')"
    )


@pytest.fixture
def legacy_api(database_url, tmp_path, provider_env, monkeypatch):
    """Build a G6 database of the given rows (files `ok.docx` and `corrupt.docx` in the
    earlier release's upload folder), upgrade it, and serve it."""
    from grading_app.app import create_app
    from grading_app.config import Settings

    opened = []

    def serve(*statements: str):
        upload_dir = tmp_path / "old_uploads"
        upload_dir.mkdir()
        (upload_dir / "ok.docx").write_bytes(make_docx(paragraphs=["An essay."], header=None))
        (upload_dir / "corrupt.docx").write_bytes(b"PK\x03\x04 not really a docx")
        legacy_db.create_legacy_schema(database_url, "G6")
        execute(database_url, *statements)
        upgrade(database_url, tmp_path)
        for key, value in provider_env.items():
            monkeypatch.setenv(key, value)
        settings = Settings(database_url=database_url, upload_dir=upload_dir, max_upload_mb=1)
        engine = make_engine(database_url)
        client = TestClient(create_app(settings), base_url="http://localhost")
        client.__enter__()
        sign_in_admin(client)
        opened.append((client, engine))
        return client, make_sessionmaker(engine)

    yield serve
    for client, engine in opened:
        client.__exit__(None, None, None)
        engine.dispose()


def _row(sessions, model, row_id):
    with unit_of_work(sessions, read_only=True) as session:
        row = session.get(model, row_id)
        session.expunge_all()
        return row


def test_a_paused_legacy_job_settles_once_when_nothing_is_left_to_run(legacy_api):
    client, sessions = legacy_api(
        _batch_row(BATCH, "processing"),
        _job_row(JOB, "processing", processed=1),
        _document_row("s1", JOB, "completed", "a.docx", "Graded before."),
        _document_row("s2", JOB, "pending", "corrupt.docx"),
    )
    assert client.post(f"/api/jobs/{JOB}/pause").status_code == 200

    response = client.post(f"/api/jobs/{JOB}/resume")

    assert response.status_code == 200, response.text
    job = _row(sessions, GradingJob, JOB)
    assert job.status == "completed_with_errors"
    assert (job.total_items, job.completed_items, job.failed_submissions) == (1, 1, 1)
    batch = _row(sessions, JobBatch, BATCH)
    assert (batch.completed_jobs, batch.failed_jobs) == (1, 0)  # counted once
    assert batch.status == "completed_with_errors" and batch.completed_at is not None


def test_a_batch_left_with_nothing_to_run_settles(legacy_api):
    client, sessions = legacy_api(
        _batch_row(BATCH, "pending"),
        _job_row(JOB, "pending"),
        _document_row("s1", JOB, "pending", "corrupt.docx"),
    )

    response = client.post(f"/api/batches/{BATCH}/resume")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "failed"
    assert _row(sessions, GradingJob, JOB).status == "failed"
    assert "essay-s1.docx" in _row(sessions, Submission, "s1").error_message


def test_a_model_that_graded_a_document_before_is_not_asked_again(legacy_api, provider_env):
    compare = '\'["claude:claude-3-5-sonnet", "claude:claude-3-haiku"]\''
    client, sessions = legacy_api(
        _batch_row(BATCH, "processing"),
        _job_row(JOB, "processing", compare=compare),
        _document_row("s1", JOB, "processing", "ok.docx", "Half compared."),
        "INSERT INTO grade_results (id, created_at, grade, provider, model, status, "
        f"submission_id) VALUES ('g1', '{WHEN}', 'A: fine', 'claude', 'claude-3-5-sonnet', "
        "'completed', 's1')",
    )

    assert client.post(f"/api/jobs/{JOB}/resume").status_code == 200
    with unit_of_work(sessions, read_only=True) as session:
        queued = session.scalars(sa.select(WorkItem.model)).all()
    assert queued == ["claude-3-haiku"]

    grade_everything(sessions, provider_env)

    [document] = client.get(f"/api/jobs/{JOB}/submissions").json()["items"]
    assert document["status"] == "completed"
    grades = {g["model"]: g for g in document["grades"]}
    assert sorted(grades) == ["claude-3-5-sonnet", "claude-3-haiku"]
    assert grades["claude-3-5-sonnet"]["feedback"] == "A: fine"  # the earlier release's
    assert grades["claude-3-haiku"]["score"] is not None  # graded now
    assert _row(sessions, GradingJob, JOB).status == "completed"


def test_a_stored_file_name_the_file_system_refuses_fails_that_document_only(legacy_api):
    too_long = "é" * 130 + ".docx"  # 135 characters, 265 bytes: over a file name's 255
    client, sessions = legacy_api(
        _batch_row(BATCH, "processing"),
        _job_row(JOB, "pending"),
        _document_row("s1", JOB, "pending", too_long),
        _document_row("s2", JOB, "pending", "ok.docx"),
    )

    response = client.post(f"/api/jobs/{JOB}/resume")

    assert response.status_code == 200, response.text
    failed = _row(sessions, Submission, "s1")
    assert failed.status == "failed" and "cannot be read" in failed.error_message
    assert _row(sessions, Submission, "s2").extracted_text.startswith("An essay.")


def test_cancelling_a_legacy_job_lets_its_batch_finish(legacy_api, provider_env):
    other = "j0000000-0000-0000-0000-000000000003"
    client, sessions = legacy_api(
        _batch_row(BATCH, "processing"),
        _job_row(JOB, "pending"),
        _document_row("s1", JOB, "pending", "ok.docx", "First."),
        _job_row(other, "pending"),
        _document_row("s2", other, "pending", "ok.docx", "Second."),
    )
    assert client.post(f"/api/jobs/{JOB}/cancel").status_code == 200
    assert client.post(f"/api/jobs/{other}/resume").status_code == 200

    grade_everything(sessions, provider_env)

    batch = _row(sessions, JobBatch, BATCH)
    assert (batch.total_items, batch.completed_items) == (1, 1)
    assert batch.status == "completed"


def test_a_legacy_document_without_a_status_is_graded_too(legacy_api, provider_env):
    client, sessions = legacy_api(
        _batch_row(BATCH, "processing"),
        _job_row(JOB, "pending"),
        _document_row("s1", JOB, "pending", "ok.docx", "One."),
        _document_row("s2", JOB, "pending", "ok.docx", "Two."),
        "UPDATE submissions SET status = NULL WHERE id = 's2'",
    )
    assert client.post(f"/api/jobs/{JOB}/resume").status_code == 200

    grade_everything(sessions, provider_env)

    assert _row(sessions, Submission, "s2").status == "completed"
    assert _row(sessions, GradingJob, JOB).status == "completed"
    assert _row(sessions, JobBatch, BATCH).status == "completed"


def test_resume_waits_for_a_cancel_holding_the_documents_instead_of_deadlocking(
    legacy_api, database_url
):
    """A cancel locks a job's documents, then its batch; resume takes them in the same
    order, so one waits for the other (PostgreSQL row locks; SQLite has one writer)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks: PostgreSQL only")
    client, sessions = legacy_api(
        _batch_row(BATCH, "processing"),
        _job_row(JOB, "pending"),
        _document_row("s1", JOB, "pending", "ok.docx", "Text."),
    )
    engine = sa.create_engine(database_url)
    outcome: dict[str, int] = {}
    try:
        with engine.connect() as cancel:
            transaction = cancel.begin()
            cancel.execute(sa.text("SELECT id FROM submissions WHERE id = 's1' FOR UPDATE"))
            resume = threading.Thread(
                target=lambda: outcome.update(
                    status=client.post(f"/api/jobs/{JOB}/resume").status_code
                )
            )
            resume.start()
            resume.join(1.0)
            assert resume.is_alive()  # waiting on the documents, holding nothing else
            # What cancel locks next: the batch. Had resume taken it first, this would
            # deadlock; instead it is granted at once.
            cancel.execute(
                sa.text("SELECT id FROM job_batches WHERE id = :id FOR UPDATE"), {"id": BATCH}
            )
            transaction.commit()
            resume.join(30)
    finally:
        engine.dispose()
    assert outcome == {"status": 200}
    assert _row(sessions, GradingJob, JOB).total_items == 1
