"""Idempotent schema steps used by the revisions.

Databases created by earlier releases were never version-stamped, and users ran
ad-hoc scripts that added some columns and not others, so every step here looks at
what is there and does only what is missing. Each revision declares the tables as
they stand at that revision (frozen, not imported from the live models) and asks these
helpers to bring the database to them.

SQLite cannot drop NOT NULL or add a foreign key to an existing table, so those go
through Alembic's batch mode, which rebuilds the table (copy, drop, rename) inside the
caller's transaction; the upgrade runs with foreign keys off so the DROP of a parent
table neither fails nor cascades (https://www.sqlite.org/lang_altertable.html#otheralter).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op

from grading_app.migrations.report import current_reporter
from grading_app.migrations.search_index import drop_search_index_before_retyping


def _inspector() -> sa.Inspector:
    # A fresh inspector each time: the schema changes under us and inspectors cache.
    return sa.inspect(op.get_bind())


def is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


@contextmanager
def rebuilt_sqlite_table(name: str) -> Iterator[Any]:
    """Alembic's batch mode rebuilding `name` (copy, drop, rename), with every trigger
    of the database dropped before and made again after."""
    triggers = list(
        op.get_bind().exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND sql IS NOT NULL"
        )
    )
    for trigger, _ in triggers:
        op.execute(f'DROP TRIGGER IF EXISTS "{trigger}"')
    with op.batch_alter_table(name, recreate="always") as batch:
        yield batch
    for _, definition in triggers:
        op.execute(definition)


def table_exists(name: str) -> bool:
    return _inspector().has_table(name)


def existing_columns(table: str) -> dict[str, Any]:
    return {column["name"]: column for column in _inspector().get_columns(table)}


def ensure_table(table: sa.Table, *, label: str | None = None) -> bool:
    """Create the table (with its indexes) if it is missing; True if created."""
    report = current_reporter()
    label = label or f"table {table.name}"
    if table_exists(table.name):
        report.skip(f"{label} already exists")
        return False
    table.create(op.get_bind())
    report.change(f"Created {label}", plan=f"create {label}")
    return True


def ensure_columns(table: sa.Table, *, itemise_skips: bool = True) -> list[str]:
    """Add every column of `table` that the database table lacks; returns their names."""
    report = current_reporter()
    present = existing_columns(table.name)
    added = []
    for column in table.columns:
        qualified = f"{table.name}.{column.name}"
        if column.name in present:
            if itemise_skips:
                report.skip(f"Column {qualified} already exists")
            continue
        _add_column(table, column)
        added.append(column.name)
        report.change(f"Added column: {qualified}", plan=f"add column {qualified}")
    if not itemise_skips and not added:
        report.skip(f"{table.name} already has all {len(table.columns)} columns")
    return added


def _add_column(table: sa.Table, column: sa.Column) -> None:
    # A NOT NULL column can only be added with a default; ours all have one or are
    # nullable. Foreign keys are added by ensure_constraints, the same way for columns
    # that were already there and for columns added just now.
    server_default = column.server_default.arg if column.server_default else None  # type: ignore[attr-defined]
    op.add_column(
        table.name,
        sa.Column(
            column.name, column.type, nullable=column.nullable, server_default=server_default
        ),
    )


def conform_columns(table: sa.Table, names: Iterable[str] | None = None) -> None:
    """Give columns that already exist the type, NOT NULL and server default of `table`.

    A partly migrated database holds columns that an earlier script added its own way
    (`priority INTEGER` left NULL in old rows, `tags TEXT`). Differences are found with
    Alembic's own comparison, the one verification and `grading-app db check` use. Empty
    values of a column that must not be empty get the column's default first; then the
    column is altered (SQLite: one rebuild of the table in batch mode, inside the
    caller's transaction). Allowing NULL is left to `ensure_constraints`.
    """
    wanted = set(names) if names is not None else {column.name for column in table.columns}
    alters = [alter for alter in _column_differences(table) if alter.column_name in wanted]
    if not alters:
        return
    report = current_reporter()
    defaults = {name: info.get("default") for name, info in existing_columns(table.name).items()}
    done: dict[str, list[str]] = {alter.column_name: [] for alter in alters}
    if is_sqlite():
        for alter in alters:
            done[alter.column_name] += _fill_empty(table, alter)
        with rebuilt_sqlite_table(table.name) as batch:
            for alter in alters:
                batch.alter_column(alter.column_name, **_alter_arguments(table, alter))
                done[alter.column_name][:0] = _describe_alter(table, alter)
    else:
        for alter in alters:
            name = alter.column_name
            column = table.c[name]
            existing_type = alter.existing_type or column.type
            if alter.modify_type is not None:
                drop_search_index_before_retyping(table.name, name)
                if defaults.get(name) is not None:  # a default of the old type blocks the cast
                    op.alter_column(
                        table.name, name, existing_type=existing_type, server_default=None
                    )
                op.alter_column(
                    table.name,
                    name,
                    existing_type=existing_type,
                    type_=column.type,
                    postgresql_using=_pg_cast(name, existing_type, column.type),
                )
            filled = _fill_empty(table, alter)
            arguments = _alter_arguments(table, alter)
            arguments.pop("type_", None)
            if alter.modify_type is not None and defaults.get(name) is not None:
                arguments["server_default"] = _server_default(column)
            if len(arguments) > 1:
                op.alter_column(table.name, name, **{**arguments, "existing_type": column.type})
            done[name] += _describe_alter(table, alter) + filled
    for name, pieces in done.items():
        qualified = f"{table.name}.{name}"
        text = "; ".join(pieces)
        report.change(f"Aligned column: {qualified} ({text})", plan=f"align {qualified} ({text})")


def _column_differences(table: sa.Table) -> list[Any]:
    """Alembic's AlterColumnOps for `table` (type, nullability, server default)."""
    from alembic.autogenerate import produce_migrations
    from alembic.operations.ops import AlterColumnOp, ModifyTableOps
    from alembic.runtime.migration import MigrationContext

    def only_this_table(name: str | None, type_: str, _parent: Any) -> bool:
        return type_ != "table" or name == table.name

    context = MigrationContext.configure(
        op.get_bind(),
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_name": only_this_table,
        },
    )
    script = produce_migrations(context, table.metadata)
    assert script.upgrade_ops is not None
    return [
        alter
        for group in script.upgrade_ops.ops
        if isinstance(group, ModifyTableOps) and group.table_name == table.name
        for alter in group.ops
        if isinstance(alter, AlterColumnOp)
        and alter.column_name in table.columns
        and (
            alter.modify_type is not None
            or alter.modify_nullable is False
            or _default_changes(alter)
        )
    ]


def _default_changes(alter: Any) -> bool:
    return alter.modify_server_default is not False


def _server_default(column: sa.Column) -> Any:
    return column.server_default.arg if column.server_default is not None else None  # type: ignore[attr-defined]


def _alter_arguments(table: sa.Table, alter: Any) -> dict[str, Any]:
    column = table.c[alter.column_name]
    arguments: dict[str, Any] = {"existing_type": alter.existing_type or column.type}
    if alter.modify_type is not None:
        arguments["type_"] = column.type
    if alter.modify_nullable is False:
        arguments["nullable"] = False
    if _default_changes(alter):
        arguments["server_default"] = _server_default(column)
    return arguments


def _fill_empty(table: sa.Table, alter: Any) -> list[str]:
    """Set NULLs to the column's default where the column is to become NOT NULL."""
    column = table.c[alter.column_name]
    default = _server_default(column)
    if alter.modify_nullable is not False or default is None:
        return []
    filled = (
        op.get_bind()
        .execute(
            sa.update(sa.table(table.name, sa.column(column.name)))
            .where(sa.column(column.name).is_(None))
            .values({column.name: default if not isinstance(default, str) else sa.literal(default)})
        )
        .rowcount
    )
    return [f"{filled} empty value(s) set to {_sql(default)}"] if filled else []


def _describe_alter(table: sa.Table, alter: Any) -> list[str]:
    column = table.c[alter.column_name]
    pieces = []
    if alter.modify_type is not None:
        pieces.append(f"type {_sql(alter.existing_type)} → {_sql(column.type)}")
    if alter.modify_nullable is False:
        pieces.append("NOT NULL")
    if _default_changes(alter):
        default = _server_default(column)
        pieces.append("no default" if default is None else f"default {_sql(default)}")
    return pieces


def _sql(element: Any) -> str:
    """A type or SQL expression as this database spells it."""
    dialect = op.get_bind().dialect
    if isinstance(element, str):
        return element
    if isinstance(element, sa.types.TypeEngine):
        return str(element.compile(dialect=dialect))
    return str(element.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _pg_cast(name: str, existing: sa.types.TypeEngine, target: sa.types.TypeEngine) -> str:
    """PostgreSQL's USING clause for a type change that keeps every value.

    Text that is not valid JSON becomes a JSON string holding it, rather than failing the
    cast (PostgreSQL 15 has no IS JSON test, so a temporary function catches the error).
    """
    bind = op.get_bind()
    quoted = bind.dialect.identifier_preparer.quote(name)
    if isinstance(target, sa.JSON) and isinstance(existing, sa.String):
        bind.execute(
            sa.text(
                "CREATE OR REPLACE FUNCTION pg_temp.grading_app_to_json(value text) "
                "RETURNS json LANGUAGE plpgsql IMMUTABLE AS $$ "
                "BEGIN RETURN value::json; "
                "EXCEPTION WHEN invalid_text_representation THEN RETURN to_json(value); END $$"
            )
        )
        return f"pg_temp.grading_app_to_json({quoted})"
    if isinstance(target, sa.Boolean) and isinstance(existing, sa.Integer):
        return f"{quoted} <> 0"
    return f"{quoted}::{_sql(target)}"


def _fk_name(table: str, column: str) -> str:
    return f"{table}_{column}_fkey"


def _create_foreign_key_pg(table: str, column: str, fk: sa.ForeignKey) -> None:
    referred_table, referred_column = fk.target_fullname.split(".")
    op.create_foreign_key(
        _fk_name(table, column),
        table,
        referred_table,
        [column],
        [referred_column],
        ondelete=fk.ondelete,
    )


def missing_foreign_keys(table: sa.Table) -> list[tuple[str, sa.ForeignKey]]:
    present = {
        (tuple(fk["constrained_columns"]), fk["referred_table"])
        for fk in _inspector().get_foreign_keys(table.name)
    }
    missing = []
    for column in table.columns:
        for fk in column.foreign_keys:
            referred_table = fk.target_fullname.split(".")[0]
            if ((column.name,), referred_table) not in present:
                missing.append((column.name, fk))
    return missing


def nullable_in_target_but_not_null(table: sa.Table) -> list[str]:
    present = existing_columns(table.name)
    return [
        column.name
        for column in table.columns
        if column.nullable
        and not column.primary_key
        and column.name in present
        and not present[column.name]["nullable"]
    ]


def ensure_constraints(table: sa.Table) -> None:
    """Relax NOT NULL where the target allows NULL, and add missing foreign keys."""
    report = current_reporter()
    to_relax = nullable_in_target_but_not_null(table)
    missing_fks = missing_foreign_keys(table)
    expected_fks = [fk for column in table.columns for fk in column.foreign_keys]
    if not to_relax and not missing_fks:
        if expected_fks:
            report.skip(f"Foreign keys of {table.name} already exist")
        return
    existing = existing_columns(table.name)
    if is_sqlite():
        with rebuilt_sqlite_table(table.name) as batch:
            for name in to_relax:
                batch.alter_column(name, existing_type=existing[name]["type"], nullable=True)
            for name, fk in missing_fks:
                referred_table, referred_column = fk.target_fullname.split(".")
                batch.create_foreign_key(
                    _fk_name(table.name, name),
                    referred_table,
                    [name],
                    [referred_column],
                    ondelete=fk.ondelete,
                )
    else:
        for name in to_relax:
            op.alter_column(table.name, name, existing_type=existing[name]["type"], nullable=True)
        for name, fk in missing_fks:
            _create_foreign_key_pg(table.name, name, fk)
    for name in to_relax:
        report.change(
            f"Allowed NULL in: {table.name}.{name}", plan=f"allow NULL in {table.name}.{name}"
        )
    for name, fk in missing_fks:
        target = fk.target_fullname
        report.change(
            f"Added foreign key: {table.name}.{name} → {target}",
            plan=f"add foreign key {table.name}.{name} → {target}",
        )


def ensure_indexes(table: sa.Table) -> None:
    report = current_reporter()
    present = {index["name"] for index in _inspector().get_indexes(table.name)}
    for index in table.indexes:
        if index.name in present:
            report.skip(f"Index {index.name} already exists")
            continue
        index.create(op.get_bind())
        report.change(f"Created index: {index.name}", plan=f"create index {index.name}")


def drop_indexes(table: str, names: Iterable[str]) -> None:
    present = {index["name"] for index in _inspector().get_indexes(table)}
    for name in names:
        if name in present:
            op.drop_index(name, table_name=table)


def drop_columns(table: str, names: Iterable[str]) -> None:
    """Drop the named columns (and their foreign keys) where present."""
    present = existing_columns(table)
    names = [name for name in names if name in present]
    if not names:
        return
    if is_sqlite():
        with rebuilt_sqlite_table(table) as batch:
            for name in names:
                batch.drop_column(name)
        return
    fks = {
        fk["constrained_columns"][0]: fk["name"]
        for fk in _inspector().get_foreign_keys(table)
        if len(fk["constrained_columns"]) == 1
    }
    for name in names:
        constraint = fks.get(name)
        if constraint:
            op.drop_constraint(constraint, table, type_="foreignkey")
        op.drop_column(table, name)


def _on_delete(value: str | None) -> str | None:
    return value.upper() if value else None


def ensure_foreign_key_options(table: sa.Table) -> list[str]:
    """Give the foreign keys of `table` its ON DELETE action; returns the columns changed.

    An existing key with another action is dropped and made again under the same name
    (SQLite: one rebuild of the table in batch mode, inside the caller's transaction).
    """
    report = current_reporter()
    reflected = {
        (tuple(fk["constrained_columns"]), fk["referred_table"]): fk
        for fk in _inspector().get_foreign_keys(table.name)
    }
    changes: list[tuple[str, sa.ForeignKey, str | None]] = []
    for column in table.columns:
        for fk in column.foreign_keys:
            referred_table = fk.target_fullname.split(".")[0]
            present = reflected.get(((column.name,), referred_table))
            if present is None:
                continue  # a missing key is ensure_constraints' to add
            if _on_delete((present.get("options") or {}).get("ondelete")) != _on_delete(
                fk.ondelete
            ):
                changes.append((column.name, fk, present.get("name")))
    if not changes:
        return []
    if is_sqlite():
        with rebuilt_sqlite_table(table.name) as batch:
            for name, fk, old_name in changes:
                if old_name:
                    batch.drop_constraint(old_name, type_="foreignkey")
                referred_table, referred_column = fk.target_fullname.split(".")
                batch.create_foreign_key(
                    _fk_name(table.name, name),
                    referred_table,
                    [name],
                    [referred_column],
                    ondelete=fk.ondelete,
                )
    else:
        for name, fk, old_name in changes:
            if old_name:
                op.drop_constraint(old_name, table.name, type_="foreignkey")
            referred_table, referred_column = fk.target_fullname.split(".")
            op.create_foreign_key(
                _fk_name(table.name, name),
                table.name,
                referred_table,
                [name],
                [referred_column],
                ondelete=fk.ondelete,
            )
    for name, fk, _ in changes:
        action = f"ON DELETE {fk.ondelete}" if fk.ondelete else "no ON DELETE action"
        report.change(
            f"Foreign key {table.name}.{name} → {fk.target_fullname}: {action}",
            plan=f"set {action} on foreign key {table.name}.{name} → {fk.target_fullname}",
        )
    return [name for name, _, _ in changes]
