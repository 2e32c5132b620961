"""Integrity fixes for upgraded databases (filled in by the new-user defects work).

Revision ID: 0005_integrity
Revises: 0004_grading_results
Create Date: 2026-12-05
"""

from collections.abc import Sequence

revision: str = "0005_integrity"
down_revision: str | None = "0004_grading_results"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
