"""Editing a batch from its page: details, settings and, while the batch allows it, its
prompt, models and library items (batches/service.py says which fields change in which
status; the page disables those that cannot and the service refuses them if sent).

Only what changed is sent, as PATCH /api/batches/{id} would be: an unchanged prompt
sent along with a new name would make a started batch refuse the whole edit.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from grading_app.accounts import access, audit
from grading_app.batches import service
from grading_app.batches.schemas import BatchOut, BatchUpdate
from grading_app.errors import AppError
from grading_app.lifecycle import service as lifecycle
from grading_app.trust.settings import trust_settings
from grading_app.web.batch_pages import show_batch
from grading_app.web.choices import chosen_models, configured_models, field_errors
from grading_app.web.cost_fields import COST_FIELDS, cost_changes, field_of_refusal
from grading_app.web.settings_fieldsets import SettingsFieldsets
from grading_app.web.shell import checked_unit_of_work, form_viewer, not_found
from grading_app.web.trust_fields import TRUST_FIELDS, trust_changes

router = APIRouter(include_in_schema=False)
FORM_FIELDS = (
    "name",
    "description",
    "priority",
    "tags",
    "max_retries",
    "prompt",
    "saved_prompt_id",
    "saved_marking_scheme_id",
    "models",
    *TRUST_FIELDS,
    *COST_FIELDS,
)


def _fields_of(form: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": form["name"].strip(),
        "description": form["description"].strip() or None,
        "tags": [t.strip() for t in form["tags"].split(",") if t.strip()],
    }
    if form["priority"]:
        fields["priority"] = form["priority"]
    if form["max_retries"]:
        retries = form["max_retries"]
        fields["settings"] = {"max_retries": int(retries) if retries.isdigit() else retries}
    return fields


def _grading_changes(
    form: dict[str, Any], batch: BatchOut, prompt: str | None, errors: dict[str, str]
) -> dict[str, Any]:
    """The prompt, models and library items the form changes."""
    changes: dict[str, Any] = {}
    if form["prompt"].strip() != (prompt or "").strip():
        changes["prompt"] = form["prompt"].strip() or None
    for name in ("saved_prompt_id", "saved_marking_scheme_id"):
        if form[name] != (getattr(batch, name) or ""):
            changes[name] = form[name] or None
    if changes.get("saved_prompt_id") and "prompt" in changes:
        errors["prompt"] = "Choose a prompt from the library or write one here, not both"
    current = batch.models_to_compare or []
    chosen = chosen_models(form, configured_models(), errors, required=bool(current))
    if set(chosen) != set(current):
        changes["models"] = chosen
    return changes


@router.post("/batches/{batch_id}/edit", response_class=HTMLResponse)
def edit_batch(
    request: Request,
    batch_id: str,
    fieldsets: SettingsFieldsets,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=300)] = "",
    description: Annotated[str, Form(max_length=20000)] = "",
    priority: Annotated[str, Form(max_length=5)] = "",
    tags: Annotated[str, Form(max_length=2000)] = "",
    max_retries: Annotated[str, Form(max_length=5)] = "",
    grading_fields: Annotated[str, Form(max_length=5)] = "",
    prompt: Annotated[str, Form(max_length=100_000)] = "",
    saved_prompt_id: Annotated[str, Form(max_length=36)] = "",
    saved_marking_scheme_id: Annotated[str, Form(max_length=36)] = "",
    models: Annotated[list[str] | None, Form()] = None,
    other_models: Annotated[str, Form(max_length=2000)] = "",
    trust_fields: Annotated[str, Form(max_length=5)] = "",
    cost_fields: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """The details and settings, and the grading fields when the form offered them
    (`grading_fields`: a disabled fieldset sends none of its fields); the trust
    settings likewise (`trust_fields`), only those that changed."""
    principal = form_viewer(request, csrf_token)
    form: dict[str, Any] = {
        "name": name,
        "description": description,
        "priority": priority,
        "tags": tags,
        "max_retries": max_retries,
        "prompt": prompt,
        "saved_prompt_id": saved_prompt_id,
        "saved_marking_scheme_id": saved_marking_scheme_id,
        "models": models or [],
        "other_models": other_models,
        **fieldsets,
    }
    errors: dict[str, str] = {}
    try:
        with checked_unit_of_work(
            request, principal, "PATCH", "/api/batches/{batch_id}", batch_id=batch_id
        ) as session:
            row = lifecycle.get_batch(session, batch_id=batch_id)
            current = BatchOut.model_validate(row)
            fields = _fields_of(form)
            stored = current.batch_settings or {}
            if fields.get("settings", {}).get("max_retries") == stored.get("max_retries"):
                fields.pop("settings", None)  # a batch being graded refuses a settings change
            if trust_fields:  # the form offered them (a form from before it did not)
                trust = trust_changes(form, errors, trust_settings(stored))
                if trust:
                    fields["settings"] = {**fields.get("settings", {}), **trust}
            if cost_fields:  # likewise
                cost = cost_changes(form, errors, stored)
                if cost:
                    fields["settings"] = {**fields.get("settings", {}), **cost}
            if grading_fields:
                fields |= _grading_changes(form, current, row.prompt, errors)
            try:
                changes = BatchUpdate(**fields)
            except ValidationError as exc:
                field_errors(exc, FORM_FIELDS, errors)
            if not errors:
                access.check_references(
                    session,
                    principal,
                    prompt_id=changes.saved_prompt_id,
                    scheme_id=changes.saved_marking_scheme_id,
                )
                service.update_batch(session, batch_id=batch_id, changes=changes)
                audit.record(session, principal, "update", "batch", batch_id)
    except AppError as exc:
        if exc.status_code == 404 and "batch" in exc.message:
            return not_found(request, principal, exc.message)
        if exc.status_code == 403:  # no form to show it beside: a viewer's page
            return show_batch(request, batch_id, notice=exc.message, status_code=403)
        errors[field_of_refusal(exc.message)] = exc.message
        return show_batch(
            request, batch_id, edit_form=form, edit_errors=errors, status_code=exc.status_code
        )
    if errors:
        return show_batch(request, batch_id, edit_form=form, edit_errors=errors, status_code=400)
    return RedirectResponse(f"/batches/{batch_id}?notice={quote('Saved')}", status_code=303)
