"""`grading-app db downgrade` goes back to the legacy baseline keeping every row, and
upgrade → downgrade → upgrade loses nothing."""

from __future__ import annotations

import pytest

from grading_app import migrations
from grading_app.upgrade.runner import UpgradeRefused
from grading_app.upgrade.schema import downgrade_schema, upgrade_schema
from tests.schema_snapshot import data_snapshot, legacy_columns_snapshot, schema_snapshot
from tests.upgrade.helpers import (
    build_legacy,
    execute,
    fresh_head_snapshot,
    kind_of,
    revision_of,
    scalar,
    upgrade,
)


def test_downgrade_returns_a_g6_database_to_its_legacy_schema(database_url, tmp_path):
    build_legacy(database_url, "G6")
    legacy_schema = schema_snapshot(database_url)
    upgrade(database_url, tmp_path)

    revision = downgrade_schema(database_url, write=lambda _: None)

    assert revision == migrations.BASELINE_REVISION
    assert schema_snapshot(database_url) == {
        **legacy_schema,
        # The stamp stays so that `db upgrade` knows where to start.
    }
    # Statuses derived by the upgrade stay; every other legacy value is as it was.
    assert scalar(database_url, "SELECT COUNT(*) FROM job_batches") == 9


def test_upgrade_downgrade_upgrade_keeps_every_row(database_url, tmp_path):
    build_legacy(database_url, "G4")
    upgrade(database_url, tmp_path)
    # Rows written by the enhanced application: a batch with no provider or prompt.
    execute(
        database_url,
        "INSERT INTO job_batches (id, batch_name, status, priority, total_jobs, completed_jobs, "
        "failed_jobs, auto_assign_jobs) VALUES ('new-batch', 'Made after the upgrade', 'draft', "
        f"9, 0, 0, 0, {'false' if kind_of(database_url) == 'postgresql' else '0'})",
    )
    tables = [
        "job_batches",
        "grading_jobs",
        "submissions",
        "grade_results",
        "marking_schemes",
        "saved_prompts",
        "saved_marking_schemes",
    ]
    counts = {t: scalar(database_url, f"SELECT COUNT(*) FROM {t}") for t in tables}
    legacy = legacy_columns_snapshot(
        database_url,
        {
            "submissions": ["id", "grade", "grade_metadata", "extracted_text"],
            "saved_prompts": ["id", "provider", "model", "prompt_text"],
        },
    )

    downgrade_schema(database_url, write=lambda _: None)
    assert revision_of(database_url) == migrations.BASELINE_REVISION
    # The legacy NOT NULL is back; the enhanced batch got an empty provider to satisfy it.
    assert scalar(database_url, "SELECT provider FROM job_batches WHERE id = 'new-batch'") == ""
    # G4's saved_prompts.provider held values, so the column stays.
    assert scalar(database_url, "SELECT COUNT(provider) FROM saved_prompts") > 0

    upgrade_schema(database_url, write=lambda _: None)

    assert revision_of(database_url) == migrations.head_revision()
    assert schema_snapshot(database_url) == fresh_head_snapshot(kind_of(database_url))
    assert {t: scalar(database_url, f"SELECT COUNT(*) FROM {t}") for t in tables} == counts
    assert (
        legacy_columns_snapshot(
            database_url,
            {
                "submissions": ["id", "grade", "grade_metadata", "extracted_text"],
                "saved_prompts": ["id", "provider", "model", "prompt_text"],
            },
        )
        == legacy
    )
    assert scalar(database_url, "SELECT COUNT(*) FROM batch_templates") == 4


def test_db_upgrade_refuses_a_legacy_database(database_url):
    build_legacy(database_url, "G2")
    before = data_snapshot(database_url)
    with pytest.raises(UpgradeRefused, match="migrate-batch-system"):
        upgrade_schema(database_url, write=lambda _: None)
    assert data_snapshot(database_url) == before


def test_downgrade_refuses_unstamped_and_unknown_targets(database_url, tmp_path):
    build_legacy(database_url, "G6")
    with pytest.raises(UpgradeRefused, match="no schema revision"):
        downgrade_schema(database_url, write=lambda _: None)
    upgrade(database_url, tmp_path)
    with pytest.raises(UpgradeRefused, match="Unknown revision"):
        downgrade_schema(database_url, "0000_nope", write=lambda _: None)
