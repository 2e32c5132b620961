"""Structured rubrics for marking schemes, one library row per scheme file, defaults marked.

- `marking_schemes.rubric`, `saved_marking_schemes.rubric` (JSON): criteria with their
  maxima and level descriptors (grading/rubric.py); NULL for a free-text scheme.
- `saved_marking_schemes.content_hash` (SHA-256 of the uploaded file), unique, so the
  same file uploaded twice finds its row. Legacy rows keep NULL (NULLs never clash).
- The four default templates carry `created_by = 'system'`, as revision 0002 makes
  them; a copy the guide's original script inserted has none, and gets it here. The
  API keeps templates with a default name and that mark read-only.

Revision ID: 0006_library_rubrics
Revises: 0005_integrity
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from grading_app.migrations.report import current_reporter
from grading_app.migrations.schema_ops import (
    drop_columns,
    drop_indexes,
    ensure_columns,
    ensure_indexes,
)

revision: str = "0006_library_rubrics"
down_revision: str | None = "0005_integrity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen: the default templates as of this revision.
DEFAULT_TEMPLATE_NAMES = (
    "Academic Essay Grading",
    "Business Report Review",
    "Research Paper Analysis",
    "Creative Writing Assessment",
)
SYSTEM_CREATOR = "system"
HASH_INDEX = "ix_saved_marking_schemes_content_hash"


def _tables() -> tuple[sa.Table, sa.Table]:
    metadata = sa.MetaData()
    marking_schemes = sa.Table("marking_schemes", metadata, sa.Column("rubric", sa.JSON()))
    saved = sa.Table(
        "saved_marking_schemes",
        metadata,
        sa.Column("rubric", sa.JSON()),
        sa.Column("content_hash", sa.String(64)),
    )
    sa.Index(HASH_INDEX, saved.c.content_hash, unique=True)
    return marking_schemes, saved


def upgrade() -> None:
    report = current_reporter()
    marking_schemes, saved = _tables()
    report.section("📐 Adding structured rubrics to marking schemes...")
    ensure_columns(marking_schemes)
    ensure_columns(saved)
    ensure_indexes(saved)
    _mark_default_templates()


def _mark_default_templates() -> None:
    report = current_reporter()
    templates = sa.table("batch_templates", sa.column("name"), sa.column("created_by"))
    marked = (
        op.get_bind()
        .execute(
            sa.update(templates)
            .where(templates.c.name.in_(DEFAULT_TEMPLATE_NAMES), templates.c.created_by.is_(None))
            .values(created_by=SYSTEM_CREATOR)
        )
        .rowcount
    )
    if marked:
        report.change(
            f"Marked {marked} default template(s) as the system's",
            plan=f"mark {marked} default template(s) as the system's",
        )
    else:
        report.skip("Default templates already marked as the system's")


def downgrade() -> None:
    # The mark on the default templates stays: created_by is theirs since revision 0002.
    drop_indexes("saved_marking_schemes", [HASH_INDEX])
    drop_columns("saved_marking_schemes", ("rubric", "content_hash"))
    drop_columns("marking_schemes", ("rubric",))
