"""Recognise what kind of database we were pointed at, before changing anything."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from grading_app import migrations

# The first release's tables and a column each that only this application has: enough
# to tell a grading-app database from somebody else's.
CORE_SIGNATURE = {
    "job_batches": "batch_name",
    "grading_jobs": "job_name",
    "submissions": "original_filename",
}
# Columns each legacy generation added to existing tables (legacy-schema.md).
LATER_COLUMNS = {
    "G2": ["grading_jobs.models_to_compare", "submissions.retry_count"],
    "G3": ["grading_jobs.marking_scheme_id"],
    "G4": ["grading_jobs.saved_prompt_id", "grading_jobs.saved_marking_scheme_id"],
    "G5": [
        "grading_jobs.temperature",
        "grading_jobs.max_tokens",
        "job_batches.temperature",
        "job_batches.max_tokens",
    ],
}
GENERATION_TABLES = {
    "G2": "grade_results",
    "G3": "marking_schemes",
    "G4": "saved_prompts",
}


@dataclass(frozen=True)
class DatabaseState:
    dialect: str
    tables: frozenset[str]
    revision: str | None
    generation: str | None = None
    later_columns: tuple[str, ...] = field(default=())
    # Tables with our names but not our columns: somebody else's database.
    foreign: bool = False

    @property
    def is_empty(self) -> bool:
        return not self.tables - {migrations.VERSION_TABLE}

    @property
    def is_ours(self) -> bool:
        return not self.foreign and set(CORE_SIGNATURE) <= self.tables

    @property
    def is_legacy(self) -> bool:
        return self.is_ours and self.revision is None

    @property
    def is_newer(self) -> bool:
        return self.revision is not None and self.revision not in migrations.known_revisions()

    def describe(self) -> str:
        if self.revision:
            return f"revision {self.revision}"
        if not self.generation:
            return "unknown"
        text = f"legacy {self.generation} (created by an earlier release, not version-stamped)"
        if self.later_columns:
            text += f", plus {len(self.later_columns)} column(s) from later releases"
        return text


def inspect_database(connection: sa.Connection) -> DatabaseState:
    inspector = sa.inspect(connection)
    tables = frozenset(inspector.get_table_names())
    revision = None
    if migrations.VERSION_TABLE in tables:
        revision = migrations.current_revision(connection)
    state = DatabaseState(dialect=connection.dialect.name, tables=tables, revision=revision)
    if not state.is_ours:
        return state
    for table, column in CORE_SIGNATURE.items():
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            return DatabaseState(
                dialect=state.dialect, tables=tables, revision=revision, foreign=True
            )
    if revision is not None:
        return state
    generation, later = _guess_generation(inspector, tables)
    return DatabaseState(
        dialect=state.dialect,
        tables=tables,
        revision=None,
        generation=generation,
        later_columns=tuple(later),
    )


def _guess_generation(inspector: sa.Inspector, tables: frozenset[str]) -> tuple[str, list[str]]:
    """The generation whose release created these tables, and the later columns added to it."""
    generation = "G1"
    for candidate, table in GENERATION_TABLES.items():
        if table in tables:
            generation = candidate
    columns = {
        f"{table}.{column['name']}" for table in tables for column in inspector.get_columns(table)
    }
    if generation == "G4":
        if all(name in columns for name in LATER_COLUMNS["G5"]):
            generation = "G5"
        if "saved_prompts.provider" not in columns:
            generation = "G6"
    order = ["G1", "G2", "G3", "G4", "G5", "G6"]
    later = [
        name
        for gen, names in LATER_COLUMNS.items()
        if order.index(gen) > order.index(generation)
        for name in names
        if name in columns
    ]
    return generation, later


def count_rows(connection: sa.Connection, tables: list[str]) -> dict[str, int]:
    preparer = connection.dialect.identifier_preparer
    return {
        table: connection.execute(
            sa.text(f"SELECT COUNT(*) FROM {preparer.quote(table)}")  # noqa: S608 - quoted name
        ).scalar_one()
        for table in tables
    }
