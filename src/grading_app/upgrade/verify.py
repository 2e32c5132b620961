"""The upgrade's last step: check that the schema, the default templates and every
table's rows are what they must be, before the transaction commits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from grading_app import migrations
from grading_app.errors import AppError
from grading_app.migrations import search_index
from grading_app.migrations.default_templates import DEFAULT_TEMPLATES
from grading_app.migrations.report import Reporter
from grading_app.models import UNFINISHED, UNSETTLED_SUBMISSION, Base
from grading_app.models.statuses import sql_list

# Tables the upgrade adds rows to (the default templates); every other table must hold
# exactly the rows it held before.
TABLES_THAT_GROW = frozenset({"batch_templates"})
# Indexes the models do not declare because not every database has them: the batch
# search's trigram index needs PostgreSQL's pg_trgm (migration 0010); the dashboard's
# counters index is SQLite's alone (migration 0011).
OPTIONAL_INDEXES = frozenset({search_index.INDEX, "ix_grading_jobs_dashboard_counters"})


class UpgradeFailed(AppError):
    """The upgrade started and was rolled back; the database is as it was."""


def verify_upgrade(
    connection: sa.Connection,
    reporter: Reporter,
    counts_before: dict[str, int],
    counts_after: dict[str, int],
    write: Callable[[str], None],
) -> None:
    reporter.section("✅ Verifying migration...")
    inspector = sa.inspect(connection)
    present = set(inspector.get_table_names())
    missing_tables = sorted(set(Base.metadata.tables) - present)
    if missing_tables:
        raise UpgradeFailed(f"Tables missing after the upgrade: {', '.join(missing_tables)}")
    reporter.check("All required tables exist")
    missing_columns = [
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.name not in {c["name"] for c in inspector.get_columns(table.name)}
    ]
    if missing_columns:
        raise UpgradeFailed(f"Columns missing after the upgrade: {', '.join(missing_columns)}")
    reporter.check("All required columns exist")
    drift = schema_drift(connection)
    if has_drift(drift):
        raise UpgradeFailed(
            "The schema still differs from this release's models after the upgrade ("
            + "; ".join(drift["missing"] + drift["other"])
            + "). If these are changes of your own, undo them and run again; otherwise "
            "please report this"
        )
    reporter.check("Schema matches this release's models")

    names = set(connection.execute(sa.text("SELECT name FROM batch_templates")).scalars())
    absent = [t["name"] for t in DEFAULT_TEMPLATES if t["name"] not in names]
    if absent:
        raise UpgradeFailed(f"Default templates missing: {', '.join(absent)}")
    templates = connection.execute(sa.text("SELECT COUNT(*) FROM batch_templates")).scalar_one()
    reporter.check(f"Found {templates} batch templates")
    batches = connection.execute(sa.text("SELECT COUNT(*) FROM job_batches")).scalar_one()
    reporter.check(f"Found {batches} existing batches")
    _mention_unfinished_work(connection, reporter)
    _verify_row_counts(reporter, counts_before, counts_after, write)
    revision = migrations.current_revision(connection)
    if revision != migrations.head_revision():
        raise UpgradeFailed(f"Schema revision is {revision}, expected {migrations.head_revision()}")
    reporter.check(f"Schema revision: {revision}")


def _mention_unfinished_work(connection: sa.Connection, reporter: Reporter) -> None:
    """Say what an earlier release left unfinished: the upgrade queues none of it (it
    would spend provider credit unasked); resuming it does (jobs/legacy.py)."""
    jobs, documents = connection.execute(
        sa.text(
            f"""
            SELECT COUNT(DISTINCT s.job_id), COUNT(*)
            FROM submissions s JOIN grading_jobs j ON j.id = s.job_id
            WHERE j.status IN {sql_list(UNFINISHED)}
              AND (s.status IN {sql_list(UNSETTLED_SUBMISSION)} OR s.status IS NULL)
              AND NOT EXISTS (SELECT 1 FROM work_items w WHERE w.submission_id = s.id)
            """
        )
    ).one()
    if jobs:
        reporter.info(
            f"ℹ️  {jobs} job{'s' if jobs != 1 else ''} left unfinished by the earlier release "
            f"({documents} document{'s' if documents != 1 else ''} not graded): nothing is "
            f"queued until you resume {'them' if jobs != 1 else 'it'} (POST /api/jobs/ID/resume or "
            "/api/batches/ID/resume; see the README)"
        )


def _verify_row_counts(
    reporter: Reporter,
    before: dict[str, int],
    after: dict[str, int],
    write: Callable[[str], None],
) -> None:
    """Every table present before keeps its rows: the same count, or more for the tables
    the upgrade fills (the default templates). Tables it creates are listed too."""
    lost = {
        table: f"{count} → {after.get(table, 'table gone')}"
        for table, count in before.items()
        if table not in after
        or after[table] < count
        or (after[table] != count and table not in TABLES_THAT_GROW)
    }
    if lost:
        shown = ", ".join(f"{table} {change}" for table, change in lost.items())
        raise UpgradeFailed(f"Row counts changed during the upgrade: {shown}")
    tables = sorted(set(before) | set(after))
    reporter.check(
        f"Row counts compared in {len(tables)} tables: no rows lost "
        f"({sum(before.values())} rows before, {sum(after.values())} after):"
    )
    for table in tables:
        shown_before = str(before[table]) if table in before else "(new)"
        write(f"      {table:<24} {shown_before:>10} → {after.get(table, 0)}")


def has_drift(drift: dict[str, list[str]]) -> bool:
    return bool(drift["missing"] or drift["other"])


def schema_drift(connection: sa.Connection) -> dict[str, list[str]]:
    """Differences between the database and the models, as `alembic check` finds them
    (types and server defaults included): `missing` is what the models need and the
    database lacks, `other` everything else. Either fails the upgrade's verification
    and `grading-app db check`; tables of the user's own are ignored, and so are the
    indexes that only speed a query up where the database can build them."""
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_name": _compared,
        },
    )
    differences = list(_flatten(compare_metadata(context, Base.metadata)))
    # A foreign key that exists with other options (ON DELETE ...) shows up as one
    # removed and one added; it is there, so it is not missing.
    removed_fks = {_fk_shape(d[1]) for d in differences if d[0] == "remove_fk"}
    missing: list[str] = []
    other: list[str] = []
    for difference in differences:
        kind = difference[0]
        if kind == "remove_table":
            continue  # tables of the user's own are none of our business
        text = _describe_difference(difference)
        if kind == "add_fk" and _fk_shape(difference[1]) in removed_fks:
            other.append(f"modify_fk {text.removeprefix('add_fk ')}")
        elif kind == "remove_fk" and _fk_shape(difference[1]) in removed_fks:
            continue
        else:
            (missing if kind.startswith("add_") else other).append(text)
    return {"missing": missing, "other": other}


def _compared(name: str | None, type_: str, parent_names: Any) -> bool:
    return not (type_ == "index" and name in OPTIONAL_INDEXES)


def _fk_shape(constraint: Any) -> tuple[Any, ...]:
    return (
        constraint.parent.name,
        tuple(c.name for c in constraint.columns),
        constraint.referred_table.name,
    )


def _flatten(differences: list[Any]) -> Iterator[tuple[Any, ...]]:
    for difference in differences:
        if isinstance(difference, list):
            yield from difference
        else:
            yield difference


def _describe_difference(difference: tuple[Any, ...]) -> str:
    kind = difference[0]
    if kind in ("add_column", "remove_column"):
        return f"{kind} {difference[2]}.{difference[3].name}"
    if kind.startswith("modify_"):
        return f"{kind} {difference[2]}.{difference[3]}"
    target = difference[1]
    name = getattr(target, "name", None) or getattr(target, "table", target)
    return f"{kind} {name}"
