"""Every legacy generation, and mixes of their columns, upgrade to the current schema
on SQLite and PostgreSQL, keeping every row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app import migrations
from grading_app.db import make_engine
from grading_app.migrations.default_templates import DEFAULT_TEMPLATES
from grading_app.models import Base, JobBatch, SavedPrompt, Submission
from grading_app.upgrade.schema import read_drift
from tests import legacy_db
from tests.schema_snapshot import data_snapshot, legacy_columns_snapshot, schema_snapshot
from tests.upgrade.helpers import (
    build_legacy,
    execute,
    fresh_head_snapshot,
    kind_of,
    revision_of,
    rows,
    scalar,
    upgrade,
)

# Legacy columns whose values the upgrade sets: the batch status (derived from the jobs)
# and a missing retry count (0, as the application writes it).
UPGRADE_SETS = {("job_batches", "status"), ("submissions", "retry_count")}


def _legacy_columns(url: str) -> dict[str, list[str]]:
    """Every legacy column present, except those the upgrade sets (UPGRADE_SETS)."""
    inspector_engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(inspector_engine)
        return {
            table: [
                c["name"]
                for c in inspector.get_columns(table)
                if (table, c["name"]) not in UPGRADE_SETS
            ]
            for table in legacy_db.LEGACY_TABLES
            if inspector.has_table(table)
        }
    finally:
        inspector_engine.dispose()


@pytest.mark.parametrize("generation", legacy_db.GENERATIONS)
def test_generation_upgrades_to_head_keeping_every_row(database_url, tmp_path, generation):
    build_legacy(database_url, generation)
    columns = _legacy_columns(database_url)
    before = legacy_columns_snapshot(database_url, columns)
    retries = "SELECT id, retry_count FROM submissions ORDER BY id"
    retry_counts = rows(database_url, retries) if generation != "G1" else []

    result, lines = upgrade(database_url, tmp_path)

    assert revision_of(database_url) == migrations.head_revision()
    assert schema_snapshot(database_url) == fresh_head_snapshot(kind_of(database_url))
    assert legacy_columns_snapshot(database_url, columns) == before
    # A retry count missing (G1 has no such column) is 0 now; the others are kept.
    after = rows(database_url, retries)
    assert all(row.retry_count is not None for row in after)
    if retry_counts:
        assert any(row.retry_count is None for row in retry_counts)  # the test has some
        assert [(r.id, r.retry_count or 0) for r in retry_counts] == [tuple(r) for r in after]
    # Every table is counted, before and after; the existing ones keep every row.
    assert set(result.row_counts_after) == set(Base.metadata.tables)
    assert set(result.row_counts_before) == set(legacy_db.legacy_table_columns(generation))
    for table, count in result.row_counts_before.items():
        assert result.row_counts_after[table] == count, table
    assert result.row_counts_after["batch_templates"] == len(DEFAULT_TEMPLATES)
    assert any(line.startswith("  ✓ Added column: job_batches.priority") for line in lines)

    batches = {
        row.id: row
        for row in rows(
            database_url,
            "SELECT id, status, total_jobs, completed_jobs, failed_jobs, created_at, "
            "updated_at, started_at, completed_at FROM job_batches",
        )
    }
    for batch_id, status in legacy_db.EXPECTED_BATCH_STATUS.items():
        assert batches[batch_id].status == status, batch_id
        counts = batches[batch_id][2:5]
        assert tuple(counts) == legacy_db.EXPECTED_BATCH_COUNTS[batch_id], batch_id
    for batch in batches.values():
        if batch.created_at is not None:
            assert batch.updated_at == batch.created_at
    # started_at / completed_at come from the jobs' own timestamps (worked out by hand).
    for batch_id, (started_at, completed_at) in legacy_db.EXPECTED_BATCH_TIMES.items():
        batch = batches[batch_id]
        assert (_timestamp(batch.started_at), _timestamp(batch.completed_at)) == (
            started_at,
            completed_at,
        ), batch_id

    # Item counters of existing jobs and batches come from their submissions.
    for job in rows(
        database_url,
        "SELECT j.id, j.total_items, j.completed_items, j.failed_items, "
        "(SELECT COUNT(*) FROM submissions s WHERE s.job_id = j.id) AS subs, "
        "(SELECT COUNT(*) FROM submissions s WHERE s.job_id = j.id AND s.status = 'completed') "
        "AS done FROM grading_jobs j",
    ):
        assert (job.total_items, job.completed_items) == (job.subs, job.done), job.id
    for batch in rows(
        database_url,
        "SELECT b.total_items, COALESCE((SELECT SUM(j.total_items) FROM grading_jobs j "
        "WHERE j.batch_id = b.id), 0) AS expected FROM job_batches b",
    ):
        assert batch.total_items == batch.expected

    names = sorted(r.name for r in rows(database_url, "SELECT name FROM batch_templates"))
    assert names == sorted(t["name"] for t in DEFAULT_TEMPLATES)


def _timestamp(value: Any) -> datetime | None:
    """SQLite hands raw-SQL timestamps back as text."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


@pytest.mark.parametrize("generation", ["G4", "G6"])
def test_application_reads_and_writes_upgraded_database(database_url, tmp_path, generation):
    """Legacy rows load through the ORM (invalid JSON included) and the enhanced
    application's inserts succeed, even where G4 had saved_prompts.provider NOT NULL."""
    build_legacy(database_url, generation)
    upgrade(database_url, tmp_path)

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            submissions = session.scalars(sa.select(Submission)).all()
            assert len(submissions) == scalar(database_url, "SELECT COUNT(*) FROM submissions")
            session.add(SavedPrompt(name="Essay prompt", prompt_text="Grade it."))
            session.add(JobBatch(batch_name="Draft from a template"))  # no provider, no prompt
            session.commit()
            draft = session.scalars(
                sa.select(JobBatch).where(JobBatch.batch_name == "Draft from a template")
            ).one()
            assert draft.priority == 5 and draft.total_jobs == 0 and draft.status == "draft"
    finally:
        engine.dispose()


def test_invalid_json_in_legacy_sqlite_rows_survives_and_loads(sqlite_url, tmp_path):
    build_legacy(sqlite_url, "G6")
    upgrade(sqlite_url, tmp_path)
    raw = scalar(
        sqlite_url,
        "SELECT grade_metadata FROM submissions WHERE id = :id",
        id=legacy_db.SUBMISSION_METADATA_INVALID_ID,
    )
    assert raw == "{broken"
    engine = make_engine(sqlite_url)
    try:
        with Session(engine) as session:
            loaded = session.get(Submission, legacy_db.SUBMISSION_METADATA_INVALID_ID)
            assert loaded is not None and loaded.grade_metadata == "{broken"
    finally:
        engine.dispose()


def test_mix_of_generations_is_completed(database_url, tmp_path):
    """A G1 database to which ad-hoc scripts added some later columns, not others."""
    extra = ["grading_jobs.temperature", "submissions.retry_count", "job_batches.max_tokens"]
    build_legacy(database_url, "G1", extra_columns=extra)
    columns = _legacy_columns(database_url)
    before = legacy_columns_snapshot(database_url, columns)

    result, lines = upgrade(database_url, tmp_path)

    assert (
        "📊 Schema: legacy G1 (created by an earlier release, not version-stamped), "
        "plus 3 column(s) from later releases"
    ) in lines
    assert schema_snapshot(database_url) == fresh_head_snapshot(kind_of(database_url))
    assert legacy_columns_snapshot(database_url, columns) == before
    assert "  ✓ Created table grade_results" in lines
    assert "  ✓ Added column: grading_jobs.models_to_compare" in lines
    assert "  ✓ Added column: grading_jobs.temperature" not in lines


def test_second_run_changes_nothing(database_url, tmp_path):
    build_legacy(database_url, "G3")
    upgrade(database_url, tmp_path)
    schema, data = schema_snapshot(database_url), data_snapshot(database_url)

    result, lines = upgrade(database_url, tmp_path, backup=True)

    assert result.changes == [] and result.backup is None
    assert not [line for line in lines if line.startswith("  ✓ Added") or "Created" in line]
    assert f"📊 Schema: revision {migrations.head_revision()} (current)" in lines
    assert "💾 Backup: not needed, the schema is already current" in lines
    assert not list(tmp_path.glob("grading_app_backup_*"))
    assert schema_snapshot(database_url) == schema
    assert data_snapshot(database_url) == data


@pytest.mark.parametrize("json_type", ["TEXT", "JSON"])
def test_partially_migrated_database_ends_like_a_fresh_one(database_url, tmp_path, json_type):
    """The guide's original script ran part way: a few enhanced columns its own way
    (priority NULL in some rows, tags as TEXT, flags and counters nullable), a
    batch_templates table without NOT NULL or defaults, one template. The upgrade
    completes and aligns all of it: the schema ends as a fresh database's, data filled."""
    build_legacy(database_url, "G6")
    legacy_db.apply_original_script(database_url, json_type=json_type)
    postgres = kind_of(database_url) == "postgresql"

    result, lines = upgrade(database_url, tmp_path)

    assert schema_snapshot(database_url) == fresh_head_snapshot(kind_of(database_url))
    assert read_drift(database_url) == {"missing": [], "other": []}  # `grading-app db check`
    assert "  - batch_templates table already exists" in lines
    assert "  - Column job_batches.priority already exists" in lines
    assert "  - Template Academic Essay Grading already exists" in lines
    assert "  ✓ Added column: job_batches.shared_with" in lines
    assert "  ✓ Added column: batch_templates.usage_count" in lines
    assert any(
        line.startswith("  ✓ Aligned column: job_batches.priority (NOT NULL") for line in lines
    )
    if json_type == "TEXT":
        assert any("Aligned column: job_batches.tags (type TEXT → JSON" in line for line in lines)
    assert not any(line.startswith("  ⚠️") for line in lines)

    batches = {
        row.id: row
        for row in rows(
            database_url,
            "SELECT id, priority, tags, auto_assign_jobs, total_jobs FROM job_batches",
        )
    }
    for batch_id, batch in batches.items():
        wanted = legacy_db.ORIGINAL_SCRIPT_PRIORITIES.get(batch_id, 5)
        assert batch.priority == (5 if wanted is None else wanted), batch_id
        assert batch.auto_assign_jobs in (False, 0)
        assert batch.total_jobs == legacy_db.EXPECTED_BATCH_COUNTS[batch_id][0]
    tags = {batch_id: batch.tags for batch_id, batch in batches.items()}
    if postgres:  # json: decoded by the driver; text that was not JSON is a JSON string now
        assert tags[legacy_db.BATCH_DONE_ID] == ["history", "year 10"]
        if json_type == "TEXT":
            assert tags[legacy_db.BATCH_PARTIAL_ID] == "creative, 作文"
    else:  # SQLite keeps the text as it was
        assert tags[legacy_db.BATCH_DONE_ID] == '["history", "year 10"]'
        assert tags[legacy_db.BATCH_PARTIAL_ID] == "creative, 作文"
    templates = rows(
        database_url, "SELECT id, name, is_public, usage_count FROM batch_templates ORDER BY name"
    )
    assert sorted(t.name for t in templates) == sorted(t["name"] for t in DEFAULT_TEMPLATES)
    assert all(t.is_public in (True, 1) and t.usage_count == 0 for t in templates)
    assert legacy_db.ORIGINAL_SCRIPT_TEMPLATE_ID in {t.id for t in templates}

    again, lines = upgrade(database_url, tmp_path)
    assert again.changes == []


def test_dry_run_prints_the_plan_and_changes_nothing(database_url, tmp_path):
    build_legacy(database_url, "G2")
    schema, data = schema_snapshot(database_url), data_snapshot(database_url)
    info = tmp_path / "migration_backup_info.json"

    result, lines = upgrade(database_url, tmp_path, dry_run=True, backup=True)

    assert "  → Would: add column job_batches.priority" in lines
    assert "  → Would: create template Academic Essay Grading" in lines
    assert result.changes and result.dry_run
    assert schema_snapshot(database_url) == schema
    assert data_snapshot(database_url) == data
    assert revision_of(database_url) is None
    assert not info.exists()
    assert not list(tmp_path.glob("grading_app_backup_*"))


def test_foreign_key_added_by_an_earlier_attempt_is_not_added_twice(database_url, tmp_path):
    """ADD CONSTRAINT twice fails on PostgreSQL; the upgrade must see it is there."""
    build_legacy(database_url, "G6")
    execute(
        database_url,
        "CREATE TABLE batch_templates (id VARCHAR(36) NOT NULL, name VARCHAR(255) NOT NULL, "
        "PRIMARY KEY (id))",
        "ALTER TABLE job_batches ADD COLUMN template_id VARCHAR(36) "
        "REFERENCES batch_templates (id)",
    )

    result, lines = upgrade(database_url, tmp_path)

    assert "  - Column job_batches.template_id already exists" in lines
    assert not [line for line in lines if "foreign key: job_batches.template_id" in line]
    assert "  ✓ Added foreign key: job_batches.saved_prompt_id → saved_prompts.id" in lines
    assert schema_snapshot(database_url) == fresh_head_snapshot(kind_of(database_url))


def test_batches_count_the_documents_of_their_legacy_jobs(database_url, tmp_path):
    """Migration 0014 fills the batches' document counters from their jobs, and its
    triggers keep them as the application then writes jobs."""
    build_legacy(database_url, "G6")
    upgrade(database_url, tmp_path)
    query = (
        "SELECT b.id, b.total_submissions, b.processed_submissions, b.failed_submissions, "
        "b.job_count, COALESCE(SUM(j.total_submissions), 0), "
        "COALESCE(SUM(j.processed_submissions), 0), COALESCE(SUM(j.failed_submissions), 0), "
        "COUNT(j.id) FROM job_batches b "
        "LEFT JOIN grading_jobs j ON j.batch_id = b.id GROUP BY b.id, b.total_submissions, "
        "b.processed_submissions, b.failed_submissions, b.job_count"
    )
    counted = rows(database_url, query)
    assert counted and any(row[1] > 0 for row in counted)
    assert all(tuple(row[1:5]) == tuple(row[5:9]) for row in counted)

    batch_id = counted[0][0]
    execute(
        database_url,
        "UPDATE grading_jobs SET total_submissions = COALESCE(total_submissions, 0) + 3 "
        f"WHERE batch_id = '{batch_id}'",
    )
    assert all(tuple(row[1:5]) == tuple(row[5:9]) for row in rows(database_url, query))
