"""Benchmark: upgrade a large legacy (G6) database, with and without the backup.

Builds a legacy G6 database with 10,000 batches, 100,000 jobs and 1,000,000 submissions
on SQLite and on PostgreSQL, then times `run_upgrade` on two identical copies of it, one
without and one with the automatic backup, and compares the backup with a plain copy of
the same database:

- SQLite: `shutil.copyfile` of the legacy database file (best of 3, page cache warmed).
  The online backup API, which the backup falls back to when a reader holds a WAL
  checkpoint back, is timed too, for reference.
- PostgreSQL: there is no file to copy, so the baseline is a plain `pg_dump` of the
  legacy database to a file (best of 3): the same tool and format the upgrade's backup
  runs, without the snapshot, the row-count check and the checksum.

Targets (from the issue): the upgrade without backup takes under 10 s on each database,
and the backup is no slower than 2x the plain copy.

    python benchmarks/upgrade.py [--sizes full|small] [--only sqlite|postgresql] [--keep]
                                 [--pg-admin-url URL]

Exit status: 0 when every target is met, 1 when one is missed, 2 when a part could not
run. The targets are set for the full size; `--sizes small` is a quick check only.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

# Run as a plain script, sys.path holds benchmarks/ but not the repository root, where
# `tests.legacy_db` (the builder of legacy databases) lives.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests import legacy_db  # noqa: E402

from grading_app import __version__  # noqa: E402
from grading_app.upgrade import backup as backups  # noqa: E402
from grading_app.upgrade.runner import UpgradeOptions, UpgradeResult, run_upgrade  # noqa: E402

SIZES: dict[str, dict[str, int]] = {
    "full": {"batches": 10_000, "jobs": 100_000, "submissions": 1_000_000},
    "small": {"batches": 1_000, "jobs": 10_000, "submissions": 100_000},
}
UPGRADE_TARGET_SECONDS = 10.0
BACKUP_RATIO_TARGET = 2.0
# Best of N evens out a stray background flush or a cold cache on the first run.
BASELINE_REPEATS = 3
DEFAULT_PG_ADMIN_URL = os.environ.get(
    "GRADING_APP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# Sections of the upgrade's own output shorter than this share of the run are not listed.
SECTION_SHARE_SHOWN = 0.02


# --------------------------------------------------------------------------- results


@dataclass
class Run:
    """One timed run_upgrade: our wall clock, its result, and its lines as written."""

    wall_seconds: float
    result: UpgradeResult
    # (seconds since the call, line). Section titles are written before their work, so
    # the gaps between lines profile the upgrade without touching its code.
    lines: list[tuple[float, str]]

    @property
    def rows(self) -> int:
        return sum(self.result.row_counts_before.values())


@dataclass
class Report:
    database: str
    version: str
    counts: dict[str, int]
    size_label: str
    size_bytes: int
    build_seconds: float
    plain: Run
    with_backup: Run | None
    baseline_label: str
    baseline_seconds: float | None
    baseline_note: str = ""
    # The backup portion of each run with backup, when there was more than one.
    backup_attempts: list[float] = field(default_factory=list)
    # Further figures worth seeing beside the table, (label, value).
    notes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def upgrade_ok(self) -> bool:
        return self.plain.wall_seconds < UPGRADE_TARGET_SECONDS

    @property
    def backup_ratio(self) -> float | None:
        run = self.with_backup
        if run is None or run.result.backup is None or not self.baseline_seconds:
            return None
        return run.result.backup.seconds / self.baseline_seconds

    @property
    def backup_ok(self) -> bool | None:
        ratio = self.backup_ratio
        return None if ratio is None else ratio <= BACKUP_RATIO_TARGET


# --------------------------------------------------------------------------- timing


def timed_upgrade(
    url: str,
    workdir: Path,
    *,
    backup: bool,
    warm_up: Callable[[], None],
    settle: Callable[[], None] = os.sync,
) -> Run:
    lines: list[tuple[float, str]] = []
    # The baselines are best of 3, so their first, slower run is discarded; the upgrade
    # runs once, so give it that first run untimed (`warm_up` does the I/O its backup
    # does, on the same database). On the 2-CPU VM this was measured on, the first
    # ~700 MB write after other work was 5-10x slower than the next one, and without the
    # warm-up the same SQLite backup took anything from 1.4 s to 3.3 s.
    warm_up()
    settle()
    started = time.perf_counter()

    def write(line: str) -> None:
        lines.append((time.perf_counter() - started, line))

    options = UpgradeOptions(
        database_url=url,
        backup=backup,
        info_path=workdir / f"migration_info_{'backup' if backup else 'no_backup'}.json",
    )
    # The PostgreSQL backup (pg_dump) is written to the current directory: keep it, and
    # everything else the run leaves, in the scratch directory that is cleaned up.
    with contextlib.chdir(workdir):
        try:
            result = run_upgrade(options, write=write)
        except Exception:
            print("    the upgrade failed; what it printed:")
            for _, line in lines:
                print(f"    | {line}")
            raise
    wall = time.perf_counter() - started
    if result.revision_before is not None or (backup and result.backup is None):
        # A benchmark of an upgrade that had nothing to do would measure nothing.
        raise RuntimeError(
            f"unexpected upgrade: revision before {result.revision_before!r}, "
            f"backup {'made' if result.backup else 'missing'}"
        )
    return Run(wall_seconds=wall, result=result, lines=lines)


# Every timed step starts with os.sync(): the benchmark writes several copies of a
# ~700 MB database, and without it whichever step comes next may pay for writing back
# the previous one's dirty pages (on ext4 an fsync, as the SQLite backup does when it
# finishes, can have to flush other files' pending data too).


def best_of(repeats: int, action: Callable[[], object], before: Callable[[], object]) -> float:
    """The fastest of `repeats` timed calls of `action`, each after an untimed `before`."""
    best = math.inf
    for _ in range(repeats):
        before()
        os.sync()
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def backup_seconds(run: Run) -> float:
    return run.result.backup.seconds if run.result.backup is not None else math.inf


def throwaway(action: Callable[[], object], scratch: Path) -> None:
    """Run `action`, which writes `scratch`, for its side effects on the caches only."""
    action()
    scratch.unlink(missing_ok=True)


def fresh_start(scratch: Path, settle: Callable[[], None]) -> None:
    scratch.unlink(missing_ok=True)
    settle()


def read_through(path: Path) -> None:
    """Read the whole file once, so it is in the page cache for what follows."""
    with path.open("rb") as handle:
        while handle.read(8 * 1024 * 1024):
            pass


# --------------------------------------------------------------------------- SQLite


def bench_sqlite(size: dict[str, int], keep: bool) -> Report:
    workdir = Path(tempfile.mkdtemp(prefix="ga_bench_sqlite_"))
    try:
        legacy = workdir / "legacy.db"
        legacy_url = f"sqlite:///{legacy}"
        print(f"SQLite: building the legacy G6 database in {workdir} ...", flush=True)
        started = time.perf_counter()
        legacy_db.create_legacy_schema(legacy_url, "G6")
        counts = legacy_db.populate_bulk(legacy_url, **size)
        build_seconds = time.perf_counter() - started

        # The backup reads a file that was just written (below), so it comes from the page
        # cache; read the legacy file once first so the copy is timed the same way.
        read_through(legacy)
        scratch = workdir / "copy.db"
        copy_seconds = best_of(
            BASELINE_REPEATS,
            lambda: shutil.copyfile(legacy, scratch),
            lambda: scratch.unlink(missing_ok=True),
        )
        # Not the baseline: the backup's fallback, used when a reader keeps SQLite from
        # checkpointing a -wal into the database file (see backup.backup_sqlite).
        online_api_seconds = best_of(
            BASELINE_REPEATS,
            lambda: backups.online_backup(legacy, scratch),
            lambda: scratch.unlink(missing_ok=True),
        )
        scratch.unlink()

        # The upgrade changes the database, so each run gets its own identical copy.
        no_backup_db = workdir / "upgrade_no_backup.db"
        shutil.copyfile(legacy, no_backup_db)
        print("SQLite: upgrading without backup ...", flush=True)
        plain = timed_upgrade(
            f"sqlite:///{no_backup_db}",
            workdir,
            backup=False,
            warm_up=lambda: throwaway(lambda: shutil.copyfile(no_backup_db, scratch), scratch),
        )
        # The backup is timed as the copy it is compared with is: the best of as many
        # runs. A single ~700 MB write on this kind of VM varies from 0.2 s to 1.8 s
        # with what the kernel is still writing back from the step before.
        print(f"SQLite: upgrading with backup ({BASELINE_REPEATS} runs) ...", flush=True)
        backed_runs: list[Run] = []
        for attempt in range(BASELINE_REPEATS):
            backup_db = workdir / f"upgrade_backup_{attempt}.db"
            shutil.copyfile(legacy, backup_db)
            backed_runs.append(
                timed_upgrade(
                    f"sqlite:///{backup_db}",
                    workdir,
                    backup=True,
                    warm_up=partial(
                        throwaway, partial(shutil.copyfile, backup_db, scratch), scratch
                    ),
                )
            )
            for leftover in [backup_db, *workdir.glob(f"{backup_db.stem}_backup_*")]:
                leftover.unlink()
        with_backup = min(backed_runs, key=backup_seconds)
        return Report(
            database="SQLite",
            version=sqlite3.sqlite_version,
            counts=counts,
            size_label="file",
            size_bytes=legacy.stat().st_size,
            build_seconds=build_seconds,
            plain=plain,
            with_backup=with_backup,
            backup_attempts=[backup_seconds(run) for run in backed_runs],
            baseline_label=f"plain file copy (shutil.copyfile, best of {BASELINE_REPEATS})",
            baseline_seconds=copy_seconds,
            notes=[
                (
                    "how the backup was made",
                    with_backup.result.backup.method if with_backup.result.backup else "n/a",
                ),
                (
                    f"online backup API (the WAL fallback), best of {BASELINE_REPEATS}",
                    f"{online_api_seconds:.2f} s",
                ),
                ("  online backup API / baseline", f"{online_api_seconds / copy_seconds:.2f}x"),
            ],
        )
    finally:
        if keep:
            print(f"SQLite: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- PostgreSQL


def postgresql_problem(admin_url: str) -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    engine = sa.create_engine(admin_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except sa.exc.OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    finally:
        engine.dispose()


def postgresql_versions(admin_url: str) -> str:
    engine = sa.create_engine(admin_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            server = connection.exec_driver_sql("SHOW server_version").scalar_one()
    finally:
        engine.dispose()
    pg_dump = shutil.which("pg_dump")
    dump = "not on PATH"
    if pg_dump:
        dump = subprocess.run(
            [pg_dump, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    return f"{server} (server); {dump}"


def _libpq_dsn(url: URL) -> str:
    # Keyword/value form; values quoted as libpq wants. The password is never put on the
    # command line, where `ps` would show it, but passed in PGPASSWORD.
    parts = {"host": url.host, "port": url.port, "user": url.username, "dbname": url.database}

    def quote(value: object) -> str:
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{key}={quote(value)}" for key, value in parts.items() if value)


def pg_dump_to(url: URL, destination: Path) -> None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise RuntimeError("pg_dump is not on PATH")
    env = {**os.environ, **({"PGPASSWORD": str(url.password)} if url.password else {})}
    command = [pg_dump, "--no-password", "--file", str(destination), "--dbname", _libpq_dsn(url)]
    subprocess.run(command, env=env, check=True, capture_output=True)


def bench_postgresql(size: dict[str, int], keep: bool, admin_url: str) -> Report:
    admin_url_parsed = make_url(admin_url)
    tag = f"ga_bench_{os.getpid()}"
    names = {role: f"{tag}_{role}" for role in ("legacy", "no_backup", "backup")}

    def url_of(role: str) -> URL:
        return admin_url_parsed.set(database=names[role])

    def url_text(role: str) -> str:
        return url_of(role).render_as_string(hide_password=False)

    # CREATE/DROP DATABASE cannot run inside a transaction.
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    workdir = Path(tempfile.mkdtemp(prefix="ga_bench_postgresql_"))

    def settle() -> None:
        # Each clone below writes its ~700 MB through the WAL (PostgreSQL 15's default
        # WAL_LOG strategy), which can set off a checkpoint in the middle of a timed
        # step; take it before the step instead. Needs superuser or pg_checkpoint.
        with contextlib.suppress(sa.exc.DBAPIError), admin.connect() as connection:
            connection.exec_driver_sql("CHECKPOINT")
        os.sync()

    try:
        with admin.connect() as connection:
            for name in names.values():
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.exec_driver_sql(f'CREATE DATABASE "{names["legacy"]}"')
        print(f"PostgreSQL: building the legacy G6 database {names['legacy']} ...", flush=True)
        started = time.perf_counter()
        legacy_db.create_legacy_schema(url_text("legacy"), "G6")
        counts = legacy_db.populate_bulk(url_text("legacy"), **size)
        build_seconds = time.perf_counter() - started

        # A production database has been vacuumed by autovacuum: hint bits and the
        # visibility map are set. Freshly COPYed rows have neither, and whichever run read
        # them first would pay for setting them; vacuum once so every clone starts settled.
        started = time.perf_counter()
        legacy_engine = sa.create_engine(url_text("legacy"), isolation_level="AUTOCOMMIT")
        try:
            with legacy_engine.connect() as connection:
                connection.exec_driver_sql("VACUUM (ANALYZE)")
        finally:
            legacy_engine.dispose()
        vacuum_seconds = time.perf_counter() - started

        with admin.connect() as connection:
            size_bytes = connection.execute(
                sa.text("SELECT pg_database_size(:name)"), {"name": names["legacy"]}
            ).scalar_one()

        scratch = workdir / "baseline_dump.sql"
        dump_seconds = best_of(
            BASELINE_REPEATS,
            lambda: pg_dump_to(url_of("legacy"), scratch),
            lambda: fresh_start(scratch, settle),
        )
        dump_bytes = scratch.stat().st_size
        scratch.unlink()

        # The upgrade changes the database, so each run gets its own identical clone.
        clone_seconds: list[float] = []
        with admin.connect() as connection:
            for role in ("no_backup", "backup"):
                started = time.perf_counter()
                connection.exec_driver_sql(
                    f'CREATE DATABASE "{names[role]}" TEMPLATE "{names["legacy"]}"'
                )
                clone_seconds.append(time.perf_counter() - started)

        print("PostgreSQL: upgrading without backup ...", flush=True)
        plain = timed_upgrade(
            url_text("no_backup"),
            workdir,
            backup=False,
            warm_up=lambda: throwaway(lambda: pg_dump_to(url_of("no_backup"), scratch), scratch),
            settle=settle,
        )
        print("PostgreSQL: upgrading with backup ...", flush=True)
        with_backup = timed_upgrade(
            url_text("backup"),
            workdir,
            backup=True,
            warm_up=lambda: throwaway(lambda: pg_dump_to(url_of("backup"), scratch), scratch),
            settle=settle,
        )
        return Report(
            database="PostgreSQL",
            version=postgresql_versions(admin_url).split(" ", 1)[0],
            counts=counts,
            size_label="pg_database_size",
            size_bytes=int(size_bytes),
            build_seconds=build_seconds,
            plain=plain,
            with_backup=with_backup,
            baseline_label=f"plain pg_dump to a file (best of {BASELINE_REPEATS})",
            baseline_seconds=dump_seconds,
            baseline_note=(
                "stands in for a file copy: pg_dump of the legacy DB, no snapshot, no checks; "
                f"{human_bytes(dump_bytes)}"
            ),
            notes=[
                ("VACUUM (ANALYZE) after the load, not in build", f"{vacuum_seconds:.2f} s"),
                ("clone: CREATE DATABASE ... TEMPLATE (best of 2)", f"{min(clone_seconds):.2f} s"),
            ],
        )
    finally:
        if keep:
            print(f"PostgreSQL: kept {workdir} and databases {', '.join(names.values())}")
        else:
            # Dropped even when the benchmark failed; FORCE ends any connection left over.
            try:
                with admin.connect() as connection:
                    for name in names.values():
                        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except sa.exc.SQLAlchemyError as exc:
                print(f"PostgreSQL: could not drop {', '.join(names.values())}: {exc}")
            shutil.rmtree(workdir, ignore_errors=True)
        admin.dispose()


# --------------------------------------------------------------------------- output


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def pad(text: str, width: int) -> str:
    """Left-justify by terminal columns: emoji take two, variation selectors none."""
    columns = 0
    for i, char in enumerate(text):
        if unicodedata.combining(char) or char == "\ufe0f":
            continue
        # A character followed by U+FE0F is drawn as a (two-column) emoji.
        emoji = text[i + 1 : i + 2] == "\ufe0f"
        columns += 2 if emoji or unicodedata.east_asian_width(char) in "WF" else 1
    return text + " " * max(width - columns, 0)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def sections(run: Run) -> list[tuple[str, float]]:
    """(line, seconds until the next unindented line): a section and the work after it."""
    marks = [(at, line) for at, line in run.lines if line.strip() and not line.startswith(" ")]
    ends = [at for at, _ in marks[1:]] + [run.wall_seconds]
    return [(line, end - at) for (at, line), end in zip(marks, ends, strict=True)]


def print_sections(title: str, run: Run) -> None:
    print(f"  where the time went, {title} ({run.wall_seconds:.2f} s):")
    shown = 0.0
    for line, seconds in sections(run):
        if seconds >= SECTION_SHARE_SHOWN * run.wall_seconds:
            if "://" in line:  # the URL line; what follows it is the setup
                line = "📊 connect, lock, inspect schema, count rows"
            label = line if len(line) <= 56 else line[:53] + "..."
            print(f"    {pad(label, 58)}{seconds:>8.2f} s")
            shown += seconds
    print(f"    {'(everything else)':<58}{run.wall_seconds - shown:>8.2f} s")


def print_report(report: Report) -> None:
    rule = "-" * 96
    print()
    print(f"{report.database} {report.version}")
    print(rule)
    rows = sum(report.plain.result.row_counts_before.values())
    listed = ", ".join(f"{table} {count:,}" for table, count in report.counts.items())
    print(f"  legacy rows: {listed}; {rows:,} in all legacy tables")
    print(f"  database size ({report.size_label}): {human_bytes(report.size_bytes)}")
    print(rule)

    def row(label: str, value: str, extra: str = "", check: str = "") -> None:
        print(f"  {label:<52}{value:>10}  {extra:<18}{check}".rstrip())

    plain, backed = report.plain, report.with_backup
    row("build legacy DB (schema + bulk load)", f"{report.build_seconds:.2f} s")
    row(
        "upgrade without backup",
        f"{plain.wall_seconds:.2f} s",
        f"{plain.rows / plain.wall_seconds:,.0f} rows/s",
        f"< {UPGRADE_TARGET_SECONDS:g} s  {verdict(report.upgrade_ok)}",
    )
    row("  (run_upgrade's own clock)", f"{plain.result.seconds:.2f} s")
    if backed is not None and backed.result.backup is not None:
        backup = backed.result.backup
        row(
            "upgrade with backup",
            f"{backed.wall_seconds:.2f} s",
            f"{backed.rows / backed.wall_seconds:,.0f} rows/s",
        )
        row("  (run_upgrade's own clock)", f"{backed.result.seconds:.2f} s")
        runs = len(report.backup_attempts)
        row(
            "backup portion (result.backup.seconds)" + (f", best of {runs}" if runs > 1 else ""),
            f"{backup.seconds:.2f} s",
            ", ".join(f"{seconds:.2f}" for seconds in report.backup_attempts) if runs > 1 else "",
        )
        row("  backup file size", human_bytes(backup.size_bytes))
    if report.baseline_seconds is not None:
        row(report.baseline_label, f"{report.baseline_seconds:.2f} s")
        if report.baseline_note:
            print(f"    ({report.baseline_note})")
    ratio = report.backup_ratio
    row(
        "backup / baseline",
        "n/a" if ratio is None else f"{ratio:.2f}x",
        "",
        f"<= {BACKUP_RATIO_TARGET:g}x  {verdict(report.backup_ok)}",
    )
    for label, value in report.notes:
        row(label, value)
    print(rule)
    print_sections("upgrade without backup", plain)
    if backed is not None:
        print_sections("upgrade with backup", backed)


def print_machine(size_name: str, size: dict[str, int], pg: str) -> None:
    print(f"Upgrade benchmark, grading-app {__version__}")
    print(f"  platform      {platform.platform()}")
    print(f"  processor     {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"  python        {platform.python_version()} ({sys.executable})")
    print(f"  sqlite3       {sqlite3.sqlite_version}")
    print(f"  load average  {load_text()}")
    print(f"  PostgreSQL    {pg}")
    print(
        f"  sizes         {size_name}: {size['batches']:,} batches, {size['jobs']:,} jobs, "
        f"{size['submissions']:,} submissions"
    )
    print(
        f"  targets       upgrade without backup < {UPGRADE_TARGET_SECONDS:g} s; "
        f"backup <= {BACKUP_RATIO_TARGET:g}x a plain copy"
        + ("" if size_name == "full" else " (set for the full size)")
    )


def load_text(*, ours: bool = False) -> str:
    # Other work on the machine skews every figure here (a 2-CPU machine running a test
    # suite alongside doubled the SQLite backup time); show it so a reader can tell.
    one, five, _ = os.getloadavg()
    if ours:  # this benchmark keeps about one CPU busy itself
        return f"{one:.2f} (1 min), {five:.2f} (5 min), this benchmark included"
    busy = one > 0.5 * (os.cpu_count() or 1)
    return f"{one:.2f} (1 min), {five:.2f} (5 min)" + (
        "; the machine is busy, figures will be noisy" if busy else ""
    )


def print_summary(reports: list[Report]) -> None:
    print()
    print(f"Summary (load average now {load_text(ours=True)})")
    if not reports:
        print("  nothing was measured")
    for report in reports:
        ratio = report.backup_ratio
        ratio_text = "n/a" if ratio is None else f"{ratio:.2f}x"
        print(
            f"  {report.database:<11} upgrade without backup {report.plain.wall_seconds:6.2f} s "
            f"{verdict(report.upgrade_ok)}   backup/baseline {ratio_text:>6} "
            f"{verdict(report.backup_ok)}"
        )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", choices=sorted(SIZES), default="full")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--keep", action="store_true", help="keep temp files and databases")
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG_ADMIN_URL)
    args = parser.parse_args(argv)
    size = SIZES[args.sizes]

    want_pg = args.only in (None, "postgresql")
    pg_problem = postgresql_problem(args.pg_admin_url) if want_pg else "not requested"
    pg_text = pg_problem and f"not used: {pg_problem}"
    print_machine(args.sizes, size, pg_text or postgresql_versions(args.pg_admin_url))

    jobs: list[tuple[str, Callable[[], Report]]] = []
    if args.only in (None, "sqlite"):
        jobs.append(("SQLite", lambda: bench_sqlite(size, args.keep)))
    if want_pg and pg_problem is None:
        jobs.append(
            (
                "PostgreSQL",
                lambda: bench_postgresql(size, args.keep, args.pg_admin_url),
            )
        )
    elif want_pg:
        rest = "benchmarking SQLite only" if jobs else "nothing to benchmark"
        print(f"\nNotice: PostgreSQL is unreachable ({pg_problem}); {rest}.")

    reports: list[Report] = []
    failed = not jobs
    for name, job in jobs:
        print()
        try:
            report = job()
        except Exception as exc:  # one database failing should not hide the other's figures
            print(f"{name}: the benchmark failed: {type(exc).__name__}: {exc}")
            failed = True
            continue
        reports.append(report)
        print_report(report)

    print_summary(reports)
    if failed:
        return 2
    return 0 if all(r.upgrade_ok and r.backup_ok is not False for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
