"""Document counters on batches, kept by the database itself.

A teacher's dashboard totals the documents of every batch they see. Summed from their
jobs, that read 10,000 job rows of 100,000 at the benchmark's scale (40-80 ms on
PostgreSQL, where an index over counters would cost every counter update its HOT path).
Batches now carry the sums of their jobs' document counters:

- `total_submissions`, `processed_submissions`, `failed_submissions` on job_batches,
  filled from the jobs, and `job_count`, how many jobs it has (the legacy `total_jobs`
  counts the jobs an earlier release added, and is left as it was);
- triggers on grading_jobs (insert, delete, and an update that changes a job's batch or
  its document counters) apply each change to the batch's sums in the same statement.
  The counters are changed in many places (uploads, grading, retries, deletions,
  duplicates, legacy repairs); in the database, no writer can forget one.

Revision ID: 0014_batch_document_counters
Revises: 0013_cost_controls
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from grading_app.migrations.report import current_reporter
from grading_app.migrations.schema_ops import drop_columns, ensure_columns, is_sqlite

revision: str = "0014_batch_document_counters"
down_revision: str | None = "0013_cost_controls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = ("total_submissions", "processed_submissions", "failed_submissions")
TRIGGERS = (
    "trg_grading_jobs_batch_counters_insert",
    "trg_grading_jobs_batch_counters_delete",
    "trg_grading_jobs_batch_counters_update",
)
FUNCTION = "grading_jobs_batch_counters"


JOB_COUNT = "job_count"


def _batches() -> sa.Table:
    return sa.Table(
        "job_batches",
        sa.MetaData(),
        *(
            sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0"))
            for name in (*COUNTERS, JOB_COUNT)
        ),
    )


def _add(row: str, sign: str) -> str:
    """SET clause adding (sign "+") or taking away ("-") a job row: its counters, and
    itself to the count."""
    return ", ".join(
        [f"{name} = {name} {sign} COALESCE({row}.{name}, 0)" for name in COUNTERS]
        + [f"{JOB_COUNT} = {JOB_COUNT} {sign} 1"]
    )


def _changed() -> str:
    return " OR ".join(
        ["OLD.batch_id IS DISTINCT FROM NEW.batch_id"]
        + [f"OLD.{name} IS DISTINCT FROM NEW.{name}" for name in COUNTERS]
    )


def _sqlite_triggers() -> list[str]:
    changed = _changed().replace("IS DISTINCT FROM", "IS NOT")
    return [
        f"CREATE TRIGGER {TRIGGERS[0]} AFTER INSERT ON grading_jobs "
        f"WHEN NEW.batch_id IS NOT NULL BEGIN "
        f"UPDATE job_batches SET {_add('NEW', '+')} WHERE id = NEW.batch_id; END",
        f"CREATE TRIGGER {TRIGGERS[1]} AFTER DELETE ON grading_jobs "
        f"WHEN OLD.batch_id IS NOT NULL BEGIN "
        f"UPDATE job_batches SET {_add('OLD', '-')} WHERE id = OLD.batch_id; END",
        f"CREATE TRIGGER {TRIGGERS[2]} AFTER UPDATE ON grading_jobs WHEN {changed} BEGIN "
        f"UPDATE job_batches SET {_add('OLD', '-')} WHERE id = OLD.batch_id; "
        f"UPDATE job_batches SET {_add('NEW', '+')} WHERE id = NEW.batch_id; END",
    ]


def _postgresql_triggers() -> list[str]:
    return [
        f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        "IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.batch_id IS NOT NULL THEN "
        f"UPDATE job_batches SET {_add('OLD', '-')} WHERE id = OLD.batch_id; "
        "END IF; "
        "IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.batch_id IS NOT NULL THEN "
        f"UPDATE job_batches SET {_add('NEW', '+')} WHERE id = NEW.batch_id; "
        "END IF; "
        "RETURN NULL; "
        "END $$",
        f"CREATE TRIGGER {TRIGGERS[0]} AFTER INSERT ON grading_jobs FOR EACH ROW "
        f"WHEN (NEW.batch_id IS NOT NULL) EXECUTE FUNCTION {FUNCTION}()",
        f"CREATE TRIGGER {TRIGGERS[1]} AFTER DELETE ON grading_jobs FOR EACH ROW "
        f"WHEN (OLD.batch_id IS NOT NULL) EXECUTE FUNCTION {FUNCTION}()",
        f"CREATE TRIGGER {TRIGGERS[2]} AFTER UPDATE ON grading_jobs FOR EACH ROW "
        f"WHEN ({_changed()}) EXECUTE FUNCTION {FUNCTION}()",
    ]


def _drop_triggers() -> None:
    for name in TRIGGERS:
        if is_sqlite():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON grading_jobs")
    if not is_sqlite():
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


def upgrade() -> None:
    report = current_reporter()
    report.section("🧮 Counting documents per batch...")
    ensure_columns(_batches(), itemise_skips=False)
    # Made afresh on every run: a rerun after a failed upgrade finds them as they should be.
    _drop_triggers()
    sums = ", ".join(
        [
            f"{name} = (SELECT COALESCE(SUM(COALESCE(j.{name}, 0)), 0) FROM grading_jobs j "
            f"WHERE j.batch_id = job_batches.id)"
            for name in COUNTERS
        ]
        + [f"{JOB_COUNT} = (SELECT COUNT(*) FROM grading_jobs j WHERE j.batch_id = job_batches.id)"]
    )
    op.execute(f"UPDATE job_batches SET {sums}")
    for statement in _sqlite_triggers() if is_sqlite() else _postgresql_triggers():
        op.execute(statement)
    report.change(
        "Batches count their documents (kept by triggers on grading_jobs)",
        plan="add document counters to job_batches, with triggers on grading_jobs",
    )


def downgrade() -> None:
    _drop_triggers()
    drop_columns("job_batches", (*COUNTERS, JOB_COUNT))
