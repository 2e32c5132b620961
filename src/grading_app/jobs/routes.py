"""Job endpoints: progress, documents and their grades, adding documents, model
comparison, CSV export, control actions."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.types import Message

from grading_app.db import unit_of_work
from grading_app.deps import Page, Paging, ReadSessionDep, SessionDep, app_settings, paging
from grading_app.jobs import legacy, service, uploads
from grading_app.jobs.results import csv_chunks, model_agreement
from grading_app.jobs.schemas import FailedModelOut, GradeOut, JobOut, SubmissionOut, UploadOut
from grading_app.lifecycle import service as lifecycle


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


router = APIRouter(prefix="/api/jobs", tags=["jobs"])


def _job_view(session: Session, job_id: str) -> dict[str, Any]:
    job = lifecycle.get_job(session, job_id=job_id)
    agreement = model_agreement(session, job_id=job_id)
    return {
        **JobOut.of(job).model_dump(mode="json"),
        "agreement": {
            "documents_compared": agreement.documents_compared,
            "mean_spread_points": agreement.mean_spread,
            "max_spread_points": agreement.max_spread,
            "mean_pairwise_correlation": agreement.mean_pairwise_correlation,
        },
    }


@router.get("/{job_id}")
def get_job(job_id: str, session: ReadSessionDep) -> dict[str, Any]:
    return _job_view(session, job_id)


@router.get("/{job_id}/submissions", response_model=Page[SubmissionOut])
def list_submissions(
    job_id: str,
    session: ReadSessionDep,
    page: Annotated[Paging, paging(50)],
    status: Annotated[
        str | None, Query(description="pending, processing, completed or failed")
    ] = None,
) -> Any:
    total, rows = service.list_submissions(
        session, job_id=job_id, limit=page.limit, offset=page.offset, status=status
    )
    items = []
    for row in rows:
        grades = [GradeOut.model_validate(g) for g in row.grades]
        single = grades[0] if len(grades) == 1 else None
        items.append(
            SubmissionOut(
                id=row.id,
                original_filename=row.original_filename,
                file_type=row.file_type,
                file_size=row.file_size,
                status=row.status,
                error=row.error,
                created_at=row.created_at,
                score=single.score if single else None,
                max_score=single.max_score if single else None,
                grades=grades,
                failed_models=[FailedModelOut.model_validate(f) for f in row.failed_models],
            )
        )
    return Page[SubmissionOut](total=total, limit=page.limit, offset=page.offset, items=items)


def add_submissions(
    job_id: str,
    request: Request,
    files: Annotated[
        list[UploadFile] | None,
        File(description="Documents (.docx, .pdf, .txt, .md), or .zip files of them"),
    ] = None,
) -> Any:
    """More documents for a job that has not finished; they are queued at once."""
    settings = app_settings(request)
    sessions = request.app.state.sessionmaker
    outcome = uploads.add_uploads_to_job(
        sessions,
        job_id=job_id,
        files=incoming(files),
        upload_dir=settings.upload_dir,
        max_bytes=settings.max_upload_bytes,
    )
    with unit_of_work(sessions, read_only=True) as session:
        return uploads.describe(session, outcome)


router.add_api_route(
    "/{job_id}/submissions",
    add_submissions,
    methods=["POST"],
    response_model=UploadOut,
    status_code=201,
    route_class_override=UploadRoute,
)


@router.get("/{job_id}/results.csv")
def export_csv(job_id: str, request: Request) -> StreamingResponse:
    sessions = request.app.state.sessionmaker
    with unit_of_work(sessions, read_only=True) as session:
        lifecycle.get_job(session, job_id=job_id)  # a 404 before the stream starts

    def chunks() -> Iterator[str]:
        # A read-only session of its own, open while the body streams: on SQLite it
        # never takes the write lock, so workers keep recording grades meanwhile.
        with unit_of_work(sessions, read_only=True) as session:
            yield from csv_chunks(session, job_id=job_id)

    headers = {"Content-Disposition": f'attachment; filename="job-{job_id}.csv"'}
    return StreamingResponse(chunks(), media_type="text/csv", headers=headers)


@router.post("/{job_id}/pause")
def pause(job_id: str, session: SessionDep) -> dict[str, Any]:
    lifecycle.pause_job(session, job_id=job_id)
    return _job_view(session, job_id)


@router.post("/{job_id}/resume")
def resume(job_id: str, request: Request) -> dict[str, Any]:
    """Resume a paused job. A job an earlier release left pending or processing has its
    ungraded documents queued (their files read again from UPLOAD_DIR where needed)."""
    settings = app_settings(request)
    sessions = request.app.state.sessionmaker
    legacy.resume_job(
        sessions, job_id=job_id, upload_dir=settings.upload_dir, max_bytes=settings.max_upload_bytes
    )
    with unit_of_work(sessions, read_only=True) as session:
        return _job_view(session, job_id)


@router.post("/{job_id}/cancel")
def cancel(job_id: str, session: SessionDep) -> dict[str, Any]:
    lifecycle.cancel_job(session, job_id=job_id)
    return _job_view(session, job_id)


@router.post("/{job_id}/retry-failed")
def retry_failed(job_id: str, session: SessionDep) -> dict[str, Any]:
    requeued = lifecycle.retry_failed_job(session, job_id=job_id)
    return {**_job_view(session, job_id), "requeued": requeued}
