"""The batch endpoints on a database upgraded from an earlier release: rows with NULL,
JSON null, a JSON string or text that is not JSON in `tags`, a batch without a creation
time, documents without work items, files shared between rows. Nothing answers 500."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.models import GradingJob, JobBatch, Submission
from tests import legacy_db
from tests.conftest import sign_in_admin
from tests.upgrade.helpers import build_legacy, execute, upgrade

DONE = legacy_db.BATCH_DONE_ID
FAILED = legacy_db.BATCH_FAILED_ID  # finished, and one of its jobs uses the shared scheme
PARTIAL = legacy_db.BATCH_PARTIAL_ID  # tags: "creative, 作文", not JSON
JUNK_TAGS = {
    legacy_db.BATCH_DRAFT_ID: "null",
    legacy_db.BATCH_FAILED_ID: '{"english": ["english"]}',
    legacy_db.BATCH_MIXED_ID: '"english"',
    legacy_db.BATCH_WITH_ERRORS_ID: '[1, "english", null]',
}
SCHEME_FILE = "c0a8e1f2_rubrique_dissertation.docx"  # shared by many jobs and the library


@pytest.fixture
def legacy(database_url, tmp_path, provider_env, monkeypatch):
    """A G6 database the guide's original script had half migrated (tags as TEXT),
    upgraded and served; tags of a few batches set to what earlier scripts left."""
    from grading_app.app import create_app
    from grading_app.config import Settings

    build_legacy(database_url, "G6")
    legacy_db.apply_original_script(database_url, json_type="TEXT")
    upgrade(database_url, tmp_path)
    execute(
        database_url,
        *(
            f"UPDATE job_batches SET tags = '{tags}' WHERE id = '{batch_id}'"
            for batch_id, tags in JUNK_TAGS.items()
        ),
        f"UPDATE job_batches SET tags = NULL WHERE id = '{legacy_db.BATCH_EMPTY_ID}'",
    )
    for key, value in provider_env.items():
        monkeypatch.setenv(key, value)
    upload_dir = tmp_path / "old_uploads"
    upload_dir.mkdir()
    settings = Settings(database_url=database_url, upload_dir=upload_dir, max_upload_mb=1)
    engine = make_engine(database_url)
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        sign_in_admin(client)
        yield client, make_sessionmaker(engine), upload_dir
    engine.dispose()


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [batch["id"] for batch in response.json()["items"]]


def test_the_list_reads_every_legacy_row(legacy):
    client, _, _ = legacy
    listed = client.get("/api/batches").json()
    assert listed["total"] == len(legacy_db.EXPECTED_BATCH_STATUS)
    tags = {batch["id"]: batch["tags"] for batch in listed["items"]}
    assert tags[DONE] == ["history", "year 10"]
    for batch_id in (PARTIAL, legacy_db.BATCH_DRAFT_ID, legacy_db.BATCH_FAILED_ID):
        assert tags[batch_id] is None
    assert tags[legacy_db.BATCH_MIXED_ID] is None  # a lone JSON string is no list of tags
    assert tags[legacy_db.BATCH_WITH_ERRORS_ID] == ["1", "english", "null"]


def test_tag_filters_match_only_real_tag_lists(legacy):
    client, _, _ = legacy
    assert _ids(client.get("/api/batches", params={"tag": "history"})) == [DONE]
    # Only the array holds it as a tag: not the object, not the lone string.
    assert _ids(client.get("/api/batches", params={"tag": "english"})) == [
        legacy_db.BATCH_WITH_ERRORS_ID
    ]
    assert _ids(client.get("/api/batches", params={"tag": "creative, 作文"})) == []
    both = client.get("/api/batches", params={"tag": ["history", "year 10"], "tags_match": "all"})
    assert _ids(both) == [DONE]
    # Free text reads the stored text, whatever it is.
    assert PARTIAL in _ids(client.get("/api/batches", params={"q": "作文"}))
    assert _ids(client.get("/api/batches", params={"q": "Chemie"})) == [
        legacy_db.BATCH_PROCESSING_ID
    ]


@pytest.mark.parametrize(
    "sort",
    [
        "priority",
        "created_at",
        "deadline",
        "started_at",
        "completed_at",
        "name",
        "status",
        "updated_at",
    ],
)
def test_every_sort_reads_legacy_rows(legacy, sort):
    client, _, _ = legacy
    for order in ("asc", "desc"):
        ids = _ids(client.get("/api/batches", params={"sort": sort, "order": order, "limit": 4}))
        rest = _ids(client.get("/api/batches", params={"sort": sort, "order": order, "offset": 4}))
        assert len(set(ids + rest)) == len(legacy_db.EXPECTED_BATCH_STATUS)


def test_tags_that_were_not_json_are_replaced_by_an_edit(legacy):
    client, _, _ = legacy
    changed = client.patch(f"/api/batches/{PARTIAL}", json={"tags": ["creative"], "priority": 9})
    assert changed.status_code == 200, changed.text
    assert changed.json()["tags"] == ["creative"]
    added = client.post(
        "/api/batches/bulk",
        json={"action": "add_tags", "filter": {"status": "draft,failed"}, "tags": ["old"]},
    ).json()
    assert added["done"] == 3
    assert _ids(client.get("/api/batches", params={"tag": "old"}))


def test_deleting_a_legacy_batch_keeps_shared_files(legacy):
    client, sessions, upload_dir = legacy
    with unit_of_work(sessions, read_only=True) as session:
        stored = list(
            session.scalars(
                sa.select(Submission.filename)
                .join(GradingJob, GradingJob.id == Submission.job_id)
                .where(GradingJob.batch_id == FAILED)
            )
        )
        uses_scheme = session.scalar(
            sa.select(sa.func.count())
            .select_from(GradingJob)
            .where(GradingJob.batch_id == FAILED, GradingJob.marking_scheme_id.is_not(None))
        )
    assert uses_scheme  # one of its jobs uses the scheme other batches' jobs use too
    for name in [*stored, SCHEME_FILE]:
        (upload_dir / name).write_bytes(b"stored by an earlier release")

    deleted = client.delete(f"/api/batches/{FAILED}")

    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["files_removed"] == len(stored) == 6
    assert not any((upload_dir / name).exists() for name in stored)
    assert (upload_dir / SCHEME_FILE).is_file()
    with unit_of_work(sessions, read_only=True) as session:
        assert session.get(JobBatch, FAILED) is None
        assert session.get(JobBatch, PARTIAL) is not None


def test_a_legacy_batch_is_duplicated_with_its_documents(legacy):
    client, sessions, _ = legacy
    url = f"/api/batches/{DONE}/duplicate"
    refused = client.post(url, json={"include_documents": True})
    assert refused.status_code == 400
    assert refused.json()["detail"].endswith("; give `models` to grade the copy with")

    copy = client.post(url, json={"include_documents": True, "models": ["openai:m1"]})

    assert copy.status_code == 201, copy.text
    body = copy.json()
    assert body["total_jobs"] == 3 and body["total_items"] == 9
    assert body["tags"] == ["history", "year 10"]
    with unit_of_work(sessions, read_only=True) as session:
        texts = session.scalars(
            sa.select(Submission.extracted_text)
            .join(GradingJob, GradingJob.id == Submission.job_id)
            .where(GradingJob.batch_id == body["id"])
        ).all()
    assert len(texts) == 9 and all(text and "First World War" in text for text in texts)


def test_a_legacy_document_is_read_and_deleted(legacy):
    client, sessions, _ = legacy
    job_id = legacy_db.BATCH_JOB_IDS[DONE][0]
    with unit_of_work(sessions, read_only=True) as session:
        submission_id = session.scalars(
            sa.select(Submission.id).where(Submission.job_id == job_id).order_by(Submission.id)
        ).first()
        job_before = session.get(GradingJob, job_id)
        counts = (job_before.total_items, job_before.completed_items)

    document = client.get(f"/api/submissions/{submission_id}").json()
    assert document["extracted_text"].startswith("The causes of the First World War")
    assert document["grades"] and all(grade["legacy"] for grade in document["grades"])
    assert "Overall grade: B+" in document["grades"][0]["feedback"]
    assert document["failed_items"] == []

    assert client.delete(f"/api/submissions/{submission_id}").status_code == 200

    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["total_items"], job["completed_items"]) == (counts[0] - 1, counts[1] - 1)
    assert job["status"] == "completed"
    batch = client.get(f"/api/batches/{DONE}").json()
    assert batch["status"] == "completed" and batch["total_items"] == 8


def test_bulk_resume_goes_through_the_legacy_resume(legacy):
    client, _, upload_dir = legacy
    pending = legacy_db.BATCH_PENDING_ID
    answer = client.post("/api/batches/bulk", json={"action": "resume", "ids": [pending]}).json()
    [result] = answer["results"]
    # Only the legacy path reads the earlier release's files (the plain resume would
    # say the batch is not paused).
    assert result["outcome"] == "skipped"
    assert result["reason"].startswith("None of the 9 files an earlier release stored")
    assert str(upload_dir.resolve()) in result["reason"]
    assert result["status"] == "pending"
