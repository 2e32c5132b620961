"""Legacy databases as earlier releases of the Grading App left them.

The generations, tables and columns follow `legacy-schema.md`. Those releases created
their tables with SQLAlchemy `create_all()` and never stamped a version, so this module
writes the same DDL by hand (no `alembic_version` table) and the upgrade tool has to
recognise the schema from what is there. Later columns that users added with ad-hoc
scripts are reproduced with `ALTER TABLE ... ADD COLUMN` through `extra_columns`.

Identifiers in the SQL built here always come from the `_TABLES` spec below, never from
callers (`extra_columns` is checked against it first); values are always bound.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

GENERATIONS: tuple[str, ...] = ("G1", "G2", "G3", "G4", "G5", "G6")


# --------------------------------------------------------------------------- schema spec


@dataclass(frozen=True)
class _Column:
    name: str
    type: str  # as SQLAlchemy renders it on SQLite; see _sql_type for PostgreSQL
    not_null: bool = False
    references: str | None = None  # parent table; legacy FKs always point at `id`
    added: str = "G1"
    # First generation whose fresh create_all() no longer makes the column (G6 dropped
    # saved_prompts.provider/model from the model; older databases keep them).
    dropped: str | None = None


@dataclass(frozen=True)
class _Table:
    name: str
    added: str
    columns: tuple[_Column, ...]


_ID = _Column("id", "VARCHAR(36)", not_null=True)
_CREATED_AT = _Column("created_at", "DATETIME")
_UPDATED_AT = _Column("updated_at", "DATETIME")

# Parents before children, so creating and filling in this order satisfies every FK.
# Column order is the create_all() order: the G1 listing, then each later
# generation's additions appended in the order they came.
_TABLES: tuple[_Table, ...] = (
    _Table(
        "job_batches",
        "G1",
        (
            _ID,
            _CREATED_AT,
            _Column("batch_name", "VARCHAR(255)", not_null=True),
            _Column("description", "TEXT"),
            _Column("status", "VARCHAR(50)"),
            _Column("provider", "VARCHAR(50)", not_null=True),
            _Column("prompt", "TEXT", not_null=True),
            _Column("model", "VARCHAR(100)"),
            _Column("temperature", "FLOAT", added="G5"),
            _Column("max_tokens", "INTEGER", added="G5"),
        ),
    ),
    _Table(
        "marking_schemes",
        "G3",
        (
            _ID,
            _CREATED_AT,
            _UPDATED_AT,
            _Column("name", "VARCHAR(255)", not_null=True),
            _Column("description", "TEXT"),
            _Column("filename", "VARCHAR(255)", not_null=True),
            _Column("original_filename", "VARCHAR(255)", not_null=True),
            _Column("file_size", "INTEGER"),
            _Column("file_type", "VARCHAR(10)"),
            _Column("content", "TEXT"),
        ),
    ),
    _Table(
        "saved_prompts",
        "G4",
        (
            _ID,
            _CREATED_AT,
            _UPDATED_AT,
            _Column("name", "VARCHAR(255)", not_null=True),
            _Column("description", "TEXT"),
            _Column("category", "VARCHAR(100)"),
            _Column("prompt_text", "TEXT", not_null=True),
            _Column("provider", "VARCHAR(50)", not_null=True, dropped="G6"),
            _Column("model", "VARCHAR(100)", dropped="G6"),
            _Column("usage_count", "INTEGER"),
            _Column("last_used", "DATETIME"),
        ),
    ),
    _Table(
        "saved_marking_schemes",
        "G4",
        (
            _ID,
            _CREATED_AT,
            _UPDATED_AT,
            _Column("name", "VARCHAR(255)", not_null=True),
            _Column("description", "TEXT"),
            _Column("filename", "VARCHAR(255)", not_null=True),
            _Column("original_filename", "VARCHAR(255)", not_null=True),
            _Column("file_size", "INTEGER"),
            _Column("file_type", "VARCHAR(10)"),
            _Column("content", "TEXT"),
            _Column("category", "VARCHAR(100)"),
            _Column("usage_count", "INTEGER"),
            _Column("last_used", "DATETIME"),
        ),
    ),
    _Table(
        "grading_jobs",
        "G1",
        (
            _ID,
            _CREATED_AT,
            _UPDATED_AT,
            _Column("job_name", "VARCHAR(255)", not_null=True),
            _Column("description", "TEXT"),
            _Column("status", "VARCHAR(50)"),
            _Column("priority", "INTEGER"),
            _Column("total_submissions", "INTEGER"),
            _Column("processed_submissions", "INTEGER"),
            _Column("failed_submissions", "INTEGER"),
            _Column("provider", "VARCHAR(50)", not_null=True),
            _Column("prompt", "TEXT", not_null=True),
            _Column("model", "VARCHAR(100)"),
            _Column("batch_id", "VARCHAR(36)", references="job_batches"),
            _Column("models_to_compare", "JSON", added="G2"),
            _Column("marking_scheme_id", "VARCHAR(36)", references="marking_schemes", added="G3"),
            _Column("saved_prompt_id", "VARCHAR(36)", references="saved_prompts", added="G4"),
            _Column(
                "saved_marking_scheme_id",
                "VARCHAR(36)",
                references="saved_marking_schemes",
                added="G4",
            ),
            _Column("temperature", "FLOAT", added="G5"),
            _Column("max_tokens", "INTEGER", added="G5"),
        ),
    ),
    _Table(
        "submissions",
        "G1",
        (
            _ID,
            _CREATED_AT,
            _UPDATED_AT,
            _Column("filename", "VARCHAR(255)", not_null=True),
            _Column("original_filename", "VARCHAR(255)", not_null=True),
            _Column("file_size", "INTEGER"),
            _Column("file_type", "VARCHAR(10)"),
            _Column("status", "VARCHAR(50)"),
            _Column("error_message", "TEXT"),
            _Column("extracted_text", "TEXT"),
            _Column("grade", "TEXT"),
            _Column("grade_metadata", "JSON"),
            _Column("job_id", "VARCHAR(36)", not_null=True, references="grading_jobs"),
            _Column("retry_count", "INTEGER", added="G2"),
        ),
    ),
    _Table(
        "grade_results",
        "G2",
        (
            _ID,
            _CREATED_AT,
            _Column("grade", "TEXT", not_null=True),
            _Column("provider", "VARCHAR(50)", not_null=True),
            _Column("model", "VARCHAR(100)", not_null=True),
            _Column("status", "VARCHAR(50)"),
            _Column("error_message", "TEXT"),
            _Column("grade_metadata", "JSON"),
            _Column("submission_id", "VARCHAR(36)", not_null=True, references="submissions"),
        ),
    ),
)

_TABLES_BY_NAME: dict[str, _Table] = {table.name: table for table in _TABLES}
LEGACY_TABLES: tuple[str, ...] = tuple(table.name for table in _TABLES)


def _generation_index(generation: str) -> int:
    if generation not in GENERATIONS:
        raise ValueError(f"unknown generation {generation!r}; expected one of {GENERATIONS}")
    return GENERATIONS.index(generation)


def _created_columns(table: _Table, generation: str) -> list[_Column]:
    at = _generation_index(generation)
    return [
        column
        for column in table.columns
        if _generation_index(column.added) <= at
        and (column.dropped is None or at < _generation_index(column.dropped))
    ]


def _created_tables(generation: str) -> list[_Table]:
    at = _generation_index(generation)
    return [table for table in _TABLES if _generation_index(table.added) <= at]


def legacy_table_columns(generation: str) -> dict[str, list[str]]:
    """table -> column names that a database *created* at that generation has."""
    return {
        table.name: [column.name for column in _created_columns(table, generation)]
        for table in _created_tables(generation)
    }


# --------------------------------------------------------------------------- DDL


def _sql_type(type_: str, dialect: str) -> str:
    # SQLAlchemy's DateTime renders as DATETIME on SQLite and as
    # TIMESTAMP WITHOUT TIME ZONE on PostgreSQL; every other legacy type is spelled alike.
    if type_ == "DATETIME" and dialect == "postgresql":
        return "TIMESTAMP WITHOUT TIME ZONE"
    return type_


def _create_table_sql(table: _Table, columns: Sequence[_Column], dialect: str) -> str:
    # Same layout as SQLAlchemy's CreateTable, so sqlite_master.sql reads as create_all()
    # left it. Constraints are unnamed, so PostgreSQL names them <table>_pkey and
    # <table>_<column>_fkey, as it did for the legacy releases.
    elements = [
        " ".join(
            [column.name, _sql_type(column.type, dialect)]
            + (["NOT NULL"] if column.not_null else [])
        )
        for column in columns
    ]
    elements.append("PRIMARY KEY (id)")
    elements.extend(
        f"FOREIGN KEY({column.name}) REFERENCES {column.references} (id)"
        for column in columns
        if column.references
    )
    return f"\nCREATE TABLE {table.name} (\n\t" + ", \n\t".join(elements) + "\n)\n\n"


def _add_column_sql(table: str, column: _Column, dialect: str, existing: set[str]) -> str:
    # The ad-hoc upgrade scripts wrote the FK inline, and only when the parent table was
    # there. Each legacy FK column arrived in the same generation as its parent table, so
    # on a schema that predates the column the parent is missing and no FK is added.
    sql = f"ALTER TABLE {table} ADD COLUMN {column.name} {_sql_type(column.type, dialect)}"
    if column.references and column.references in existing:
        sql += f" REFERENCES {column.references}(id)"
    return sql


def _resolve_extra_columns(
    generation: str, extra_columns: Iterable[str]
) -> list[tuple[str, _Column]]:
    at = _generation_index(generation)
    created = legacy_table_columns(generation)
    resolved: list[tuple[str, _Column]] = []
    for qualified in extra_columns:
        table_name, _, column_name = qualified.partition(".")
        table = _TABLES_BY_NAME.get(table_name)
        column = next((c for c in table.columns if c.name == column_name), None) if table else None
        if table is None or column is None:
            raise ValueError(f"{qualified!r} is not a legacy column")
        if table_name not in created:
            raise ValueError(f"{qualified!r}: table {table_name} does not exist at {generation}")
        if column_name in created[table_name] or (table_name, column) in resolved:
            raise ValueError(f"{qualified!r} is already present")
        # Only columns that a later release introduced were ever added by script
        # (saved_prompts.provider/model were dropped at G6, never re-added).
        if _generation_index(column.added) <= at:
            raise ValueError(f"{qualified!r} was not added after {generation}")
        resolved.append((table_name, column))
    return resolved


def create_legacy_schema(url: str, generation: str, *, extra_columns: Iterable[str] = ()) -> None:
    """Create the tables exactly as that generation's SQLAlchemy create_all() left them.

    `extra_columns` ("table.column", from later generations) are then added one by one
    with ALTER TABLE ... ADD COLUMN, in the given order, as the ad-hoc scripts did.
    """
    tables = _created_tables(generation)
    extras = _resolve_extra_columns(generation, extra_columns)
    existing = {table.name for table in tables}
    with _engine(url) as engine, engine.begin() as conn:
        dialect = _dialect(engine)
        for table in tables:
            conn.execute(
                sa.text(_create_table_sql(table, _created_columns(table, generation), dialect))
            )
        for table_name, column in extras:
            conn.execute(sa.text(_add_column_sql(table_name, column, dialect, existing)))


# --------------------------------------------------------------------------- engines


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = sa.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _dialect(engine: Engine) -> str:
    if engine.dialect.name not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {engine.dialect.name!r}")
    return engine.dialect.name


def _datetime_text(value: datetime) -> str:
    # The text SQLAlchemy's SQLite DateTime type stores (always with microseconds), so
    # rows look like ones the legacy ORM wrote; PostgreSQL's COPY reads it as well.
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(columns)
    params = ", ".join(f":{column}" for column in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({params})"


# --------------------------------------------------------------------------- realistic rows

BATCH_DRAFT_ID = "3f0c9a52-8d1e-4b7a-9c61-2e5f4a7b8c01"
BATCH_EMPTY_ID = "a6e41d07-5b3c-4f28-8e90-7c1d2b3a4f02"
BATCH_PENDING_ID = "c2b7f0e9-1a4d-4c83-b5e6-9f0a1b2c3d03"
BATCH_PROCESSING_ID = "5d8e2a1f-7c6b-4e09-a3d4-e5f6a7b8c904"
BATCH_MIXED_ID = "e9f1c3b5-2d7a-4a68-9b0c-1d2e3f4a5b05"
BATCH_DONE_ID = "7b3a9e2c-4f1d-4d5e-8a6b-0c1d2e3f4a06"
BATCH_FAILED_ID = "1c4d7e0a-9b2f-4e3c-a8d5-6e7f8a9b0c07"
BATCH_PARTIAL_ID = "f0a2b4c6-8e1d-4f3a-b5c7-d9e1f3a5b708"
BATCH_WITH_ERRORS_ID = "9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c09"

MARKING_SCHEME_ID = "4a1b2c3d-5e6f-4a7b-8c9d-0e1f2a3b4c10"
MARKING_SCHEME_BARE_ID = "6c5b4a39-2817-4f6e-9d5c-4b3a29180711"
SAVED_PROMPT_ID = "8d2e4f60-1a3c-4b5d-9e7f-a1b2c3d4e512"
SAVED_PROMPT_BARE_ID = "b1c3d5e7-f9a2-4b4c-8d6e-f0a1b2c3d413"
SAVED_MARKING_SCHEME_ID = "2e4f6a8c-0b1d-4e3f-a5b7-c9d1e3f5a714"
SAVED_MARKING_SCHEME_BARE_ID = "d4c3b2a1-0f9e-4d8c-b7a6-958473625115"
# A job that belongs to no batch (grading_jobs.batch_id is nullable).
STANDALONE_JOB_ID = "0f1e2d3c-4b5a-4968-8776-655443322116"

# Derived status of each batch from its jobs (the oracle for the upgrade's recount);
# written out by hand rather than computed, so the rules are checked, not repeated.
EXPECTED_BATCH_STATUS: dict[str, str] = {
    BATCH_DRAFT_ID: "draft",
    BATCH_EMPTY_ID: "draft",
    BATCH_PENDING_ID: "pending",
    BATCH_PROCESSING_ID: "processing",
    BATCH_MIXED_ID: "processing",
    BATCH_DONE_ID: "completed",
    BATCH_FAILED_ID: "failed",
    BATCH_PARTIAL_ID: "completed_with_errors",
    BATCH_WITH_ERRORS_ID: "completed_with_errors",
}

# (total_jobs, completed_jobs, failed_jobs); completed counts completed and
# completed_with_errors jobs, failed counts failed jobs.
EXPECTED_BATCH_COUNTS: dict[str, tuple[int, int, int]] = {
    BATCH_DRAFT_ID: (0, 0, 0),
    BATCH_EMPTY_ID: (0, 0, 0),
    BATCH_PENDING_ID: (3, 0, 0),
    BATCH_PROCESSING_ID: (3, 1, 0),
    BATCH_MIXED_ID: (3, 1, 1),
    BATCH_DONE_ID: (3, 3, 0),
    BATCH_FAILED_ID: (2, 0, 2),
    BATCH_PARTIAL_ID: (3, 2, 1),
    BATCH_WITH_ERRORS_ID: (3, 3, 0),
}

# started_at / completed_at the upgrade derives from each batch's jobs, worked out by
# hand from the plan below: jobs are created 5 minutes apart from the batch's
# created_at (or _T0 when it has none) and last updated 30 minutes after their creation.
# started_at is the creation of the first job that left "pending"; completed_at, for a
# finished batch only, the last update of any of its jobs.
EXPECTED_BATCH_TIMES: dict[str, tuple[datetime | None, datetime | None]] = {
    BATCH_DRAFT_ID: (None, None),
    BATCH_EMPTY_ID: (None, None),
    BATCH_PENDING_ID: (None, None),
    BATCH_PROCESSING_ID: (datetime(2024, 9, 7, 8, 30), None),
    BATCH_MIXED_ID: (datetime(2024, 9, 10, 8, 30), None),
    BATCH_DONE_ID: (datetime(2024, 9, 14, 8, 30), datetime(2024, 9, 14, 9, 10)),
    BATCH_FAILED_ID: (datetime(2024, 9, 17, 8, 30), datetime(2024, 9, 17, 9, 5)),
    BATCH_PARTIAL_ID: (datetime(2024, 9, 22, 8, 30), datetime(2024, 9, 22, 9, 10)),
    BATCH_WITH_ERRORS_ID: (datetime(2024, 9, 29, 8, 30), datetime(2024, 9, 29, 9, 10)),
}

_ID_NAMESPACE = uuid.UUID("5b0f7c1e-3d2a-4e59-9a8b-7c6d5e4f3a2b")


def _fixed_uuid(*parts: object) -> str:
    """A stable UUID for a generated row, so tests can name it."""
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join(str(part) for part in parts)))


def _job_id(batch_id: str, index: int) -> str:
    return _fixed_uuid("job", batch_id, index)


def _submission_id(job_id: str, index: int) -> str:
    return _fixed_uuid("submission", job_id, index)


@dataclass(frozen=True)
class _BatchPlan:
    id: str
    name: str
    legacy_status: str | None  # what the legacy app stored; may disagree with the jobs
    job_statuses: tuple[str, ...]
    description: str | None
    provider: str
    model: str | None
    created_at: datetime | None


_T0 = datetime(2024, 9, 2, 8, 30, 0)  # naive UTC, as the legacy app stored it

_BATCHES: tuple[_BatchPlan, ...] = (
    _BatchPlan(
        id=BATCH_DRAFT_ID,
        name="Évaluation – 第一 📝",
        legacy_status="pending",
        job_statuses=(),
        description="Premier trimestre : dissertations",
        provider="openrouter",
        model="openai/gpt-4o-mini",
        created_at=_T0,
    ),
    _BatchPlan(
        id=BATCH_EMPTY_ID,
        name="Untitled batch",
        legacy_status=None,
        job_statuses=(),
        description=None,
        provider="claude",
        model=None,
        created_at=None,
    ),
    _BatchPlan(
        id=BATCH_PENDING_ID,
        name="Year 9 persuasive essays",
        legacy_status="pending",
        job_statuses=("pending", "pending", "pending"),
        description="Uploaded, not started",
        provider="openrouter",
        model="openai/gpt-4o",
        created_at=_T0 + timedelta(days=3),
    ),
    _BatchPlan(
        id=BATCH_PROCESSING_ID,
        name="Lab reports – Chemie 🧪",
        legacy_status="processing",
        job_statuses=("completed", "processing", "pending"),
        description="Grading under way",
        provider="claude",
        model="claude-3-5-sonnet-20241022",
        created_at=_T0 + timedelta(days=5),
    ),
    _BatchPlan(
        id=BATCH_MIXED_ID,
        name="Business reports Q3",
        legacy_status="processing",
        job_statuses=("completed", "pending", "failed"),
        description=None,
        provider="openrouter",
        model=None,
        created_at=_T0 + timedelta(days=8),
    ),
    _BatchPlan(
        id=BATCH_DONE_ID,
        name="Year 10 History 🏛️ essays",
        legacy_status="completed",
        job_statuses=("completed", "completed", "completed"),
        description="Term 1, all graded",
        provider="openrouter",
        model="openai/gpt-4o",
        created_at=_T0 + timedelta(days=12),
    ),
    _BatchPlan(
        id=BATCH_FAILED_ID,
        name="Research papers (bad API key)",
        # Legacy statuses never included "failed": the app said completed.
        legacy_status="completed",
        job_statuses=("failed", "failed"),
        description="Every call returned 401",
        provider="claude",
        model="claude-3-opus-20240229",
        created_at=_T0 + timedelta(days=15),
    ),
    _BatchPlan(
        id=BATCH_PARTIAL_ID,
        name="Creative writing – 作文",
        legacy_status="completed",
        job_statuses=("completed", "failed", "completed"),
        description="Some files could not be read",
        provider="lm_studio",
        model=None,
        created_at=_T0 + timedelta(days=20),
    ),
    _BatchPlan(
        id=BATCH_WITH_ERRORS_ID,
        name="Müller & Søn – Aufsätze",
        # Stuck at processing in the legacy table although every job finished.
        legacy_status="processing",
        job_statuses=("completed_with_errors", "completed", "completed"),
        description="Retried twice",
        provider="openrouter",
        model="anthropic/claude-3.5-sonnet",
        created_at=_T0 + timedelta(days=27),
    ),
)

# Jobs ids per batch, in creation order, for tests that need a particular job.
BATCH_JOB_IDS: dict[str, tuple[str, ...]] = {
    plan.id: tuple(_job_id(plan.id, i) for i in range(len(plan.job_statuses))) for plan in _BATCHES
}

# Jobs that compare models (G2) and so have grade_results rows.
_COMPARE_MODELS = ["openai/gpt-4o", "anthropic/claude-3.5-sonnet"]
_COMPARING_JOBS = {
    _job_id(BATCH_DONE_ID, 1),
    _job_id(BATCH_PARTIAL_ID, 0),
    _job_id(BATCH_WITH_ERRORS_ID, 0),
}
# Odd JSON the legacy app left behind. Text that is not JSON at all is written only on
# SQLite; PostgreSQL's json type refuses it, so there those cells are SQL NULL instead.
_INVALID_JSON = "{broken"
_MODELS_TO_COMPARE_ODDITIES = {
    _job_id(BATCH_PENDING_ID, 0): "null",
    _job_id(BATCH_MIXED_ID, 2): '["openai/gpt-4o", ',
}
SUBMISSION_METADATA_NULL_TEXT_ID = _submission_id(_job_id(BATCH_DONE_ID, 0), 1)
SUBMISSION_METADATA_SQL_NULL_ID = _submission_id(_job_id(BATCH_DONE_ID, 0), 2)
SUBMISSION_METADATA_INVALID_ID = _submission_id(_job_id(BATCH_PARTIAL_ID, 2), 0)
_METADATA_ODDITIES: dict[str, str | None] = {
    SUBMISSION_METADATA_NULL_TEXT_ID: "null",
    SUBMISSION_METADATA_SQL_NULL_ID: None,
    SUBMISSION_METADATA_INVALID_ID: _INVALID_JSON,
}

_MODEL_BY_PROVIDER: dict[str, str | None] = {
    "openrouter": "openai/gpt-4o",
    "claude": "claude-3-5-sonnet-20241022",
    "lm_studio": None,  # LM Studio serves whatever model is loaded
}
_ORIGINAL_FILENAMES = (
    "Évaluation – 第一.docx",
    "essay_final 🎓.pdf",
    "Jörg Müller – Aufsatz.docx",
    "李华_report.pdf",
    "smith_j_essay.docx",
    "O'Brien, Siobhán.pdf",
)
_PROMPT = "Grade this essay out of 100. Comment on thesis, evidence and style."
_TEXT = (
    "The causes of the First World War were many. Historians point to alliances, "
    "militarism and nationalism, yet the July Crisis shows how contingent it all was.\n\n"
    "« La guerre n'était pas inévitable », écrit l'auteur — 第一次世界大战."
)
_GRADE_TEXT = (
    "Overall grade: B+ (78/100)\n\n"
    "Thesis: clear and arguable.\nEvidence: good use of sources, thin on 1914 diplomacy.\n"
    "Style: fluent; watch comma splices.\n\nFeedback: ✅ strong start, expand the conclusion."
)
_SUBMISSION_STATUS_BY_JOB: dict[str, tuple[str, str, str]] = {
    "pending": ("pending", "pending", "pending"),
    "processing": ("completed", "processing", "pending"),
    "completed": ("completed", "completed", "completed"),
    "completed_with_errors": ("completed", "completed", "failed"),
    "failed": ("failed", "failed", "failed"),
}


def _is_json(text: str | None) -> bool:
    try:
        json.loads(text or "")
    except ValueError:
        return False
    return True


def _grade_metadata(provider: str, model: str | None, tokens: int) -> str:
    return json.dumps(
        {"provider": provider, "model": model, "tokens_used": tokens, "grading_time": 4.2}
    )


def _library_rows() -> dict[str, list[dict[str, Any]]]:
    scheme = {
        "id": MARKING_SCHEME_ID,
        "created_at": _T0 - timedelta(days=30),
        "updated_at": _T0 - timedelta(days=2),
        "name": "Rubrique – dissertation (FR) 📐",
        "description": "Critères : thèse, arguments, style",
        "filename": "c0a8e1f2_rubrique_dissertation.docx",
        "original_filename": "Rubrique – dissertation.docx",
        "file_size": 18234,
        "file_type": "docx",
        "content": "Thèse (20 pts)\nArguments (50 pts)\nStyle (30 pts)",
    }
    bare_scheme = {
        "id": MARKING_SCHEME_BARE_ID,
        "created_at": None,
        "updated_at": None,
        "name": "Lab report rubric",
        "description": None,
        "filename": "lab_rubric.pdf",
        "original_filename": "lab_rubric.pdf",
        "file_size": None,
        "file_type": "pdf",
        "content": None,
    }
    return {
        "marking_schemes": [scheme, bare_scheme],
        "saved_marking_schemes": [
            scheme
            | {
                "id": SAVED_MARKING_SCHEME_ID,
                "category": "history",
                "usage_count": 4,
                "last_used": _T0 + timedelta(days=12),
            },
            bare_scheme
            | {
                "id": SAVED_MARKING_SCHEME_BARE_ID,
                "category": None,
                "usage_count": 0,
                "last_used": None,
            },
        ],
        "saved_prompts": [
            {
                "id": SAVED_PROMPT_ID,
                "created_at": _T0 - timedelta(days=40),
                "updated_at": _T0 - timedelta(days=1),
                "name": "Essay feedback (concise)",
                "description": "Short, actionable feedback",
                "category": "essays",
                "prompt_text": _PROMPT,
                "provider": "openrouter",
                "model": "openai/gpt-4o",
                "usage_count": 12,
                "last_used": _T0 + timedelta(days=12),
            },
            {
                "id": SAVED_PROMPT_BARE_ID,
                "created_at": None,
                "updated_at": None,
                "name": "日本語の作文 – 評価",
                "description": None,
                "category": None,
                "prompt_text": "この作文を100点満点で評価してください。",
                "provider": "claude",
                "model": None,
                "usage_count": 0,
                "last_used": None,
            },
        ],
    }


def _work_rows(dialect: str, tables: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Jobs, submissions and grade results for the `_BATCHES` plan plus one standalone job."""
    jobs: list[dict[str, Any]] = []
    submissions: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []

    def json_value(text: str | None) -> str | None:
        return text if dialect == "sqlite" or _is_json(text) else None

    # References only to library rows that exist (no FK would stop a dangling one on an
    # ad-hoc column, but tests should not have to reason about orphans).
    def reference(table: str, row_id: str, wanted: bool) -> str | None:
        return row_id if wanted and table in tables else None

    # (job id, batch id, batch name, batch created_at, index in batch, job status)
    planned: list[tuple[str, str | None, str, datetime | None, int, str]] = [
        (_job_id(plan.id, i), plan.id, plan.name, plan.created_at, i, status)
        for plan in _BATCHES
        for i, status in enumerate(plan.job_statuses)
    ]
    planned.append(
        (STANDALONE_JOB_ID, None, "Single essay check", _T0 - timedelta(days=1), 0, "completed")
    )

    for n, (job_id, batch_id, batch_name, batch_created, i, job_status) in enumerate(planned):
        provider = ("openrouter", "claude", "lm_studio")[n % 3]
        model = _MODEL_BY_PROVIDER[provider]
        created = (batch_created or _T0) + timedelta(minutes=5 * i)
        statuses = _SUBMISSION_STATUS_BY_JOB[job_status]
        comparing = job_id in _COMPARING_JOBS
        models_to_compare = json.dumps(_COMPARE_MODELS) if comparing else None
        jobs.append(
            {
                "id": job_id,
                "created_at": created,
                "updated_at": created + timedelta(minutes=30),
                "job_name": f"{batch_name} · part {i + 1}",
                "description": None if i == 1 else f"Part {i + 1} of {batch_name}",
                "status": job_status,
                "priority": (5, 8, 1, 10, 3)[n % 5],
                "total_submissions": len(statuses),
                "processed_submissions": sum(s in ("completed", "failed") for s in statuses),
                "failed_submissions": statuses.count("failed"),
                "provider": provider,
                "prompt": _PROMPT,
                "model": model,
                "batch_id": batch_id,
                "models_to_compare": json_value(
                    _MODELS_TO_COMPARE_ODDITIES.get(job_id, models_to_compare)
                ),
                "marking_scheme_id": reference("marking_schemes", MARKING_SCHEME_ID, n % 4 == 0),
                "saved_prompt_id": reference("saved_prompts", SAVED_PROMPT_ID, n % 5 == 1),
                "saved_marking_scheme_id": reference(
                    "saved_marking_schemes", SAVED_MARKING_SCHEME_ID, n % 5 == 2
                ),
                "temperature": (0.3, 0.7, None)[n % 3],
                "max_tokens": (2000, None, 4096)[n % 3],
            }
        )
        for k, status in enumerate(statuses):
            submission_id = _submission_id(job_id, k)
            original = _ORIGINAL_FILENAMES[(3 * n + k) % len(_ORIGINAL_FILENAMES)]
            done = status == "completed"
            # The first failure of a job is a document that yielded no text; the others
            # are provider errors.
            unreadable = status == "failed" and k == 0
            error = "Could not extract text from document" if unreadable else "API error: 401"
            metadata = _grade_metadata(provider, model, 700 + 37 * k) if done else None
            submissions.append(
                {
                    "id": submission_id,
                    "created_at": created,
                    "updated_at": created + timedelta(minutes=10 + k),
                    "filename": f"{submission_id[:8]}_{original}",
                    "original_filename": original,
                    "file_size": 20_480 + 1_337 * k,
                    "file_type": original.rsplit(".", 1)[1],
                    "status": status,
                    "error_message": error if status == "failed" else None,
                    "extracted_text": None if status == "pending" or unreadable else _TEXT,
                    "grade": _GRADE_TEXT if done else None,
                    "grade_metadata": json_value(_METADATA_ODDITIES.get(submission_id, metadata)),
                    "job_id": job_id,
                    "retry_count": 3 if status == "failed" else (None if k == 2 else 0),
                }
            )
            if comparing and done:
                for m, compared in enumerate(_COMPARE_MODELS):
                    # One comparison in the batch "with errors" hit a rate limit.
                    failed = batch_id == BATCH_WITH_ERRORS_ID and m == 1 and k == 0
                    results.append(
                        {
                            "id": _fixed_uuid("grade_result", submission_id, m),
                            "created_at": created + timedelta(minutes=12 + k),
                            "grade": "" if failed else _GRADE_TEXT,
                            "provider": "openrouter",
                            "model": compared,
                            "status": "failed" if failed else "completed",
                            "error_message": "Rate limit exceeded (429)" if failed else None,
                            "grade_metadata": (
                                "null" if failed else _grade_metadata("openrouter", compared, 650)
                            ),
                            "submission_id": submission_id,
                        }
                    )
    return {"grading_jobs": jobs, "submissions": submissions, "grade_results": results}


def _batch_rows() -> list[dict[str, Any]]:
    return [
        {
            "id": plan.id,
            "created_at": plan.created_at,
            "batch_name": plan.name,
            "description": plan.description,
            "status": plan.legacy_status,
            "provider": plan.provider,
            "prompt": _PROMPT,
            "model": plan.model,
            "temperature": 0.2 if plan.model else None,
            "max_tokens": 3000 if plan.model else None,
        }
        for plan in _BATCHES
    ]


def populate_legacy_rows(url: str) -> dict[str, int]:
    """Insert a small, realistic data set into whatever legacy tables/columns exist.

    Returns row counts per table filled.
    """
    counts: dict[str, int] = {}
    with _engine(url) as engine:
        dialect = _dialect(engine)
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names()) & set(LEGACY_TABLES)
        rows: dict[str, list[dict[str, Any]]] = {"job_batches": _batch_rows()}
        rows |= _library_rows()
        rows |= _work_rows(dialect, tables)
        with engine.begin() as conn:
            for table in LEGACY_TABLES:
                if table not in tables or not rows[table]:
                    continue
                present = {column["name"] for column in inspector.get_columns(table)}
                columns = [name for name in rows[table][0] if name in present]
                params = [
                    {name: _bind_value(row[name], dialect) for name in columns}
                    for row in rows[table]
                ]
                conn.execute(sa.text(_insert_sql(table, columns)), params)
                counts[table] = len(params)
    return counts


def _bind_value(value: Any, dialect: str) -> Any:
    if isinstance(value, datetime) and dialect == "sqlite":
        return _datetime_text(value)
    return value


# --------------------------------------------------------------------------- the original script

# The migration guide's own script, run halfway (or by hand) on some installations: it
# added a few enhanced columns its own way (priority with a default but NULL in rows the
# old application wrote afterwards, tags as TEXT, flags and counters without NOT NULL),
# created batch_templates without NOT NULL or defaults, and inserted a template.
ORIGINAL_SCRIPT_TEMPLATE_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ORIGINAL_SCRIPT_PRIORITIES: dict[str, int | None] = {
    BATCH_DRAFT_ID: None,
    BATCH_PENDING_ID: 8,
    BATCH_DONE_ID: None,
    BATCH_FAILED_ID: 2,
}
ORIGINAL_SCRIPT_TAGS: dict[str, str] = {
    BATCH_DONE_ID: '["history", "year 10"]',
    # Not JSON: the script wrote what the form sent.
    BATCH_PARTIAL_ID: "creative, 作文",
}


def apply_original_script(url: str, *, json_type: str = "TEXT") -> None:
    """Leave a G6 database as the guide's original script left it part way through.

    `json_type` is how that script declared its JSON columns (TEXT or JSON).
    """
    if json_type not in ("TEXT", "JSON"):
        raise ValueError("json_type is TEXT or JSON")
    with _engine(url) as engine, engine.begin() as conn:
        dialect = _dialect(engine)
        timestamp = _sql_type("DATETIME", dialect)
        false = "FALSE" if dialect == "postgresql" else "0"
        for statement in (
            f"ALTER TABLE job_batches ADD COLUMN updated_at {timestamp}",
            "ALTER TABLE job_batches ADD COLUMN priority INTEGER DEFAULT 5",
            f"ALTER TABLE job_batches ADD COLUMN tags {json_type}",
            "ALTER TABLE job_batches ADD COLUMN total_jobs INTEGER",
            "ALTER TABLE job_batches ADD COLUMN auto_assign_jobs BOOLEAN",
            "CREATE TABLE batch_templates (id VARCHAR(36) NOT NULL, name VARCHAR(255) NOT NULL, "
            f"description TEXT, category VARCHAR(100), default_settings {json_type}, "
            f"job_structure {json_type}, processing_rules {json_type}, is_public BOOLEAN, "
            f"created_at {timestamp}, created_by VARCHAR(255), PRIMARY KEY (id))",
        ):
            conn.execute(sa.text(statement))
        for batch_id, priority in ORIGINAL_SCRIPT_PRIORITIES.items():
            conn.execute(
                sa.text("UPDATE job_batches SET priority = :priority WHERE id = :id"),
                {"priority": priority, "id": batch_id},
            )
        for batch_id, tags in ORIGINAL_SCRIPT_TAGS.items():
            if dialect == "postgresql" and json_type == "JSON" and not _is_json(tags):
                continue  # PostgreSQL's json type refuses it
            conn.execute(
                sa.text("UPDATE job_batches SET tags = :tags WHERE id = :id"),
                {"tags": tags, "id": batch_id},
            )
        conn.execute(
            sa.text(f"UPDATE job_batches SET auto_assign_jobs = {false} WHERE id = :id"),
            {"id": BATCH_DONE_ID},
        )
        conn.execute(
            sa.text(
                "INSERT INTO batch_templates (id, name, category, default_settings, is_public) "
                "VALUES (:id, 'Academic Essay Grading', 'academic', :settings, NULL)"
            ),
            {"id": ORIGINAL_SCRIPT_TEMPLATE_ID, "settings": '{"priority": 5}'},
        )


# --------------------------------------------------------------------------- bulk rows

# Batch profiles and their weights: mostly finished work, enough of every other case
# that deriving statuses and counters from jobs has real work to do. Besides these,
# every 20th batch is a draft without jobs.
_BULK_PROFILES = ("completed", "completed_with_errors", "failed", "processing", "pending")
_BULK_PROFILE_WEIGHTS = (78, 6, 4, 8, 4)
_BULK_DRAFT_EVERY = 20
# What the legacy app had written to job_batches.status (it knew no failed or draft).
_BULK_LEGACY_BATCH_STATUS = {
    "completed": "completed",
    "completed_with_errors": "completed",
    "failed": "completed",
    "processing": "processing",
    "pending": "pending",
    "draft": "pending",
}
# Job statuses cycle within a batch of a profile; submission statuses within a job.
_BULK_JOB_CYCLE: dict[str, tuple[str, ...]] = {
    "completed": ("completed",),
    "completed_with_errors": ("completed_with_errors", "completed", "failed"),
    "failed": ("failed",),
    "processing": ("processing", "completed", "pending"),
    "pending": ("pending",),
}
_BULK_SUBMISSION_CYCLE: dict[str, tuple[str, ...]] = {
    "completed": ("completed",),
    "completed_with_errors": ("completed", "failed", "completed", "completed"),
    "failed": ("failed",),
    "processing": ("completed", "processing", "pending"),
    "pending": ("pending",),
}

_BULK_BATCH_COLUMNS = (
    "id",
    "created_at",
    "batch_name",
    "description",
    "status",
    "provider",
    "prompt",
    "model",
    "temperature",
    "max_tokens",
)
_BULK_JOB_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "job_name",
    "description",
    "status",
    "priority",
    "total_submissions",
    "processed_submissions",
    "failed_submissions",
    "provider",
    "prompt",
    "model",
    "batch_id",
    "models_to_compare",
    "temperature",
    "max_tokens",
)
_BULK_SUBMISSION_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "filename",
    "original_filename",
    "file_size",
    "file_type",
    "status",
    "error_message",
    "extracted_text",
    "grade",
    "grade_metadata",
    "job_id",
    "retry_count",
)

_WORDS = (
    "the",
    "argument",
    "evidence",
    "suggests",
    "however",
    "history",
    "analysis",
    "student",
    "economy",
    "report",
    "therefore",
    "policy",
    "climate",
    "narrative",
    "character",
    "data",
    "results",
    "method",
    "conclusion",
    "école",
    "naïve",
    "significant",
    "whereas",
    "growth",
)
_BULK_GRADES = ("A (92/100)", "B+ (78/100)", "B (74/100)", "C+ (65/100)", "D (48/100)")


def _spread(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` split into `parts` uneven non-negative counts (pairs trade a random share)."""
    if parts == 0:
        return []
    base, remainder = divmod(total, parts)
    counts = [base + (1 if i < remainder else 0) for i in range(parts)]
    for i in range(0, parts - 1, 2):
        shift = rng.randint(0, counts[i + 1] // 2)
        counts[i] += shift
        counts[i + 1] -= shift
    rng.shuffle(counts)
    return counts


def _count_in_cycle(cycle: tuple[str, ...], n: int, status: str) -> int:
    """How many of the first n items of a repeating cycle have `status`."""
    full, rest = divmod(n, len(cycle))
    return full * cycle.count(status) + cycle[:rest].count(status)


def _bulk_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# (table, columns, rows) in load order; rows may be a one-shot iterator.
_Loads = Sequence[tuple[str, Sequence[str], Iterable[tuple[Any, ...]]]]


@dataclass
class _BulkPlan:
    batches: list[tuple[Any, ...]]
    jobs: list[tuple[Any, ...]]
    submissions: Iterator[tuple[Any, ...]]  # generated while loading: 1M rows stay out of memory
    submission_count: int


def _plan_bulk(batches: int, jobs: int, submissions: int, seed: int) -> _BulkPlan:
    rng = random.Random(seed)
    start = datetime(2024, 1, 1)
    year_seconds = 365 * 24 * 3600

    batch_rows: list[tuple[Any, ...]] = []
    batch_info: list[tuple[str, str, datetime]] = []  # (id, profile, created_at)
    profiles = rng.choices(_BULK_PROFILES, weights=_BULK_PROFILE_WEIGHTS, k=batches)
    for b, drawn in enumerate(profiles):
        # The first batch is never a draft, so any non-zero `batches` can take jobs.
        profile = "draft" if b % _BULK_DRAFT_EVERY == _BULK_DRAFT_EVERY - 1 else drawn
        batch_id = _bulk_uuid(rng)
        created = start + timedelta(seconds=rng.randrange(year_seconds))
        batch_info.append((batch_id, profile, created))
        batch_rows.append(
            (
                batch_id,
                _datetime_text(created),
                f"Batch {b + 1:05d}",
                None if b % 7 == 0 else "Benchmark batch",
                _BULK_LEGACY_BATCH_STATUS[profile],
                "openrouter",
                _PROMPT,
                "openai/gpt-4o",
                0.3,
                2000,
            )
        )

    with_jobs = [info for info in batch_info if info[1] != "draft"]
    if jobs and not with_jobs:
        raise ValueError("jobs need at least one batch")
    job_counts = _spread(jobs, len(with_jobs), rng)
    job_info: list[tuple[str, str, str]] = []  # (id, status, created_at text)
    job_batch_ids: list[str] = []
    for (batch_id, profile, created), count in zip(with_jobs, job_counts, strict=True):
        cycle = _BULK_JOB_CYCLE[profile]
        for i in range(count):
            job_created = _datetime_text(created + timedelta(minutes=3 * i))
            job_info.append((_bulk_uuid(rng), cycle[i % len(cycle)], job_created))
            job_batch_ids.append(batch_id)

    if submissions and not job_info:
        raise ValueError("submissions need at least one job")
    submission_counts = _spread(submissions, len(job_info), rng)
    job_rows: list[tuple[Any, ...]] = []
    for j, ((job_id, status, stamp), batch_id, count) in enumerate(
        zip(job_info, job_batch_ids, submission_counts, strict=True)
    ):
        cycle = _BULK_SUBMISSION_CYCLE[status]
        failed = _count_in_cycle(cycle, count, "failed")
        processed = _count_in_cycle(cycle, count, "completed") + failed
        job_rows.append(
            (
                job_id,
                stamp,
                stamp,
                f"Job {j + 1:06d}",
                None,
                status,
                1 + j % 10,
                count,
                processed,
                failed,
                "openrouter",
                _PROMPT,
                "openai/gpt-4o",
                batch_id,
                None,
                0.3,
                2000,
            )
        )

    texts = [
        " ".join(rng.choice(_WORDS) for _ in range(45)).capitalize()[:300] + "." for _ in range(64)
    ]
    metadata = json.dumps({"provider": "openrouter", "model": "openai/gpt-4o", "tokens_used": 812})

    def submission_rows() -> Iterator[tuple[Any, ...]]:
        n = 0
        for (job_id, status, created), count in zip(job_info, submission_counts, strict=True):
            cycle = _BULK_SUBMISSION_CYCLE[status]
            for k in range(count):
                sub_status = cycle[k % len(cycle)]
                done = sub_status == "completed"
                failed = sub_status == "failed"
                file_type = "pdf" if k % 3 == 0 else "docx"
                yield (
                    _bulk_uuid(rng),
                    created,
                    created,
                    f"student_{n:07d}.{file_type}",
                    f"Student {k + 1} essay.{file_type}",
                    10_000 + (n * 7919) % 90_000,
                    file_type,
                    sub_status,
                    "API error: 500" if failed else None,
                    texts[n % len(texts)],
                    _BULK_GRADES[n % len(_BULK_GRADES)] if done else None,
                    metadata if done else None,
                    job_id,
                    3 if failed else 0,
                )
                n += 1

    return _BulkPlan(batch_rows, job_rows, submission_rows(), sum(submission_counts))


def populate_bulk(
    url: str, *, batches: int, jobs: int, submissions: int, seed: int = 1
) -> dict[str, int]:
    """Fast bulk rows for a benchmark, into a G6 schema; returns counts per table."""
    plan = _plan_bulk(batches, jobs, submissions, seed)
    loads: _Loads = [
        ("job_batches", _BULK_BATCH_COLUMNS, plan.batches),
        ("grading_jobs", _BULK_JOB_COLUMNS, plan.jobs),
        ("submissions", _BULK_SUBMISSION_COLUMNS, plan.submissions),
    ]
    with _engine(url) as engine:
        loader = _bulk_load_sqlite if _dialect(engine) == "sqlite" else _bulk_load_postgresql
        loader(engine, loads)
    return {
        "job_batches": len(plan.batches),
        "grading_jobs": len(plan.jobs),
        "submissions": plan.submission_count,
    }


def _bulk_load_sqlite(engine: Engine, loads: _Loads) -> None:
    raw = engine.raw_connection()
    try:
        # The sqlite3 connection itself: its executemany streams rows from an iterator.
        sqlite = cast(sqlite3.Connection, raw.driver_connection)
        # Durability is pointless for a throwaway benchmark load; both pragmas are
        # per-connection, and this connection is closed when the engine is disposed.
        # https://www.sqlite.org/pragma.html#pragma_synchronous
        sqlite.execute("PRAGMA synchronous=OFF")
        sqlite.execute("PRAGMA journal_mode=OFF")
        for table, columns, rows in loads:
            placeholders = ", ".join("?" for _ in columns)
            sqlite.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows
            )
        sqlite.commit()
    finally:
        raw.close()


def _bulk_load_postgresql(engine: Engine, loads: _Loads) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        # COPY is PostgreSQL's fast path for loading rows:
        # https://www.psycopg.org/psycopg3/docs/basic/copy.html
        for table, columns, rows in loads:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        # Fresh statistics, so benchmark queries are planned as on a settled database.
        for table, _, _ in loads:
            cursor.execute(f"ANALYZE {table}")
        raw.commit()
    finally:
        raw.close()


# --------------------------------------------------------------------------- self-check


def _derived_status(job_statuses: Sequence[str]) -> str:
    """The status rules from the brief, to cross-check the hand-written oracle."""
    if not job_statuses:
        return "draft"
    statuses = set(job_statuses)
    if "processing" in statuses or ("pending" in statuses and statuses != {"pending"}):
        return "processing"
    if statuses == {"pending"}:
        return "pending"
    if statuses == {"completed"}:
        return "completed"
    if statuses == {"failed"}:
        return "failed"
    return "completed_with_errors"


def _check_oracle() -> None:
    for plan in _BATCHES:
        statuses = plan.job_statuses
        counts = (
            len(statuses),
            sum(s in ("completed", "completed_with_errors") for s in statuses),
            statuses.count("failed"),
        )
        assert EXPECTED_BATCH_STATUS[plan.id] == _derived_status(statuses), plan.name
        assert EXPECTED_BATCH_COUNTS[plan.id] == counts, plan.name


@contextmanager
def _scratch_postgresql(admin_url: str, name: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the duration of the block."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_SELF_CHECK_MIXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("G1", ("submissions.retry_count", "grading_jobs.marking_scheme_id", "job_batches.max_tokens")),
    ("G3", ("grading_jobs.saved_prompt_id", "grading_jobs.temperature")),
    ("G4", ("job_batches.temperature", "grading_jobs.max_tokens")),
)


def _self_check(pg_admin_url: str, bulk: bool) -> None:
    _check_oracle()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_urls = (f"sqlite:///{Path(tmp) / f'legacy_{n}.db'}" for n in range(99))
        builds = [(generation, ()) for generation in GENERATIONS] + list(_SELF_CHECK_MIXES)
        for generation, extras in builds:
            with _scratch_postgresql(pg_admin_url, "legacy_scratch_selfcheck") as pg_url:
                for url in (next(sqlite_urls), pg_url):
                    create_legacy_schema(url, generation, extra_columns=extras)
                    counts = populate_legacy_rows(url)
                    label = f"{generation}{'+' + ','.join(extras) if extras else ''}"
                    print(f"{url.split(':', 1)[0]:<20} {label:<40} {counts}")
        if bulk:
            size = {"batches": 10_000, "jobs": 100_000, "submissions": 1_000_000}
            _time_bulk(next(sqlite_urls), size)
            with _scratch_postgresql(pg_admin_url, "legacy_scratch_bulk") as pg_url:
                _time_bulk(pg_url, size)


def _time_bulk(url: str, size: dict[str, int]) -> None:
    create_legacy_schema(url, "G6")
    began = time.perf_counter()
    counts = populate_bulk(url, **size)
    print(f"populate_bulk {url.split(':', 1)[0]}: {time.perf_counter() - began:.1f} s {counts}")


if __name__ == "__main__":
    # python tests/legacy_db.py [--bulk] [admin PostgreSQL URL]
    arguments = [a for a in sys.argv[1:] if a != "--bulk"]
    _self_check(
        arguments[0] if arguments else "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        bulk="--bulk" in sys.argv,
    )
