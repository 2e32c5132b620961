"""Helpers shared by the upload tests and the CLI's."""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa

from grading_app.db import parse_url, sqlite_path


def stored_files(upload_dir) -> list[str]:
    """Documents kept on disk (not the temporary files of an upload in progress)."""
    if not upload_dir.exists():
        return []
    return sorted(p.name for p in upload_dir.iterdir() if not p.name.startswith("."))


def assert_no_transaction_open(database_url: str) -> None:
    """Nobody holds a transaction: on SQLite another connection takes the write lock at
    once; on PostgreSQL no other session of the database is inside a transaction."""
    url = parse_url(database_url)
    path = sqlite_path(url)
    if path is not None:
        connection = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")  # "database is locked" if one is held
            connection.execute("ROLLBACK")
        finally:
            connection.close()
        return
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            open_elsewhere = connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
                    "AND backend_type = 'client backend'"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert open_elsewhere == 0, "a transaction is open while a file is read"
