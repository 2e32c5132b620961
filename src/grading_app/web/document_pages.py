"""A job's documents, and one document: its text beside each model's grade, the
per-criterion scores with their justifications, the feedback, and what failed and why,
with a button to grade it again."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from grading_app.accounts import access, audit
from grading_app.db import unit_of_work
from grading_app.errors import AppError
from grading_app.grading.rubric import name_key
from grading_app.jobs import service as jobs
from grading_app.jobs import submissions
from grading_app.jobs.schemas import JobOut
from grading_app.lifecycle import service as lifecycle
from grading_app.trust.document_view import marked_segments, review_criteria
from grading_app.trust.schemas import ReviewOut
from grading_app.trust.settings import HELD_FOR_REVIEW
from grading_app.web.shell import checked_unit_of_work, form_viewer, not_found, render, viewer

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str) -> Response:
    principal = viewer(request)
    try:
        offset = max(int(request.query_params.get("offset", "0")), 0)
    except ValueError:
        offset = 0
    status = request.query_params.get("status") or None
    with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
        if access.job_level(session, principal, job_id) is None:
            return not_found(request, principal, f"No grading job with id {job_id}")
        job = JobOut.of(lifecycle.get_job(session, job_id=job_id))
        try:
            total, rows = jobs.list_submissions(
                session, job_id=job_id, limit=PAGE_SIZE, offset=offset, status=status
            )
            error = None
        except AppError as exc:
            total, rows, error = 0, [], exc.message
    return render(
        request,
        "job.html",
        principal,
        job=job,
        documents=rows,
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        status=status,
        error=error,
        status_code=400 if error else 200,
    )


@router.get("/documents/{submission_id}", response_class=HTMLResponse)
def document_page(request: Request, submission_id: str) -> Response:
    return show_document(request, submission_id)


def show_document(
    request: Request,
    submission_id: str,
    *,
    notice: str | None = None,
    review_form: dict[str, Any] | None = None,
    review_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The document; after a refused review, with the form as typed and the errors
    beside its fields (`review_form`, `review_errors`, `status_code`)."""
    principal = viewer(request)
    with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
        level = access.submission_level(session, principal, submission_id)
        if level is None:
            return not_found(request, principal, f"No document with id {submission_id}")
        document = submissions.submission_detail(session, submission_id=submission_id)
    criteria = review_criteria(document.grades)
    return render(
        request,
        "document.html",
        principal,
        status_code=status_code,
        document=document,
        can_edit=level >= access.Level.EDIT,
        notice=notice or request.query_params.get("notice"),
        segments=marked_segments(
            document.extracted_text or "", [q for g in document.grades for q in g.evidence]
        ),
        held=(document.error or "").startswith(HELD_FOR_REVIEW),
        criteria=criteria,
        review_form=review_form
        if review_form is not None
        else review_form_of(document.review, criteria),
        review_errors=review_errors or {},
    )


def review_form_of(review: ReviewOut, criteria: list[tuple[str, float | None]]) -> dict[str, Any]:
    """The review form as the document's review has it: an override's scores, else
    empty fields (accepting needs none)."""
    given = {name_key(k): v for k, v in (review.criteria or {}).items()}
    overridden = review.state == "overridden"
    return {
        "score": f"{review.score:g}" if overridden and review.score is not None else "",
        "criteria": [
            f"{given[name_key(name)]:g}" if name_key(name) in given else "" for name, _ in criteria
        ],
        "comment": review.comment or "",
    }


@router.post("/documents/{submission_id}/retry", response_class=HTMLResponse)
def retry_document(
    request: Request, submission_id: str, csrf_token: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    principal = form_viewer(request, csrf_token)
    path = "/api/submissions/{submission_id}/retry"
    try:
        with checked_unit_of_work(
            request, principal, "POST", path, submission_id=submission_id
        ) as session:
            requeued = lifecycle.retry_failed_submission(session, submission_id=submission_id)
            audit.record(session, principal, "retry", "document", submission_id)
        notice = f"Queued again for {requeued} model(s)"
    except AppError as exc:
        if exc.status_code == 404:
            return not_found(request, principal, exc.message)
        notice = exc.message
    return RedirectResponse(f"/documents/{submission_id}?notice={quote(notice)}", status_code=303)
