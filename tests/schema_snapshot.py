"""Schema and data snapshots, to prove "no drift" and "nothing changed"."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def schema_snapshot(url: str, *, leave_out: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Tables, columns (type, nullability, server default), keys and indexes, in
    comparable form.

    Indexes named in `leave_out` are left out.
    Constraint names are compared on PostgreSQL only: SQLite does not keep names for the
    unnamed constraints that create_all() wrote, so there only their shape counts.
    """
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        named = engine.dialect.name == "postgresql"
        snapshot: dict[str, Any] = {}
        for table in sorted(inspector.get_table_names()):
            if table == "alembic_version":
                continue
            columns = {
                column["name"]: (
                    _type_name(column["type"], engine.dialect),
                    column["nullable"],
                    _default(column.get("default")),
                )
                for column in inspector.get_columns(table)
            }
            foreign_keys = sorted(
                (
                    fk["name"] if named else None,
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    ((fk.get("options") or {}).get("ondelete") or "").upper() or None,
                )
                for fk in inspector.get_foreign_keys(table)
            )
            indexes = sorted(
                (index["name"], tuple(index["column_names"]), bool(index["unique"]))
                for index in inspector.get_indexes(table)
                if index["name"] not in leave_out
            )
            uniques = sorted(
                (u["name"] if named else None, tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            )
            pk = inspector.get_pk_constraint(table)
            snapshot[table] = {
                "columns": columns,
                "primary_key": (
                    pk.get("name") if named else None,
                    tuple(pk["constrained_columns"]),
                ),
                "foreign_keys": foreign_keys,
                "indexes": indexes,
                "unique": uniques,
            }
        return snapshot
    finally:
        engine.dispose()


def _default(text: str | None) -> str | None:
    """A server default as written in the DDL, without the quotes and casts the two
    databases add on reflection ('5' and 5, 'queued'::character varying and 'queued')."""
    if text is None:
        return None
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    text = text.split("::", 1)[0]
    return text.strip("'").lower()


def _type_name(type_: Any, dialect: sa.Dialect) -> str:
    return type_.compile(dialect=dialect).upper()


def data_snapshot(url: str, *, exclude: dict[str, set[str]] | None = None) -> dict[str, list]:
    """Every row of every table, as raw values read with plain SQL (no JSON decoding),
    sorted; `exclude` leaves out columns that are meant to change."""
    exclude = exclude or {}
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        result: dict[str, list] = {}
        with engine.connect() as connection:
            for table in sorted(inspector.get_table_names()):
                names = [
                    c["name"]
                    for c in inspector.get_columns(table)
                    if c["name"] not in exclude.get(table, set())
                ]
                quoted = ", ".join(f'"{n}"' for n in names)
                # ::text on PostgreSQL keeps JSON as the exact text stored.
                if engine.dialect.name == "postgresql":
                    quoted = ", ".join(f'"{n}"::text' for n in names)
                rows = connection.exec_driver_sql(f'SELECT {quoted} FROM "{table}"').all()
                result[table] = sorted(tuple(str(v) for v in row) for row in rows)
        return result
    finally:
        engine.dispose()


def legacy_columns_snapshot(url: str, columns: dict[str, list[str]]) -> dict[str, list]:
    """The rows of the given legacy columns only (what must survive an upgrade)."""
    engine = sa.create_engine(url)
    try:
        result: dict[str, list] = {}
        with engine.connect() as connection:
            for table, names in columns.items():
                cast = "::text" if engine.dialect.name == "postgresql" else ""
                quoted = ", ".join(f'"{n}"{cast}' for n in names)
                rows = connection.exec_driver_sql(f'SELECT {quoted} FROM "{table}"').all()
                result[table] = sorted(tuple(str(v) for v in row) for row in rows)
        return result
    finally:
        engine.dispose()
