"""The audit trail: who created, started, paused, cancelled, deleted, shared and
exported what, and when. Written in the same transaction as the change it records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.accounts.principal import Principal
from grading_app.models import AuditEvent


def record(
    session: Session,
    actor: Principal,
    action: str,
    target_type: str,
    target_id: str | None,
    **detail: Any,
) -> None:
    session.add(
        AuditEvent(
            actor_id=actor.user_id,
            actor=actor.username,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=detail or None,
        )
    )


def list_events(
    session: Session,
    *,
    limit: int,
    offset: int,
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[int, list[AuditEvent]]:
    conditions = []
    if actor:
        conditions.append(AuditEvent.actor == actor.strip().lower())
    if action:
        conditions.append(AuditEvent.action == action)
    if target_type:
        conditions.append(AuditEvent.target_type == target_type)
    if target_id:
        conditions.append(AuditEvent.target_id == target_id)
    if since:
        conditions.append(AuditEvent.at >= since)
    if until:
        conditions.append(AuditEvent.at < until)
    total = session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(*conditions))
    rows = session.scalars(
        sa.select(AuditEvent)
        .where(*conditions)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return total or 0, list(rows)
