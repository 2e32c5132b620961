"""Batch template endpoints (/api/templates). A batch is made from one with
`template_id` (or `template`, its name) in POST /api/batches."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from grading_app.accounts import access, audit
from grading_app.accounts.auth import CurrentUser
from grading_app.deps import Page, Paging, ReadSessionDep, SessionDep, paging
from grading_app.templates import service
from grading_app.templates.schemas import (
    TemplateCreate,
    TemplateDuplicate,
    TemplateOut,
    TemplateUpdate,
)

router = APIRouter(prefix="/api/templates", tags=["templates"])


@router.get("", response_model=Page[TemplateOut])
def list_templates(
    session: ReadSessionDep,
    principal: CurrentUser,
    page: Annotated[Paging, paging(50)],
    q: Annotated[
        str | None,
        Query(max_length=200, description="Text to find in the name, description or category"),
    ] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    is_public: bool | None = None,
    created_by: Annotated[str | None, Query(max_length=255)] = None,
) -> Any:
    """Templates you may use (yours, the public ones and the four defaults,
    `is_default`), by name."""
    total, items = service.list_templates(
        session,
        visible=access.template_visible(principal),
        q=q,
        category=category,
        is_public=is_public,
        created_by=created_by,
        limit=page.limit,
        offset=page.offset,
    )
    return Page[TemplateOut].of(page, total, items)


@router.post("", response_model=TemplateOut, status_code=201)
def create_template(data: TemplateCreate, session: SessionDep, principal: CurrentUser) -> Any:
    """A new template of yours; with `from_batch_id`, a batch's configuration (one you
    may see) saved as one."""
    access.check_references(session, principal, batch_id=data.from_batch_id)
    template = service.create_template(
        session,
        data=data,
        owner_id=access.owner_id_for(session, principal),
        creator=principal.username,
    )
    audit.record(session, principal, "create", "template", template.id, name=template.name)
    return template


@router.get("/{template_id}", response_model=TemplateOut)
def get_template(template_id: str, session: ReadSessionDep) -> Any:
    return service.get_template(session, template_id=template_id)


@router.patch("/{template_id}", response_model=TemplateOut)
def update_template(
    template_id: str, data: TemplateUpdate, session: SessionDep, principal: CurrentUser
) -> Any:
    """409 for a default template: duplicate it to change it. `saved_prompt_id` and
    `saved_marking_scheme_id` (ones you may see) copy the library item in."""
    access.check_references(
        session, principal, prompt_id=data.saved_prompt_id, scheme_id=data.saved_marking_scheme_id
    )
    template = service.update_template(session, template_id=template_id, data=data)
    audit.record(session, principal, "update", "template", template_id)  # as the page does
    return template


@router.delete("/{template_id}", status_code=204, response_model=None)
def delete_template(template_id: str, session: SessionDep) -> Response:
    """409 for a default template, and while batches made from it exist."""
    service.delete_template(session, template_id=template_id)
    return Response(status_code=204)


@router.post("/{template_id}/duplicate", response_model=TemplateOut, status_code=201)
def duplicate_template(
    template_id: str,
    session: SessionDep,
    principal: CurrentUser,
    data: TemplateDuplicate | None = None,
) -> Any:
    """A copy of your own to change (default name "Copy of <name>"); usage starts at
    zero."""
    copy = service.duplicate_template(
        session,
        template_id=template_id,
        data=data or TemplateDuplicate(),
        owner_id=access.owner_id_for(session, principal),
        creator=principal.username,
    )
    audit.record(session, principal, "duplicate", "template", copy.id, source=template_id)
    return copy
