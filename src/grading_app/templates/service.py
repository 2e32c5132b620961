"""Batch templates: find one, and read the instructions and defaults it gives a batch."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.errors import BadRequest, NotFound
from grading_app.models import BatchTemplate, utcnow


def find_template(
    session: Session, *, template_id: str | None = None, name: str | None = None
) -> BatchTemplate:
    if template_id:
        template = session.get(BatchTemplate, template_id)
        if template is None:
            raise NotFound(f"No batch template with id {template_id}")
        return template
    wanted = (name or "").strip()
    template = session.execute(
        sa.select(BatchTemplate)
        .where(sa.func.lower(BatchTemplate.name) == wanted.lower())
        .order_by(BatchTemplate.created_at)
        .limit(1)
    ).scalar_one_or_none()
    if template is None:
        names = session.execute(sa.select(BatchTemplate.name).order_by(BatchTemplate.name))
        raise BadRequest(
            f"No template named '{wanted}'. Templates: {', '.join(names.scalars()) or 'none'}"
        )
    return template


def template_instructions(template: BatchTemplate) -> tuple[str, str | None]:
    """A template's prompt ("" if it has none: its description says what the template is
    for, and is never a grading prompt), and its criteria written out as a marking
    scheme."""
    structure = mapping(template.job_structure)
    prompt = str(structure.get("prompt") or "")
    criteria = [c for c in structure.get("criteria") or [] if isinstance(c, dict)]
    scheme = None
    if criteria:
        scheme = "\n".join(f"- {c.get('name')}: up to {c.get('max_score')} marks" for c in criteria)
    return prompt, scheme


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def record_use(session: Session, *, template_id: str) -> None:
    """One more batch made from the template (in SQL: concurrent uses all count)."""
    session.execute(
        sa.update(BatchTemplate)
        .where(BatchTemplate.id == template_id)
        .values(usage_count=BatchTemplate.usage_count + 1, last_used=utcnow())
    )
