"""The HTTP plumbing every router shares: database sessions, settings, paging, and the
check that refuses query parameters a route does not take.

A request opens one unit of work (`db.unit_of_work`): it commits when the route
returns and rolls back when it raises. Reads take a read-only session, which on SQLite
never queues for or holds the write lock.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Self, TypeVar

from fastapi import Depends, HTTPException, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response
from starlette.types import Message

from grading_app.config import Settings, get_settings
from grading_app.db import unit_of_work
from grading_app.documents import validate
from grading_app.documents.validate import format_size, request_limit_bytes
from grading_app.errors import AppError

MAX_PAGE_SIZE = 500
# Far past any list, and within the 64-bit integer SQLite binds (a bigger one was a 500).
MAX_OFFSET = 2**31 - 1


def get_session(request: Request) -> Iterator[Session]:
    with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
        yield session


def get_sessions(request: Request) -> sessionmaker[Session]:
    """For routes that need several units of work (reading files between them)."""
    sessions: sessionmaker[Session] = request.app.state.sessionmaker
    return sessions


def app_settings(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
SettingsDep = Annotated[Settings, Depends(app_settings)]


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int


def paging(default_limit: int) -> object:
    """A dependency reading `limit` (1-500, default `default_limit`) and `offset`."""

    def read(
        limit: Annotated[
            int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page")
        ] = default_limit,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")] = 0,
    ) -> Paging:
        return Paging(limit=limit, offset=offset)

    return Depends(read)


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a list: `total` counts every item the filters match."""

    total: int
    limit: int
    offset: int
    items: list[ItemT]

    @classmethod
    def of(cls, page: Paging, total: int, items: Iterable[Any]) -> Self:
        """The answer of a list route: `items` (rows, or models already) read as the
        page's item type, as `ItemOut.model_validate(row)` reads each."""
        answer = {"total": total, "limit": page.limit, "offset": page.offset, "items": items}
        return cls.model_validate(answer, from_attributes=True)


class ErrorOut(BaseModel):
    """Every error the API answers (4xx, 503): one sentence a person can act on."""

    detail: str


# --- unknown query parameters -----------------------------------------------------------


def declared_query_parameters(route: APIRoute) -> tuple[str, ...]:
    """The query parameters a route takes: its own, its dependencies' (paging), and the
    fields of a query model, by the names clients send."""
    names: dict[str, None] = {}
    dependants = [route.dependant]
    while dependants:
        dependant = dependants.pop()
        dependants.extend(dependant.dependencies)
        for field in dependant.query_params:
            model = field.field_info.annotation
            if isinstance(model, type) and issubclass(model, BaseModel):  # a query model
                names.update(
                    dict.fromkeys(info.alias or name for name, info in model.model_fields.items())
                )
            else:
                names[field.alias] = None
    return tuple(names)


def reject_unknown_query_parameters(request: Request) -> None:
    """A query parameter the route does not take is a 422 naming it, never silently
    ignored: `?stauts=failed` would otherwise list every batch. Applied to every route
    once, as an application dependency (app.py)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema:
        return
    known = declared_query_parameters(route)
    for name in request.query_params:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        takes = f"it takes {', '.join(known)}" if known else "it takes none"
        raise AppError(
            f"Unknown query parameter '{name}'{hint} for {request.method} {route.path}; {takes}",
            422,
        )


# --- uploads ------------------------------------------------------------------------------


class RequestTooLarge(AppError):
    status_code = 413


def request_too_large(size: int | None, *, max_upload_bytes: int) -> RequestTooLarge:
    # The limit named is the files' (REQUEST_SIZE_FACTOR x MAX_UPLOAD_MB, as the README
    # says); the form's framing allowance on top of it is ours, not the user's to plan for.
    factor = validate.REQUEST_SIZE_FACTOR
    files = factor * max_upload_bytes
    what = f"This upload is {format_size(size)}, more than" if size else "This upload is over"
    return RequestTooLarge(
        f"{what} the {format_size(files)} one request may carry ({factor} "
        f"× MAX_UPLOAD_MB; each file may be up to {format_size(max_upload_bytes)}). Send the "
        "documents in several smaller requests: POST /api/jobs/{id}/submissions adds more "
        "to a job."
    )


class UploadRoute(APIRoute):
    """Refuses a request body bigger than uploads may be with a 413 and a message saying
    so: at once from Content-Length, else as soon as the bytes received pass the limit,
    before the form is parsed and its files spooled to disk. The request guard leaves
    such routes' bodies to this limit (`own_body_limit`) instead of its smaller one."""

    own_body_limit = True

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            max_upload = app_settings(request).max_upload_bytes
            limit = request_limit_bytes(max_upload)
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise request_too_large(int(declared), max_upload_bytes=max_upload)
            receive, received = request.receive, 0

            async def counted() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        # Raised inside FastAPI's form parsing, which passes an
                        # HTTPException through (and turns anything else into a 400).
                        error = request_too_large(None, max_upload_bytes=max_upload)
                        raise HTTPException(413, detail=error.message)
                return message

            # Each upload may spool hundreds of MB: a bounded number at once (security.py).
            slots = request.app.state.upload_slots
            slots.acquire()
            try:
                return await handler(Request(request.scope, counted))
            finally:
                slots.release()

        return limited
