"""Shared steps for the batch tests: batches made over HTTP, as a user makes them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import WorkItem, utcnow
from grading_app.processing import service as processing
from grading_app.processing.claim import ClaimedItem, claim

ESSAYS = [
    ("files", ("alice.txt", b"Alice argues that engines changed towns.", "text/plain")),
    ("files", ("bob.txt", b"Bob argues that railways changed trade.", "text/plain")),
]


def new_batch(client, **fields: Any) -> dict[str, Any]:
    body = {"name": "Mock exams", "models": ["openai:m1"], "prompt": "Grade it.", **fields}
    response = client.post("/api/batches", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def add_job(client, batch_id: str, files=ESSAYS, **form: Any) -> dict[str, Any]:
    response = client.post(f"/api/batches/{batch_id}/jobs", files=files, data=form)
    assert response.status_code == 201, response.text
    return response.json()


def batch_with_job(client, **fields: Any) -> tuple[str, str]:
    """A draft batch with one job of two text documents; (batch id, job id)."""
    batch = new_batch(client, **fields)
    return batch["id"], add_job(client, batch["id"])["job"]["id"]


def claim_items(sessions, *, limit: int = 100, owner: str = "w1") -> list[ClaimedItem]:
    with unit_of_work(sessions) as session:
        return claim(session, owner=owner, limit=limit, lease_seconds=300, now=utcnow())


def fail_items(sessions, items: list[ClaimedItem], *, owner: str = "w1") -> None:
    for item in items:
        with unit_of_work(sessions) as session:
            processing.fail_item(session, item_id=item.id, owner=owner, error="model not found")


def item_models(sessions, **where: Any) -> list[tuple[str, str, str]]:
    """(provider, model, state) of the work items `where` selects, sorted."""
    with unit_of_work(sessions, read_only=True) as session:
        statement = sa.select(WorkItem.provider, WorkItem.model, WorkItem.state).filter_by(**where)
        return sorted(tuple(row) for row in session.execute(statement))
