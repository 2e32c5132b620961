"""Integrity fixes: cascading deletes, retry counts, partly failed documents, templates.

- `work_items` rows go with the submission, job or batch they belong to (ON DELETE
  CASCADE), so they never stop another reader of the database from deleting one; a
  grade outlives the work item that made it (`grade_results.work_item_id` ON DELETE SET
  NULL): grades are what users keep and export, work items only queue bookkeeping.
- `submissions.retry_count`, NULL in every row of a first-generation database (the
  column came later), is 0 there as in every row the application writes.
- `grading_jobs.partly_failed_submissions` counts documents that some of the job's models
  graded while others failed (legacy status completed), from work items and from the
  failed per-model results an earlier release kept.
- Default templates an earlier script made without prompt or criteria are completed.

Revision ID: 0005_integrity
Revises: 0004_grading_results
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from grading_app.migrations.default_template_rows import complete_default_templates
from grading_app.migrations.report import current_reporter
from grading_app.migrations.schema_ops import (
    drop_columns,
    ensure_columns,
    ensure_foreign_key_options,
)

revision: str = "0005_integrity"
down_revision: str | None = "0004_grading_results"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTLY_FAILED = "partly_failed_submissions"


def _foreign_keys(*, cascading: bool) -> tuple[sa.Table, sa.Table]:
    """work_items and grade_results with their foreign keys as of this revision
    (`cascading`) or the one before."""
    metadata = sa.MetaData()
    for parent in ("submissions", "grading_jobs", "job_batches"):
        sa.Table(parent, metadata, sa.Column("id", sa.String(36), primary_key=True))
    cascade = "CASCADE" if cascading else None
    work_items = sa.Table(
        "work_items",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("submission_id", sa.ForeignKey("submissions.id", ondelete=cascade)),
        sa.Column("job_id", sa.ForeignKey("grading_jobs.id", ondelete=cascade)),
        sa.Column("batch_id", sa.ForeignKey("job_batches.id", ondelete=cascade)),
    )
    grade_results = sa.Table(
        "grade_results",
        metadata,
        sa.Column(
            "work_item_id",
            sa.ForeignKey("work_items.id", ondelete="SET NULL" if cascading else None),
        ),
    )
    return work_items, grade_results


def upgrade() -> None:
    report = current_reporter()
    report.section("🧹 Integrity of work items, retry counts and templates...")
    for table in _foreign_keys(cascading=True):
        if not ensure_foreign_key_options(table):
            report.skip(f"Foreign keys of {table.name} already have their ON DELETE actions")
    _backfill_retry_count()
    grading_jobs = sa.Table(
        "grading_jobs",
        sa.MetaData(),
        sa.Column(PARTLY_FAILED, sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    if ensure_columns(grading_jobs):
        _count_partly_failed()
    complete_default_templates()


def _backfill_retry_count() -> None:
    report = current_reporter()
    filled = (
        op.get_bind()
        .execute(sa.text("UPDATE submissions SET retry_count = 0 WHERE retry_count IS NULL"))
        .rowcount
    )
    if filled:
        report.change(
            f"Set retry_count to 0 in {filled} submissions that had none",
            plan=f"set retry_count to 0 in {filled} submissions that have none",
        )
    else:
        report.skip("Every submission has a retry_count")


def _count_partly_failed() -> None:
    """Completed documents with a failed model: a failed work item, or (graded by an
    earlier release, so without work items) a failed result whose model has no other
    result that did not fail. Set-based, like 0004's counts, and driven from the failed
    rows, which are few, rather than from every submission."""
    report = current_reporter()
    jobs = (
        op.get_bind()
        .execute(
            sa.text(
                """
                UPDATE grading_jobs
                SET partly_failed_submissions = counts.documents
                FROM (
                    SELECT s.job_id, COUNT(*) AS documents
                    FROM submissions s
                    JOIN (
                        SELECT w.submission_id FROM work_items w WHERE w.state = 'failed'
                        UNION
                        SELECT r.submission_id FROM grade_results r
                        WHERE r.status = 'failed' AND r.work_item_id IS NULL
                          AND NOT EXISTS (
                              SELECT 1 FROM work_items w WHERE w.submission_id = r.submission_id
                          )
                          AND NOT EXISTS (
                              SELECT 1 FROM grade_results other
                              WHERE other.submission_id = r.submission_id
                                AND other.model = r.model
                                AND COALESCE(other.status, '') <> 'failed'
                          )
                    ) AS failed ON failed.submission_id = s.id
                    WHERE s.status = 'completed'
                    GROUP BY s.job_id
                ) AS counts
                WHERE grading_jobs.id = counts.job_id
                """
            )
        )
        .rowcount
    )
    if jobs:
        report.change(
            f"Counted partly failed documents of {jobs} jobs",
            plan=f"count partly failed documents of {jobs} jobs",
        )


def downgrade() -> None:
    drop_columns("grading_jobs", (PARTLY_FAILED,))
    for table in _foreign_keys(cascading=False):
        ensure_foreign_key_options(table)
