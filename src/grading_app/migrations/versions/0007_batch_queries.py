"""Indexes for batch filters and search (filled in by the batches work).

Revision ID: 0007_batch_queries
Revises: 0006_library_rubrics
Create Date: 2026-12-05
"""

from collections.abc import Sequence

revision: str = "0007_batch_queries"
down_revision: str | None = "0006_library_rubrics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
