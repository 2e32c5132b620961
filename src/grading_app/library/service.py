"""The library: saved prompts and saved marking schemes (legacy tables `saved_prompts`
and `saved_marking_schemes`, names and meanings kept), and their use by batches and jobs.

A batch or job made with a library item copies it: the prompt's text becomes its
prompt, the scheme becomes the job's own marking scheme (`marking_schemes` row, rubric
included), so editing the library later never changes work already queued. The
`saved_*_id` columns keep where it came from, and keep the item from being deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from grading_app.accounts import access, audit
from grading_app.accounts.principal import Principal
from grading_app.db import unit_of_work
from grading_app.errors import BadRequest, Conflict, NotFound
from grading_app.fields import check_name
from grading_app.library.schemas import (
    MarkingSchemeCreate,
    MarkingSchemeUpdate,
    PromptCreate,
    PromptUpdate,
)
from grading_app.library.scheme_files import SchemeFile
from grading_app.listing import by_name, catalogue_where, list_page
from grading_app.models import (
    GradingJob,
    JobBatch,
    MarkingScheme,
    SavedMarkingScheme,
    SavedPrompt,
    utcnow,
)

LibraryItem = TypeVar("LibraryItem", SavedPrompt, SavedMarkingScheme)
# How many users a refusal to delete names; the rest are counted.
NAMED_USERS = 5
# A file this application stored (documents/storage.py); an earlier release's names
# differ, and their files are left where they are.
STORED_NAME = re.compile(r"[0-9a-f]{32}\.(docx|pdf|txt|md)")


# --- shared -------------------------------------------------------------------------


def _get(session: Session, model: type[LibraryItem], item_id: str, what: str) -> LibraryItem:
    item = session.get(model, item_id)
    if item is None:
        raise NotFound(f"No {what} with id {item_id}")
    return item


def _page(
    session: Session,
    model: type[LibraryItem],
    *,
    q: str | None,
    category: str | None,
    limit: int,
    offset: int,
    visible: sa.ColumnElement[bool] | None = None,
) -> tuple[int, list[LibraryItem]]:
    """Items (among those `visible`; None: all) whose name, description or category
    holds `q` (any case), by name."""
    where = [] if visible is None else [visible]
    where += catalogue_where(model, q=q, category=category)
    return list_page(session, model, where=where, sort=by_name(model), limit=limit, offset=offset)


def _count_use(session: Session, model: type[LibraryItem], item_id: str) -> None:
    """One more use, in SQL so that concurrent uses all count (legacy rows: NULL is 0)."""
    session.execute(
        sa.update(model)
        .where(model.id == item_id)
        .values(usage_count=sa.func.coalesce(model.usage_count, 0) + 1, last_used=utcnow())
        .execution_options(synchronize_session="fetch")
    )


def _refuse_if_used(session: Session, item: LibraryItem, column: str, what: str) -> None:
    """A 409 naming the batches and jobs that were made with the item."""
    users = []
    for model, name_column, nouns in (
        (JobBatch, JobBatch.batch_name, ("batch", "batches")),
        (GradingJob, GradingJob.job_name, ("job", "jobs")),
    ):
        reference = getattr(model, column) == item.id
        count = session.execute(
            sa.select(sa.func.count()).select_from(model).where(reference)
        ).scalar_one()
        if not count:
            continue
        names = session.scalars(
            sa.select(name_column).where(reference).order_by(name_column).limit(NAMED_USERS)
        ).all()
        listed = ", ".join(f"'{name}'" for name in names)
        more = f" and {count - len(names)} more" if count > len(names) else ""
        users.append(f"{count} {nouns[count != 1]} ({listed}{more})")
    if users:
        raise Conflict(
            f"The {what} '{item.name}' is in use by {' and '.join(users)}, which refer to it "
            f"by id. It can be deleted once they are; until then it stays in the library."
        )


def _set_fields(item: Any, changes: dict[str, Any], *, what: str) -> None:
    for field, value in changes.items():
        if field == "name":
            value = check_name(value, what=what)
        elif field in ("description", "category") and value is not None:
            value = value.strip() or None
        setattr(item, field, value)


# --- saved prompts ------------------------------------------------------------------


def get_prompt(session: Session, *, prompt_id: str) -> SavedPrompt:
    return _get(session, SavedPrompt, prompt_id, "saved prompt")


def list_prompts(
    session: Session,
    *,
    q: str | None,
    category: str | None,
    limit: int,
    offset: int,
    visible: sa.ColumnElement[bool] | None = None,
) -> tuple[int, list[SavedPrompt]]:
    return _page(
        session, SavedPrompt, q=q, category=category, limit=limit, offset=offset, visible=visible
    )


def create_prompt(session: Session, *, data: PromptCreate, owner_id: str | None) -> SavedPrompt:
    prompt = SavedPrompt(usage_count=0, owner_id=owner_id)
    _set_fields(prompt, data.model_dump(), what="prompt")
    _check_prompt_text(prompt.prompt_text)
    session.add(prompt)
    session.flush()
    return prompt


def update_prompt(session: Session, *, prompt_id: str, data: PromptUpdate) -> SavedPrompt:
    prompt = get_prompt(session, prompt_id=prompt_id)
    changes = data.model_dump(exclude_unset=True)
    if "prompt_text" in changes:
        _check_prompt_text(changes["prompt_text"])
    _set_fields(prompt, changes, what="prompt")
    session.flush()
    return prompt


def _check_prompt_text(text: str | None) -> None:
    if not (text and text.strip()):
        raise BadRequest("The prompt's text (prompt_text) is empty")


def delete_prompt(session: Session, *, prompt_id: str) -> None:
    prompt = get_prompt(session, prompt_id=prompt_id)
    _refuse_if_used(session, prompt, "saved_prompt_id", "saved prompt")
    session.delete(prompt)
    session.flush()


def use_prompt(session: Session, *, prompt_id: str) -> SavedPrompt:
    """The prompt, counted as used once more (a batch or job is being made with it)."""
    prompt = get_prompt(session, prompt_id=prompt_id)
    _count_use(session, SavedPrompt, prompt_id)
    return prompt


# --- saved marking schemes ----------------------------------------------------------


def get_marking_scheme(session: Session, *, scheme_id: str) -> SavedMarkingScheme:
    return _get(session, SavedMarkingScheme, scheme_id, "saved marking scheme")


def list_marking_schemes(
    session: Session,
    *,
    q: str | None,
    category: str | None,
    limit: int,
    offset: int,
    visible: sa.ColumnElement[bool] | None = None,
) -> tuple[int, list[SavedMarkingScheme]]:
    return _page(
        session,
        SavedMarkingScheme,
        q=q,
        category=category,
        limit=limit,
        offset=offset,
        visible=visible,
    )


def create_marking_scheme(
    session: Session, *, data: MarkingSchemeCreate, owner_id: str | None
) -> SavedMarkingScheme:
    """A scheme written in the API (no file: `filename` and `original_filename`, NOT NULL
    in legacy databases, are empty)."""
    content = data.content if data.content and data.content.strip() else None
    scheme = SavedMarkingScheme(
        filename="",
        original_filename="",
        content=content or (data.rubric.describe() if data.rubric else None),
        rubric=data.rubric.stored() if data.rubric else None,
        usage_count=0,
        owner_id=owner_id,
        is_public=data.is_public,
    )
    _set_fields(scheme, data.model_dump(include={"name", "description", "category"}), what="scheme")
    session.add(scheme)
    session.flush()
    return scheme


def update_marking_scheme(
    session: Session, *, scheme_id: str, data: MarkingSchemeUpdate
) -> SavedMarkingScheme:
    scheme = get_marking_scheme(session, scheme_id=scheme_id)
    changes = data.model_dump(
        exclude_unset=True, include={"name", "description", "category", "is_public"}
    )
    _set_fields(scheme, changes, what="scheme")
    sent = data.model_fields_set
    if "rubric" in sent:
        scheme.rubric = data.rubric.stored() if data.rubric else None
    if "content" in sent:
        scheme.content = data.content if data.content and data.content.strip() else None
    elif "rubric" in sent and data.rubric is not None and not scheme.original_filename:
        scheme.content = data.rubric.describe()  # a written scheme's text is its rubric
    if not (scheme.content or scheme.rubric):
        raise BadRequest("A marking scheme needs its `content`, its `rubric`, or both")
    if sent & {"rubric", "content"}:
        scheme.content_hash = None  # no longer the file it was uploaded as
    session.flush()
    return scheme


def delete_marking_scheme(session: Session, *, scheme_id: str) -> str | None:
    """Deletes the row; returns its stored file's name when nothing else names it, for
    the caller to remove once the deletion is committed."""
    scheme = get_marking_scheme(session, scheme_id=scheme_id)
    _refuse_if_used(session, scheme, "saved_marking_scheme_id", "saved marking scheme")
    stored = scheme.filename if STORED_NAME.fullmatch(scheme.filename or "") else None
    session.delete(scheme)
    session.flush()
    if stored is None:
        return None
    shared = any(
        session.execute(sa.select(model.id).where(model.filename == stored).limit(1)).first()
        for model in (SavedMarkingScheme, MarkingScheme)
    )
    return None if shared else stored


def find_by_content_hash(
    session: Session, *, content_hash: str, owner_id: str | None
) -> SavedMarkingScheme | None:
    """The scheme `owner_id` made from the same file before (each owner has their own)."""
    owner = (
        SavedMarkingScheme.owner_id.is_(None)
        if owner_id is None
        else SavedMarkingScheme.owner_id == owner_id
    )
    return session.execute(
        sa.select(SavedMarkingScheme)
        .where(SavedMarkingScheme.content_hash == content_hash, owner)
        .limit(1)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class StoredScheme:
    scheme: SavedMarkingScheme
    reused: bool


def add_scheme_file(
    session: Session,
    *,
    upload: SchemeFile,
    name: str | None,
    description: str | None,
    category: str | None,
    owner_id: str | None,
) -> StoredScheme:
    """The library row of an uploaded file, or the row the same bytes made before (then
    nothing changes, and the caller removes its stored copy)."""
    existing = find_by_content_hash(session, content_hash=upload.content_hash, owner_id=owner_id)
    if existing is not None:
        return StoredScheme(existing, reused=True)
    scheme = SavedMarkingScheme(
        filename=upload.stored_filename,
        original_filename=upload.original_filename,
        file_size=upload.size_bytes,
        file_type=upload.file_type,
        content=upload.text,
        rubric=upload.rubric.stored() if upload.rubric else None,
        content_hash=upload.content_hash,
        usage_count=0,
        owner_id=owner_id,
    )
    fields = {"name": name or upload.title, "description": description, "category": category}
    _set_fields(scheme, fields, what="scheme")
    try:
        # A savepoint: the same file uploaded at the same moment (PostgreSQL) meets the
        # unique index, and that row is the answer.
        with session.begin_nested():
            session.add(scheme)
    except IntegrityError:
        existing = find_by_content_hash(
            session, content_hash=upload.content_hash, owner_id=owner_id
        )
        if existing is None:
            raise
        return StoredScheme(existing, reused=True)
    return StoredScheme(scheme, reused=False)


def save_scheme_file(
    sessions: sessionmaker[Session],
    *,
    upload: SchemeFile,
    name: str | None,
    description: str | None,
    category: str | None,
    is_public: bool,
    principal: Principal,
    upload_dir: Path,
) -> StoredScheme:
    """`add_scheme_file` in a transaction of its own, audited, for the API and the
    library page alike. The file `read_scheme_file` stored is removed again when no row
    comes to name it: the transaction failed, or the same bytes made a row before (that
    row is the answer, unchanged)."""
    stored_copy = upload_dir / upload.stored_filename
    try:
        with unit_of_work(sessions) as session:
            stored = add_scheme_file(
                session,
                upload=upload,
                name=name,
                description=description,
                category=category,
                owner_id=access.owner_id_for(session, principal),
            )
            if not stored.reused:
                stored.scheme.is_public = is_public
                audit.record(
                    session,
                    principal,
                    "create",
                    "marking_scheme",
                    stored.scheme.id,
                    name=stored.scheme.name,
                )
    except BaseException:
        stored_copy.unlink(missing_ok=True)
        raise
    if stored.reused:
        stored_copy.unlink(missing_ok=True)
    return stored


def use_marking_scheme(session: Session, *, scheme_id: str) -> SavedMarkingScheme:
    """The scheme, counted as used once more (a batch or job is being made with it)."""
    scheme = get_marking_scheme(session, scheme_id=scheme_id)
    _count_use(session, SavedMarkingScheme, scheme_id)
    return scheme


def copy_for_job(session: Session, *, scheme: SavedMarkingScheme) -> MarkingScheme:
    """The job's own marking scheme, a copy of the saved one (text and rubric). The file
    stays the library's: the copy names no stored file, so removing the job's files
    never removes it."""
    copy = MarkingScheme(
        name=scheme.name,
        description=scheme.description,
        filename="",
        original_filename=scheme.original_filename,
        file_size=scheme.file_size,
        file_type=scheme.file_type,
        content=scheme.content,
        rubric=scheme.rubric,
    )
    session.add(copy)
    session.flush()
    return copy
