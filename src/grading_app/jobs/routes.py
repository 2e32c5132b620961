"""Job endpoints: progress, model comparison, CSV export, control actions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from grading_app.batches import service as control
from grading_app.batches.routes import SessionDep
from grading_app.db import unit_of_work
from grading_app.jobs.results import csv_chunks, model_agreement
from grading_app.jobs.service import job_targets

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


def _job_view(session: Any, job_id: str) -> dict[str, Any]:
    job = control.get_job(session, job_id=job_id)
    agreement = model_agreement(session, job_id=job_id)
    return {
        "id": job.id,
        "job_name": job.job_name,
        "status": job.status,
        "batch_id": job.batch_id,
        "models": [t.label for t in job_targets(job)],
        "total_submissions": job.total_submissions,
        "processed_submissions": job.processed_submissions,
        "failed_submissions": job.failed_submissions,
        "total_items": job.total_items,
        "completed_items": job.completed_items,
        "failed_items": job.failed_items,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
        "estimated_completion": job.estimated_completion,
        "agreement": {
            "documents_compared": agreement.documents_compared,
            "mean_spread_points": agreement.mean_spread,
            "max_spread_points": agreement.max_spread,
            "mean_pairwise_correlation": agreement.mean_pairwise_correlation,
        },
    }


@router.get("/{job_id}")
def get_job(job_id: str, session: SessionDep) -> dict[str, Any]:
    return _job_view(session, job_id)


@router.get("/{job_id}/results.csv")
def export_csv(job_id: str, request: Request) -> StreamingResponse:
    sessions = request.app.state.sessionmaker
    with unit_of_work(sessions) as session:
        control.get_job(session, job_id=job_id)  # a 404 before the stream starts

    def chunks() -> Iterator[str]:
        # A session of its own, open while the body streams.
        with unit_of_work(sessions) as session:
            yield from csv_chunks(session, job_id=job_id)

    headers = {"Content-Disposition": f'attachment; filename="job-{job_id}.csv"'}
    return StreamingResponse(chunks(), media_type="text/csv", headers=headers)


@router.post("/{job_id}/pause")
def pause(job_id: str, session: SessionDep) -> dict[str, Any]:
    control.pause_job(session, job_id=job_id)
    return _job_view(session, job_id)


@router.post("/{job_id}/resume")
def resume(job_id: str, session: SessionDep) -> dict[str, Any]:
    control.resume_job(session, job_id=job_id)
    return _job_view(session, job_id)


@router.post("/{job_id}/cancel")
def cancel(job_id: str, session: SessionDep) -> dict[str, Any]:
    control.cancel_job(session, job_id=job_id)
    return _job_view(session, job_id)


@router.post("/{job_id}/retry-failed")
def retry_failed(job_id: str, session: SessionDep) -> dict[str, Any]:
    requeued = control.retry_failed_job(session, job_id=job_id)
    return {**_job_view(session, job_id), "requeued": requeued}
