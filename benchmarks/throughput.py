"""Benchmark: grading throughput end to end against the fake LLM vendor.

The vendor is `tests/fakes/llm_server.py` in a process of its own, over real HTTP on
127.0.0.1; everything of ours is real: the database, the claim, the provider SDK, the
result writes, the counters. Each run builds one batch of one job with N documents
(one model, so N work items), then times from the moment the executor starts until the
batch is completed.

Runs (from the issue):
  (a) zero latency, 2,000 items: items per second on SQLite with the local executor
      (target >= 200/s) and on PostgreSQL with Celery (a real worker process on the
      local Redis, the dispatcher keeping the broker no deeper than the workers);
  (b) 300 ms latency, concurrency 32, 2,000 items: achieved rate divided by the ideal
      32 / 0.3 s (target >= 0.9), on SQLite (local) and PostgreSQL (local).

Per-item overhead is what an item costs beyond the vendor's latency: for (a) the wall
time per item, and the time one worker slot spends per item
(`elapsed * concurrency / items`); for (b) that slot time minus the 300 ms.

    python benchmarks/throughput.py [--items 2000] [--only sqlite-local,pg-celery,...]

Exit status: 0 when every target is met, 1 when one is missed, 2 when a run failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.conftest import create_postgres_database, drop_postgres_database  # noqa: E402

from grading_app.batches.service import create_batch  # noqa: E402
from grading_app.db import make_engine, make_sessionmaker, unit_of_work  # noqa: E402
from grading_app.jobs.service import add_submission, create_job, queue_job  # noqa: E402
from grading_app.models import JobBatch, WorkItem  # noqa: E402
from grading_app.processing.runtime import provider_resolver  # noqa: E402
from grading_app.processing.worker import LocalWorker  # noqa: E402
from grading_app.providers.targets import Target  # noqa: E402
from grading_app.upgrade.schema import upgrade_schema  # noqa: E402

RATE_TARGET = 200.0  # items/s, (a) on SQLite
EFFICIENCY_TARGET = 0.9  # (b)
LATENCY = 0.3
LATENCY_CONCURRENCY = 32
DEFAULT_CONCURRENCY = 8  # WORKER_CONCURRENCY's default
BROKER = os.environ.get("GRADING_APP_BENCH_BROKER", "redis://127.0.0.1:6379/13")
RUN_TIMEOUT = 600.0


@dataclass
class Figure:
    name: str
    items: int
    concurrency: int
    latency: float
    seconds: float

    @property
    def rate(self) -> float:
        return self.items / self.seconds

    @property
    def wall_ms_per_item(self) -> float:
        return 1000 * self.seconds / self.items

    @property
    def slot_overhead_ms(self) -> float:
        """Time one worker slot spends per item beyond the vendor's latency."""
        return 1000 * (self.seconds * self.concurrency / self.items - self.latency)

    @property
    def efficiency(self) -> float:
        return self.rate / (self.concurrency / self.latency) if self.latency else float("nan")


# --------------------------------------------------------------------------- parts


@contextlib.contextmanager
def fake_vendor(latency: float) -> Iterator[str]:
    """The fake vendor in its own process; yields its base URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tests.fakes.llm_server import main; main()",
            "--latency",
            str(latency),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the fake vendor did not start: {line!r}")
        yield line.removeprefix("listening on ")
    finally:
        process.terminate()
        process.wait(10)


def provider_environment(base_url: str) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": f"{base_url}/v1"}


@contextlib.contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ga-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'grading_app.db'}"
        return
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


def build_batch(url: str, items: int) -> str:
    """One batch, one job, `items` documents of realistic length, queued."""
    upgrade_schema(url, write=lambda _: None)
    engine = make_engine(url)
    paragraph = (
        "The essay argues that renewable energy adoption depends on policy as much as on "
        "technology, and supports the claim with evidence from three countries. "
    )
    with unit_of_work(make_sessionmaker(engine)) as session:
        batch = create_batch(session, name="Throughput benchmark", priority=5)
        batch.status = "pending"
        job = create_job(
            session,
            name="Essays",
            prompt="Grade this essay out of 100 on content, structure and clarity.",
            targets=[Target("openai", "fake-grader")],
            batch=batch,
        )
        for index in range(items):
            add_submission(
                session,
                job=job,
                original_filename=f"essay_{index:05d}.docx",
                stored_filename=f"stored_{index:05d}.docx",
                file_type="docx",
                file_size=20_000,
                extracted_text=f"Essay {index}. " + paragraph * 20,
            )
        queue_job(session, job=job)
        batch_id = batch.id
    engine.dispose()
    return batch_id


def wait_for_batch(url: str, batch_id: str, *, timeout: float) -> None:
    """Poll (cheaply) until the batch has settled; raise if it did not in time."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with unit_of_work(sessions, read_only=True) as session:
                status = session.scalar(sa.select(JobBatch.status).where(JobBatch.id == batch_id))
            if status in ("completed", "completed_with_errors", "failed"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"the batch did not finish within {timeout:.0f} s")
    finally:
        engine.dispose()


def check_all_completed(url: str, items: int) -> None:
    engine = make_engine(url)
    with unit_of_work(make_sessionmaker(engine), read_only=True) as session:
        states = dict(
            session.execute(
                sa.select(WorkItem.state, sa.func.count()).group_by(WorkItem.state)
            ).all()
        )
    engine.dispose()
    if states != {"completed": items}:
        raise RuntimeError(f"expected {items} completed items, found {states}")


# --------------------------------------------------------------------------- runs


def run_local(kind: str, *, items: int, concurrency: int, latency: float) -> float:
    with fake_vendor(latency) as vendor, database(kind) as url:
        build_batch(url, items)
        engine = make_engine(url)
        resolve, _ = provider_resolver(provider_environment(vendor))
        worker = LocalWorker(
            make_sessionmaker(engine),
            resolve_provider=resolve,
            concurrency=concurrency,
            request_timeout=30,
            poll_interval=0.05,
        )
        stop = threading.Event()
        started = time.perf_counter()
        worker.run(stop, until_idle=True)
        seconds = time.perf_counter() - started
        engine.dispose()
        check_all_completed(url, items)
        return seconds


def run_celery(*, items: int, concurrency: int, latency: float) -> float:
    import redis

    from grading_app.processing.celery_executor import CeleryDispatcher, make_celery

    redis.Redis.from_url(BROKER).flushdb()
    with fake_vendor(latency) as vendor, database("postgresql") as url:
        batch_id = build_batch(url, items)
        environment = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        environment.update(provider_environment(vendor), DATABASE_URL=url, BROKER_URL=BROKER)
        celery = Path(sys.executable).with_name("celery")
        worker = subprocess.Popen(
            [str(celery), "-A", "grading_app.processing.celery_executor", "worker"]
            + ["--pool", "threads", "-c", str(concurrency), "-Q", "grading"]
            + ["--without-heartbeat", "--without-mingle", "--without-gossip"]
            + ["--loglevel", "WARNING"],
            cwd=REPO_ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        app = make_celery(BROKER)
        engine = make_engine(url)
        stop = threading.Event()
        try:
            wait_until(lambda: bool(app.control.ping(timeout=0.5)), "the Celery worker", 60)
            dispatcher = CeleryDispatcher(
                make_sessionmaker(engine),
                capacity=concurrency,
                send=lambda item_id, owner: app.send_task(
                    "grading.grade_item", args=[item_id, owner], queue="grading"
                ),
                poll_interval=0.02,
            )
            thread = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
            started = time.perf_counter()
            thread.start()
            wait_for_batch(url, batch_id, timeout=RUN_TIMEOUT)
            seconds = time.perf_counter() - started
        finally:
            stop.set()
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
            engine.dispose()
        check_all_completed(url, items)
        return seconds


def wait_until(ready: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} was not ready within {timeout:.0f} s")


RUNS: dict[str, tuple[str, Callable[[int], Figure]]] = {}


def _register(key: str, title: str, concurrency: int, latency: float, go: Callable) -> None:
    def measure(items: int) -> Figure:
        return Figure(title, items, concurrency, latency, go(items, concurrency, latency))

    RUNS[key] = (title, measure)


_register(
    "sqlite-local",
    "(a) SQLite, local executor, zero latency",
    DEFAULT_CONCURRENCY,
    0.0,
    lambda n, c, lat: run_local("sqlite", items=n, concurrency=c, latency=lat),
)
_register(
    "pg-celery",
    "(a) PostgreSQL, Celery worker, zero latency",
    DEFAULT_CONCURRENCY,
    0.0,
    lambda n, c, lat: run_celery(items=n, concurrency=c, latency=lat),
)
_register(
    "sqlite-latency",
    "(b) SQLite, local executor, 300 ms latency",
    LATENCY_CONCURRENCY,
    LATENCY,
    lambda n, c, lat: run_local("sqlite", items=n, concurrency=c, latency=lat),
)
_register(
    "pg-latency",
    "(b) PostgreSQL, local executor, 300 ms latency",
    LATENCY_CONCURRENCY,
    LATENCY,
    lambda n, c, lat: run_local("postgresql", items=n, concurrency=c, latency=lat),
)


# --------------------------------------------------------------------------- report


def report(figure: Figure) -> list[str]:
    lines = [
        f"{figure.name}: {figure.items} items, concurrency {figure.concurrency}",
        f"  {figure.seconds:.2f} s, {figure.rate:.1f} items/s, "
        f"{figure.wall_ms_per_item:.2f} ms wall per item, "
        f"{figure.slot_overhead_ms:.1f} ms per item per worker slot beyond the vendor",
    ]
    if figure.latency:
        ideal = figure.concurrency / figure.latency
        lines.append(
            f"  ideal {ideal:.1f} items/s ({figure.concurrency} / {figure.latency:g} s): "
            f"efficiency {figure.efficiency:.3f} (target >= {EFFICIENCY_TARGET})"
        )
    return lines


def target_met(key: str, figure: Figure) -> bool | None:
    if key == "sqlite-local":
        return figure.rate >= RATE_TARGET
    if figure.latency:
        return figure.efficiency >= EFFICIENCY_TARGET
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument(
        "--only", default=",".join(RUNS), help=f"comma-separated runs: {', '.join(RUNS)}"
    )
    options = parser.parse_args()
    keys = [k.strip() for k in options.only.split(",") if k.strip()]
    unknown = [k for k in keys if k not in RUNS]
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")

    print(
        f"Grading throughput: {platform.node()}, {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    status = 0
    for key in keys:
        title, measure = RUNS[key]
        try:
            figure = measure(options.items)
        except Exception as exc:  # report the run that could not happen, go on
            print(f"{title}: could not run: {type(exc).__name__}: {exc}")
            status = 2
            continue
        print("\n".join(report(figure)))
        met = target_met(key, figure)
        if met is not None:
            print(f"  target: {'met' if met else 'MISSED'}")
            if not met and status == 0:
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
