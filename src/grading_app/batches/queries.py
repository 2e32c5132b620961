"""Which batches a list or a bulk operation means: `BatchQuery` as SQL conditions and a
sort order, read through `listing.list_page`.

Tags are a JSON array in a JSON column (TEXT on SQLite, json on PostgreSQL), and rows of
earlier releases may hold NULL, JSON null, a JSON string or, on SQLite, text that is not
JSON at all. A tag matches an element of the array exactly; anything that is not an
array matches no tag and never raises (each database's JSON functions raise on some of
those values, so a CASE tests the value before they see it). The tag filter reads every
row the other conditions leave (no index: a json column has no btree operator class),
about 10 ms at 10,000 batches.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from grading_app.accounts import access
from grading_app.batches.schemas import BatchQuery
from grading_app.fields import naive_utc
from grading_app.listing import Sort, SortKey, list_page, matching_ids
from grading_app.models import BatchStatus, JobBatch

# Every sort key has an index ending with the id (models/batches.py, migration 0007).
SORT_KEYS: dict[str, tuple[SortKey, ...]] = {
    "priority": (SortKey(JobBatch.priority), SortKey(JobBatch.created_at)),
    "created_at": (SortKey(JobBatch.created_at),),
    "updated_at": (SortKey(JobBatch.updated_at),),
    "deadline": (SortKey(JobBatch.deadline, nulls_last=True),),
    "started_at": (SortKey(JobBatch.started_at, nulls_last=True),),
    "completed_at": (SortKey(JobBatch.completed_at, nulls_last=True),),
    "name": (SortKey(JobBatch.batch_name),),
    "status": (SortKey(JobBatch.status),),
}
ASCENDING_BY_DEFAULT = frozenset({"name", "status"})
MAX_SEARCH_WORDS = 10
_RANGES = (
    (JobBatch.created_at, "created_from", "created_to"),
    (JobBatch.deadline, "deadline_from", "deadline_to"),
    (JobBatch.started_at, "started_from", "started_to"),
    (JobBatch.completed_at, "completed_from", "completed_to"),
)


def batch_sort(query: BatchQuery) -> Sort:
    key = query.sort or "priority"
    order = query.order or ("asc" if key in ASCENDING_BY_DEFAULT else "desc")
    return Sort(SORT_KEYS[key], descending=order == "desc")


def batch_conditions(query: BatchQuery, *, dialect: str) -> list[sa.ColumnElement[bool]]:
    """The query's filters as SQL conditions, all of which must hold."""
    where: list[sa.ColumnElement[bool]] = []
    if query.status:
        where.append(JobBatch.status.in_([status.value for status in query.status]))
    else:
        where.append(
            sa.or_(JobBatch.status.is_(None), JobBatch.status != BatchStatus.ARCHIVED.value)
        )
    if query.priority_min is not None:
        where.append(JobBatch.priority >= query.priority_min)
    if query.priority_max is not None:
        where.append(JobBatch.priority <= query.priority_max)
    for column, low, high in _RANGES:
        start, end = naive_utc(getattr(query, low)), naive_utc(getattr(query, high))
        if start is not None:
            where.append(column >= start)
        if end is not None:
            where.append(column <= end)
    if query.template_id is not None:
        where.append(JobBatch.template_id == query.template_id)
    if query.created_by is not None:
        where.append(JobBatch.created_by == query.created_by)
    if query.tag:
        where.append(_has_tags(query.tag, every=query.tags_match == "all", dialect=dialect))
    if query.q:
        where.extend(_search(query.q))
    return where


def list_batches(
    session: Session,
    *,
    query: BatchQuery,
    limit: int,
    offset: int,
    visible: sa.ColumnElement[bool] | None = None,
) -> tuple[int, list[JobBatch]]:
    """A page of the batches the query selects among those `visible` (None: all)."""
    return list_page(
        session,
        JobBatch,
        where=[*batch_conditions(query, dialect=_dialect(session)), *access.where(visible)],
        sort=batch_sort(query),
        limit=limit,
        offset=offset,
    )


def batch_ids(
    session: Session,
    *,
    query: BatchQuery,
    limit: int,
    visible: sa.ColumnElement[bool] | None = None,
) -> list[str]:
    """The ids of up to `limit` batches the query selects (among those `visible`), in
    its order."""
    return matching_ids(
        session,
        JobBatch,
        where=[*batch_conditions(query, dialect=_dialect(session)), *access.where(visible)],
        sort=batch_sort(query),
        limit=limit,
    )


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _has_tags(tags: list[str], *, every: bool, dialect: str) -> sa.ColumnElement[bool]:
    wanted = list(dict.fromkeys(tags))
    exact = _tag_elements(wanted, every=every, dialect=dialect)
    # A cheap test of the stored text first: the JSON functions then run only on rows
    # whose text holds the tag as a JSON string (a third of the cost at 10,000 batches).
    spelled = [_spelled_in_json(tag) for tag in wanted]
    known = [condition for condition in spelled if condition is not None]
    if every:
        return sa.and_(*known, exact)
    if len(known) < len(spelled):  # one tag only the exact test can find
        return exact
    return sa.and_(sa.or_(*known), exact)


def _spelled_in_json(tag: str) -> sa.ColumnElement[bool] | None:
    """The stored text holds `tag` as a JSON string, written with or without \\u
    escapes; None for a tag that a writer may escape otherwise (quotes, slashes,
    control characters), which only the exact test can find."""
    if any(char in '"\\/' or ord(char) < 32 for char in tag):
        return None
    text = sa.cast(JobBatch.tags, sa.Text)
    forms = sorted({json.dumps(tag), json.dumps(tag, ensure_ascii=False)})
    return sa.or_(*(text.like(_contains(form), escape="\\") for form in forms))


def _tag_elements(wanted: list[str], *, every: bool, dialect: str) -> sa.ColumnElement[bool]:
    """Tags that are elements of the stored array (exactly); never raises."""
    if dialect == "postgresql":
        as_jsonb = sa.cast(JobBatch.tags, postgresql.JSONB)

        def contains(*values: str) -> sa.ColumnElement[bool]:
            elements = sa.func.jsonb_build_array(*(sa.cast(v, sa.Text) for v in values))
            return as_jsonb.op("@>", return_type=sa.Boolean)(elements)

        matched = contains(*wanted) if every else sa.or_(*(contains(tag) for tag in wanted))
        return sa.case((sa.func.json_typeof(JobBatch.tags) == "array", matched), else_=sa.false())

    def element_in(values: list[str]) -> sa.ColumnElement[bool]:
        elements = sa.func.json_each(JobBatch.tags).table_valued("value", "type").alias("tag")
        return (
            sa.select(sa.literal(1))
            .select_from(elements)
            .where(elements.c.type == "text", elements.c.value.in_(values))
            .exists()
        )

    matched = sa.and_(*(element_in([tag]) for tag in wanted)) if every else element_in(wanted)
    # json_each raises on text that is not JSON: json_valid is asked first, and json_type
    # leaves out a JSON object (whose values json_each would list) or a lone string.
    return sa.case(
        (sa.func.coalesce(sa.func.json_valid(JobBatch.tags), 0) == 0, sa.false()),
        (sa.func.json_type(JobBatch.tags) != "array", sa.false()),
        else_=matched,
    )


def searchable_text() -> sa.ColumnElement[str]:
    """A batch's name, description and tags as one lower-case text. Spelled exactly as
    the trigram index of migration 0010 (constants inline, not bound parameters), so
    PostgreSQL answers a search from that index. A search word holds no whitespace, so
    it cannot match across the spaces that join the columns."""
    space = sa.literal_column("' '", sa.Text)
    empty = sa.literal_column("''", sa.Text)
    return sa.func.lower(
        JobBatch.batch_name
        + space
        + sa.func.coalesce(JobBatch.description, empty)
        + space
        + sa.func.coalesce(sa.cast(JobBatch.tags, sa.Text), empty),
        type_=sa.Text,
    )


def _search(text: str) -> list[sa.ColumnElement[bool]]:
    """Every word of `text` in the name, the description or a tag, in any case."""
    searched = searchable_text()
    conditions = []
    for word in text.lower().split()[:MAX_SEARCH_WORDS]:
        # Tags are stored as JSON, which may spell a non-ASCII letter as \uXXXX.
        patterns = sorted({_contains(word), _contains(json.dumps(word)[1:-1])})
        conditions.append(sa.or_(*(searched.like(pattern, escape="\\") for pattern in patterns)))
    return conditions


def _contains(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
