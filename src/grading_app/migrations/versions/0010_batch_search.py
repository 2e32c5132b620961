"""A trigram index for the batch list's free-text search.

PostgreSQL only; why and how in `grading_app.migrations.search_index`.

Revision ID: 0010_batch_search
Revises: 0009_accounts
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from grading_app.migrations.report import current_reporter
from grading_app.migrations.schema_ops import drop_indexes, is_sqlite
from grading_app.migrations.search_index import INDEX, TABLE, ensure_search_index

revision: str = "0010_batch_search"
down_revision: str | None = "0009_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    report = current_reporter()
    report.section("🔎 Indexing batches for search...")
    if is_sqlite():
        report.skip("SQLite has no substring index; a search reads every batch")
        return
    ensure_search_index()


def downgrade() -> None:
    if not is_sqlite():
        drop_indexes(TABLE, [INDEX])
