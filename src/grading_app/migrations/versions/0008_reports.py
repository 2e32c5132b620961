"""What analytics and exports need stored (filled in by the reports work).

Revision ID: 0008_reports
Revises: 0007_batch_queries
Create Date: 2026-12-05
"""

from collections.abc import Sequence

revision: str = "0008_reports"
down_revision: str | None = "0007_batch_queries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
