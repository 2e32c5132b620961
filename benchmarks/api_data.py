"""The database `benchmarks/api.py` reads: batches, jobs, submissions, work items and
grades, written straight into the current schema in bulk (executemany on SQLite, COPY
on PostgreSQL), shaped as the application writes them and with every counter set.

Deterministic: ids are numbered (`uuid.UUID(int=...)`), so each table is written in a
pass of its own without keeping the rows of another in memory.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from grading_app.db import make_engine
from grading_app.migrations.default_templates import DEFAULT_TEMPLATES
from grading_app.models import BatchStatus, JobStatus, SubmissionStatus, WorkItemState
from grading_app.upgrade.schema import upgrade_schema

NOW = datetime(2026, 6, 1, 12, 0, 0)
SUBJECTS = ("English", "History", "Biology", "Physics", "Geography", "Art", "Music", "Maths")
KINDS = ("essay", "report", "lab write-up", "project", "reflection")
TAG_SETS = (
    ["english"],
    ["a", "b"],
    ["science", "year9"],
    ["english", "midterm"],
    ["a"],
    ["b", "year10"],
    ["history", "a", "b"],
    ["final"],
)
# One in twenty batches per status slot: mostly finished, some running, a few drafts.
STATUS_CYCLE = (
    [BatchStatus.COMPLETED] * 8
    + [BatchStatus.PROCESSING] * 3
    + [
        BatchStatus.PAUSED,
        BatchStatus.FAILED,
        BatchStatus.COMPLETED_WITH_ERRORS,
        BatchStatus.CANCELLED,
        BatchStatus.ARCHIVED,
        BatchStatus.PENDING,
        BatchStatus.PENDING,
        BatchStatus.DRAFT,
        BatchStatus.DRAFT,
    ]
)
RUNNING = {BatchStatus.PROCESSING, BatchStatus.PAUSED}
NOT_STARTED = {BatchStatus.DRAFT, BatchStatus.PENDING}
MODELS = (("openai", "fake-grader"), ("claude", "fake-claude"))
CRITERIA = ("Argument", "Evidence", "Structure", "Style")
CHUNK = 20_000
# Id spaces, one per table.
BATCH, JOB, SUBMISSION, ITEM, GRADE = range(1, 6)


def numbered_id(kind: int, number: int) -> str:
    """The same text as str(uuid.UUID(int=kind << 96 | number)), faster."""
    digits = f"{kind << 96 | number:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


@dataclass
class BatchPlan:
    number: int
    status: BatchStatus
    jobs: list[int] = field(default_factory=list)


@dataclass
class JobPlan:
    number: int
    batch: int
    documents: int
    first_submission: int
    models: int


@dataclass
class Plan:
    batches: list[BatchPlan]
    jobs: list[JobPlan]
    export_batch: int = 0  # the batch of one job holding `export_documents` graded documents

    @property
    def submissions(self) -> int:
        return sum(job.documents for job in self.jobs)


def plan(*, batches: int, jobs: int, submissions: int, export_documents: int) -> Plan:
    """Batch 0 holds one job of `export_documents` documents (graded, for the export);
    the other jobs share the other batches and documents evenly."""
    batch_plans = [
        BatchPlan(i, BatchStatus.COMPLETED if i == 0 else STATUS_CYCLE[i % len(STATUS_CYCLE)])
        for i in range(batches)
    ]
    job_plans = []
    if jobs:
        job_plans.append(JobPlan(0, 0, export_documents, 0, 1))
        batch_plans[0].jobs.append(0)
    rest_jobs = max(jobs - 1, 0)
    rest_docs = max(submissions - export_documents, 0)
    next_submission = export_documents
    for j in range(rest_jobs):
        batch = 1 + j % (batches - 1) if batches > 1 else 0
        documents = rest_docs // rest_jobs + (1 if j < rest_docs % rest_jobs else 0)
        job = JobPlan(j + 1, batch, documents, next_submission, 2 if j % 10 == 3 else 1)
        next_submission += documents
        job_plans.append(job)
        batch_plans[batch].jobs.append(job.number)
    return Plan(batch_plans, job_plans)


# ------------------------------------------------------------------ document outcomes


def outcome(status: BatchStatus, local: int) -> WorkItemState | None:
    """What became of document `local` of a job in a batch of `status`: None when its
    job was never queued (a draft)."""
    if status == BatchStatus.DRAFT:
        return None
    if status == BatchStatus.PENDING or (status in RUNNING and local % 3 == 0):
        return WorkItemState.QUEUED
    return WorkItemState.FAILED if local % 50 == 7 else WorkItemState.COMPLETED


@dataclass
class Counts:
    documents: int = 0
    completed: int = 0
    failed: int = 0


def job_counts(job: JobPlan, status: BatchStatus) -> Counts:
    counts = Counts(documents=job.documents)
    for local in range(job.documents):
        state = outcome(status, local)
        counts.completed += state == WorkItemState.COMPLETED
        counts.failed += state == WorkItemState.FAILED
    return counts


def job_status(status: BatchStatus) -> JobStatus:
    if status in NOT_STARTED:
        return JobStatus.PENDING
    if status == BatchStatus.ARCHIVED:
        return JobStatus.COMPLETED
    return JobStatus(status.value)


# ------------------------------------------------------------------------- rows


def batch_rows(plan_: Plan, template_ids: Sequence[str]) -> Iterator[dict[str, Any]]:
    for batch in plan_.batches:
        i = batch.number
        created = NOW - timedelta(days=i % 365, minutes=i % 1440)
        started = created + timedelta(hours=1) if batch.status not in NOT_STARTED else None
        finished = batch.status not in NOT_STARTED | RUNNING
        totals = Counts()
        items = completed_items = failed_items = completed_jobs = 0
        for number in batch.jobs:
            job = plan_.jobs[number]
            counts = job_counts(job, batch.status)
            totals.documents += counts.documents
            items += counts.documents * job.models
            completed_items += counts.completed * job.models
            failed_items += counts.failed * job.models
            completed_jobs += finished
        kind = KINDS[i % len(KINDS)]
        subject = SUBJECTS[i % len(SUBJECTS)]
        two_models = i % 10 == 3
        yield {
            "id": numbered_id(BATCH, i),
            "created_at": created,
            "updated_at": created,
            "batch_name": f"{subject} {kind} {i}",
            "description": f"Term {1 + i % 3} {kind}s for {subject}, set {i}",
            "status": batch.status.value,
            "provider": "openai",
            "model": "fake-grader",
            "prompt": "Grade this essay out of 100.",
            "priority": 1 + i % 10,
            "tags": TAG_SETS[i % len(TAG_SETS)],
            "models_to_compare": [
                {"provider": p, "model": m} for p, m in MODELS[: 2 if two_models else 1]
            ],
            "batch_settings": {"max_retries": 3},
            "auto_assign_jobs": False,
            "total_jobs": len(batch.jobs),
            "completed_jobs": completed_jobs,
            "failed_jobs": 0,
            "deadline": None if i % 7 == 0 else NOW + timedelta(days=i % 121 - 60, hours=i % 24),
            "started_at": started,
            "completed_at": started + timedelta(hours=2) if started and finished else None,
            "template_id": template_ids[i % len(template_ids)]
            if template_ids and i % 5 == 0
            else None,
            "created_by": f"teacher{i % 20}@school.example",
            "total_items": items,
            "completed_items": completed_items,
            "failed_items": failed_items,
        }


def job_rows(plan_: Plan) -> Iterator[dict[str, Any]]:
    for job in plan_.jobs:
        status = plan_.batches[job.batch].status
        counts = job_counts(job, status)
        created = NOW - timedelta(days=job.batch % 365)
        started = created + timedelta(hours=1) if status not in NOT_STARTED else None
        yield {
            "id": numbered_id(JOB, job.number),
            "created_at": created,
            "updated_at": created,
            "job_name": f"Class {job.number} essays",
            "status": job_status(status).value,
            "priority": 5,
            "total_submissions": counts.documents,
            "processed_submissions": counts.completed,
            "failed_submissions": counts.failed,
            "provider": "openai",
            "prompt": "Grade this essay out of 100.",
            "model": "fake-grader",
            "batch_id": numbered_id(BATCH, job.batch),
            "models_to_compare": [{"provider": p, "model": m} for p, m in MODELS[: job.models]],
            "total_items": counts.documents * job.models,
            "completed_items": counts.completed * job.models,
            "failed_items": counts.failed * job.models,
            "started_at": started,
            "completed_at": started + timedelta(hours=2)
            if started and status not in RUNNING
            else None,
        }


# The three big tables come as tuples in these column orders, their values already in
# the database's form (`when` writes a timestamp), as a million dicts would be slow.
SUBMISSION_COLUMNS = (
    "id", "created_at", "updated_at", "filename", "original_filename", "file_size",
    "file_type", "status", "error_message", "extracted_text", "grade", "job_id",
    "retry_count",
)  # fmt: skip
ITEM_COLUMNS = (
    "id", "submission_id", "job_id", "batch_id", "provider", "model", "state", "attempts",
    "sequence", "last_error", "created_at", "updated_at", "started_at", "completed_at",
)  # fmt: skip
GRADE_COLUMNS = (
    "id", "created_at", "grade", "provider", "model", "status", "submission_id",
    "work_item_id", "score", "max_score", "criteria", "feedback", "raw_response",
    "prompt_tokens", "completion_tokens", "latency_ms",
)  # fmt: skip
FAILURE = "The model's answer could not be read"
SUBMISSION_STATUS = {
    None: SubmissionStatus.PENDING.value,
    WorkItemState.QUEUED: SubmissionStatus.PENDING.value,
    WorkItemState.COMPLETED: SubmissionStatus.COMPLETED.value,
    WorkItemState.FAILED: SubmissionStatus.FAILED.value,
}


def _created(job: JobPlan) -> datetime:
    return NOW - timedelta(days=job.batch % 365)


def submission_tuples(plan_: Plan, when: Callable[[datetime], Any]) -> Iterator[tuple[Any, ...]]:
    for job in plan_.jobs:
        status = plan_.batches[job.batch].status
        created = when(_created(job))
        job_id = numbered_id(JOB, job.number)
        for local in range(job.documents):
            number = job.first_submission + local
            state = outcome(status, local)
            graded = job.models == 1 and state == WorkItemState.COMPLETED
            yield (
                numbered_id(SUBMISSION, number),
                created,
                created,
                f"{number:032x}.txt",
                f"student_{local:06d}_essay.txt",
                1_800 + number % 400,
                "txt",
                SUBMISSION_STATUS[state],
                FAILURE if state == WorkItemState.FAILED else None,
                f"Essay {number}. It argues a point with evidence and a conclusion.",
                f"{_score(number, 0):g}/100" if graded else None,
                job_id,
                0,
            )


def _score(number: int, model: int) -> float:
    return float(40 + (number * 7 + model * 5) % 61)


def work_item_tuples(plan_: Plan, when: Callable[[datetime], Any]) -> Iterator[tuple[Any, ...]]:
    when = functools.cache(when)  # most jobs start the same day, so times repeat
    for job in plan_.jobs:
        status = plan_.batches[job.batch].status
        if status == BatchStatus.DRAFT:
            continue
        created = _created(job)
        created_text = when(created)
        job_id, batch_id = numbered_id(JOB, job.number), numbered_id(BATCH, job.batch)
        for local in range(job.documents):
            number = job.first_submission + local
            state = outcome(status, local)
            assert state is not None
            done = state != WorkItemState.QUEUED
            # Graded one after another, three seconds each.
            started = when(created + timedelta(seconds=3 * local)) if done else None
            completed = when(created + timedelta(seconds=3 * local + 3)) if done else None
            for model in range(job.models):
                provider, name = MODELS[model]
                yield (
                    numbered_id(ITEM, number * 2 + model),
                    numbered_id(SUBMISSION, number),
                    job_id,
                    batch_id,
                    provider,
                    name,
                    state.value,
                    1 if done else 0,
                    local,
                    FAILURE if state == WorkItemState.FAILED else None,
                    created_text,
                    created_text,
                    started,
                    completed,
                )


@functools.cache
def _criteria(score: float) -> str:
    share = round(score / len(CRITERIA), 1)
    return json.dumps([{"name": c, "score": share, "max_score": 25} for c in CRITERIA])


def grade_tuples(plan_: Plan, when: Callable[[datetime], Any]) -> Iterator[tuple[Any, ...]]:
    for job in plan_.jobs:
        status = plan_.batches[job.batch].status
        created = when(_created(job))
        for local in range(job.documents):
            if outcome(status, local) != WorkItemState.COMPLETED:
                continue
            number = job.first_submission + local
            for model in range(job.models):
                provider, name = MODELS[model]
                score = _score(number, model)
                yield (
                    numbered_id(GRADE, number * 2 + model),
                    created,
                    f"{score:g}/100",
                    provider,
                    name,
                    "completed",
                    numbered_id(SUBMISSION, number),
                    numbered_id(ITEM, number * 2 + model),
                    score,
                    100.0,
                    _criteria(score),
                    "Clear argument; cite more sources and tighten the conclusion.",
                    f'{{"overall_score": {score}, "max_score": 100}}',
                    900 + number % 300,
                    180 + number % 60,
                    800 + number % 1500,
                )


# ----------------------------------------------------------------------- writers


class Writer:
    """Bulk inserts: sqlite3's executemany in one transaction, or PostgreSQL COPY."""

    def __init__(self, url: str) -> None:
        self.postgres = url.startswith("postgresql")
        parsed = sa.engine.make_url(url)
        if self.postgres:
            import psycopg

            self.connection: Any = psycopg.connect(
                parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            )
        else:
            self.connection = sqlite3.connect(parsed.database or "")
            # A load, not a live database: nothing else writes, and a crash means rebuild.
            self.connection.execute("PRAGMA synchronous = OFF")
            self.connection.execute("PRAGMA cache_size = -262144")

    def when(self, value: datetime) -> Any:
        """A timestamp as the database takes it (SQLAlchemy's text form on SQLite)."""
        return value if self.postgres else value.strftime("%Y-%m-%d %H:%M:%S.%f")

    def write_dicts(self, table: str, rows: Iterable[dict[str, Any]]) -> int:
        listed = list(rows)
        if not listed:
            return 0
        columns = tuple(listed[0])
        return self.write(table, columns, (tuple(map(self._value, r.values())) for r in listed))

    def write(self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
        count = 0
        names = ", ".join(columns)
        if self.postgres:
            with self.connection.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        else:
            marks = ", ".join("?" for _ in columns)
            sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"
            chunk: list[tuple[Any, ...]] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= CHUNK:
                    self.connection.executemany(sql, chunk)
                    count += len(chunk)
                    chunk = []
            self.connection.executemany(sql, chunk)
            count += len(chunk)
        self.connection.commit()
        return count

    def _value(self, value: Any) -> Any:
        if isinstance(value, dict | list):
            return json.dumps(value)
        if isinstance(value, datetime):
            return self.when(value)
        if isinstance(value, bool) and not self.postgres:
            return int(value)
        return value

    def close(self) -> None:
        self.connection.close()


def build(url: str, plan_: Plan, *, say: Any = print) -> float:
    """The schema at head (as `grading-app db upgrade` makes it), then every row."""
    started = time.perf_counter()
    upgrade_schema(url, write=lambda _: None)
    engine = make_engine(url)
    with engine.connect() as connection:
        template_ids = list(
            connection.execute(
                sa.text("SELECT id FROM batch_templates WHERE name IN :names").bindparams(
                    sa.bindparam("names", expanding=True)
                ),
                {"names": [t["name"] for t in DEFAULT_TEMPLATES]},
            ).scalars()
        )
    engine.dispose()
    writer = Writer(url)
    try:
        steps: list[tuple[str, Callable[[], int]]] = [
            (
                "job_batches",
                lambda: writer.write_dicts("job_batches", batch_rows(plan_, template_ids)),
            ),
            ("grading_jobs", lambda: writer.write_dicts("grading_jobs", job_rows(plan_))),
            (
                "submissions",
                lambda: writer.write(
                    "submissions", SUBMISSION_COLUMNS, submission_tuples(plan_, writer.when)
                ),
            ),
            (
                "work_items",
                lambda: writer.write(
                    "work_items", ITEM_COLUMNS, work_item_tuples(plan_, writer.when)
                ),
            ),
            (
                "grade_results",
                lambda: writer.write(
                    "grade_results", GRADE_COLUMNS, grade_tuples(plan_, writer.when)
                ),
            ),
        ]
        for table, step in steps:
            table_started = time.perf_counter()
            count = step()
            say(f"    {table}: {count:,} rows in {time.perf_counter() - table_started:.1f} s")
    finally:
        writer.close()
    if url.startswith("postgresql"):
        engine = make_engine(url)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")  # as autovacuum would, soon after
        engine.dispose()
    return time.perf_counter() - started
