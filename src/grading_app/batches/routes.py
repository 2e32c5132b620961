"""Batch endpoints: create, read with progress, add jobs with their documents, control."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from grading_app.batches import service
from grading_app.batches.schemas import BatchCreate, BatchOut, RetryOut
from grading_app.db import unit_of_work
from grading_app.deps import (
    Page,
    Paging,
    ReadSessionDep,
    SessionDep,
    app_settings,
    paging,
)
from grading_app.errors import BadRequest
from grading_app.jobs import legacy, uploads
from grading_app.jobs import service as jobs
from grading_app.jobs.routes import UploadRoute, incoming
from grading_app.jobs.schemas import JobCreate, JobOut, UploadOut
from grading_app.lifecycle import service as lifecycle
from grading_app.models import BatchStatus, JobBatch
from grading_app.providers.targets import ModelLabel

router = APIRouter(prefix="/api/batches", tags=["batches"])


@router.get("", response_model=Page[BatchOut])
def list_batches(
    session: ReadSessionDep,
    page: Annotated[Paging, paging(100)],
    status: Annotated[str | None, Query(description="Filter by status")] = None,
) -> Any:
    # The id last, so that pages neither overlap nor skip batches of equal priority and age.
    query = sa.select(JobBatch).order_by(
        JobBatch.priority.desc(), JobBatch.created_at.desc(), JobBatch.id
    )
    if status is not None:
        if status not in {s.value for s in BatchStatus}:
            raise BadRequest(
                f"Unknown status '{status}'; one of: {', '.join(s.value for s in BatchStatus)}"
            )
        query = query.where(JobBatch.status == status)
    total = session.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()))
    items = session.scalars(query.limit(page.limit).offset(page.offset)).all()
    return Page[BatchOut](
        total=total or 0,
        limit=page.limit,
        offset=page.offset,
        items=[BatchOut.model_validate(batch) for batch in items],
    )


@router.post("", response_model=BatchOut, status_code=201)
def create_batch(data: BatchCreate, session: SessionDep) -> Any:
    """A draft batch; add jobs with their documents, then start it."""
    return service.create_draft_batch(session, data=data)


@router.get("/{batch_id}", response_model=BatchOut)
def get_batch(batch_id: str, session: ReadSessionDep) -> Any:
    return lifecycle.get_batch(session, batch_id=batch_id)


@router.get("/{batch_id}/jobs", response_model=Page[JobOut])
def list_jobs(batch_id: str, session: ReadSessionDep, page: Annotated[Paging, paging(50)]) -> Any:
    total, rows = jobs.list_jobs(session, batch_id=batch_id, limit=page.limit, offset=page.offset)
    return Page[JobOut](
        total=total, limit=page.limit, offset=page.offset, items=[JobOut.of(j) for j in rows]
    )


def create_job(
    batch_id: str,
    request: Request,
    files: Annotated[
        list[UploadFile] | None,
        File(description="Documents (.docx, .pdf, .txt, .md), or .zip files of them"),
    ] = None,
    models: Annotated[
        list[ModelLabel] | None,
        Form(description="provider:model, repeated to compare; default the batch's"),
    ] = None,
    name: Annotated[str | None, Form(description="Default the batch's name")] = None,
    prompt: Annotated[
        str | None, Form(description="Grading instructions; default the batch's or template's")
    ] = None,
    temperature: Annotated[float | None, Form()] = None,
    max_tokens: Annotated[int | None, Form()] = None,
    marking_scheme: Annotated[
        UploadFile | None, File(description="A marking scheme document (.docx, .pdf, .txt, .md)")
    ] = None,
    start: Annotated[bool, Form(description="Start the batch now if it is a draft")] = False,
    saved_prompt_id: Annotated[
        str | None, Form(description="A saved prompt as the prompt, instead of `prompt`")
    ] = None,
    saved_marking_scheme_id: Annotated[
        str | None,
        Form(description="A saved marking scheme, instead of a file; default the batch's"),
    ] = None,
) -> Any:
    """A job in the batch with its documents. Each file is checked and read; one that
    cannot be used is kept as a failed submission with the reason, and the others are
    queued for grading (at once if the batch runs or `start` is true)."""
    settings = app_settings(request)
    sessions = request.app.state.sessionmaker
    outcome = uploads.create_job_from_uploads(
        sessions,
        batch_id=batch_id,
        request=JobCreate(
            name=name,
            prompt=prompt,
            models=models or [],
            temperature=temperature,
            max_tokens=max_tokens,
            saved_prompt_id=saved_prompt_id or None,
            saved_marking_scheme_id=saved_marking_scheme_id or None,
        ),
        scheme_file=uploads.IncomingFile(marking_scheme.filename or "", marking_scheme.file)
        if marking_scheme is not None
        else None,
        files=incoming(files),
        upload_dir=settings.upload_dir,
        max_bytes=settings.max_upload_bytes,
        start=start,
    )
    with unit_of_work(sessions, read_only=True) as session:
        return uploads.describe(session, outcome)


router.add_api_route(
    "/{batch_id}/jobs",
    create_job,
    methods=["POST"],
    response_model=UploadOut,
    status_code=201,
    route_class_override=UploadRoute,
)


@router.post("/{batch_id}/pause", response_model=BatchOut)
def pause(batch_id: str, session: SessionDep) -> Any:
    return lifecycle.pause_batch(session, batch_id=batch_id)


@router.post("/{batch_id}/resume", response_model=BatchOut)
def resume(batch_id: str, request: Request) -> Any:
    """Resume a paused batch. Jobs in it that an earlier release left pending or
    processing have their ungraded documents queued (files read again from UPLOAD_DIR)."""
    settings = app_settings(request)
    sessions = request.app.state.sessionmaker
    legacy.resume_batch(
        sessions,
        batch_id=batch_id,
        upload_dir=settings.upload_dir,
        max_bytes=settings.max_upload_bytes,
    )
    with unit_of_work(sessions, read_only=True) as session:
        return BatchOut.model_validate(lifecycle.get_batch(session, batch_id=batch_id))


@router.post("/{batch_id}/cancel", response_model=BatchOut)
def cancel(batch_id: str, session: SessionDep) -> Any:
    return lifecycle.cancel_batch(session, batch_id=batch_id)


@router.post("/{batch_id}/start", response_model=BatchOut)
def start(batch_id: str, session: SessionDep) -> Any:
    return lifecycle.start_batch(session, batch_id=batch_id)


@router.post("/{batch_id}/retry-failed", response_model=RetryOut)
def retry_failed(batch_id: str, session: SessionDep) -> Any:
    requeued = lifecycle.retry_failed_batch(session, batch_id=batch_id)
    return {"batch": lifecycle.get_batch(session, batch_id=batch_id), "requeued": requeued}


@router.post("/{batch_id}/archive", response_model=BatchOut)
def archive(batch_id: str, session: SessionDep) -> Any:
    return lifecycle.archive_batch(session, batch_id=batch_id)
