"""Completing default templates that an earlier script made without their substance.

The migration guide's own script, run by some installations before this tool existed,
created default templates under the default names with no prompt and no criteria in
`job_structure` (some without a description either). Kept as they are, a batch made
from one has no grading prompt. Revision 0002 (first upgrade and every re-run at head)
and revision 0005 (databases an earlier release of this tool upgraded) fill in what is
missing from the real defaults, keeping whatever the row already holds.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from grading_app.migrations.default_templates import DEFAULT_TEMPLATES
from grading_app.migrations.report import current_reporter

# Batches that may still take new jobs, whose prompt a new job would copy.
_OPEN_BATCH = ("draft", "pending", "processing", "paused")


def _tables() -> tuple[sa.TableClause, sa.TableClause]:
    templates = sa.table(
        "batch_templates",
        sa.column("id", sa.String()),
        sa.column("name", sa.String()),
        sa.column("description", sa.Text()),
        sa.column("default_settings", sa.JSON()),
        sa.column("job_structure", sa.JSON()),
        sa.column("processing_rules", sa.JSON()),
    )
    batches = sa.table(
        "job_batches",
        sa.column("template_id", sa.String()),
        sa.column("prompt", sa.Text()),
        sa.column("status", sa.String()),
    )
    return templates, batches


def complete_default_templates() -> None:
    """Fill in what default-named templates lack; says nothing when none lacks anything."""
    report = current_reporter()
    bind = op.get_bind()
    templates, batches = _tables()
    defaults = {template["name"]: template for template in DEFAULT_TEMPLATES}
    rows = bind.execute(sa.select(templates).where(templates.c.name.in_(list(defaults)))).all()
    for row in rows:
        values, filled = _completed(row, defaults[row.name])
        if not values:
            continue
        bind.execute(templates.update().where(templates.c.id == row.id).values(**values))
        report.change(
            f"Completed template: {row.name} ({', '.join(filled)})",
            plan=f"complete template {row.name} ({', '.join(filled)})",
        )
        if "prompt" in filled and row.description:
            # Open batches made from it took its description for a prompt.
            bind.execute(
                batches.update()
                .where(
                    batches.c.template_id == row.id,
                    batches.c.prompt == row.description,
                    batches.c.status.in_(_OPEN_BATCH),
                )
                .values(prompt=values["job_structure"]["prompt"])
            )


def _completed(row: Any, default: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The columns to write, and the names of what was missing."""
    values: dict[str, Any] = {}
    filled: list[str] = []
    structure = dict(row.job_structure) if isinstance(row.job_structure, dict) else {}
    for key, value in default["job_structure"].items():
        if not structure.get(key):
            structure[key] = value
            filled.append(key)
    if filled:
        values["job_structure"] = structure
    if not (row.description or "").strip():
        values["description"] = default["description"]
        filled.append("description")
    if not isinstance(row.processing_rules, dict) or not row.processing_rules:
        values["processing_rules"] = default["processing_rules"]
        filled.append("processing rules")
    settings = row.default_settings if isinstance(row.default_settings, dict) else {}
    merged = {**default["default_settings"], **settings}
    if merged != settings:
        values["default_settings"] = merged
        filled.append("default settings")
    return values, filled
