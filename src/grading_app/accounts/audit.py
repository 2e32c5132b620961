"""The audit trail: who created, started, paused, cancelled, deleted, shared and
exported what, and when. Written in the same transaction as the change it records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.orm import Session

from grading_app.accounts.auth import authenticate
from grading_app.accounts.principal import Principal
from grading_app.db import unit_of_work
from grading_app.models import AuditEvent

# Actions on the item a route's path names, recorded once the route has succeeded:
# (method, route path) -> (action, target type, path parameter). Creations, deletions
# of batches, shares and account changes are recorded by their routes, which know more.
PATH_ACTIONS: dict[tuple[str, str], tuple[str, str, str]] = {
    **{
        ("POST", f"/api/batches/{{batch_id}}/{verb}"): (verb.replace("-", "_"), "batch", "batch_id")
        for verb in ("start", "pause", "resume", "cancel", "retry-failed", "archive")
    },
    **{
        ("POST", f"/api/jobs/{{job_id}}/{verb}"): (verb.replace("-", "_"), "job", "job_id")
        for verb in ("pause", "resume", "cancel", "retry-failed")
    },
    ("PATCH", "/api/batches/{batch_id}"): ("update", "batch", "batch_id"),
    ("POST", "/api/batches/{batch_id}/roster"): ("set_roster", "batch", "batch_id"),
    ("POST", "/api/batches/{batch_id}/jobs"): ("add_job", "batch", "batch_id"),
    ("POST", "/api/jobs/{job_id}/submissions"): ("add_documents", "job", "job_id"),
    ("POST", "/api/submissions/{submission_id}/retry"): ("retry", "document", "submission_id"),
    ("DELETE", "/api/submissions/{submission_id}"): ("delete", "document", "submission_id"),
    ("GET", "/api/batches/{batch_id}/export"): ("export", "batch", "batch_id"),
    ("GET", "/api/jobs/{job_id}/export"): ("export", "job", "job_id"),
    ("GET", "/api/jobs/{job_id}/results.csv"): ("export", "job", "job_id"),
    ("DELETE", "/api/templates/{template_id}"): ("delete", "template", "template_id"),
    ("DELETE", "/api/prompts/{prompt_id}"): ("delete", "prompt", "prompt_id"),
    ("DELETE", "/api/marking-schemes/{scheme_id}"): ("delete", "marking_scheme", "scheme_id"),
}


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


def audit_path_action(request: Request) -> Iterator[None]:
    """A route dependency: once the route has succeeded (its transaction committed),
    record the action PATH_ACTIONS names for it. A refused request records nothing."""
    yield
    route = request.scope.get("route")
    entry = PATH_ACTIONS.get((request.method, getattr(route, "path", "")))
    if entry is None:
        return
    action, target_type, parameter = entry
    detail = {"format": request.query_params["format"]} if "format" in request.query_params else {}
    with unit_of_work(request.app.state.sessionmaker) as session:
        record(
            session,
            authenticate(request),
            action,
            target_type,
            request.path_params.get(parameter),
            **detail,
        )
