"""Indexes for the batch list's filters and sorts.

Each sort key of `GET /api/batches` (priority then age by default, created, updated,
deadline, started, completed, name) gets an index ending with the id, the list's
tie-break, so a page at any offset is read from the index alone; the template and
creator filters get one each. The default order's index also carries the status, which
the default list filters on (archived batches are left out).

Revision ID: 0007_batch_queries
Revises: 0006_library_rubrics
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from grading_app.migrations.report import current_reporter
from grading_app.migrations.schema_ops import drop_indexes, ensure_indexes

revision: str = "0007_batch_queries"
down_revision: str | None = "0006_library_rubrics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name -> columns, as the model declares them (models/batches.py).
INDEXES: dict[str, tuple[str, ...]] = {
    "ix_job_batches_priority_created_at_id_status": ("priority", "created_at", "id", "status"),
    "ix_job_batches_created_at_id": ("created_at", "id"),
    "ix_job_batches_updated_at_id": ("updated_at", "id"),
    "ix_job_batches_deadline_id": ("deadline", "id"),
    "ix_job_batches_started_at_id": ("started_at", "id"),
    "ix_job_batches_completed_at_id": ("completed_at", "id"),
    "ix_job_batches_batch_name_id": ("batch_name", "id"),
    "ix_job_batches_template_id": ("template_id",),
    "ix_job_batches_created_by": ("created_by",),
}


def _job_batches() -> sa.Table:
    columns = sorted({column for names in INDEXES.values() for column in names})
    table = sa.Table("job_batches", sa.MetaData(), *(sa.Column(name) for name in columns))
    for name, names in INDEXES.items():
        sa.Index(name, *(table.c[column] for column in names))
    return table


def upgrade() -> None:
    current_reporter().section("🔎 Indexing batches for filters and sorting...")
    ensure_indexes(_job_batches())


def downgrade() -> None:
    drop_indexes("job_batches", INDEXES)
