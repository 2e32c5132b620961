"""A person's review from the pages: accepting or overriding a document's grade (the
form on the document's page), a batch's review queue, and releasing its grades. The
review service checks everything; its refusals are shown beside the field they are
about."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from grading_app.accounts import access
from grading_app.db import unit_of_work
from grading_app.errors import AppError
from grading_app.grading.rubric import name_key
from grading_app.lifecycle import service as lifecycle
from grading_app.trust import review
from grading_app.trust.schemas import ReleaseIn, ReviewIn
from grading_app.web.batch_pages import show_batch
from grading_app.web.document_pages import show_document
from grading_app.web.shell import (
    checked_unit_of_work,
    form_viewer,
    no_such_batch,
    not_found,
    render,
    viewer,
)

router = APIRouter(include_in_schema=False)
QUEUE_PAGE_SIZE = 25
REVIEW_ACTIONS = {"accept": "Grade accepted", "override": "Grade overridden"}


def _criterion_field(names: list[str], name: str) -> str:
    """The form field of the criterion `name` (as the grade or the form spells it)."""
    keys = [name_key(n) for n in names]
    return f"criterion-{keys.index(name_key(name))}" if name_key(name) in keys else "form"


def _refusal_field(message: str, names: list[str]) -> str:
    """The field a refusal of the review service is about, from the words it uses:
    the overall score, a named criterion, or the form as a whole."""
    if message.startswith("score"):
        return "score"
    named = re.search(r"criterion '([^']*)'", message)
    return _criterion_field(names, named.group(1)) if named else "form"


def _review_body(
    action: str,
    score: str,
    names: list[str],
    scores: list[str],
    comment: str,
    errors: dict[str, str],
) -> ReviewIn | None:
    fields: dict[str, Any] = {"action": action, "comment": comment.strip() or None}
    if action == "override":
        if score.strip():
            fields["score"] = _number(score, "score", errors)
        criteria = {}
        for index, (name, typed) in enumerate(zip(names, scores, strict=False)):
            if typed.strip():
                criteria[name] = _number(typed, f"criterion-{index}", errors)
        fields["criteria"] = criteria or None
    if errors:
        return None
    try:
        return ReviewIn(**fields)
    except ValidationError as exc:
        for error in exc.errors():
            location = [str(part) for part in error["loc"]]
            if location[:1] == ["criteria"] and len(location) > 1:
                field = _criterion_field(names, location[1])
            else:
                field = location[0] if location and location[0] in ("score", "comment") else "form"
            errors.setdefault(field, str(error["msg"]).removeprefix("Value error, "))
        return None


def _number(typed: str, field: str, errors: dict[str, str]) -> float | None:
    try:
        return float(typed.strip())
    except ValueError:
        errors[field] = f"'{typed.strip()}' is not a number"
        return None


@router.post("/documents/{submission_id}/review", response_class=HTMLResponse)
def review_document(
    request: Request,
    submission_id: str,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    action: Annotated[str, Form(max_length=10)] = "",
    score: Annotated[str, Form(max_length=20)] = "",
    criterion_name: Annotated[list[str] | None, Form()] = None,
    criterion_score: Annotated[list[str] | None, Form()] = None,
    comment: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    names = [n[:200] for n in criterion_name or []]
    scores = [s[:20] for s in criterion_score or []]
    form = {"score": score, "criteria": scores, "comment": comment}
    errors: dict[str, str] = {}
    if action not in REVIEW_ACTIONS:
        errors["form"] = "Choose Accept grade or Override"
    body = _review_body(action, score, names, scores, comment, errors) if not errors else None
    if body is None:
        return show_document(
            request, submission_id, review_form=form, review_errors=errors, status_code=400
        )
    try:
        with checked_unit_of_work(
            request,
            principal,
            "POST",
            "/api/submissions/{submission_id}/review",
            submission_id=submission_id,
        ) as session:
            review.review_document(session, principal, submission_id, body)
    except AppError as exc:
        if exc.status_code == 404:
            return not_found(request, principal, exc.message)
        if exc.status_code == 403:  # no form to show it beside: a viewer's page
            return show_document(request, submission_id, notice=exc.message, status_code=403)
        errors[_refusal_field(exc.message, names)] = exc.message
        return show_document(
            request,
            submission_id,
            review_form=form,
            review_errors=errors,
            status_code=exc.status_code,
        )
    notice = quote(REVIEW_ACTIONS[action])
    return RedirectResponse(
        f"/documents/{submission_id}?notice={notice}#review-title", status_code=303
    )


@router.get("/batches/{batch_id}/review", response_class=HTMLResponse)
def queue_page(request: Request, batch_id: str) -> Response:
    principal = viewer(request)
    try:
        offset = max(int(request.query_params.get("offset", "0")), 0)
    except ValueError:
        offset = 0
    with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
        if access.batch_level(session, principal, batch_id) is None:
            return no_such_batch(request, principal, batch_id)
        batch = lifecycle.get_batch(session, batch_id=batch_id)
        queue = review.review_queue(
            session, batch_id=batch_id, limit=QUEUE_PAGE_SIZE, offset=offset
        )
        name = batch.batch_name
    return render(
        request,
        "review_queue.html",
        principal,
        batch_id=batch_id,
        batch_name=name,
        queue=queue,
        previous=max(offset - QUEUE_PAGE_SIZE, 0) if offset else None,
        next=offset + QUEUE_PAGE_SIZE if offset + QUEUE_PAGE_SIZE < queue.total else None,
    )


@router.post("/batches/{batch_id}/release", response_class=HTMLResponse)
def release_page(
    request: Request,
    batch_id: str,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    release_unreviewed: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    try:
        with checked_unit_of_work(
            request, principal, "POST", "/api/batches/{batch_id}/release", batch_id=batch_id
        ) as session:
            released = review.release_grades(
                session, principal, batch_id, ReleaseIn(release_unreviewed=bool(release_unreviewed))
            )
    except AppError as exc:
        if exc.status_code == 404:
            return not_found(request, principal, exc.message)
        return show_batch(request, batch_id, notice=exc.message, status_code=exc.status_code)
    notice = f"Grades released: {released.documents} document(s)"
    if released.released_unreviewed:
        notice += f", {released.released_unreviewed} of them unreviewed"
    return RedirectResponse(f"/batches/{batch_id}?notice={quote(notice)}", status_code=303)
