"""An index for a job's documents in page order.

`GET /api/jobs/{id}/submissions` reads a job's documents by `created_at` then id: with
only `ix_submissions_job_id`, each page sorted every document of the job (about 25 ms
at 100,000 documents, more with each one added, on a page a client polls). Ordered by
this index, a page reads its own rows only.

Revision ID: 0008_reports
Revises: 0007_batch_queries
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from grading_app.migrations.report import current_reporter
from grading_app.migrations.schema_ops import drop_indexes, ensure_indexes

revision: str = "0008_reports"
down_revision: str | None = "0007_batch_queries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As the model declares it (models/jobs.py).
INDEX = "ix_submissions_job_id_created_at_id"


def _submissions() -> sa.Table:
    table = sa.Table(
        "submissions", sa.MetaData(), sa.Column("job_id"), sa.Column("created_at"), sa.Column("id")
    )
    sa.Index(INDEX, table.c.job_id, table.c.created_at, table.c.id)
    return table


def upgrade() -> None:
    current_reporter().section("🔎 Indexing documents in page order...")
    ensure_indexes(_submissions())


def downgrade() -> None:
    drop_indexes("submissions", [INDEX])
