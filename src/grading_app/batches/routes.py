"""Batch endpoints: read with progress, and the control actions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from grading_app.batches import service
from grading_app.batches.schemas import BatchOut, RetryOut
from grading_app.db import unit_of_work
from grading_app.errors import BadRequest
from grading_app.models import BatchStatus, JobBatch

router = APIRouter(prefix="/api/batches", tags=["batches"])


def get_session(request: Request) -> Iterator[Session]:
    with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


@router.get("", response_model=list[BatchOut])
def list_batches(
    session: SessionDep,
    status: Annotated[str | None, Query(description="Filter by status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    query = sa.select(JobBatch).order_by(JobBatch.priority.desc(), JobBatch.created_at.desc())
    if status is not None:
        if status not in {s.value for s in BatchStatus}:
            raise BadRequest(
                f"Unknown status '{status}'; one of: {', '.join(s.value for s in BatchStatus)}"
            )
        query = query.where(JobBatch.status == status)
    return session.scalars(query.limit(limit)).all()


@router.get("/{batch_id}", response_model=BatchOut)
def get_batch(batch_id: str, session: SessionDep) -> Any:
    return service.get_batch(session, batch_id=batch_id)


@router.post("/{batch_id}/pause", response_model=BatchOut)
def pause(batch_id: str, session: SessionDep) -> Any:
    return service.pause_batch(session, batch_id=batch_id)


@router.post("/{batch_id}/resume", response_model=BatchOut)
def resume(batch_id: str, session: SessionDep) -> Any:
    return service.resume_batch(session, batch_id=batch_id)


@router.post("/{batch_id}/cancel", response_model=BatchOut)
def cancel(batch_id: str, session: SessionDep) -> Any:
    return service.cancel_batch(session, batch_id=batch_id)


@router.post("/{batch_id}/start", response_model=BatchOut)
def start(batch_id: str, session: SessionDep) -> Any:
    return service.start_batch(session, batch_id=batch_id)


@router.post("/{batch_id}/retry-failed", response_model=RetryOut)
def retry_failed(batch_id: str, session: SessionDep) -> Any:
    requeued = service.retry_failed_batch(session, batch_id=batch_id)
    return {"batch": service.get_batch(session, batch_id=batch_id), "requeued": requeued}
