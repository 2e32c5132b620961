"""Benchmark: what one claim costs with a long queue, before and after the batch-first claim.

Builds a database with 100,000 queued work items spread over 20 running batches (one
job each, all of priority 5: the case where an 8-item claim takes from 8 batches in
turn, the most statements) on SQLite and on PostgreSQL, then times `claim()` with
limit 1 and with limit 8, each claim one transaction of its own (BEGIN IMMEDIATE on
SQLite ... COMMIT) as a worker makes it, with the claim before and after the change:

- before: `src/grading_app/processing/claim.py` as of `--before` (default: the last
  commit with the claim that ranked every queued item), loaded from `git show`;
- after: the claim in the working tree.

The claims lease items for real (a few hundred of the 100,000); for each limit, "before"
runs, then "after", on the same database. `--without-batches` puts the items in jobs
without a batch instead, the claim's other path.

    python benchmarks/claim.py [--items 100000] [--batches 20] [--repeat 50]
                               [--only sqlite|postgresql] [--before REV]
                               [--without-batches]

PostgreSQL comes from GRADING_APP_TEST_POSTGRES (as in the tests), default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres; a fresh database is created and
dropped afterwards. Tables are ANALYZEd on PostgreSQL (as autovacuum would); SQLite is
left without statistics, as the application leaves it.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.conftest import create_postgres_database, drop_postgres_database  # noqa: E402

from grading_app.batches.service import create_batch  # noqa: E402
from grading_app.db import make_engine, make_sessionmaker, unit_of_work  # noqa: E402
from grading_app.jobs.service import create_job  # noqa: E402
from grading_app.models import Submission, WorkItem, utcnow  # noqa: E402
from grading_app.processing import claim as claim_after  # noqa: E402
from grading_app.providers.targets import Target  # noqa: E402
from grading_app.upgrade.schema import upgrade_schema  # noqa: E402

# The last commit whose claim ranked every queued item on each claim.
DEFAULT_BEFORE = "82a30a8"
CLAIM_PATH = "src/grading_app/processing/claim.py"
LIMITS = (1, 8)
CHUNK = 5_000


def load_before(revision: str, scratch: Path) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{revision}:{CLAIM_PATH}"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = scratch / "claim_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("claim_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def build(url: str, *, items: int, batches: int, loose: bool = False) -> None:
    """Schema at head, then `batches` running batches of one job each, `items` queued
    items spread evenly over them (core inserts, rows shaped as enqueue_job makes them).
    `loose`: jobs without a batch instead (the job carries the priority)."""
    upgrade_schema(url, write=lambda _: None)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    started = time.perf_counter()
    try:
        with unit_of_work(sessions) as session:
            jobs = []
            for index in range(batches):
                batch = None
                if not loose:
                    batch = create_batch(session, name=f"bench {index}", priority=5)
                    batch.status = "processing"
                job = create_job(
                    session,
                    name=f"bench job {index}",
                    prompt="Grade this essay out of 100.",
                    targets=[Target("openai", "fake-grader")],
                    batch=batch,
                )
                job.status = "processing"
                jobs.append((batch.id if batch else None, job.id))
            session.flush()
        per_batch = [items // batches + (1 if i < items % batches else 0) for i in range(batches)]
        now = utcnow()
        with engine.begin() as connection:
            for (batch_id, job_id), count in zip(jobs, per_batch, strict=True):
                for start in range(0, count, CHUNK):
                    size = min(CHUNK, count - start)
                    submission_ids = [str(uuid.uuid4()) for _ in range(size)]
                    connection.execute(
                        sa.insert(Submission),
                        [
                            {
                                "id": sid,
                                "job_id": job_id,
                                "filename": f"stored_{start + i}.txt",
                                "original_filename": f"essay_{start + i}.txt",
                                "status": "pending",
                                "extracted_text": "An essay.",
                                "created_at": now,
                                "updated_at": now,
                            }
                            for i, sid in enumerate(submission_ids)
                        ],
                    )
                    connection.execute(
                        sa.insert(WorkItem),
                        [
                            {
                                "id": str(uuid.uuid4()),
                                "submission_id": sid,
                                "job_id": job_id,
                                "batch_id": batch_id,
                                "provider": "openai",
                                "model": "fake-grader",
                                "state": "queued",
                                "attempts": 0,
                                "sequence": start + i,
                                "created_at": now,
                                "updated_at": now,
                            }
                            for i, sid in enumerate(submission_ids)
                        ],
                    )
            for (batch_id, job_id), count in zip(jobs, per_batch, strict=True):
                if batch_id:
                    connection.execute(
                        sa.text(
                            "UPDATE job_batches SET total_items = :n, total_jobs = 1 WHERE id = :id"
                        ),
                        {"n": count, "id": batch_id},
                    )
                connection.execute(
                    sa.text(
                        "UPDATE grading_jobs SET total_items = :n, total_submissions = :n "
                        "WHERE id = :id"
                    ),
                    {"n": count, "id": job_id},
                )
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()
    where = "jobs without a batch" if loose else "batches"
    print(
        f"  built {items:,} queued items in {batches} {where} in "
        f"{time.perf_counter() - started:.1f} s"
    )


@dataclass
class Figures:
    """Milliseconds per claim: the whole transaction (BEGIN ... COMMIT), and the part
    spent in `claim()` itself, without BEGIN and COMMIT (a commit waits for the WAL
    flush on PostgreSQL, which other work on the same disk can make slow)."""

    transaction: list[float]
    in_claim: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.transaction)

    @property
    def median(self) -> float:
        return statistics.median(self.transaction)

    @property
    def claim_mean(self) -> float:
        return statistics.fmean(self.in_claim)


def time_claims(
    sessions: Any,
    claim: Callable[..., list[Any]],
    *,
    limit: int,
    repeat: int,
    clock: list[datetime],
) -> Figures:
    figures = Figures([], [])
    for round_ in range(repeat + 3):
        # Each claim a little later than the one before, as a worker's would be.
        clock[0] += timedelta(milliseconds=50)
        begun = time.perf_counter()
        with unit_of_work(sessions) as session:
            session.connection()  # BEGIN (IMMEDIATE on SQLite)
            started = time.perf_counter()
            claimed = claim(session, owner="bench", limit=limit, lease_seconds=600, now=clock[0])
            in_claim = time.perf_counter() - started
        elapsed = time.perf_counter() - begun
        if len(claimed) != limit:
            raise RuntimeError(f"claimed {len(claimed)} items, not {limit}")
        if round_ >= 3:  # the first three warm the caches and the connection pool
            figures.transaction.append(elapsed * 1000)
            figures.in_claim.append(in_claim * 1000)
    return figures


def run(name: str, url: str, before: ModuleType, args: argparse.Namespace) -> dict[Any, Figures]:
    """{(before|after, limit): figures}"""
    print(f"{name}:")
    build(url, items=args.items, batches=args.batches, loose=args.without_batches)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    clock = [utcnow()]
    results: dict[Any, Figures] = {}
    try:
        for limit in LIMITS:
            for label, module in (("before", before), ("after", claim_after)):
                figures = time_claims(
                    sessions, module.claim, limit=limit, repeat=args.repeat, clock=clock
                )
                results[(label, limit)] = figures
                print(
                    f"  {label:6} limit={limit}: mean {figures.mean:8.2f} ms  "
                    f"median {figures.median:8.2f} ms  max {max(figures.transaction):8.2f} ms"
                    f"  in claim() {figures.claim_mean:8.2f} ms"
                )
    finally:
        engine.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument(
        "--without-batches",
        action="store_true",
        help="put the items in jobs without a batch (the other claim path)",
    )
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of 'before'")
    args = parser.parse_args()
    results: dict[str, dict[Any, Figures]] = {}
    with tempfile.TemporaryDirectory(prefix="claim-bench-") as scratch:
        before = load_before(args.before, Path(scratch))
        if args.only in (None, "sqlite"):
            url = f"sqlite:///{Path(scratch) / 'claim.db'}"
            results["SQLite"] = run("SQLite", url, before, args)
        if args.only in (None, "postgresql"):
            url = create_postgres_database()
            try:
                results["PostgreSQL"] = run("PostgreSQL", url, before, args)
            finally:
                drop_postgres_database(url)
    print()
    where = "jobs without a batch" if args.without_batches else "batches"
    print(f"Mean ms per claim, {args.items:,} queued items in {args.batches} {where}")
    print("(transaction: BEGIN ... COMMIT; in claim(): the claim's statements alone):")
    print(
        f"  {'database':<11} {'limit':>5} {'before':>9} {'after':>9} {'speed-up':>9}"
        f"   {'in claim() before':>17} {'after':>9}"
    )
    for name, figures in results.items():
        for limit in LIMITS:
            old, new = figures[("before", limit)], figures[("after", limit)]
            print(
                f"  {name:<11} {limit:>5} {old.mean:>9.2f} {new.mean:>9.2f} "
                f"{old.mean / new.mean:>8.1f}x   {old.claim_mean:>17.2f} {new.claim_mean:>9.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
