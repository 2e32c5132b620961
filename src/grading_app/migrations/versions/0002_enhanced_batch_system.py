"""Enhanced Batch System: batch templates, the enhanced job_batches, default templates.

Everything the migration guide lists, made idempotent so a partially migrated database
(some columns or templates already there) is completed without duplicates.

Revision ID: 0002_enhanced_batch_system
Revises: 0001_legacy_baseline
Create Date: 2026-11-24
"""

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from grading_app.migrations.default_template_rows import complete_default_templates
from grading_app.migrations.default_templates import DEFAULT_TEMPLATES
from grading_app.migrations.report import current_reporter
from grading_app.migrations.schema_ops import (
    conform_columns,
    drop_columns,
    ensure_columns,
    ensure_constraints,
    ensure_table,
    existing_columns,
    is_sqlite,
    table_exists,
)

revision: str = "0002_enhanced_batch_system"
down_revision: str | None = "0001_legacy_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENHANCED_BATCH_COLUMNS = (
    "updated_at",
    "priority",
    "tags",
    "models_to_compare",
    "batch_settings",
    "auto_assign_jobs",
    "total_jobs",
    "completed_jobs",
    "failed_jobs",
    "deadline",
    "started_at",
    "completed_at",
    "estimated_completion",
    "template_id",
    "created_by",
    "shared_with",
    "saved_prompt_id",
    "saved_marking_scheme_id",
)
# Statuses the legacy application wrote; batches still holding one get a status derived
# from their jobs. Any other value was set by the enhanced application and is kept.
LEGACY_BATCH_STATUSES = (None, "pending", "processing", "completed")
FINISHED_JOB_STATUSES = ("completed", "completed_with_errors", "failed", "cancelled")


def _tables() -> tuple[sa.Table, sa.Table, sa.Table]:
    metadata = sa.MetaData()
    # Referenced tables, declared only so the foreign keys below resolve.
    sa.Table("saved_marking_schemes", metadata, sa.Column("id", sa.String(36), primary_key=True))
    batch_templates = sa.Table(
        "batch_templates",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("category", sa.String(100)),
        sa.Column("default_settings", sa.JSON()),
        sa.Column("job_structure", sa.JSON()),
        sa.Column("processing_rules", sa.JSON()),
        sa.Column("is_public", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime()),
        sa.Column("created_by", sa.String(255)),
        sa.Column("updated_at", sa.DateTime()),
        sa.Column("usage_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_used", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="batch_templates_pkey"),
    )
    saved_prompts = sa.Table(
        "saved_prompts",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("provider", sa.String(50)),
        sa.Column("model", sa.String(100)),
    )
    job_batches = sa.Table(
        "job_batches",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("provider", sa.String(50)),
        sa.Column("prompt", sa.Text()),
        sa.Column("updated_at", sa.DateTime()),
        sa.Column("priority", sa.Integer(), nullable=False, server_default=sa.text("5")),
        sa.Column("tags", sa.JSON()),
        sa.Column("models_to_compare", sa.JSON()),
        sa.Column("batch_settings", sa.JSON()),
        sa.Column("auto_assign_jobs", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("total_jobs", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("completed_jobs", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("failed_jobs", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("deadline", sa.DateTime()),
        sa.Column("started_at", sa.DateTime()),
        sa.Column("completed_at", sa.DateTime()),
        sa.Column("estimated_completion", sa.DateTime()),
        sa.Column("template_id", sa.String(36), sa.ForeignKey("batch_templates.id")),
        sa.Column("created_by", sa.String(255)),
        sa.Column("shared_with", sa.JSON()),
        sa.Column("saved_prompt_id", sa.String(36), sa.ForeignKey("saved_prompts.id")),
        sa.Column(
            "saved_marking_scheme_id", sa.String(36), sa.ForeignKey("saved_marking_schemes.id")
        ),
    )
    return batch_templates, saved_prompts, job_batches


def upgrade() -> None:
    _enhance(at_head=False)


def recheck() -> None:
    """The guide's steps again on a database already at head, where Alembic runs nothing.

    Each step looks before it acts, so this prints the guide's sections with a `- ...
    already ...` line for what is in place, puts back a default template that was
    deleted or renamed, and aligns enhanced columns an earlier release of this tool left
    with another type or nullability. Status values are left alone: at head the
    application keeps them, and deriving them again would overwrite its work.
    """
    _enhance(at_head=True)


def _enhance(*, at_head: bool) -> None:
    report = current_reporter()
    batch_templates, saved_prompts, job_batches = _tables()

    report.section("🏗️ Creating batch_templates table...")
    if not ensure_table(batch_templates, label="batch_templates table"):
        ensure_columns(batch_templates, itemise_skips=False)
        conform_columns(batch_templates)

    report.section("📋 Migrating job_batches table...")
    ensure_columns(_only(job_batches, ENHANCED_BATCH_COLUMNS))
    conform_columns(job_batches, ENHANCED_BATCH_COLUMNS)

    report.section("📚 Migrating saved_prompts table...")
    ensure_columns(_only(saved_prompts, ("provider", "model")))

    report.section("🔄 Updating batch status values...")
    if at_head:
        report.skip("Batch status values already updated; the application keeps them now")
    else:
        _update_batch_status_values()

    report.section("📝 Creating default batch templates...")
    _create_default_templates(batch_templates)
    complete_default_templates()

    report.section("🔗 Adding foreign key relationships...")
    ensure_constraints(job_batches)
    ensure_constraints(saved_prompts)


def _only(table: sa.Table, names: Sequence[str]) -> sa.Table:
    """A detached copy of `table` with just the named columns, for ensure_columns."""
    copy = sa.Table(table.name, sa.MetaData())
    for name in names:
        column = table.columns[name]
        copy.append_column(
            sa.Column(
                column.name,
                column.type,
                nullable=column.nullable,
                server_default=column.server_default.arg if column.server_default else None,  # type: ignore[attr-defined]
            )
        )
    return copy


def _update_batch_status_values() -> None:
    report = current_reporter()
    bind = op.get_bind()
    stamped = bind.execute(
        sa.text(
            "UPDATE job_batches SET updated_at = created_at "
            "WHERE updated_at IS NULL AND created_at IS NOT NULL"
        )
    ).rowcount
    if stamped:
        # The guide's line exactly; the count goes on a line of its own.
        report.change(
            "Set updated_at timestamps for existing batches",
            plan=f"set updated_at from created_at for {stamped} batches",
        )
        if not report.dry_run:
            report.info(f"  {stamped} batches: updated_at set from created_at")
    else:
        report.skip("updated_at timestamps already set")

    jobs = _job_facts_by_batch(bind)
    batches = bind.execute(
        sa.text(
            "SELECT id, status, total_jobs, completed_jobs, failed_jobs, started_at, "
            "completed_at FROM job_batches"
        )
    ).all()
    status_changes: Counter[str] = Counter()
    updates: list[dict[str, Any]] = []
    counted = timed = 0
    for batch in batches:
        facts = jobs.get(batch.id, _NO_JOBS)
        status = batch.status
        if status in LEGACY_BATCH_STATUSES:
            status = _derive_status(facts)
        started_at = batch.started_at or facts["started_at"]
        completed_at = batch.completed_at
        if completed_at is None and status in ("completed", "completed_with_errors", "failed"):
            completed_at = facts["finished_at"]
        new = {
            "status": status,
            "total_jobs": facts["total"],
            "completed_jobs": facts["completed"],
            "failed_jobs": facts["failed"],
            "started_at": _naive(started_at),
            "completed_at": _naive(completed_at),
        }
        old = {key: getattr(batch, key) for key in new}
        old["started_at"], old["completed_at"] = (
            _naive(old["started_at"]),
            _naive(old["completed_at"]),
        )
        if new == old:
            continue
        if status != batch.status:
            status_changes[status] += 1
        if (new["total_jobs"], new["completed_jobs"], new["failed_jobs"]) != (
            batch.total_jobs,
            batch.completed_jobs,
            batch.failed_jobs,
        ):
            counted += 1
        if (new["started_at"], new["completed_at"]) != (old["started_at"], old["completed_at"]):
            timed += 1
        updates.append({"batch_id": batch.id, **new})
    if updates:
        bind.execute(
            sa.text(
                "UPDATE job_batches SET status = :status, total_jobs = :total_jobs, "
                "completed_jobs = :completed_jobs, failed_jobs = :failed_jobs, "
                "started_at = :started_at, completed_at = :completed_at WHERE id = :batch_id"
            ),
            updates,
        )
    if status_changes:
        summary = ", ".join(f"{count} {name}" for name, count in sorted(status_changes.items()))
        total = sum(status_changes.values())
        report.change(
            f"Derived status of {total} batches from their jobs ({summary})",
            plan=f"derive status of {total} batches from their jobs ({summary})",
        )
    if counted:
        report.change(
            f"Counted total, completed and failed jobs for {counted} batches",
            plan=f"count total, completed and failed jobs for {counted} batches",
        )
    if timed:
        report.change(
            f"Set started_at/completed_at from their jobs for {timed} batches",
            plan=f"set started_at/completed_at from their jobs for {timed} batches",
        )
    if not updates:
        report.skip(f"Status values and job counts of {len(batches)} batches already up to date")


_NO_JOBS: dict[str, Any] = {
    "total": 0,
    "pending": 0,
    "processing": 0,
    "completed": 0,
    "completed_clean": 0,
    "failed": 0,
    "started_at": None,
    "finished_at": None,
}


def _job_facts_by_batch(bind: sa.Connection) -> dict[str, dict[str, Any]]:
    """One aggregate pass over grading_jobs: counts by status and the time span."""
    rows = bind.execute(
        sa.text(
            """
            SELECT batch_id,
                   COUNT(*) AS total,
                   SUM(CASE WHEN status IS NULL OR status = 'pending' THEN 1 ELSE 0 END)
                       AS pending,
                   SUM(CASE WHEN status IN ('processing', 'paused') THEN 1 ELSE 0 END)
                       AS processing,
                   SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS completed_clean,
                   SUM(CASE WHEN status IN ('completed', 'completed_with_errors')
                       THEN 1 ELSE 0 END) AS completed,
                   SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed,
                   MIN(CASE WHEN status IS NOT NULL AND status <> 'pending'
                       THEN created_at END) AS started_at,
                   MAX(COALESCE(updated_at, created_at)) AS finished_at
            FROM grading_jobs
            WHERE batch_id IS NOT NULL
            GROUP BY batch_id
            """
        )
    )
    return {row.batch_id: {**row._mapping} for row in rows}


def _derive_status(facts: dict[str, Any]) -> str:
    total = facts["total"]
    if total == 0:
        return "draft"
    if facts["processing"]:
        return "processing"
    if facts["pending"] == total:
        return "pending"
    if facts["pending"]:
        return "processing"  # partly done, the rest still queued
    if facts["completed_clean"] == total:
        return "completed"
    if facts["failed"] == total:
        return "failed"
    return "completed_with_errors"


def _naive(value: Any) -> Any:
    """SQLite hands timestamps back as text from raw SQL; compare them as datetimes."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _create_default_templates(batch_templates: sa.Table) -> None:
    """Each default template once, by name. One deleted or renamed since is made again
    (with a new id if its renamed self still holds the stable one)."""
    report = current_reporter()
    bind = op.get_bind()
    present = set(bind.execute(sa.select(batch_templates.c.name)).scalars())
    ids = set(bind.execute(sa.select(batch_templates.c.id)).scalars())
    now = datetime.now(UTC).replace(tzinfo=None)
    for template in DEFAULT_TEMPLATES:
        if template["name"] in present:
            report.skip(f"Template {template['name']} already exists")
            continue
        template_id = _template_id(template["name"])
        bind.execute(
            batch_templates.insert().values(
                id=template_id if template_id not in ids else str(uuid.uuid4()),
                is_public=True,
                created_at=now,
                updated_at=now,
                created_by="system",
                usage_count=0,
                **template,
            )
        )
        report.change(
            f"Created template: {template['name']}", plan=f"create template {template['name']}"
        )


def _template_id(name: str) -> str:
    # Stable ids, so every installation's default templates share them.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"grading-app:batch-template:{name}"))


def downgrade() -> None:
    # Back to the legacy G6 shape, keeping every row. Rows made by the enhanced
    # application may lack a provider or prompt; the legacy NOT NULL needs a value.
    bind = op.get_bind()
    drop_columns("job_batches", ENHANCED_BATCH_COLUMNS)
    bind.execute(sa.text("UPDATE job_batches SET provider = '' WHERE provider IS NULL"))
    bind.execute(sa.text("UPDATE job_batches SET prompt = '' WHERE prompt IS NULL"))
    _restore_not_null("job_batches", ("provider", "prompt"))
    # G4/G5 databases came with saved_prompts.provider/model; keep their values if any.
    columns = existing_columns("saved_prompts")
    if "provider" in columns:
        in_use = bind.execute(
            sa.text(
                "SELECT COUNT(*) FROM saved_prompts WHERE provider IS NOT NULL OR model IS NOT NULL"
            )
        ).scalar_one()
        if not in_use:
            drop_columns("saved_prompts", ("provider", "model"))
    if table_exists("batch_templates"):
        op.drop_table("batch_templates")


def _restore_not_null(table: str, names: Sequence[str]) -> None:
    existing = existing_columns(table)
    if is_sqlite():
        with op.batch_alter_table(table, recreate="always") as batch:
            for name in names:
                batch.alter_column(name, existing_type=existing[name]["type"], nullable=False)
    else:
        for name in names:
            op.alter_column(table, name, existing_type=existing[name]["type"], nullable=False)
