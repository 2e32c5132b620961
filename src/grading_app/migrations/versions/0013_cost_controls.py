"""Cost controls: vendor batch APIs, prompt caching, prices, spending and budgets.

- New table `provider_batches`: each batch of calls sent to a vendor's batch API, with
  the vendor's ids and state, so a restarted worker polls and collects it exactly once.
- New table `model_prices`: the prices an administrator sets (USD per million input,
  cached input, cache-write and output tokens, and the batch API's discount).
- `provider_batch_id` on work_items: the vendor batch an item was sent in.
- `cached_tokens`, `cache_write_tokens`, `delivery`, `cost_usd` on grade_results: what
  each grading's calls read from the prompt cache, how they went and what they cost.
- `spent_usd` and `pause_reason` on job_batches: the running cost checked against a
  budget, and why a batch was paused when no person paused it.

Revision ID: 0013_cost_controls
Revises: 0012_document_reviews
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from grading_app.migrations.report import current_reporter
from grading_app.migrations.schema_ops import (
    drop_columns,
    drop_indexes,
    ensure_columns,
    ensure_constraints,
    ensure_indexes,
    ensure_table,
    table_exists,
)

revision: str = "0013_cost_controls"
down_revision: str | None = "0012_document_reviews"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GRADE_COLUMNS = ("cached_tokens", "cache_write_tokens", "delivery", "cost_usd")
BATCH_COLUMNS = ("spent_usd", "pause_reason")
ITEMS_INDEX = "ix_work_items_provider_batch_id"


def _tables() -> dict[str, sa.Table]:
    """The tables as of this revision (frozen; the models may move on)."""
    metadata = sa.MetaData()
    sa.Table("users", metadata, sa.Column("id", sa.String(36), primary_key=True))
    batches = sa.Table(
        "job_batches",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("spent_usd", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("pause_reason", sa.Text()),
    )
    provider_batches = sa.Table(
        "provider_batches",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("batch_id", sa.String(36), sa.ForeignKey("job_batches.id", ondelete="SET NULL")),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("state", sa.String(20), nullable=False, server_default=sa.text("'preparing'")),
        sa.Column("external_id", sa.String(255)),
        sa.Column("input_file_id", sa.String(255)),
        sa.Column("output_file_id", sa.String(255)),
        sa.Column("error_file_id", sa.String(255)),
        sa.Column("vendor_status", sa.String(50)),
        sa.Column("request_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("succeeded_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("failed_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("requeued_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("cost_usd", sa.Float()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("submitted_at", sa.DateTime()),
        sa.Column("ended_at", sa.DateTime()),
        sa.Column("collected_at", sa.DateTime()),
        sa.Column("expires_at", sa.DateTime()),
        sa.Column("next_poll_at", sa.DateTime()),
        sa.Column("polls", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", sa.DateTime()),
        sa.Index("ix_provider_batches_state_next_poll_at", "state", "next_poll_at"),
        sa.Index("ix_provider_batches_batch_id", "batch_id"),
    )
    prices = sa.Table(
        "model_prices",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("input_per_million", sa.Float(), nullable=False),
        sa.Column("output_per_million", sa.Float(), nullable=False),
        sa.Column("cached_input_per_million", sa.Float()),
        sa.Column("cache_write_per_million", sa.Float()),
        sa.Column("batch_discount", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("updated_at", sa.DateTime()),
        sa.Column("updated_by", sa.String(36), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.UniqueConstraint("provider", "model", name="model_prices_provider_model_key"),
    )
    items = sa.Table(
        "work_items",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "provider_batch_id",
            sa.String(36),
            sa.ForeignKey("provider_batches.id", ondelete="SET NULL"),
        ),
        sa.Index(ITEMS_INDEX, "provider_batch_id"),
    )
    grades = sa.Table(
        "grade_results",
        metadata,
        sa.Column("cached_tokens", sa.Integer()),
        sa.Column("cache_write_tokens", sa.Integer()),
        sa.Column("delivery", sa.String(20)),
        sa.Column("cost_usd", sa.Float()),
    )
    return {
        "job_batches": batches,
        "provider_batches": provider_batches,
        "model_prices": prices,
        "work_items": items,
        "grade_results": grades,
    }


def upgrade() -> None:
    current_reporter().section("💰 Adding cost controls (batch APIs, prices, budgets)...")
    tables = _tables()
    ensure_columns(tables["job_batches"], itemise_skips=False)
    ensure_table(tables["provider_batches"])
    ensure_table(tables["model_prices"])
    ensure_columns(tables["work_items"], itemise_skips=False)
    ensure_constraints(tables["work_items"])
    ensure_indexes(tables["work_items"])
    ensure_columns(tables["grade_results"])


def downgrade() -> None:
    drop_indexes("work_items", [ITEMS_INDEX])
    drop_columns("work_items", ("provider_batch_id",))
    for table in ("provider_batches", "model_prices"):
        if table_exists(table):
            op.drop_table(table)
    drop_columns("job_batches", BATCH_COLUMNS)
    drop_columns("grade_results", GRADE_COLUMNS)
