"""Job endpoints: progress, documents and their grades, adding documents, control
actions. (Analytics and exports are in reports/routes.py.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile
from sqlalchemy.orm import Session

from grading_app.db import unit_of_work
from grading_app.deps import (
    Page,
    Paging,
    ReadSessionDep,
    SessionDep,
    UploadRoute,
    app_settings,
    paging,
)
from grading_app.jobs import legacy, service, uploads
from grading_app.jobs.schemas import (
    FailedModelOut,
    GradeOut,
    JobDetailOut,
    JobRetryOut,
    SubmissionOut,
    UploadOut,
)
from grading_app.lifecycle import service as lifecycle


def incoming(files: list[UploadFile] | None) -> list[uploads.IncomingFile]:
    return [uploads.IncomingFile(f.filename or "", f.file) for f in files or []]


router = APIRouter(prefix="/api/jobs", tags=["jobs"])


def _job_view(session: Session, job_id: str) -> JobDetailOut:
    return JobDetailOut.of(lifecycle.get_job(session, job_id=job_id))


@router.get("/{job_id}", response_model=JobDetailOut)
def get_job(job_id: str, session: ReadSessionDep) -> Any:
    """The job, its settings and progress, from stored counters: O(1) whatever its size."""
    return _job_view(session, job_id)


@router.get("/{job_id}/submissions", response_model=Page[SubmissionOut])
def list_submissions(
    job_id: str,
    session: ReadSessionDep,
    page: Annotated[Paging, paging(50)],
    status: Annotated[
        str | None,
        Query(
            description="pending, processing, completed or failed",
            json_schema_extra={"enum": list(service.SUBMISSION_STATUSES)},
        ),
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
    return Page[SubmissionOut].of(page, total, items)


def add_submissions(
    job_id: str,
    request: Request,
    files: Annotated[
        list[UploadFile],
        File(
            min_length=1,
            description="Documents (.docx, .pdf, .txt, .md), or .zip files of them",
        ),
    ],
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


@router.post("/{job_id}/pause", response_model=JobDetailOut)
def pause(job_id: str, session: SessionDep) -> Any:
    lifecycle.pause_job(session, job_id=job_id)
    return _job_view(session, job_id)


@router.post("/{job_id}/resume", response_model=JobDetailOut)
def resume(job_id: str, request: Request) -> Any:
    """Resume a paused job. A job an earlier release left pending or processing has its
    ungraded documents queued (their files read again from UPLOAD_DIR where needed)."""
    settings = app_settings(request)
    sessions = request.app.state.sessionmaker
    legacy.resume_job(
        sessions, job_id=job_id, upload_dir=settings.upload_dir, max_bytes=settings.max_upload_bytes
    )
    with unit_of_work(sessions, read_only=True) as session:
        return _job_view(session, job_id)


@router.post("/{job_id}/cancel", response_model=JobDetailOut)
def cancel(job_id: str, session: SessionDep) -> Any:
    lifecycle.cancel_job(session, job_id=job_id)
    return _job_view(session, job_id)


@router.post("/{job_id}/retry-failed", response_model=JobRetryOut)
def retry_failed(job_id: str, session: SessionDep) -> Any:
    requeued = lifecycle.retry_failed_job(session, job_id=job_id)
    job = lifecycle.get_job(session, job_id=job_id)
    return JobRetryOut.model_validate({**JobDetailOut.of(job).model_dump(), "requeued": requeued})
