"""A template's page: its contents as a form to change, for those who may edit it, or
to read, with "Duplicate to change", for the default templates and other teachers'.

The form is read into the API's `TemplateUpdate` and saved by the same service call as
PATCH /api/templates/{id}; a saved prompt or marking scheme chosen here is copied in by
that service too. Whatever the form cannot show (the criteria, the file types, a legacy
row's extra rules) is sent back as it is stored.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from grading_app.accounts import access, audit
from grading_app.accounts.principal import Principal
from grading_app.db import unit_of_work
from grading_app.errors import AppError
from grading_app.processing.settings import BatchSettings
from grading_app.templates import service as templates
from grading_app.templates.schemas import TemplateOut, TemplateUpdate
from grading_app.web.choices import (
    chosen_models,
    configured_models,
    field_errors,
    library_choices,
    split_offered,
)
from grading_app.web.shell import checked_unit_of_work, form_viewer, not_found, render, viewer

router = APIRouter(include_in_schema=False)
API_PATH = "/api/templates/{template_id}"
DEFAULT_FIELDS = ("priority", "temperature", "max_tokens", "max_score")
WHOLE = frozenset({"priority", "max_tokens", "max_retries", "concurrency"})
RULE_FIELDS = ("max_retries", "retry_backoff_seconds", "timeout_seconds", "concurrency")
FORM_FIELDS = (
    "name",
    "description",
    "category",
    "prompt",
    "saved_prompt_id",
    "saved_marking_scheme_id",
    "models",
    "other_models",
    "tags",
    *DEFAULT_FIELDS,
    *RULE_FIELDS,
)


def _text(value: Any) -> str:
    """A stored value as a form field shows it (120.0 as 120)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _form_of(template: TemplateOut) -> dict[str, Any]:
    defaults = template.default_settings or {}
    rules = template.processing_rules or {}
    structure = template.job_structure or {}
    models = defaults.get("models") if isinstance(defaults.get("models"), list) else []
    offered, others = split_offered(models or [], configured_models())
    tags = defaults.get("tags") if isinstance(defaults.get("tags"), list) else []
    return {
        "name": template.name,
        "description": template.description or "",
        "category": template.category or "",
        "is_public": template.is_public is not False,
        "prompt": _text(structure.get("prompt")),
        "models": offered,
        "other_models": others,
        "tags": ", ".join(str(t) for t in tags or []),
        **{name: _text(defaults.get(name)) for name in DEFAULT_FIELDS},
        **{name: _text(rules.get(name)) for name in RULE_FIELDS},
        "require_structured_output": rules.get("require_structured_output") is True,
    }


def _number(form: dict[str, Any], name: str, errors: dict[str, str]) -> int | float | None:
    typed = str(form.get(name) or "").strip()
    if not typed:
        return None
    try:
        number = float(typed)
    except ValueError:
        errors[name] = "Give a number" if name not in WHOLE else "Give a whole number"
        return None
    if name in WHOLE:
        if not number.is_integer():
            errors[name] = "Give a whole number"
            return None
        return int(number)
    return number


def _update_of(
    form: dict[str, Any], current: TemplateOut, errors: dict[str, str]
) -> TemplateUpdate | None:
    """The form as the API's update; None (with `errors` beside the fields) if it is not
    one."""
    structure = current.job_structure or {}
    kept_rules = {
        key: value
        for key, value in (current.processing_rules or {}).items()
        if key in BatchSettings.__annotations__ and key not in RULE_FIELDS
    }
    models = chosen_models(form, configured_models(), errors, required=False)
    defaults: dict[str, Any] = {name: _number(form, name, errors) for name in DEFAULT_FIELDS}
    defaults["tags"] = [t.strip() for t in form["tags"].split(",") if t.strip()] or None
    defaults["models"] = models or None
    rules: dict[str, Any] = {name: _number(form, name, errors) for name in RULE_FIELDS}
    rules["require_structured_output"] = bool(form["require_structured_output"])
    fields: dict[str, Any] = {
        "name": form["name"].strip(),
        "description": form["description"].strip() or None,
        "category": form["category"].strip() or None,
        "is_public": bool(form["is_public"]),
        "default_settings": {k: v for k, v in defaults.items() if v is not None},
        "job_structure": {
            key: value
            for key, value in {
                "prompt": form["prompt"].strip() or None,
                "criteria": structure.get("criteria") or [],
                "file_types": structure.get("file_types"),
            }.items()
            if value is not None
        },
        "processing_rules": {**kept_rules, **{k: v for k, v in rules.items() if v is not None}},
    }
    for name in ("saved_prompt_id", "saved_marking_scheme_id"):
        if form[name]:
            fields[name] = form[name]
    try:
        update = TemplateUpdate(**fields)
    except ValidationError as exc:
        field_errors(exc, FORM_FIELDS, errors)
        return None
    return None if errors else update


def _page(
    request: Request,
    principal: Principal,
    template_id: str,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
        level = access.template_level(session, principal, template_id)
        if level is None:
            return not_found(request, principal, f"No batch template with id {template_id}")
        template = TemplateOut.model_validate(
            templates.get_template(session, template_id=template_id)
        )
        choices = library_choices(session, principal)
    if template.is_default:
        read_only = "This is a default template and is read-only."
    elif level < access.Level.EDIT:
        read_only = "Only its owner can change this template."
    else:
        read_only = ""
    return render(
        request,
        "template_edit.html",
        principal,
        status_code=status_code,
        item=template,
        read_only=read_only,
        form=form if form is not None else _form_of(template),
        errors=errors or {},
        notice=request.query_params.get("notice"),
        configured=configured_models(),
        **choices,
    )


@router.get("/templates/{template_id}", response_class=HTMLResponse)
def template_page(request: Request, template_id: str) -> Response:
    return _page(request, viewer(request), template_id)


@router.post("/templates/{template_id}/edit", response_class=HTMLResponse)
def edit_template(
    request: Request,
    template_id: str,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=300)] = "",
    description: Annotated[str, Form(max_length=20000)] = "",
    category: Annotated[str, Form(max_length=300)] = "",
    is_public: Annotated[str, Form(max_length=5)] = "",
    prompt: Annotated[str, Form(max_length=100_000)] = "",
    saved_prompt_id: Annotated[str, Form(max_length=36)] = "",
    saved_marking_scheme_id: Annotated[str, Form(max_length=36)] = "",
    models: Annotated[list[str] | None, Form()] = None,
    other_models: Annotated[str, Form(max_length=2000)] = "",
    tags: Annotated[str, Form(max_length=2000)] = "",
    priority: Annotated[str, Form(max_length=20)] = "",
    temperature: Annotated[str, Form(max_length=20)] = "",
    max_tokens: Annotated[str, Form(max_length=20)] = "",
    max_score: Annotated[str, Form(max_length=20)] = "",
    max_retries: Annotated[str, Form(max_length=20)] = "",
    retry_backoff_seconds: Annotated[str, Form(max_length=20)] = "",
    timeout_seconds: Annotated[str, Form(max_length=20)] = "",
    concurrency: Annotated[str, Form(max_length=20)] = "",
    require_structured_output: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    form: dict[str, Any] = {
        "name": name,
        "description": description,
        "category": category,
        "is_public": bool(is_public),
        "prompt": prompt,
        "saved_prompt_id": saved_prompt_id,
        "saved_marking_scheme_id": saved_marking_scheme_id,
        "models": models or [],
        "other_models": other_models,
        "tags": tags,
        "priority": priority,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "max_score": max_score,
        "max_retries": max_retries,
        "retry_backoff_seconds": retry_backoff_seconds,
        "timeout_seconds": timeout_seconds,
        "concurrency": concurrency,
        "require_structured_output": bool(require_structured_output),
    }
    errors: dict[str, str] = {}
    params = {"template_id": template_id}
    try:
        with checked_unit_of_work(request, principal, "PATCH", API_PATH, **params) as session:
            current = TemplateOut.model_validate(
                templates.get_template(session, template_id=template_id)
            )
            update = _update_of(form, current, errors)
            if update is not None:
                access.check_references(
                    session,
                    principal,
                    prompt_id=update.saved_prompt_id,
                    scheme_id=update.saved_marking_scheme_id,
                )
                saved = templates.update_template(session, template_id=template_id, data=update)
                audit.record(session, principal, "update", "template", template_id)
                label = saved.name
    except AppError as exc:
        if exc.status_code in (403, 404):
            return render(
                request, "error.html", principal, status_code=exc.status_code, message=exc.message
            )
        errors["form"] = exc.message
        return _page(
            request, principal, template_id, form=form, errors=errors, status_code=exc.status_code
        )
    if update is None:
        return _page(request, principal, template_id, form=form, errors=errors, status_code=400)
    notice = quote(f"Saved the template {label}")
    return RedirectResponse(f"/templates/{template_id}?notice={notice}", status_code=303)
