"""The HTTP plumbing every router shares: database sessions, settings, paging.

A request opens one unit of work (`db.unit_of_work`): it commits when the route
returns and rolls back when it raises. Reads take a read-only session, which on SQLite
never queues for or holds the write lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from grading_app.config import Settings, get_settings
from grading_app.db import unit_of_work

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


class ErrorOut(BaseModel):
    """Every error the API answers (4xx, 503): one sentence a person can act on."""

    detail: str
