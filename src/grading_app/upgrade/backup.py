"""Backups made before the upgrade changes anything, each verified before it commits.

Only the copy itself stands in the upgrade's way. Checking it (row counts), its
SHA-256 and the fsync that makes it durable run on a thread while the schema changes
proceed, and `PendingBackup.finish()` waits for them before the upgrade may commit: a
backup that fails its checks still rolls the whole upgrade back.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from grading_app.errors import AppError

CHUNK = 4 * 1024 * 1024


class BackupFailed(AppError):
    status_code = 500


@dataclass(frozen=True)
class Backup:
    path: Path
    sha256: str
    size_bytes: int
    row_counts: dict[str, int]
    seconds: float  # the copy, which the upgrade waits for
    check_seconds: float  # verification, checksum and fsync, overlapped with the upgrade


class PendingBackup:
    """A copy already written; its checks run on a thread until `finish()`."""

    def __init__(
        self,
        path: Path,
        expected_counts: dict[str, int],
        count_rows: Callable[[Path], dict[str, int]],
        copy_seconds: float,
    ) -> None:
        self.path = path
        self.expected_counts = expected_counts
        self.copy_seconds = copy_seconds
        self._count_rows = count_rows
        self._error: BaseException | None = None
        self._sha256 = ""
        self._check_seconds = 0.0
        self._thread = threading.Thread(target=self._check, name="backup-check", daemon=True)
        self._thread.start()

    def _check(self) -> None:
        started = time.monotonic()
        try:
            counts = self._count_rows(self.path)
            wanted = {table: counts.get(table, 0) for table in self.expected_counts}
            if wanted != self.expected_counts:
                raise BackupFailed(
                    f"Backup {self.path} does not hold the same rows as the database "
                    f"({wanted} != {self.expected_counts}); nothing was changed"
                )
            self._sha256 = sha256_of(self.path)
            _fsync(self.path)
        except BaseException as exc:  # re-raised in the upgrade's thread by finish()
            self._error = exc
        finally:
            self._check_seconds = time.monotonic() - started

    def finish(self) -> Backup:
        self._thread.join()
        if self._error is not None:
            if isinstance(self._error, BackupFailed):
                raise self._error
            raise BackupFailed(f"Checking the backup {self.path} failed: {self._error}")
        return Backup(
            path=self.path,
            sha256=self._sha256,
            size_bytes=self.path.stat().st_size,
            row_counts=self.expected_counts,
            seconds=self.copy_seconds,
            check_seconds=self._check_seconds,
        )


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
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# --- SQLite ------------------------------------------------------------------------------


def backup_sqlite(
    source_path: Path, destination: Path, expected_counts: dict[str, int], *, journal_mode: str
) -> PendingBackup:
    """Copy the database file, then check the copy.

    The upgrade's connection holds the write lock (BEGIN IMMEDIATE) and has written
    nothing to the file yet, so in a rollback-journal database the file itself is a
    consistent snapshot and a plain file copy is the fastest backup there is. In WAL
    mode committed pages may still live in the -wal file, so there SQLite's online
    backup API makes the copy (https://www.sqlite.org/backup.html).
    """
    started = time.monotonic()
    try:
        if journal_mode.lower() == "wal":
            source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
            target = sqlite3.connect(destination)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
        else:
            shutil.copyfile(source_path, destination)
    except (OSError, sqlite3.Error) as exc:
        destination.unlink(missing_ok=True)
        raise BackupFailed(f"Backup to {destination} failed: {exc}") from exc
    return PendingBackup(
        destination,
        expected_counts,
        lambda path: _sqlite_counts(path, list(expected_counts)),
        time.monotonic() - started,
    )


def _sqlite_counts(path: Path, tables: list[str]) -> dict[str, int]:
    copy = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            table: copy.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables
        }
    except sqlite3.Error as exc:
        raise BackupFailed(f"The backup {path} cannot be read back: {exc}") from exc
    finally:
        copy.close()


# --- PostgreSQL --------------------------------------------------------------------------

_COPY_HEADER = re.compile(rb'^COPY (?:public\.)?"?(\w+)"? \(')


def backup_postgresql(
    url: URL, destination: Path, snapshot: str, expected_counts: dict[str, int]
) -> PendingBackup:
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
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        destination.unlink(missing_ok=True)
        raise BackupFailed(f"pg_dump failed: {result.stderr.strip()[:500]}")
    return PendingBackup(destination, expected_counts, _count_copy_rows, time.monotonic() - started)


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
    """Rows per table in a plain-format dump: the lines between `COPY t (...)` and `\\.`
    (COPY's text format escapes newlines inside values, so a line is a row)."""
    counts: dict[str, int] = {}
    table: str | None = None
    with dump.open("rb") as handle:
        for line in handle:
            if table is None:
                match = _COPY_HEADER.match(line)
                if match:
                    table = match.group(1).decode()
                    counts[table] = 0
            elif line == b"\\.\n":
                table = None
            else:
                counts[table] += 1
    return counts


def export_snapshot(connection: sa.Connection) -> str:
    return str(connection.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one())
