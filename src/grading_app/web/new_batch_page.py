"""New batch: from a template or blank; its details, prompt and marking scheme (from the
library, written, or uploaded), the models (only configured providers), the documents
(many files or a .zip, each file's outcome shown), and start now or keep as a draft.

The form is checked before any file is read, so a mistake costs no upload; a file that
cannot be used becomes a failed document with its reason, and the others are graded.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from grading_app.accounts import access, audit
from grading_app.batches import estimate as estimates
from grading_app.batches import service as batches
from grading_app.batches.schemas import BatchCreate, BatchOut
from grading_app.db import unit_of_work
from grading_app.deps import UploadRoute
from grading_app.errors import AppError
from grading_app.jobs import uploads
from grading_app.jobs.routes import incoming
from grading_app.jobs.schemas import JobCreate
from grading_app.lifecycle import service as lifecycle
from grading_app.templates import service as templates
from grading_app.trust.settings import TrustSettings
from grading_app.web.choices import (
    CHOICES,
    chosen_models,
    configured_models,
    field_errors,
    library_choices,
)
from grading_app.web.cost_fields import (
    COST_FIELDS,
    DELIVERY_CHOICES,
    cost_changes,
    cost_form_of,
    field_of_refusal,
)
from grading_app.web.draft_estimate_page import ESTIMATE, draft_of, estimate_page
from grading_app.web.settings_fieldsets import SettingsFieldsets
from grading_app.web.shell import form_viewer, render, viewer
from grading_app.web.trust_fields import (
    HIDDEN_INSTRUCTION_CHOICES,
    TRUST_FIELDS,
    trust_changes,
    trust_form_of,
)

router = APIRouter(include_in_schema=False)


def _choices(request: Request, principal: Any) -> dict[str, Any]:
    with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
        _, template_rows = templates.list_templates(
            session, limit=CHOICES, offset=0, visible=access.template_visible(principal)
        )
        return {
            "templates": [(t.id, t.name) for t in template_rows],
            **library_choices(session, principal),
            "configured": configured_models(),
            "hidden_instruction_choices": HIDDEN_INSTRUCTION_CHOICES,
            "delivery_choices": DELIVERY_CHOICES,
        }


def _form_page(
    request: Request,
    principal: Any,
    form: dict[str, Any],
    errors: dict[str, str],
    status: int,
    **estimate: Any,
) -> HTMLResponse:
    return render(
        request,
        "new_batch.html",
        principal,
        status_code=status,
        form=form,
        errors=errors,
        **_choices(request, principal),
        **estimate,
    )


@router.get("/batches/new", response_class=HTMLResponse)
def new_batch_form(request: Request) -> Response:
    principal = viewer(request)
    defaults = {
        "priority": "5",
        "models": configured_models()[:1],
        **trust_form_of({}),
        **cost_form_of({}),
    }
    return _form_page(request, principal, defaults, {}, 200)


def _deadline(form: dict[str, Any], errors: dict[str, str]) -> str | None:
    """The deadline typed in the browser's local time (datetime-local), moved to UTC by
    the offset the page's script sends; without the script it is taken as UTC."""
    typed = (form.get("deadline") or "").strip()
    if not typed:
        return None
    try:
        offset = int(form.get("tz_offset") or 0)  # minutes, as JavaScript's getTimezoneOffset
    except ValueError:
        offset = 0
    try:
        local = datetime.fromisoformat(typed)
    except ValueError:
        errors["deadline"] = "Give a date and time"
        return None
    return (local + timedelta(minutes=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_batch_page(
    request: Request,
    fieldsets: SettingsFieldsets,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=300)] = "",
    description: Annotated[str, Form(max_length=20000)] = "",
    priority: Annotated[str, Form(max_length=5)] = "",
    tags: Annotated[str, Form(max_length=2000)] = "",
    deadline: Annotated[str, Form(max_length=40)] = "",
    tz_offset: Annotated[str, Form(max_length=6)] = "",
    template_id: Annotated[str, Form(max_length=36)] = "",
    prompt: Annotated[str, Form(max_length=100_000)] = "",
    saved_prompt_id: Annotated[str, Form(max_length=36)] = "",
    saved_marking_scheme_id: Annotated[str, Form(max_length=36)] = "",
    models: Annotated[list[str] | None, Form()] = None,
    other_models: Annotated[str, Form(max_length=2000)] = "",
    start: Annotated[str, Form(max_length=10)] = "",
    action: Annotated[str, Form(max_length=10)] = "",
    files: Annotated[list[UploadFile] | None, File()] = None,
    marking_scheme: Annotated[UploadFile | None, File()] = None,
) -> Response:
    principal = form_viewer(request, csrf_token)
    form: dict[str, Any] = {
        "name": name,
        "description": description,
        "priority": priority,
        "tags": tags,
        "deadline": deadline,
        "tz_offset": tz_offset,
        "template_id": template_id,
        "prompt": prompt,
        "saved_prompt_id": saved_prompt_id,
        "saved_marking_scheme_id": saved_marking_scheme_id,
        "models": models or [],
        "other_models": other_models,
        "start": start,
        **fieldsets,
    }
    errors: dict[str, str] = {}
    chosen = chosen_models(form, configured_models(), errors)
    fields: dict[str, Any] = {
        "name": name.strip(),
        "description": description.strip() or None,
        "priority": priority or None,
        "tags": [t.strip() for t in tags.split(",") if t.strip()] or None,
        "deadline": _deadline(form, errors),
        "template_id": template_id or None,
        "prompt": prompt.strip() or None,
        "saved_prompt_id": saved_prompt_id or None,
        "saved_marking_scheme_id": saved_marking_scheme_id or None,
        "models": chosen or None,
        # Left at the defaults, a template's own trust settings apply.
        "settings": {
            **trust_changes(form, errors, TrustSettings()),
            **cost_changes(form, errors, {}),
        }
        or None,
    }
    if priority and not (priority.isdigit() and 1 <= int(priority) <= 10):
        errors["priority"] = "Give a whole number from 1 (lowest) to 10 (highest)"
        fields["priority"] = None
    documents = [f for f in files or [] if f.filename]
    scheme_upload = (
        marking_scheme if marking_scheme is not None and marking_scheme.filename else None
    )
    if scheme_upload is not None and saved_marking_scheme_id:
        errors["marking_scheme"] = "Upload a scheme or choose one from the library, not both"
    if action == ESTIMATE:
        return estimate_page(
            request,
            principal,
            form=form,
            errors=errors,
            draft=draft_of(fields),
            documents=documents,
            scheme_upload=scheme_upload,
            form_page=_form_page,
        )
    try:
        data = BatchCreate(**fields)
    except ValidationError as exc:
        field_errors(exc, (*BatchCreate.model_fields, *TRUST_FIELDS, *COST_FIELDS), errors)
        data = None
    if errors or data is None:
        return _form_page(request, principal, form, errors, 400)
    sessions = request.app.state.sessionmaker
    try:
        with unit_of_work(sessions) as session:
            batch = batches.create_draft_batch(session, data=data, owner=principal)
            audit.record(session, principal, "create", "batch", batch.id, name=batch.batch_name)
            batch_id = batch.id
    except AppError as exc:
        errors[field_of_refusal(exc.message)] = exc.message
        return _form_page(request, principal, form, errors, exc.status_code)
    outcome = None
    problem = None
    if documents:
        settings = request.app.state.settings
        try:
            result = uploads.create_job_from_uploads(
                sessions,
                batch_id=batch_id,
                request=JobCreate(models=[], saved_marking_scheme_id=data.saved_marking_scheme_id),
                scheme_file=uploads.IncomingFile(scheme_upload.filename or "", scheme_upload.file)
                if scheme_upload is not None
                else None,
                files=incoming(documents),
                upload_dir=settings.upload_dir,
                max_bytes=settings.max_upload_bytes,
                start=bool(start),
            )
            with unit_of_work(sessions) as session:
                outcome = uploads.describe(session, result)
                audit.record(session, principal, "add_job", "batch", batch_id)
        except AppError as exc:
            problem = exc.message  # the batch exists as a draft; say why the files did not go
    with unit_of_work(sessions, read_only=True) as session:
        created = BatchOut.model_validate(lifecycle.get_batch(session, batch_id=batch_id))
        estimate = estimates.estimate_batch(session, batch_id=batch_id)
    return render(
        request,
        "batch_created.html",
        principal,
        status_code=201,
        batch=created,
        outcome=outcome,
        problem=problem,
        estimate=estimate if estimate.totals.documents else None,
    )


# With the upload's size limit, as the API's upload routes.
router.add_api_route(
    "/batches/new",
    create_batch_page,
    methods=["POST"],
    response_class=HTMLResponse,
    route_class_override=UploadRoute,
)
