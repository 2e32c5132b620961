"""Structured rubrics for the library and templates (filled in by the library work).

Revision ID: 0006_library_rubrics
Revises: 0005_integrity
Create Date: 2026-12-05
"""

from collections.abc import Sequence

revision: str = "0006_library_rubrics"
down_revision: str | None = "0005_integrity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
