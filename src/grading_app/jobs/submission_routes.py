"""Document endpoints: read one whole, retry its failed models, delete it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from grading_app.db import unit_of_work
from grading_app.deps import ReadSessionDep, SessionDep, SessionsDep, SettingsDep
from grading_app.documents.storage import remove_stored_files
from grading_app.jobs import submissions
from grading_app.jobs.schemas import SubmissionDeletedOut, SubmissionDetailOut, SubmissionRetryOut
from grading_app.lifecycle import service as lifecycle

router = APIRouter(prefix="/api/submissions", tags=["submissions"])


@router.get("/{submission_id}", response_model=SubmissionDetailOut)
def get_submission(submission_id: str, session: ReadSessionDep) -> Any:
    """The document with its extracted text, every model's grade (score, criteria,
    feedback, the raw answer, tokens and latency) and the models that failed it, why."""
    return submissions.submission_detail(session, submission_id=submission_id)


@router.post("/{submission_id}/retry", response_model=SubmissionRetryOut)
def retry(submission_id: str, session: SessionDep) -> Any:
    """Queue the document again for the models that failed it. Refused (409) when none
    did, or when its job or batch takes no retry (cancelled, a draft, archived)."""
    requeued = lifecycle.retry_failed_submission(session, submission_id=submission_id)
    return {
        "submission": submissions.submission_detail(session, submission_id=submission_id),
        "requeued": requeued,
    }


@router.delete("/{submission_id}", response_model=SubmissionDeletedOut)
def delete(submission_id: str, sessions: SessionsDep, settings: SettingsDep) -> Any:
    """Delete the document, its grades and its stored file; its job's and batch's
    counters follow. Refused (409) while a model is grading it."""
    with unit_of_work(sessions) as session:
        deleted = submissions.delete_submission(session, submission_id=submission_id)
    removed = remove_stored_files(deleted.files, upload_dir=settings.upload_dir)
    return SubmissionDeletedOut(
        id=deleted.id,
        job_id=deleted.job_id,
        original_filename=deleted.original_filename,
        files_removed=removed,
    )
