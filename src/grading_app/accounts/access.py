"""Who may see and change what.

- A batch: its owner and administrators may do anything; a user it is shared with may
  view it, or also change it (start, pause, edit, add documents...) with an `edit`
  share. Deleting it and managing its shares is for its owner (and administrators).
  Its jobs and documents follow it; a job without a batch (the legacy single-job
  workflow) has its own owner.
- A template or library item: its owner and administrators may change it; everyone may
  see and use it when it is public (the system's default templates always are).
- An item someone may not see does not exist for them: 404, never 403, so ids do not
  leak. 403 is for an item they may see but not change.

`guard_path` applies this to every route from its path parameters, so a route cannot
forget it; lists and bulk operations filter with the `*_visible` conditions.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.orm import Session

from grading_app.accounts.auth import authenticate
from grading_app.accounts.principal import Principal
from grading_app.db import unit_of_work
from grading_app.errors import Forbidden, NotFound
from grading_app.models import (
    BatchShare,
    BatchTemplate,
    GradingJob,
    JobBatch,
    SavedMarkingScheme,
    SavedPrompt,
    Submission,
    WorkItem,
)

SYSTEM_CREATOR = "system"


class Level(IntEnum):
    VIEW = 1
    EDIT = 2
    OWN = 3


SHARE_LEVELS = {"view": Level.VIEW, "edit": Level.EDIT}


# --- SQL conditions for lists ---------------------------------------------------------


def batch_visible(principal: Principal) -> sa.ColumnElement[bool] | None:
    """Batches `principal` may see; None when they see every one (administrators)."""
    if principal.is_admin:
        return None
    shared = sa.select(BatchShare.batch_id).where(BatchShare.user_id == principal.user_id)
    return sa.or_(JobBatch.owner_id == principal.user_id, JobBatch.id.in_(shared))


def batch_ids_visible(principal: Principal) -> sa.CompoundSelect | None:
    """The ids of the batches `principal` may see, as a subquery: owned ones and shared
    ones read from their two indexes (in one condition, the OR makes the database read
    every batch)."""
    if principal.is_admin:
        return None
    return sa.union(
        sa.select(JobBatch.id).where(JobBatch.owner_id == principal.user_id),
        sa.select(BatchShare.batch_id).where(BatchShare.user_id == principal.user_id),
    )


def job_visible(principal: Principal) -> sa.ColumnElement[bool] | None:
    batches = batch_ids_visible(principal)
    if batches is None:
        return None
    return sa.or_(
        GradingJob.batch_id.in_(batches),
        sa.and_(GradingJob.batch_id.is_(None), GradingJob.owner_id == principal.user_id),
    )


def item_visible(principal: Principal) -> sa.ColumnElement[bool] | None:
    """Work items of the jobs `principal` may see, told from the item's own columns
    (its batch, or its job when it has none) without reading its job."""
    batches = batch_ids_visible(principal)
    if batches is None:
        return None
    own_jobs = sa.select(GradingJob.id).where(
        GradingJob.batch_id.is_(None), GradingJob.owner_id == principal.user_id
    )
    return sa.or_(
        WorkItem.batch_id.in_(batches),
        sa.and_(WorkItem.batch_id.is_(None), WorkItem.job_id.in_(own_jobs)),
    )


def template_visible(principal: Principal) -> sa.ColumnElement[bool] | None:
    if principal.is_admin:
        return None
    return sa.or_(
        BatchTemplate.owner_id == principal.user_id,
        BatchTemplate.is_public.is_(True),
        BatchTemplate.created_by == SYSTEM_CREATOR,
    )


def library_visible(
    principal: Principal, model: type[SavedPrompt] | type[SavedMarkingScheme]
) -> sa.ColumnElement[bool] | None:
    if principal.is_admin:
        return None
    return sa.or_(model.owner_id == principal.user_id, model.is_public.is_(True))


def where(condition: sa.ColumnElement[bool] | None) -> list[sa.ColumnElement[bool]]:
    """A condition as a list to extend a query's conditions with (empty: no limit)."""
    return [] if condition is None else [condition]


# --- one item -------------------------------------------------------------------------


def batch_level(session: Session, principal: Principal, batch_id: str) -> Level | None:
    """What `principal` may do to the batch; None if it does not exist for them."""
    owner = session.execute(sa.select(JobBatch.owner_id).where(JobBatch.id == batch_id)).first()
    if owner is None:
        return None
    if principal.is_admin or (owner[0] is not None and owner[0] == principal.user_id):
        return Level.OWN
    permission = session.scalar(
        sa.select(BatchShare.permission).where(
            BatchShare.batch_id == batch_id, BatchShare.user_id == principal.user_id
        )
    )
    return SHARE_LEVELS.get(permission or "")


def job_level(session: Session, principal: Principal, job_id: str) -> Level | None:
    row = session.execute(
        sa.select(GradingJob.batch_id, GradingJob.owner_id).where(GradingJob.id == job_id)
    ).first()
    if row is None:
        return None
    if row.batch_id is not None:
        return batch_level(session, principal, row.batch_id)
    if principal.is_admin or (row.owner_id is not None and row.owner_id == principal.user_id):
        return Level.OWN
    return None


def submission_level(session: Session, principal: Principal, submission_id: str) -> Level | None:
    job_id = session.scalar(sa.select(Submission.job_id).where(Submission.id == submission_id))
    return None if job_id is None else job_level(session, principal, job_id)


def template_level(session: Session, principal: Principal, template_id: str) -> Level | None:
    row = session.execute(
        sa.select(BatchTemplate.owner_id, BatchTemplate.is_public, BatchTemplate.created_by).where(
            BatchTemplate.id == template_id
        )
    ).first()
    if row is None:
        return None
    if principal.is_admin or (row.owner_id is not None and row.owner_id == principal.user_id):
        return Level.OWN
    if row.is_public or row.created_by == SYSTEM_CREATOR:
        return Level.VIEW
    return None


def _library_level(
    model: type[SavedPrompt] | type[SavedMarkingScheme],
) -> Callable[[Session, Principal, str], Level | None]:
    def level(session: Session, principal: Principal, item_id: str) -> Level | None:
        row = session.execute(
            sa.select(model.owner_id, model.is_public).where(model.id == item_id)
        ).first()
        if row is None:
            return None
        if principal.is_admin or (row.owner_id is not None and row.owner_id == principal.user_id):
            return Level.OWN
        return Level.VIEW if row.is_public else None

    return level


prompt_level = _library_level(SavedPrompt)
scheme_level = _library_level(SavedMarkingScheme)


# --- the guard every protected route runs -----------------------------------------------

# Path parameter -> (what its id names, in the services' own not-found words; its level).
PATH_ITEMS: dict[str, tuple[str, Callable[[Session, Principal, str], Level | None]]] = {
    "batch_id": ("batch", batch_level),
    "job_id": ("grading job", job_level),
    "submission_id": ("document", submission_level),
    "template_id": ("batch template", template_level),
    "prompt_id": ("saved prompt", prompt_level),
    "scheme_id": ("saved marking scheme", scheme_level),
}
# Writes that only read the item named in the path (they make a new one of one's own).
READING_WRITES = frozenset(
    {
        ("POST", "/api/batches/{batch_id}/duplicate"),
        ("POST", "/api/templates/{template_id}/duplicate"),
    }
)
# What only the batch's owner (or an administrator) may do.
OWNER_ONLY = frozenset(
    {
        ("DELETE", "/api/batches/{batch_id}"),
        ("POST", "/api/batches/{batch_id}/shares"),
        ("DELETE", "/api/batches/{batch_id}/shares/{username}"),
    }
)
_ACTIONS = {Level.VIEW: "view", Level.EDIT: "change", Level.OWN: "do this to"}


def needed_level(method: str, path: str) -> Level:
    if (method, path) in OWNER_ONLY:
        return Level.OWN
    if method in ("GET", "HEAD", "OPTIONS") or (method, path) in READING_WRITES:
        return Level.VIEW
    return Level.EDIT


def check_path_access(
    session: Session, principal: Principal, method: str, path: str, params: dict[str, str]
) -> None:
    """404 for an item of the path that `principal` may not see; 403 for one they may see
    but not act on as the method asks."""
    for name, (what, level_of) in PATH_ITEMS.items():
        item_id = params.get(name)
        if item_id is None:
            continue
        level = level_of(session, principal, item_id)
        if level is None:
            raise NotFound(f"No {what} with id {item_id}")
        need = needed_level(method, path)
        if level < need:
            how = "its owner" if need == Level.OWN else "an edit share"
            raise Forbidden(
                f"You may only view this {what}; to {_ACTIONS[need]} it you need {how}"
                if level == Level.VIEW
                else f"Only the {what}'s owner (or an administrator) can do this"
            )


def check_references(
    session: Session,
    principal: Principal,
    *,
    batch_id: str | None = None,
    template_id: str | None = None,
    prompt_id: str | None = None,
    scheme_id: str | None = None,
) -> None:
    """Items a request body names (a template to start from, a saved prompt to use) must
    be ones the principal may see: 404 otherwise, as if they did not exist."""
    named = {
        "batch_id": batch_id,
        "template_id": template_id,
        "prompt_id": prompt_id,
        "scheme_id": scheme_id,
    }
    for name, item_id in named.items():
        if item_id is None:
            continue
        what, level_of = PATH_ITEMS[name]
        if level_of(session, principal, item_id) is None:
            raise NotFound(f"No {what} with id {item_id}")


def owner_id_for(session: Session, principal: Principal) -> str | None:
    """Who owns what `principal` creates: themselves; for the command line (no account),
    the first administrator (None before one exists: they adopt it when created)."""
    if principal.user_id is not None:
        return principal.user_id
    from grading_app.accounts.users import first_admin_id

    return first_admin_id(session)


def guard_path(request: Request) -> None:
    """The route dependency: `authenticate` has run (it is listed before this one)."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    if not any(name in request.path_params for name in PATH_ITEMS):
        return
    principal = authenticate(request)
    with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
        check_path_access(session, principal, request.method, path, dict(request.path_params))
