"""The batch search's trigram index (PostgreSQL only), made by revision 0010 and made
again by every guided upgrade at head, since one that changes the type of a searched
column has to drop it first.

`GET /api/batches?q=` finds every word anywhere in a batch's name, description or tags,
in any case. Without an index each search reads every batch and lower-cases its text
(about 17 ms at 10,000 batches for the count alone, growing with every batch).
PostgreSQL's pg_trgm extension indexes substrings: a GIN index over the three columns as
one lower-case text (spelled exactly as `batches.queries.searchable_text` builds it, so
the planner recognises it) answers the same count in about 2 ms.

pg_trgm ships with PostgreSQL and is a trusted extension: a user who may create objects
in the database can enable it. Where it cannot be enabled, the upgrade says so and goes
on; search works the same, only without the index, and the models do not declare the
index, so `grading-app db check` does not ask for it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from grading_app.migrations.report import current_reporter

INDEX = "ix_job_batches_search"
TABLE = "job_batches"
SEARCHED_COLUMNS = frozenset({"batch_name", "description", "tags"})
SEARCHABLE_TEXT = (
    "lower(batch_name || ' ' || coalesce(description, '') || ' ' "
    "|| coalesce(CAST(tags AS TEXT), ''))"
)
CREATE_EXTENSION = "CREATE EXTENSION IF NOT EXISTS pg_trgm"
CREATE_INDEX = f"CREATE INDEX {INDEX} ON {TABLE} USING gin ({SEARCHABLE_TEXT} gin_trgm_ops)"


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _present() -> bool:
    return INDEX in {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(TABLE)}


def ensure_search_index() -> None:
    report = current_reporter()
    if not _is_postgresql():
        return
    if _present():
        report.skip(f"Index {INDEX} already exists")
        return
    if not _trigram_extension():
        return
    op.execute(CREATE_INDEX)
    report.change(f"Created index: {INDEX}", plan=f"create index {INDEX}")


def drop_search_index_before_retyping(table: str, column: str) -> None:
    """PostgreSQL rebuilds an index over an expression when a column in it changes type,
    from the expression as it was stored: `CAST(tags AS TEXT)` over a TEXT column was
    stored as plain `tags`, which no longer makes text once `tags` is JSON. The index
    goes first; `ensure_search_index` builds it again after."""
    if table != TABLE or column not in SEARCHED_COLUMNS or not _present():
        return
    op.drop_index(INDEX, table_name=TABLE)
    current_reporter().change(
        f"Dropped index {INDEX} to change {table}.{column} (built again below)",
        plan=f"drop index {INDEX} to change {table}.{column}",
    )


def _trigram_extension() -> bool:
    """pg_trgm enabled in this database (enabling it if need be); False, with a warning
    saying what a database owner can run, where this user may not."""
    report = current_reporter()
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        return True
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text(CREATE_EXTENSION))
    except sa.exc.DBAPIError as error:
        savepoint.rollback()
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
        report.warn(
            f"Could not enable the pg_trgm extension ({reason}); batch search works, "
            f"without an index. A database owner can add it: {CREATE_EXTENSION}; "
            f"{CREATE_INDEX};"
        )
        return False
    savepoint.commit()
    report.change("Enabled the pg_trgm extension", plan="enable the pg_trgm extension")
    return True
