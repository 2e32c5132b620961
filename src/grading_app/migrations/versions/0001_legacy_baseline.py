"""Legacy baseline: the schema the last legacy release (G6) created with create_all().

On an empty database this creates that schema. On a database left by any earlier
release (G1-G6, or any mix of their columns), it adds the legacy tables, columns and
foreign keys that are missing, so every later revision starts from the same place.

Revision ID: 0001_legacy_baseline
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa

from grading_app.migrations.report import current_reporter
from grading_app.migrations.schema_ops import ensure_columns, ensure_constraints, ensure_table

revision: str = "0001_legacy_baseline"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def legacy_tables() -> list[sa.Table]:
    """The G6 tables, parents before children, columns in legacy order."""
    metadata = sa.MetaData(
        naming_convention={
            "pk": "%(table_name)s_pkey",
            "fk": "%(table_name)s_%(column_0_name)s_fkey",
        }
    )

    def id_column() -> sa.Column:
        return sa.Column("id", sa.String(36), primary_key=True)

    def library_file_columns() -> list[sa.Column]:
        return [
            id_column(),
            sa.Column("created_at", sa.DateTime()),
            sa.Column("updated_at", sa.DateTime()),
            sa.Column("name", sa.String(255), nullable=False),
            sa.Column("description", sa.Text()),
            sa.Column("filename", sa.String(255), nullable=False),
            sa.Column("original_filename", sa.String(255), nullable=False),
            sa.Column("file_size", sa.Integer()),
            sa.Column("file_type", sa.String(10)),
            sa.Column("content", sa.Text()),
        ]

    marking_schemes = sa.Table("marking_schemes", metadata, *library_file_columns())
    saved_prompts = sa.Table(
        "saved_prompts",
        metadata,
        id_column(),
        sa.Column("created_at", sa.DateTime()),
        sa.Column("updated_at", sa.DateTime()),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("category", sa.String(100)),
        sa.Column("prompt_text", sa.Text(), nullable=False),
        sa.Column("usage_count", sa.Integer()),
        sa.Column("last_used", sa.DateTime()),
    )
    saved_marking_schemes = sa.Table(
        "saved_marking_schemes",
        metadata,
        *library_file_columns(),
        sa.Column("category", sa.String(100)),
        sa.Column("usage_count", sa.Integer()),
        sa.Column("last_used", sa.DateTime()),
    )
    job_batches = sa.Table(
        "job_batches",
        metadata,
        id_column(),
        sa.Column("created_at", sa.DateTime()),
        sa.Column("batch_name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("status", sa.String(50)),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("model", sa.String(100)),
        sa.Column("temperature", sa.Float()),
        sa.Column("max_tokens", sa.Integer()),
    )
    grading_jobs = sa.Table(
        "grading_jobs",
        metadata,
        id_column(),
        sa.Column("created_at", sa.DateTime()),
        sa.Column("updated_at", sa.DateTime()),
        sa.Column("job_name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("status", sa.String(50)),
        sa.Column("priority", sa.Integer()),
        sa.Column("total_submissions", sa.Integer()),
        sa.Column("processed_submissions", sa.Integer()),
        sa.Column("failed_submissions", sa.Integer()),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("model", sa.String(100)),
        sa.Column("batch_id", sa.String(36), sa.ForeignKey("job_batches.id")),
        sa.Column("models_to_compare", sa.JSON()),
        sa.Column("marking_scheme_id", sa.String(36), sa.ForeignKey("marking_schemes.id")),
        sa.Column("saved_prompt_id", sa.String(36), sa.ForeignKey("saved_prompts.id")),
        sa.Column(
            "saved_marking_scheme_id", sa.String(36), sa.ForeignKey("saved_marking_schemes.id")
        ),
        sa.Column("temperature", sa.Float()),
        sa.Column("max_tokens", sa.Integer()),
    )
    submissions = sa.Table(
        "submissions",
        metadata,
        id_column(),
        sa.Column("created_at", sa.DateTime()),
        sa.Column("updated_at", sa.DateTime()),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("original_filename", sa.String(255), nullable=False),
        sa.Column("file_size", sa.Integer()),
        sa.Column("file_type", sa.String(10)),
        sa.Column("status", sa.String(50)),
        sa.Column("error_message", sa.Text()),
        sa.Column("extracted_text", sa.Text()),
        sa.Column("grade", sa.Text()),
        sa.Column("grade_metadata", sa.JSON()),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("grading_jobs.id"), nullable=False),
        sa.Column("retry_count", sa.Integer()),
    )
    grade_results = sa.Table(
        "grade_results",
        metadata,
        id_column(),
        sa.Column("created_at", sa.DateTime()),
        sa.Column("grade", sa.Text(), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("status", sa.String(50)),
        sa.Column("error_message", sa.Text()),
        sa.Column("grade_metadata", sa.JSON()),
        sa.Column("submission_id", sa.String(36), sa.ForeignKey("submissions.id"), nullable=False),
    )
    return [
        marking_schemes,
        saved_prompts,
        saved_marking_schemes,
        job_batches,
        grading_jobs,
        submissions,
        grade_results,
    ]


def upgrade() -> None:
    report = current_reporter()
    report.section("🧱 Completing the legacy schema...")
    tables = legacy_tables()
    for table in tables:
        if not ensure_table(table, label=f"table {table.name}"):
            ensure_columns(table, itemise_skips=False)
    for table in tables:
        ensure_constraints(table)


def downgrade() -> None:
    raise RuntimeError(
        "0001_legacy_baseline is the oldest schema this release knows; to go further back, "
        "restore the backup made before the upgrade"
    )
