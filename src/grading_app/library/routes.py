"""Library endpoints: saved prompts (/api/prompts) and marking schemes
(/api/marking-schemes), written in the API or uploaded as a file."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile

from grading_app.accounts import access, audit
from grading_app.accounts.auth import CurrentUser, authenticate
from grading_app.db import unit_of_work
from grading_app.deps import (
    Page,
    Paging,
    ReadSessionDep,
    SessionDep,
    SessionsDep,
    SettingsDep,
    UploadRoute,
    paging,
)
from grading_app.errors import AppError
from grading_app.fields import CATEGORY_LENGTH, DESCRIPTION_LENGTH, NAME_LENGTH
from grading_app.library import scheme_files, service
from grading_app.library.schemas import (
    MarkingSchemeCreate,
    MarkingSchemeOut,
    MarkingSchemeSummary,
    MarkingSchemeUpdate,
    MarkingSchemeUploadOut,
    PromptCreate,
    PromptOut,
    PromptUpdate,
)
from grading_app.models import SavedMarkingScheme, SavedPrompt

# Room for the form's text fields and the multipart framing around the file.
_FORM_OVERHEAD_BYTES = 64 * 1024

prompts = APIRouter(prefix="/api/prompts", tags=["library"])
marking_schemes = APIRouter(prefix="/api/marking-schemes", tags=["library"])

Search = Annotated[
    str | None,
    Query(max_length=200, description="Text to find in the name, description or category"),
]
CategoryFilter = Annotated[str | None, Query(max_length=CATEGORY_LENGTH)]


# --- saved prompts ------------------------------------------------------------------


@prompts.get("", response_model=Page[PromptOut])
def list_prompts(
    session: ReadSessionDep,
    principal: CurrentUser,
    page: Annotated[Paging, paging(50)],
    q: Search = None,
    category: CategoryFilter = None,
) -> Any:
    """Your saved prompts and the public ones, by name, with how often and when each
    was last used."""
    total, items = service.list_prompts(
        session,
        q=q,
        category=category,
        limit=page.limit,
        offset=page.offset,
        visible=access.library_visible(principal, SavedPrompt),
    )
    return Page[PromptOut].of(page, total, items)


@prompts.post("", response_model=PromptOut, status_code=201)
def create_prompt(data: PromptCreate, session: SessionDep, principal: CurrentUser) -> Any:
    """Use it with `saved_prompt_id` in POST /api/batches or POST /api/batches/{id}/jobs.
    Yours; with `is_public`, everyone may see and use it."""
    owner_id = access.owner_id_for(session, principal)
    prompt = service.create_prompt(session, data=data, owner_id=owner_id)
    audit.record(session, principal, "create", "prompt", prompt.id, name=prompt.name)
    return prompt


@prompts.get("/{prompt_id}", response_model=PromptOut)
def get_prompt(prompt_id: str, session: ReadSessionDep) -> Any:
    return service.get_prompt(session, prompt_id=prompt_id)


@prompts.patch("/{prompt_id}", response_model=PromptOut)
def update_prompt(prompt_id: str, data: PromptUpdate, session: SessionDep) -> Any:
    """Batches and jobs made with it keep the text they copied."""
    return service.update_prompt(session, prompt_id=prompt_id, data=data)


@prompts.delete("/{prompt_id}", status_code=204, response_model=None)
def delete_prompt(prompt_id: str, session: SessionDep) -> Response:
    """409, naming them, while batches or jobs made with it exist."""
    service.delete_prompt(session, prompt_id=prompt_id)
    return Response(status_code=204)


# --- saved marking schemes ----------------------------------------------------------


@marking_schemes.get("", response_model=Page[MarkingSchemeSummary])
def list_marking_schemes(
    session: ReadSessionDep,
    principal: CurrentUser,
    page: Annotated[Paging, paging(50)],
    q: Search = None,
    category: CategoryFilter = None,
) -> Any:
    """Your saved marking schemes and the public ones, by name, without their text (GET
    one for it)."""
    total, items = service.list_marking_schemes(
        session,
        q=q,
        category=category,
        limit=page.limit,
        offset=page.offset,
        visible=access.library_visible(principal, SavedMarkingScheme),
    )
    return Page[MarkingSchemeSummary].of(page, total, items)


@marking_schemes.post("", response_model=MarkingSchemeOut, status_code=201)
def create_marking_scheme(
    data: MarkingSchemeCreate, session: SessionDep, principal: CurrentUser
) -> Any:
    """A scheme written as text, as a structured rubric, or both. Use it with
    `saved_marking_scheme_id` in POST /api/batches or POST /api/batches/{id}/jobs."""
    owner_id = access.owner_id_for(session, principal)
    scheme = service.create_marking_scheme(session, data=data, owner_id=owner_id)
    audit.record(session, principal, "create", "marking_scheme", scheme.id, name=scheme.name)
    return scheme


def upload_marking_scheme(
    request: Request,
    response: Response,
    sessions: SessionsDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The scheme: .docx, .pdf, .txt or .md")],
    name: Annotated[
        str | None,
        Form(max_length=NAME_LENGTH, description="Default: the file's name"),
    ] = None,
    description: Annotated[str | None, Form(max_length=DESCRIPTION_LENGTH)] = None,
    category: Annotated[str | None, Form(max_length=CATEGORY_LENGTH)] = None,
    is_public: Annotated[bool, Form(description="Everyone may see and use it")] = False,
) -> Any:
    """A scheme from a file: its text is extracted, and a table with criterion and points
    columns (in a .docx, or a Markdown table) becomes its rubric. The same file
    uploaded again answers 200 with the scheme it made the first time."""
    max_bytes = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + _FORM_OVERHEAD_BYTES:
        raise AppError(
            f"This upload is larger than the {max_bytes // (1024 * 1024)} MB a marking "
            "scheme may be (MAX_UPLOAD_MB)",
            413,
        )
    filename = file.filename or "marking scheme"
    data = scheme_files.read_bounded(file.file, filename=filename, max_bytes=max_bytes)
    principal = authenticate(request)
    with unit_of_work(sessions, read_only=True) as session:
        owner_id = access.owner_id_for(session, principal)
        existing = service.find_by_content_hash(
            session, content_hash=scheme_files.content_hash(data), owner_id=owner_id
        )
        if existing is not None:
            response.status_code = 200
            return _uploaded(existing, reused=True, warnings=())
    upload = scheme_files.read_scheme_file(
        data, filename=filename, upload_dir=settings.upload_dir, max_bytes=max_bytes
    )
    stored = service.save_scheme_file(
        sessions,
        upload=upload,
        name=name,
        description=description,
        category=category,
        is_public=is_public,
        principal=principal,
        upload_dir=settings.upload_dir,
    )
    if stored.reused:
        response.status_code = 200
    return _uploaded(stored.scheme, reused=stored.reused, warnings=upload.warnings)


marking_schemes.add_api_route(
    "/upload",
    upload_marking_scheme,
    methods=["POST"],
    response_model=MarkingSchemeUploadOut,
    status_code=201,
    responses={200: {"description": "The same file was uploaded before: its scheme"}},
    route_class_override=UploadRoute,
)


def _uploaded(
    scheme: SavedMarkingScheme, *, reused: bool, warnings: tuple[str, ...]
) -> MarkingSchemeUploadOut:
    out = MarkingSchemeOut.model_validate(scheme).model_dump()
    return MarkingSchemeUploadOut(**out, reused=reused, warnings=list(warnings))


@marking_schemes.get("/{scheme_id}", response_model=MarkingSchemeOut)
def get_marking_scheme(scheme_id: str, session: ReadSessionDep) -> Any:
    return service.get_marking_scheme(session, scheme_id=scheme_id)


@marking_schemes.patch("/{scheme_id}", response_model=MarkingSchemeOut)
def update_marking_scheme(scheme_id: str, data: MarkingSchemeUpdate, session: SessionDep) -> Any:
    """Jobs made with it keep the copy they took; new ones get the edited scheme."""
    return service.update_marking_scheme(session, scheme_id=scheme_id, data=data)


@marking_schemes.delete("/{scheme_id}", status_code=204, response_model=None)
def delete_marking_scheme(scheme_id: str, sessions: SessionsDep, settings: SettingsDep) -> Response:
    """409, naming them, while batches or jobs made with it exist. Its uploaded file is
    removed too."""
    with unit_of_work(sessions) as session:
        stored = service.delete_marking_scheme(session, scheme_id=scheme_id)
    if stored is not None:  # only once the row is gone for good
        (settings.upload_dir / stored).unlink(missing_ok=True)
    return Response(status_code=204)
