"""Batch endpoints: create, read with progress, add jobs with their documents, control."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.types import Message

from grading_app.batches import service
from grading_app.batches.schemas import BatchCreate, BatchOut, RetryOut
from grading_app.config import Settings, get_settings
from grading_app.db import unit_of_work
from grading_app.errors import BadRequest
from grading_app.jobs import legacy, uploads
from grading_app.jobs import service as jobs
from grading_app.jobs.schemas import JobCreate, JobOut, JobPage, ModelLabel, UploadOut
from grading_app.models import BatchStatus, JobBatch

router = APIRouter(prefix="/api/batches", tags=["batches"])


def get_session(request: Request) -> Iterator[Session]:
    with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    # Deferred on SQLite: a GET never queues for, or holds, the write lock.
    with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]


def app_settings(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


class UploadRoute(APIRoute):
    """Refuses a request body bigger than uploads may be with a 413 and a message saying
    so: at once from Content-Length, else as soon as the bytes received pass the limit,
    before the form is parsed and its files spooled to disk."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            max_upload = app_settings(request).max_upload_bytes
            limit = uploads.request_limit_bytes(max_upload)
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise uploads.request_too_large(int(declared), max_upload_bytes=max_upload)
            receive, received = request.receive, 0

            async def counted() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        # Raised inside FastAPI's form parsing, which passes an
                        # HTTPException through (and turns anything else into a 400).
                        error = uploads.request_too_large(None, max_upload_bytes=max_upload)
                        raise HTTPException(413, detail=error.message)
                return message

            return await handler(Request(request.scope, counted))

        return limited


def incoming(files: list[UploadFile] | None) -> list[uploads.IncomingFile]:
    return [uploads.IncomingFile(f.filename or "", f.file) for f in files or []]


@router.get("", response_model=list[BatchOut])
def list_batches(
    session: ReadSessionDep,
    status: Annotated[str | None, Query(description="Filter by status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
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
    return session.scalars(query.limit(limit).offset(offset)).all()


@router.post("", response_model=BatchOut, status_code=201)
def create_batch(data: BatchCreate, session: SessionDep) -> Any:
    """A draft batch; add jobs with their documents, then start it."""
    return jobs.create_draft_batch(session, data=data)


@router.get("/{batch_id}", response_model=BatchOut)
def get_batch(batch_id: str, session: ReadSessionDep) -> Any:
    return service.get_batch(session, batch_id=batch_id)


@router.get("/{batch_id}/jobs", response_model=JobPage)
def list_jobs(
    batch_id: str,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    total, page = jobs.list_jobs(session, batch_id=batch_id, limit=limit, offset=offset)
    return JobPage(total=total, limit=limit, offset=offset, items=[JobOut.of(j) for j in page])


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
    return service.pause_batch(session, batch_id=batch_id)


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
        return BatchOut.model_validate(service.get_batch(session, batch_id=batch_id))


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


@router.post("/{batch_id}/archive", response_model=BatchOut)
def archive(batch_id: str, session: SessionDep) -> Any:
    return service.archive_batch(session, batch_id=batch_id)
