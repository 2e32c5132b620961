"""Templates: the ones you may use (yours, the public ones, the four defaults), a copy
of one to change, deleting your own, and a batch's configuration saved as a template."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from grading_app.accounts import access, audit
from grading_app.db import unit_of_work
from grading_app.errors import AppError
from grading_app.templates import service as templates
from grading_app.templates.schemas import TemplateCreate, TemplateDuplicate, TemplateOut
from grading_app.web.shell import checked_unit_of_work, form_viewer, render, viewer

router = APIRouter(include_in_schema=False)
LISTED = 200


def _done(notice: str) -> Response:
    return RedirectResponse(f"/templates?notice={quote(notice)}", status_code=303)


@router.get("/templates", response_class=HTMLResponse)
def templates_page(request: Request) -> Response:
    principal = viewer(request)
    with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
        _, rows = templates.list_templates(
            session, limit=LISTED, offset=0, visible=access.template_visible(principal)
        )
        listed = [
            (TemplateOut.model_validate(row), row.owner_id == principal.user_id) for row in rows
        ]
    return render(
        request,
        "templates.html",
        principal,
        templates=listed,
        notice=request.query_params.get("notice"),
    )


@router.post("/templates/{template_id}/duplicate", response_class=HTMLResponse)
def duplicate_template(
    request: Request,
    template_id: str,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    path = "/api/templates/{template_id}/duplicate"
    try:
        data = TemplateDuplicate(name=name.strip() or None)
        with checked_unit_of_work(
            request, principal, "POST", path, template_id=template_id
        ) as session:
            copy = templates.duplicate_template(
                session,
                template_id=template_id,
                data=data,
                owner_id=access.owner_id_for(session, principal),
                creator=principal.username,
            )
            audit.record(session, principal, "duplicate", "template", copy.id, source=template_id)
            label = copy.name
    except ValidationError as exc:
        return _done("; ".join(str(e["msg"]) for e in exc.errors()))
    except AppError as exc:
        return _done(exc.message)
    return _done(f"Copied as {label}: yours to change")


@router.post("/templates/{template_id}/delete", response_class=HTMLResponse)
def delete_template(
    request: Request, template_id: str, csrf_token: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    principal = form_viewer(request, csrf_token)
    try:
        with checked_unit_of_work(
            request, principal, "DELETE", "/api/templates/{template_id}", template_id=template_id
        ) as session:
            templates.delete_template(session, template_id=template_id)
            audit.record(session, principal, "delete", "template", template_id)
    except AppError as exc:
        return _done(exc.message)
    return _done("Template deleted")


@router.post("/batches/{batch_id}/save-as-template", response_class=HTMLResponse)
def save_batch_as_template(
    request: Request,
    batch_id: str,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    try:
        data = TemplateCreate(name=name.strip() or None, from_batch_id=batch_id)
        with unit_of_work(request.app.state.sessionmaker) as session:
            access.check_references(session, principal, batch_id=batch_id)
            template = templates.create_template(
                session,
                data=data,
                owner_id=access.owner_id_for(session, principal),
                creator=principal.username,
            )
            audit.record(session, principal, "create", "template", template.id, name=template.name)
            label = template.name
    except ValidationError as exc:
        return _done("; ".join(str(e["msg"]) for e in exc.errors()))
    except AppError as exc:
        return _done(exc.message)
    return _done(f"Saved the batch's configuration as the template {label}")
