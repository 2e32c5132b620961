"""Backups made before the upgrade changes anything, each verified before we go on."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from grading_app.errors import AppError


class BackupFailed(AppError):
    status_code = 500


@dataclass(frozen=True)
class Backup:
    path: Path
    sha256: str
    size_bytes: int
    row_counts: dict[str, int]
    seconds: float


def timestamped_path(directory: Path, stem: str, suffix: str, now: datetime) -> Path:
    """`<stem>_backup_YYYYMMDD_HHMMSS<suffix>`, never overwriting an earlier backup."""
    base = f"{stem}_backup_{now:%Y%m%d_%H%M%S}"
    candidate = directory / f"{base}{suffix}"
    counter = 2
    while candidate.exists():
        candidate = directory / f"{base}_{counter}{suffix}"
        counter += 1
    return candidate


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def backup_sqlite(source_path: Path, destination: Path, expected_counts: dict[str, int]) -> Path:
    """Copy the database with SQLite's online backup API, then check the copy.

    The upgrade's own connection already holds the write lock (BEGIN IMMEDIATE) and has
    not written yet, so this second connection reads exactly the state the upgrade
    starts from. The backup cannot run on the upgrade's connection itself: SQLite
    refuses to back up from a connection that has a write transaction open
    (https://www.sqlite.org/c3ref/backup_finish.html).
    """
    try:
        source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
        target = sqlite3.connect(destination)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        copy = sqlite3.connect(f"file:{destination}?mode=ro", uri=True)
        try:
            counts = {
                table: copy.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
                for table in expected_counts
            }
        finally:
            copy.close()
    except sqlite3.Error as exc:
        destination.unlink(missing_ok=True)
        raise BackupFailed(f"Backup to {destination} failed: {exc}") from exc
    if counts != expected_counts:
        raise BackupFailed(
            f"Backup {destination} does not hold the same rows as the database "
            f"({counts} != {expected_counts}); nothing was changed"
        )
    return destination


_COPY_HEADER = re.compile(r"^COPY (?:public\.)?\"?(\w+)\"? \(")


def backup_postgresql(
    url: URL, destination: Path, snapshot: str, expected_counts: dict[str, int]
) -> Path:
    """pg_dump the exported snapshot of the upgrade's transaction, then check the dump.

    `--snapshot` makes the dump see exactly what the upgrade sees
    (https://www.postgresql.org/docs/current/app-pgdump.html). The password goes
    through the environment, never the command line, where `ps` would show it.
    """
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupFailed("pg_dump is not on PATH")
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    command = [
        pg_dump,
        "--no-password",
        f"--snapshot={snapshot}",
        "--file",
        str(destination),
        "--dbname",
        _libpq_dsn(url),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        destination.unlink(missing_ok=True)
        raise BackupFailed(f"pg_dump failed: {result.stderr.strip()[:500]}")
    counts = _count_copy_rows(destination)
    wanted = {table: counts.get(table, 0) for table in expected_counts}
    if wanted != expected_counts:
        raise BackupFailed(
            f"Backup {destination} does not hold the same rows as the database "
            f"({wanted} != {expected_counts}); nothing was changed"
        )
    return destination


def _libpq_dsn(url: URL) -> str:
    parts = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "dbname": url.database,
    }
    return " ".join(
        f"{key}='{str(value)}'" for key, value in parts.items() if value not in (None, "")
    )


def _count_copy_rows(dump: Path) -> dict[str, int]:
    """Rows per table in a plain-format dump: the lines between `COPY t (...)` and `\\.`."""
    counts: dict[str, int] = {}
    table: str | None = None
    with dump.open("r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if table is None:
                match = _COPY_HEADER.match(line)
                if match:
                    table = match.group(1)
                    counts[table] = 0
            elif line == "\\.\n":
                table = None
            else:
                counts[table] += 1
    return counts


def export_snapshot(connection: sa.Connection) -> str:
    return connection.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
