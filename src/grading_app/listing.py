"""The one filter-sort-paginate helper every list uses (STYLE 13).

A list is a set of conditions on one table, a sort order and a page. `list_page` counts
what the conditions match and reads one page of it in two steps: first the page's ids,
ordered and offset through an index on the sort key (a narrow read, cheap even at offset
9,000), then the rows of those ids only. Reading whole rows while skipping the offset
would read every skipped row (a batch row carries its prompt and settings).

The order always ends with the id, in the sort's direction, so rows that tie on the
sort key keep one order from page to page: pages neither overlap nor skip.

The library's items and the templates are listed alike (`catalogue_where`, `by_name`):
found by a text in their name, description or category, filtered by category, by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import QueryableAttribute, Session

RowT = TypeVar("RowT")


@dataclass(frozen=True)
class SortKey:
    """One column of a sort order. `nulls_last`: rows without a value come last in both
    directions (a batch without a deadline after those with one), the same on SQLite
    and PostgreSQL, which otherwise put NULLs at opposite ends."""

    column: sa.ColumnElement[Any] | QueryableAttribute[Any]
    nulls_last: bool = False

    def ordered(self, descending: bool) -> sa.ColumnElement[Any]:
        ordered = self.column.desc() if descending else self.column.asc()
        return ordered.nulls_last() if self.nulls_last else ordered


@dataclass(frozen=True)
class Sort:
    keys: tuple[SortKey, ...]
    descending: bool

    def order_by(self, row_id: sa.ColumnElement[Any]) -> list[sa.ColumnElement[Any]]:
        """The keys, then the id as the tie-break, all in the sort's direction."""
        tie_break = row_id.desc() if self.descending else row_id.asc()
        return [*(key.ordered(self.descending) for key in self.keys), tie_break]


def list_page(
    session: Session,
    entity: type[RowT],
    *,
    where: Sequence[sa.ColumnElement[bool]],
    sort: Sort,
    limit: int,
    offset: int,
    options: Sequence[Any] = (),
) -> tuple[int, list[RowT]]:
    """How many rows of `entity` match `where`, and the page of them at `offset`."""
    table_id: sa.ColumnElement[Any] = entity.id  # type: ignore[attr-defined]
    total = session.execute(
        sa.select(sa.func.count()).select_from(entity).where(*where)
    ).scalar_one()
    if offset >= total:
        return total, []
    ids = list(
        session.scalars(
            sa.select(table_id)
            .where(*where)
            .order_by(*sort.order_by(table_id))
            .limit(limit)
            .offset(offset)
        )
    )
    if not ids:
        return total, []
    rows = session.scalars(sa.select(entity).where(table_id.in_(ids)).options(*options)).all()
    by_id = {row.id: row for row in rows}  # type: ignore[attr-defined]
    return total, [by_id[row_id] for row_id in ids if row_id in by_id]


def matching_ids(
    session: Session,
    entity: type[Any],
    *,
    where: Sequence[sa.ColumnElement[bool]],
    sort: Sort,
    limit: int,
) -> list[str]:
    """The ids of the first `limit` rows matching `where`, in `sort` order."""
    table_id: sa.ColumnElement[Any] = entity.id
    statement = sa.select(table_id).where(*where).order_by(*sort.order_by(table_id))
    return list(session.scalars(statement.limit(limit)))


def catalogue_where(
    entity: Any, *, q: str | None, category: str | None
) -> list[sa.ColumnElement[bool]]:
    """The conditions of a list of named things with a description and a category
    (saved prompts, marking schemes, templates): `q` in any of the three, and the
    category, both in any case."""
    where: list[sa.ColumnElement[bool]] = []
    if q and q.strip():
        text = q.strip()
        where.append(
            sa.or_(
                entity.name.icontains(text, autoescape=True),
                entity.description.icontains(text, autoescape=True),
                entity.category.icontains(text, autoescape=True),
            )
        )
    if category is not None:
        where.append(sa.func.lower(entity.category) == category.strip().lower())
    return where


def by_name(entity: Any) -> Sort:
    """By name in any case (then id)."""
    return Sort(keys=(SortKey(sa.func.lower(entity.name)),), descending=False)
