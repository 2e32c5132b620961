"""The dashboard, the batch list (filters, search, sort, paging, bulk actions) and a
batch's page (progress that updates itself, jobs, actions, downloads)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from grading_app.accounts import access, audit
from grading_app.batches import bulk as bulk_actions
from grading_app.batches import duplicate, queries, removal, service, shares
from grading_app.batches import estimate as estimates
from grading_app.batches.schemas import (
    BatchDuplicate,
    BatchOut,
    BatchQuery,
    BulkRequest,
)
from grading_app.db import unit_of_work
from grading_app.errors import AppError
from grading_app.jobs import legacy
from grading_app.jobs import service as jobs
from grading_app.jobs.schemas import JobOut
from grading_app.lifecycle import service as lifecycle
from grading_app.models import OPEN_BATCH, BatchStatus
from grading_app.reports import dashboard, snapshots
from grading_app.reports.price_book import price_table
from grading_app.reports.scope import batch_scope
from grading_app.trust import review
from grading_app.web.choices import configured_models, library_choices, split_offered
from grading_app.web.cost_fields import DELIVERY_CHOICES, cost_form_of
from grading_app.web.shell import (
    check_access,
    form_viewer,
    no_such_batch,
    not_found,
    render,
    viewer,
)
from grading_app.web.trust_fields import HIDDEN_INSTRUCTION_CHOICES, trust_form_of

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 25
SORTS = (
    ("priority", "Priority"),
    ("created_at", "Created"),
    ("updated_at", "Updated"),
    ("deadline", "Deadline"),
    ("name", "Name"),
    ("status", "Status"),
)
BULK_ACTIONS = (
    ("start", "Start"),
    ("pause", "Pause"),
    ("resume", "Resume"),
    ("cancel", "Cancel"),
    ("retry-failed", "Retry failed documents"),
    ("archive", "Archive"),
    ("add_tags", "Add tags"),
    ("remove_tags", "Remove tags"),
    ("set_priority", "Set priority"),
    ("delete", "Delete"),
)
# Batch page buttons: action -> (label, the API route whose access rule applies).
BATCH_ACTIONS = {
    "start": ("Start batch", "/api/batches/{batch_id}/start"),
    "pause": ("Pause", "/api/batches/{batch_id}/pause"),
    "resume": ("Resume", "/api/batches/{batch_id}/resume"),
    "cancel": ("Cancel", "/api/batches/{batch_id}/cancel"),
    "retry-failed": ("Retry failed documents", "/api/batches/{batch_id}/retry-failed"),
    "archive": ("Archive", "/api/batches/{batch_id}/archive"),
}


def _sessions(request: Request) -> Any:
    return request.app.state.sessionmaker


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request) -> Response:
    principal = viewer(request)
    scope = dashboard.Scope.visible_to(principal)
    with unit_of_work(_sessions(request), read_only=True) as session:
        board = dashboard.dashboard(session, scope=scope)
    return render(request, "dashboard.html", principal, board=board)


def _query_from(request: Request) -> tuple[BatchQuery, dict[str, str]]:
    """The list's query from the page's form fields; bad values are reported per field
    and left out, so the page still lists."""
    params = request.query_params
    raw: dict[str, Any] = {}
    for name in ("q", "sort", "order", "priority_min", "priority_max", "tags_match"):
        if params.get(name):
            raw[name] = params[name]
    if params.getlist("status"):
        raw["status"] = params.getlist("status")
    tags = [t.strip() for t in params.get("tag", "").split(",") if t.strip()]
    if tags:
        raw["tag"] = tags
    errors: dict[str, str] = {}
    while True:
        try:
            return BatchQuery(**raw), errors
        except ValidationError as exc:
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else "q"
                errors[field] = str(error["msg"]).removeprefix("Value error, ")
                raw.pop(field, None)
            if not exc.errors():
                return BatchQuery(), errors


@router.get("/batches", response_class=HTMLResponse)
def batches_page(request: Request, outcome: Any = None) -> Response:
    principal = viewer(request)
    query, errors = _query_from(request)
    try:
        offset = max(int(request.query_params.get("offset", "0")), 0)
    except ValueError:
        offset, errors["offset"] = 0, "give a whole number"
    with unit_of_work(_sessions(request), read_only=True) as session:
        total, rows = queries.list_batches(
            session,
            query=query,
            limit=PAGE_SIZE,
            offset=offset,
            visible=access.batch_visible(principal),
        )
    batches = [BatchOut.model_validate(row) for row in rows]
    paging = {
        "offset": offset,
        "total": total,
        "previous": max(offset - PAGE_SIZE, 0) if offset else None,
        "next": offset + PAGE_SIZE if offset + PAGE_SIZE < total else None,
    }
    return render(
        request,
        "batches.html",
        principal,
        batches=batches,
        query=query,
        form=request.query_params,
        errors=errors,
        paging=paging,
        statuses=[status.value for status in BatchStatus],
        sorts=SORTS,
        bulk_actions=BULK_ACTIONS,
        outcome=outcome,
        notice=request.query_params.get("notice"),
        status_code=200 if not errors else 400,
    )


@router.post("/batches/bulk", response_class=HTMLResponse)
def bulk_page(
    request: Request,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    action: Annotated[str, Form(max_length=20)] = "",
    ids: Annotated[list[str] | None, Form()] = None,
    tags: Annotated[str, Form(max_length=2000)] = "",
    priority: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    fields: dict[str, Any] = {"action": action, "ids": ids or []}
    if action in ("add_tags", "remove_tags"):
        fields["tags"] = [t.strip() for t in tags.split(",") if t.strip()]
    if action == "set_priority":
        fields["priority"] = priority or None
    try:
        request_ = BulkRequest(**fields)
        settings = request.app.state.settings
        storage = bulk_actions.Storage(settings.upload_dir, settings.max_upload_bytes)
        outcome: Any = bulk_actions.run_bulk(
            _sessions(request), request=request_, storage=storage, principal=principal
        )
    except ValidationError as exc:
        outcome = {"error": "; ".join(str(e["msg"]) for e in exc.errors())}
    except AppError as exc:
        outcome = {"error": exc.message}
    return batches_page(request, outcome=outcome)


def edit_form_of(batch: BatchOut, prompt: str | None) -> dict[str, Any]:
    """The edit form's fields as the batch has them."""
    offered, others = split_offered(batch.models_to_compare or [], configured_models())
    return {
        "name": batch.batch_name,
        "description": batch.description or "",
        "priority": str(batch.priority),
        "tags": ", ".join(batch.tags or []),
        "max_retries": str((batch.batch_settings or {}).get("max_retries", "")),
        "prompt": prompt or "",
        "saved_prompt_id": batch.saved_prompt_id or "",
        "saved_marking_scheme_id": batch.saved_marking_scheme_id or "",
        "models": offered,
        "other_models": others,
        **trust_form_of(batch.batch_settings),
        **cost_form_of(batch.batch_settings),
    }


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_page(request: Request, batch_id: str, notice: str | None = None) -> Response:
    return show_batch(request, batch_id, notice)


def show_batch(
    request: Request,
    batch_id: str,
    notice: str | None = None,
    *,
    edit_form: dict[str, Any] | None = None,
    edit_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The batch; after a refused edit, with the form as typed and the errors beside
    its fields (`edit_form`, `edit_errors`, `status_code`)."""
    principal = viewer(request)
    with unit_of_work(_sessions(request), read_only=True) as session:
        level = access.batch_level(session, principal, batch_id)
        if level is None:
            return no_such_batch(request, principal, batch_id)
        row = lifecycle.get_batch(session, batch_id=batch_id)
        batch = BatchOut.model_validate(row)
        prompt, grading_locked = row.prompt, service.grading_state(row)
        spent_usd = row.spent_usd
        can_edit = level >= access.Level.EDIT
        library_items = library_choices(session, principal) if can_edit else {}
        _, rows = jobs.list_jobs(session, batch_id=batch_id, limit=100, offset=0)
        job_list = [JobOut.of(job) for job in rows]
        shared = [
            (user.username, share.permission)
            for share, user in shares.list_shares(session, batch_id=batch_id)
        ]
        release = review.release_state(session, row)
        estimate = (
            estimates.estimate_batch(session, batch_id=batch_id)
            if batch.status in OPEN_BATCH
            else None
        )
    return render(
        request,
        "batch.html",
        principal,
        status_code=status_code,
        batch=batch,
        spent_usd=spent_usd,
        jobs=job_list,
        can_edit=can_edit,
        form=edit_form if edit_form is not None else edit_form_of(batch, prompt),
        errors=edit_errors or {},
        grading_locked=grading_locked,
        configured=configured_models(),
        **library_items,
        can_own=level >= access.Level.OWN,
        # Only the actions the batch's status allows (the service checks again).
        actions={
            key: value
            for key, value in BATCH_ACTIONS.items()
            if batch.status in lifecycle.BATCH_ACTIONS["retry" if key == "retry-failed" else key]
            and (key != "retry-failed" or batch.failed_items)
        },
        shared=shared,
        release=release,
        release_open=batch.status in OPEN_BATCH,
        hidden_instruction_choices=HIDDEN_INSTRUCTION_CHOICES,
        delivery_choices=DELIVERY_CHOICES,
        estimate=estimate,
        notice=notice or request.query_params.get("notice"),
        live=batch.status in ("pending", "processing"),
    )


@router.post("/batches/{batch_id}/do/{action}", response_class=HTMLResponse)
def batch_action(
    request: Request,
    batch_id: str,
    action: str,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    if action not in BATCH_ACTIONS:
        return not_found(request, principal, "No such action")
    label, api_path = BATCH_ACTIONS[action]
    sessions = _sessions(request)
    try:
        check_access(request, principal, "POST", api_path, batch_id=batch_id)
        if action == "resume":
            settings = request.app.state.settings
            legacy.resume_batch(
                sessions,
                batch_id=batch_id,
                upload_dir=settings.upload_dir,
                max_bytes=settings.max_upload_bytes,
            )
            with unit_of_work(sessions) as session:
                audit.record(session, principal, "resume", "batch", batch_id)
        else:
            steps = {
                "start": lifecycle.start_batch,
                "pause": lifecycle.pause_batch,
                "cancel": lifecycle.cancel_batch,
                "retry-failed": lifecycle.retry_failed_batch,
                "archive": lifecycle.archive_batch,
            }
            with unit_of_work(sessions) as session:
                steps[action](session, batch_id=batch_id)
                audit.record(session, principal, action.replace("-", "_"), "batch", batch_id)
    except AppError as exc:
        if exc.status_code == 404:
            return not_found(request, principal, exc.message)
        return batch_page(request, batch_id, notice=exc.message)
    notice = quote(f"{label}: done")
    return RedirectResponse(f"/batches/{batch_id}?notice={notice}", status_code=303)


# --- analytics, sharing, duplicate, delete ----------------------------------------------


@router.get("/batches/{batch_id}/analytics", response_class=HTMLResponse)
def analytics_page(request: Request, batch_id: str) -> Response:
    principal = viewer(request)
    with unit_of_work(_sessions(request), read_only=True) as session:
        if access.batch_level(session, principal, batch_id) is None:
            return no_such_batch(request, principal, batch_id)
        scope = batch_scope(session, batch_id=batch_id)
        figures = snapshots.scope_analytics(session, scope, prices=price_table(session))
    return render(request, "analytics.html", principal, figures=figures, batch_id=batch_id)


@router.post("/batches/{batch_id}/shares", response_class=HTMLResponse)
def share_page(
    request: Request,
    batch_id: str,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    user: Annotated[str, Form(max_length=64)] = "",
    permission: Annotated[str, Form(max_length=10)] = "view",
    revoke: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    path = "/api/batches/{batch_id}/shares"
    try:
        with unit_of_work(_sessions(request)) as session:
            if revoke:
                access.check_path_access(
                    session, principal, "DELETE", path + "/{username}", {"batch_id": batch_id}
                )
                shares.unshare_batch(session, batch_id=batch_id, username=revoke)
                audit.record(session, principal, "unshare", "batch", batch_id, user=revoke)
                notice = f"No longer shared with {revoke}"
            else:
                access.check_path_access(session, principal, "POST", path, {"batch_id": batch_id})
                given, person = shares.share_batch(
                    session,
                    batch_id=batch_id,
                    username=user,
                    permission="edit" if permission == "edit" else "view",
                    shared_by=principal.user_id,
                )
                audit.record(
                    session,
                    principal,
                    "share",
                    "batch",
                    batch_id,
                    user=person.username,
                    permission=given.permission,
                )
                notice = f"Shared with {person.username} ({given.permission})"
    except AppError as exc:
        if exc.status_code == 404 and "batch" in exc.message:
            return not_found(request, principal, exc.message)
        return batch_page(request, batch_id, notice=exc.message)
    return RedirectResponse(f"/batches/{batch_id}?notice={quote(notice)}", status_code=303)


@router.post("/batches/{batch_id}/duplicate", response_class=HTMLResponse)
def duplicate_page(
    request: Request,
    batch_id: str,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    include_documents: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    try:
        check_access(
            request, principal, "POST", "/api/batches/{batch_id}/duplicate", batch_id=batch_id
        )
        copy = duplicate.duplicate_batch(
            _sessions(request),
            batch_id=batch_id,
            request=BatchDuplicate(include_documents=bool(include_documents)),
            principal=principal,
            upload_dir=request.app.state.settings.upload_dir,
        )
    except AppError as exc:
        return batch_page(request, batch_id, notice=exc.message)
    notice = quote("Duplicated: this is the copy, a draft")
    return RedirectResponse(f"/batches/{copy.id}?notice={notice}", status_code=303)


@router.post("/batches/{batch_id}/delete", response_class=HTMLResponse)
def delete_page(
    request: Request,
    batch_id: str,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    confirm: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    try:
        check_access(request, principal, "DELETE", "/api/batches/{batch_id}", batch_id=batch_id)
        deleted = removal.delete_batch_and_files(
            _sessions(request),
            batch_id=batch_id,
            principal=principal,
            upload_dir=request.app.state.settings.upload_dir,
            confirm_name=confirm,
        )
    except AppError as exc:
        return batch_page(request, batch_id, notice=exc.message)
    notice = quote(f"Deleted {deleted.batch_name} ({deleted.submissions} documents)")
    return RedirectResponse(f"/batches?notice={notice}", status_code=303)
