"""Processing model: work items, one per submission and model, and their indexes.

The indexes are the ones that claiming, progress and the batch pages read through.

Revision ID: 0003_processing
Revises: 0002_enhanced_batch_system
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from grading_app.migrations.report import current_reporter
from grading_app.migrations.schema_ops import drop_indexes, ensure_indexes, ensure_table

revision: str = "0003_processing"
down_revision: str | None = "0002_enhanced_batch_system"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_INDEXES = {
    "grading_jobs": [("ix_grading_jobs_batch_id", ["batch_id"])],
    "submissions": [("ix_submissions_job_id", ["job_id"])],
    "grade_results": [("ix_grade_results_submission_id", ["submission_id"])],
    "job_batches": [("ix_job_batches_status_priority", ["status", "priority"])],
}


def _work_items(metadata: sa.MetaData) -> sa.Table:
    for parent in ("submissions", "grading_jobs", "job_batches"):
        sa.Table(parent, metadata, sa.Column("id", sa.String(36), primary_key=True))
    return sa.Table(
        "work_items",
        metadata,
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("submission_id", sa.String(36), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("batch_id", sa.String(36)),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("state", sa.String(20), nullable=False, server_default=sa.text("'queued'")),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("sequence", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", sa.DateTime()),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", sa.DateTime()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime()),
        sa.Column("completed_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="work_items_pkey"),
        sa.ForeignKeyConstraint(
            ["submission_id"], ["submissions.id"], name="work_items_submission_id_fkey"
        ),
        sa.ForeignKeyConstraint(["job_id"], ["grading_jobs.id"], name="work_items_job_id_fkey"),
        sa.ForeignKeyConstraint(["batch_id"], ["job_batches.id"], name="work_items_batch_id_fkey"),
        sa.UniqueConstraint(
            "submission_id", "provider", "model", name="work_items_submission_id_provider_model_key"
        ),
        sa.Index("ix_work_items_state_next_attempt_at", "state", "next_attempt_at"),
        sa.Index("ix_work_items_batch_id_state", "batch_id", "state"),
        sa.Index("ix_work_items_job_id_state", "job_id", "state"),
        sa.Index("ix_work_items_lease_expires_at", "lease_expires_at"),
    )


def upgrade() -> None:
    report = current_reporter()
    report.section("⚙️ Preparing processing tables...")
    metadata = sa.MetaData()
    ensure_table(_work_items(metadata), label="work_items table")
    for table_name, indexes in LEGACY_INDEXES.items():
        table = sa.Table(
            table_name,
            sa.MetaData(),
            *(sa.Column(column) for column in {c for _, cols in indexes for c in cols}),
        )
        for name, columns in indexes:
            sa.Index(name, *(table.c[column] for column in columns))
        ensure_indexes(table)


def downgrade() -> None:
    op.drop_table("work_items")
    for table_name, indexes in LEGACY_INDEXES.items():
        drop_indexes(table_name, [name for name, _ in indexes])
