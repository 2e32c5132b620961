"""Document reviews and the release of a batch's grades.

Grades people can trust: a document's checks and a person's review, and releasing a
batch's grades.

- New table `document_reviews` (one row per document that was checked or reviewed):
  hidden-instruction findings, the reasons it needs a look and how doubtful it is, and
  a reviewer's acceptance or override (score, criteria, comment, who and when).
- `grades_released_at`, `grades_released_by`, `grades_released_unreviewed` on
  job_batches.
- `quotes_total`, `quotes_verified` on grade_results: the evidence quotes a model gave
  and how many were found in the document.

Revision ID: 0012_document_reviews
Revises: 0011_dashboard_indexes
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from grading_app.migrations.report import current_reporter
from grading_app.migrations.schema_ops import (
    drop_columns,
    ensure_columns,
    ensure_constraints,
    ensure_table,
    table_exists,
)

revision: str = "0012_document_reviews"
down_revision: str | None = "0011_dashboard_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RELEASE_COLUMNS = ("grades_released_at", "grades_released_by", "grades_released_unreviewed")


def _grade_results() -> sa.Table:
    return sa.Table(
        "grade_results",
        sa.MetaData(),
        sa.Column("quotes_total", sa.Integer()),
        sa.Column("quotes_verified", sa.Integer()),
    )


def _tables() -> tuple[sa.Table, sa.Table]:
    """The tables as of this revision (frozen; the models may move on)."""
    metadata = sa.MetaData()
    for parent in ("users", "submissions", "grading_jobs"):
        sa.Table(parent, metadata, sa.Column("id", sa.String(36), primary_key=True))
    batches = sa.Table(
        "job_batches",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("grades_released_at", sa.DateTime()),
        sa.Column("grades_released_by", sa.String(36), sa.ForeignKey("users.id")),
        sa.Column("grades_released_unreviewed", sa.Integer()),
    )
    reviews = sa.Table(
        "document_reviews",
        metadata,
        sa.Column(
            "submission_id",
            sa.String(36),
            sa.ForeignKey("submissions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("grading_jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("batch_id", sa.String(36), sa.ForeignKey("job_batches.id", ondelete="CASCADE")),
        sa.Column("findings", sa.JSON()),
        sa.Column("reasons", sa.JSON()),
        sa.Column("doubt", sa.Float()),
        sa.Column("state", sa.String(20), nullable=False, server_default=sa.text("'unreviewed'")),
        sa.Column("score", sa.Float()),
        sa.Column("max_score", sa.Float()),
        sa.Column("criteria", sa.JSON()),
        sa.Column("comment", sa.Text()),
        sa.Column("reviewed_by", sa.String(36), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("reviewed_at", sa.DateTime()),
        sa.Column("updated_at", sa.DateTime()),
        sa.Index("ix_document_reviews_batch_id_state_doubt", "batch_id", "state", "doubt"),
        sa.Index("ix_document_reviews_job_id_state_doubt", "job_id", "state", "doubt"),
    )
    return batches, reviews


def upgrade() -> None:
    current_reporter().section("🧑‍🏫 Adding document reviews and grade release...")
    batches, reviews = _tables()
    ensure_table(reviews)
    ensure_columns(batches, itemise_skips=False)
    ensure_constraints(batches)
    ensure_columns(_grade_results())


def downgrade() -> None:
    if table_exists("document_reviews"):
        op.drop_table("document_reviews")
    drop_columns("job_batches", RELEASE_COLUMNS)
    drop_columns("grade_results", ("quotes_total", "quotes_verified"))
