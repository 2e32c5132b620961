"""Structured grades and item progress: what the grading engine stores.

grade_results gains the structured grade (score, maximum, per-criterion scores,
feedback), the raw answer, token usage and latency, and the work item that produced it
(unique, so no item is ever graded into two results). Jobs and batches gain item
counters, so progress and the ETA read in O(1).

Revision ID: 0004_grading_results
Revises: 0003_processing
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from grading_app.migrations.report import current_reporter
from grading_app.migrations.schema_ops import (
    drop_columns,
    drop_indexes,
    ensure_columns,
    ensure_constraints,
    ensure_indexes,
)

revision: str = "0004_grading_results"
down_revision: str | None = "0003_processing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ITEM_COUNTERS = ("total_items", "completed_items", "failed_items")
JOB_TIMES = ("started_at", "completed_at", "estimated_completion")
RESULT_COLUMNS = (
    "work_item_id",
    "score",
    "max_score",
    "criteria",
    "feedback",
    "raw_response",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
)


def _tables() -> tuple[sa.Table, sa.Table, sa.Table]:
    metadata = sa.MetaData()
    sa.Table("work_items", metadata, sa.Column("id", sa.String(36), primary_key=True))

    def counters() -> list[sa.Column]:
        return [
            sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0"))
            for name in ITEM_COUNTERS
        ]

    grade_results = sa.Table(
        "grade_results",
        metadata,
        sa.Column("work_item_id", sa.String(36), sa.ForeignKey("work_items.id")),
        sa.Column("score", sa.Float()),
        sa.Column("max_score", sa.Float()),
        sa.Column("criteria", sa.JSON()),
        sa.Column("feedback", sa.Text()),
        sa.Column("raw_response", sa.Text()),
        sa.Column("prompt_tokens", sa.Integer()),
        sa.Column("completion_tokens", sa.Integer()),
        sa.Column("latency_ms", sa.Integer()),
    )
    sa.Index("ix_grade_results_work_item_id", grade_results.c.work_item_id, unique=True)
    grading_jobs = sa.Table(
        "grading_jobs",
        metadata,
        *counters(),
        *(sa.Column(name, sa.DateTime()) for name in JOB_TIMES),
    )
    job_batches = sa.Table(
        "job_batches", metadata, *counters(), sa.Column("last_claimed_at", sa.DateTime())
    )
    return grade_results, grading_jobs, job_batches


def upgrade() -> None:
    report = current_reporter()
    grade_results, grading_jobs, job_batches = _tables()
    report.section("📈 Adding structured grades and progress counters...")
    for table in (grade_results, grading_jobs, job_batches):
        ensure_columns(table, itemise_skips=False)
    ensure_indexes(grade_results)
    ensure_constraints(grade_results)
    _count_existing_items()


def _count_existing_items() -> None:
    """Jobs graded before this release: one item per submission, counted from its status.

    Set-based (`UPDATE ... FROM` an aggregate; SQLite has it since 3.33): on a million
    submissions a row-by-row update is several times slower.
    """
    report = current_reporter()
    bind = op.get_bind()
    jobs = bind.execute(
        sa.text(
            """
            UPDATE grading_jobs
            SET total_items = counts.total,
                completed_items = counts.completed,
                failed_items = counts.failed
            FROM (
                SELECT job_id,
                       COUNT(*) AS total,
                       SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS completed,
                       SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed
                FROM submissions GROUP BY job_id
            ) AS counts
            WHERE grading_jobs.id = counts.job_id AND grading_jobs.total_items = 0
            """
        )
    ).rowcount
    bind.execute(
        sa.text(
            """
            UPDATE job_batches
            SET total_items = sums.total,
                completed_items = sums.completed,
                failed_items = sums.failed
            FROM (
                SELECT batch_id,
                       SUM(total_items) AS total,
                       SUM(completed_items) AS completed,
                       SUM(failed_items) AS failed
                FROM grading_jobs WHERE batch_id IS NOT NULL GROUP BY batch_id
            ) AS sums
            WHERE job_batches.id = sums.batch_id AND job_batches.total_items = 0
            """
        )
    )
    if jobs:
        report.change(
            f"Counted items of {jobs} existing jobs", plan=f"count items of {jobs} existing jobs"
        )
    else:
        report.skip("Item counts of existing jobs already set")


def downgrade() -> None:
    drop_indexes("grade_results", ["ix_grade_results_work_item_id"])
    drop_columns("grade_results", RESULT_COLUMNS)
    drop_columns("grading_jobs", ITEM_COUNTERS + JOB_TIMES)
    drop_columns("job_batches", (*ITEM_COUNTERS, "last_claimed_at"))
