"""Accounts, sharing, the audit trail, and an owner for every batch, job and template.

- New tables `users`, `user_sessions`, `access_tokens`, `sign_in_throttles`,
  `batch_shares`, `audit_events`, `instance_secrets`.
- `owner_id` on job_batches, grading_jobs, batch_templates, saved_prompts and
  saved_marking_schemes. Existing rows keep NULL here: the upgrade needs no users, and
  the first administrator created afterwards adopts every row without an owner (except
  the system's default templates).
- `is_public` on saved_prompts and saved_marking_schemes. Before accounts, everyone saw
  the whole library, so the rows already there are public; new ones start private.
- The same scheme file uploaded twice reuses its row per owner: the unique index on
  `content_hash` becomes one on (`owner_id`, `content_hash`).

Revision ID: 0009_accounts
Revises: 0008_reports
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

revision: str = "0009_accounts"
down_revision: str | None = "0008_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNED_TABLES = (
    "job_batches",
    "grading_jobs",
    "batch_templates",
    "saved_prompts",
    "saved_marking_schemes",
)
LIBRARY_TABLES = ("saved_prompts", "saved_marking_schemes")
OLD_HASH_INDEX = "ix_saved_marking_schemes_content_hash"
NEW_HASH_INDEX = "ix_saved_marking_schemes_owner_id_content_hash"
NEW_TABLES = (
    "audit_events",
    "batch_shares",
    "instance_secrets",
    "sign_in_throttles",
    "access_tokens",
    "user_sessions",
    "users",
)


def _new_tables(metadata: sa.MetaData) -> list[sa.Table]:
    """The tables as of this revision (frozen; the models may move on)."""
    sa.Table("job_batches", metadata, sa.Column("id", sa.String(36), primary_key=True))
    users = sa.Table(
        "users",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(255)),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime()),
        sa.Index("ix_users_username", "username", unique=True),
    )
    user_sessions = sa.Table(
        "user_sessions",
        metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("user_agent", sa.String(255)),
        sa.Index("ix_user_sessions_user_id", "user_id"),
    )
    access_tokens = sa.Table(
        "access_tokens",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime()),
        sa.Column("last_used_at", sa.DateTime()),
        sa.Column("revoked_at", sa.DateTime()),
        sa.Index("ix_access_tokens_token_hash", "token_hash", unique=True),
        sa.Index("ix_access_tokens_user_id", "user_id"),
    )
    throttles = sa.Table(
        "sign_in_throttles",
        metadata,
        sa.Column("key", sa.String(320), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime()),
    )
    shares = sa.Table(
        "batch_shares",
        metadata,
        sa.Column(
            "batch_id",
            sa.String(36),
            sa.ForeignKey("job_batches.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("permission", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by_id", sa.String(36)),
        sa.Index("ix_batch_shares_user_id", "user_id"),
    )
    audit = sa.Table(
        "audit_events",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor_id", sa.String(36)),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target_type", sa.String(30), nullable=False),
        sa.Column("target_id", sa.String(36)),
        sa.Column("detail", sa.JSON()),
        sa.Index("ix_audit_events_at_id", "at", "id"),
        sa.Index("ix_audit_events_target", "target_type", "target_id"),
    )
    secrets = sa.Table(
        "instance_secrets",
        metadata,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    return [users, user_sessions, access_tokens, throttles, shares, audit, secrets]


def _owned(name: str) -> sa.Table:
    metadata = sa.MetaData()
    sa.Table("users", metadata, sa.Column("id", sa.String(36), primary_key=True))
    columns: list[sa.Column] = [
        sa.Column("owner_id", sa.String(36), sa.ForeignKey("users.id")),
    ]
    if name in LIBRARY_TABLES:
        columns.append(
            sa.Column("is_public", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    table = sa.Table(name, metadata, *columns)
    sa.Index(f"ix_{name}_owner_id", table.c.owner_id)
    return table


def upgrade() -> None:
    report = current_reporter()
    report.section("👤 Adding accounts, sharing and the audit trail...")
    for table in _new_tables(sa.MetaData()):
        ensure_table(table)
    for name in OWNED_TABLES:
        table = _owned(name)
        added = ensure_columns(table)
        ensure_constraints(table)
        ensure_indexes(table)
        if "is_public" in added:
            _publish_existing(name)
        if name == "saved_marking_schemes":
            _hash_index_per_owner(table)


def _publish_existing(name: str) -> None:
    report = current_reporter()
    published = op.get_bind().execute(sa.text(f"UPDATE {name} SET is_public = TRUE")).rowcount
    if published:
        report.change(
            f"Kept {published} existing {name} row(s) visible to everyone (public)",
            plan=f"make {published} existing {name} row(s) public",
        )


def _hash_index_per_owner(schemes: sa.Table) -> None:
    drop_indexes("saved_marking_schemes", [OLD_HASH_INDEX])
    content_hash = sa.Column("content_hash", sa.String(64))
    schemes.append_column(content_hash)
    sa.Index(NEW_HASH_INDEX, schemes.c.owner_id, content_hash, unique=True)
    ensure_indexes(schemes)


def downgrade() -> None:
    drop_indexes("saved_marking_schemes", [NEW_HASH_INDEX])
    op.create_index(OLD_HASH_INDEX, "saved_marking_schemes", ["content_hash"], unique=True)
    for name in OWNED_TABLES:
        drop_indexes(name, [f"ix_{name}_owner_id"])
        drop_columns(name, ("owner_id", "is_public") if name in LIBRARY_TABLES else ("owner_id",))
    for name in NEW_TABLES:
        if table_exists(name):
            op.drop_table(name)
