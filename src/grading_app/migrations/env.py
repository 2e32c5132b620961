"""Alembic environment: runs on the connection (and transaction) the caller provides."""

from alembic import context

from grading_app.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through `grading-app db ...`, which opens the connection and "
        "the single transaction they run in"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    # The caller's transaction spans every revision; SQLite DDL is transactional once
    # BEGIN has been issued explicitly (see grading_app.db.make_engine).
    transactional_ddl=True,
    transaction_per_migration=False,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
