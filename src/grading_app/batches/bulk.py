"""One action on many batches: `POST /api/batches/bulk`.

The batches are named by id or selected with the list's filter (`BatchQuery`), at most
MAX_BATCHES a request. Each batch changes in a unit of work of its own, so it changes
atomically and one batch's refusal (the action's 409, a 400 for a bad tag) leaves the
others done; the answer says, per batch, done or skipped and why.

A dry run goes through the very same steps in a transaction that is rolled back, so it
says exactly what the action would do and changes nothing. (For `resume` it checks the
batch's status only: resuming also reads the files of documents an earlier release
left ungraded, which a dry run does not.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from grading_app.accounts import access, audit
from grading_app.accounts.principal import Principal
from grading_app.batches import queries, removal, service
from grading_app.batches.schemas import BatchUpdate, BulkItemOut, BulkOut, BulkRequest
from grading_app.db import database_error_reason, unit_of_work
from grading_app.documents.storage import remove_stored_files
from grading_app.errors import AppError, BadRequest
from grading_app.fields import clean_tags
from grading_app.jobs import legacy
from grading_app.lifecycle import service as lifecycle
from grading_app.models import JobBatch

MAX_BATCHES = 1000
TAG_ACTIONS = ("add_tags", "remove_tags")


@dataclass(frozen=True)
class Storage:
    """Where the documents' files are: resume reads them, delete removes them."""

    upload_dir: Path
    max_bytes: int


def run_bulk(
    sessions: sessionmaker[Session],
    *,
    request: BulkRequest,
    storage: Storage,
    principal: Principal,
) -> BulkOut:
    """`principal` acts on the batches they may change (delete: those they own); a
    batch they may not see is skipped as not found, exactly like one that does not exist."""
    tags = _check_request(request)
    ids = _batch_ids(sessions, request, principal)
    results = [
        _one(sessions, request, batch_id, tags=tags, storage=storage, principal=principal)
        for batch_id in ids
    ]
    done = sum(result.outcome == "done" for result in results)
    return BulkOut(
        action=request.action,
        dry_run=request.dry_run,
        matched=len(ids),
        done=done,
        skipped=len(results) - done,
        results=results,
    )


def _check_request(request: BulkRequest) -> list[str]:
    """The request as a whole: what to act on and the action's own value. Returns the
    tags (cleaned) for the tag actions."""
    if (request.ids is None) == (request.filter is None):
        raise BadRequest("Give the batches either by `ids` or by `filter` (one of the two)")
    if request.ids is not None and not request.ids:
        raise BadRequest("`ids` is empty: name at least one batch")
    if request.ids is not None and len(set(request.ids)) > MAX_BATCHES:
        raise BadRequest(
            f"{len(set(request.ids))} batches in one request; at most {MAX_BATCHES}. Send "
            "them in several requests"
        )
    if request.action in TAG_ACTIONS:
        if not request.tags:
            raise BadRequest(f"{request.action} needs `tags`: the tags to add or remove")
        tags = clean_tags(request.tags)
    elif request.tags is not None:
        raise BadRequest(f"`tags` goes with add_tags and remove_tags, not {request.action}")
    else:
        tags = []
    if request.action == "set_priority":
        if request.priority is None:
            raise BadRequest("set_priority needs `priority`, from 1 to 10")
        service.check_priority(request.priority)
    elif request.priority is not None:
        raise BadRequest(f"`priority` goes with set_priority, not {request.action}")
    return tags


def _batch_ids(
    sessions: sessionmaker[Session], request: BulkRequest, principal: Principal
) -> list[str]:
    if request.ids is not None:
        return list(dict.fromkeys(request.ids))
    assert request.filter is not None
    with unit_of_work(sessions, read_only=True) as session:
        ids = queries.batch_ids(
            session,
            query=request.filter,
            limit=MAX_BATCHES + 1,
            visible=access.batch_visible(principal),
        )
    if len(ids) > MAX_BATCHES:
        raise BadRequest(
            f"The filter matches more than {MAX_BATCHES} batches; one request acts on at most "
            f"{MAX_BATCHES}. Narrow the filter, or send the batches by `ids` in several requests"
        )
    return ids


def _one(
    sessions: sessionmaker[Session],
    request: BulkRequest,
    batch_id: str,
    *,
    tags: list[str],
    storage: Storage,
    principal: Principal,
) -> BulkItemOut:
    files: list[str] = []
    path = "/api/batches/{batch_id}" if request.action == "delete" else "/api/batches/bulk"
    method = "DELETE" if request.action == "delete" else "POST"
    try:
        with unit_of_work(sessions, read_only=True) as session:
            access.check_path_access(session, principal, method, path, {"batch_id": batch_id})
    except AppError as exc:
        visible = exc.status_code != 404
        name, status = _now(sessions, batch_id) if visible else (None, None)
        return BulkItemOut(
            id=batch_id, batch_name=name, outcome="skipped", reason=exc.message, status=status
        )
    try:
        if request.action == "resume" and not request.dry_run:
            # Through the same path as the single resume: it queues the work an earlier
            # release left unfinished, reading its files between two transactions.
            legacy.resume_batch(
                sessions,
                batch_id=batch_id,
                upload_dir=storage.upload_dir,
                max_bytes=storage.max_bytes,
            )
            name, status = _now(sessions, batch_id)
            with unit_of_work(sessions) as session:
                audit.record(session, principal, "resume", "batch", batch_id, bulk=True)
        else:
            with _transaction(sessions, keep=not request.dry_run) as session:
                name, status, files = _apply(session, request, batch_id, tags)
                audit.record(
                    session,
                    principal,
                    request.action.replace("-", "_"),
                    "batch",
                    batch_id,
                    bulk=True,
                )
    except (AppError, OperationalError) as exc:
        reason = exc.message if isinstance(exc, AppError) else _database_reason(exc)
        name, status = _now(sessions, batch_id)
        return BulkItemOut(
            id=batch_id, batch_name=name, outcome="skipped", reason=reason, status=status
        )
    if not request.dry_run:  # committed: the rows naming these files are gone
        remove_stored_files(files, upload_dir=storage.upload_dir)
    return BulkItemOut(id=batch_id, batch_name=name, outcome="done", reason=None, status=status)


def _apply(
    session: Session, request: BulkRequest, batch_id: str, tags: list[str]
) -> tuple[str, str | None, list[str]]:
    """Act on one batch; its name, status after, and the files to remove once the
    transaction has committed."""
    action = request.action
    if action == "delete":
        deleted = removal.delete_batch(session, batch_id=batch_id)
        return deleted.batch_name, None, deleted.files
    simple: dict[str, Callable[..., object]] = {
        "start": lifecycle.start_batch,
        "pause": lifecycle.pause_batch,
        "resume": lifecycle.resume_batch,  # a dry run's; see the module's docstring
        "cancel": lifecycle.cancel_batch,
        "retry-failed": lifecycle.retry_failed_batch,
        "archive": lifecycle.archive_batch,
    }
    if action in simple:
        simple[action](session, batch_id=batch_id)
    elif action == "add_tags":
        service.change_tags(session, batch_id=batch_id, add=tags)
    elif action == "remove_tags":
        service.change_tags(session, batch_id=batch_id, remove=tags)
    elif action == "set_priority":
        changes = BatchUpdate(priority=request.priority)
        service.update_batch(session, batch_id=batch_id, changes=changes)
    batch = lifecycle.get_batch(session, batch_id=batch_id)
    session.refresh(batch)  # actions move counters and statuses in SQL too
    return batch.batch_name, batch.status, []


@contextmanager
def _transaction(sessions: sessionmaker[Session], *, keep: bool) -> Iterator[Session]:
    """A unit of work that commits (`keep`), or is rolled back whatever happens."""
    if keep:
        with unit_of_work(sessions) as session:
            yield session
        return
    session = sessions()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def _now(sessions: sessionmaker[Session], batch_id: str) -> tuple[str | None, str | None]:
    """The batch's name and status as they now stand (none: it does not exist)."""
    with unit_of_work(sessions, read_only=True) as session:
        batch = session.get(JobBatch, batch_id)
        return (batch.batch_name, batch.status) if batch else (None, None)


def _database_reason(exc: OperationalError) -> str:
    reason = database_error_reason(exc)
    return f"the database could not complete it ({reason}); nothing changed for it, try again"
