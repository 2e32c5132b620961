"""The library: saved prompts and marking schemes (yours and the public ones), a new
prompt, a new marking scheme written as text and/or a structured rubric (criteria,
maximum points, level descriptors), one uploaded as a file, and deleting your own."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from grading_app.accounts import access, audit
from grading_app.accounts.principal import Principal
from grading_app.db import unit_of_work
from grading_app.deps import UploadRoute
from grading_app.documents.storage import remove_stored_files
from grading_app.errors import AppError
from grading_app.library import scheme_files
from grading_app.library import service as library
from grading_app.library.schemas import MarkingSchemeCreate, PromptCreate
from grading_app.web.choices import visible_library
from grading_app.web.shell import checked_unit_of_work, form_viewer, not_found, render, viewer

router = APIRouter(include_in_schema=False)
LISTED = 200
RUBRIC_ROWS = 6  # criteria rows the form offers


def _library(
    request: Request,
    principal: Principal,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
) -> Response:
    with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
        prompts, schemes = visible_library(session, principal, limit=LISTED)
    return render(
        request,
        "library.html",
        principal,
        status_code=status_code,
        prompts=prompts,
        schemes=schemes,
        errors=errors or {},
        form=form or {},
        rows=range(RUBRIC_ROWS),
        notice=request.query_params.get("notice"),
    )


def _done(notice: str) -> Response:
    return RedirectResponse(f"/library?notice={quote(notice)}", status_code=303)


def _problems(exc: ValidationError, prefix: str, whole: str) -> dict[str, str]:
    """Each refused field's message under `prefix` + its name; a rule over the whole
    form (no field) under `whole`."""
    problems: dict[str, str] = {}
    for error in exc.errors():
        field = f"{prefix}{error['loc'][0]}" if error["loc"] else whole
        where = ".".join(str(part) for part in error["loc"][1:])
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.setdefault(field, f"{where}: {message}" if where else message)
    return problems


@router.get("/library", response_class=HTMLResponse)
def library_page(request: Request) -> Response:
    return _library(request, viewer(request))


@router.post("/library/prompts", response_class=HTMLResponse)
def new_prompt(
    request: Request,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=300)] = "",
    category: Annotated[str, Form(max_length=200)] = "",
    prompt_text: Annotated[str, Form(max_length=100_000)] = "",
    is_public: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    form = {"prompt_name": name, "prompt_category": category, "prompt_text": prompt_text}
    try:
        data = PromptCreate(
            name=name, category=category or None, prompt_text=prompt_text, is_public=bool(is_public)
        )
        with unit_of_work(request.app.state.sessionmaker) as session:
            owner_id = access.owner_id_for(session, principal)
            prompt = library.create_prompt(session, data=data, owner_id=owner_id)
            audit.record(session, principal, "create", "prompt", prompt.id, name=prompt.name)
    except ValidationError as exc:
        return _library(
            request,
            principal,
            status_code=400,
            errors=_problems(exc, "prompt_", "prompt_text"),
            form=form,
        )
    except AppError as exc:
        return _library(
            request,
            principal,
            status_code=exc.status_code,
            errors={"prompt_text": exc.message},
            form=form,
        )
    return _done(f"Saved the prompt {data.name}")


def _rubric(form: Any) -> dict[str, Any] | None:
    """The rubric rows filled in: a criterion per named row; its levels one per line
    as `label | points | descriptor`."""
    criteria = []
    for row in range(RUBRIC_ROWS):
        name = (form.get(f"criterion_{row}") or "").strip()
        if not name:
            continue
        levels = []
        for line in (form.get(f"levels_{row}") or "").splitlines():
            if not line.strip():
                continue
            parts = [part.strip() for part in line.split("|")]
            label, points, descriptor = (parts + ["", "", ""])[:3]
            levels.append({"label": label, "points": points or None, "descriptor": descriptor})
        criteria.append(
            {
                "name": name,
                "max_score": form.get(f"max_{row}") or 0,
                "description": (form.get(f"description_{row}") or "").strip(),
                "levels": levels,
            }
        )
    return {"criteria": criteria} if criteria else None


@router.post("/library/schemes", response_class=HTMLResponse)
async def new_scheme(request: Request) -> Response:
    submitted = await request.form()
    principal = form_viewer(request, str(submitted.get("csrf_token") or ""))
    form = {key: str(value) for key, value in submitted.items() if isinstance(value, str)}
    try:
        data = MarkingSchemeCreate.model_validate(
            {
                "name": form.get("scheme_name", ""),
                "category": form.get("scheme_category") or None,
                "content": form.get("content") or None,
                "rubric": _rubric(form),
                "is_public": bool(form.get("scheme_public")),
            }
        )
    except ValidationError as exc:
        return _library(
            request,
            principal,
            status_code=400,
            errors=_problems(exc, "scheme_", "scheme_content"),
            form=form,
        )
    with unit_of_work(request.app.state.sessionmaker) as session:
        owner_id = access.owner_id_for(session, principal)
        scheme = library.create_marking_scheme(session, data=data, owner_id=owner_id)
        audit.record(session, principal, "create", "marking_scheme", scheme.id, name=scheme.name)
    return _done(f"Saved the marking scheme {data.name}")


def upload_scheme(
    request: Request,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    file: Annotated[UploadFile | None, File()] = None,
    name: Annotated[str, Form(max_length=300)] = "",
    is_public: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    if file is None or not file.filename:
        return _library(
            request, principal, status_code=400, errors={"upload_file": "Choose a file"}
        )
    settings = request.app.state.settings
    sessions = request.app.state.sessionmaker
    try:
        data = scheme_files.read_bounded(
            file.file, filename=file.filename, max_bytes=settings.max_upload_bytes
        )
        upload = scheme_files.read_scheme_file(
            data,
            filename=file.filename,
            upload_dir=settings.upload_dir,
            max_bytes=settings.max_upload_bytes,
        )
    except AppError as exc:
        return _library(
            request, principal, status_code=exc.status_code, errors={"upload_file": exc.message}
        )
    stored = library.save_scheme_file(
        sessions,
        upload=upload,
        name=name or None,
        description=None,
        category=None,
        is_public=bool(is_public),
        principal=principal,
        upload_dir=settings.upload_dir,
    )
    label = stored.scheme.name
    if stored.reused:
        return _done(f"You saved this file before, as {label}")
    rubric = " with a rubric read from its table" if upload.rubric else ""
    return _done(f"Saved the marking scheme {label}{rubric}")


router.add_api_route(
    "/library/schemes/upload",
    upload_scheme,
    methods=["POST"],
    response_class=HTMLResponse,
    route_class_override=UploadRoute,
)


@router.post("/library/{kind}/{item_id}/delete", response_class=HTMLResponse)
def delete_item(
    request: Request, kind: str, item_id: str, csrf_token: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    principal = form_viewer(request, csrf_token)
    routes = {
        "prompts": ("/api/prompts/{prompt_id}", "prompt_id"),
        "schemes": ("/api/marking-schemes/{scheme_id}", "scheme_id"),
    }
    if kind not in routes:
        return not_found(request, principal, "Nothing here")
    path, parameter = routes[kind]
    stored_file = None
    try:
        with checked_unit_of_work(
            request, principal, "DELETE", path, **{parameter: item_id}
        ) as session:
            if kind == "prompts":
                library.delete_prompt(session, prompt_id=item_id)
            else:
                stored_file = library.delete_marking_scheme(session, scheme_id=item_id)
            audit.record(
                session,
                principal,
                "delete",
                "prompt" if kind == "prompts" else "marking_scheme",
                item_id,
            )
    except AppError as exc:
        return _done(exc.message)
    if stored_file is not None:  # the row is gone for good: its file may go too
        remove_stored_files([stored_file], upload_dir=request.app.state.settings.upload_dir)
    return _done("Deleted")
