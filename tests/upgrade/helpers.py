"""Shared steps for the upgrade tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from grading_app import migrations
from grading_app.upgrade.runner import UpgradeOptions, UpgradeResult, run_upgrade
from grading_app.upgrade.schema import upgrade_schema
from tests import legacy_db
from tests.schema_snapshot import schema_snapshot

ROOT = Path(__file__).resolve().parents[2]
_FRESH_SNAPSHOTS: dict[str, Any] = {}


def build_legacy(url: str, generation: str = "G6", *, extra_columns=(), rows: bool = True) -> None:
    legacy_db.create_legacy_schema(url, generation, extra_columns=extra_columns)
    if rows:
        legacy_db.populate_legacy_rows(url)


def upgrade(url: str, tmp_path: Path, **options: Any) -> tuple[UpgradeResult, list[str]]:
    lines: list[str] = []
    options.setdefault("backup", False)
    options.setdefault("info_path", tmp_path / "migration_backup_info.json")
    result = run_upgrade(UpgradeOptions(database_url=url, **options), write=lines.append)
    return result, lines


def fresh_head_snapshot(kind: str) -> dict[str, Any]:
    """The schema of a brand-new database at head, for the same database kind."""
    if kind not in _FRESH_SNAPSHOTS:
        from tests.conftest import create_postgres_database, drop_postgres_database

        if kind == "sqlite":
            directory = tempfile.mkdtemp(prefix="ga_fresh_")
            url = f"sqlite:///{directory}/fresh.db"
        else:
            url = create_postgres_database()
        try:
            upgrade_schema(url, write=lambda _: None)
            _FRESH_SNAPSHOTS[kind] = schema_snapshot(url)
        finally:
            if kind == "sqlite":
                shutil.rmtree(directory, ignore_errors=True)
            else:
                drop_postgres_database(url)
    return _FRESH_SNAPSHOTS[kind]


def kind_of(url: str) -> str:
    return sa.engine.make_url(url).get_backend_name()


def revision_of(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return migrations.current_revision(connection)
    finally:
        engine.dispose()


def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


def rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(sql), params).all())
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def migrate_command(
    *args: str, url: str | None, cwd: Path, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen:
    """Start `python migrate_batch_system.py` as a user would, in `cwd`."""
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if url is not None:
        environment["DATABASE_URL"] = url
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, str(ROOT / "migrate_batch_system.py"), *args],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def run_migrate(*args: str, url: str | None, cwd: Path, env=None, timeout: float = 120):
    process = migrate_command(*args, url=url, cwd=cwd, env=env)
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output
