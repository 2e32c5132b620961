"""Benchmark: the API's reads over real HTTP on a database of realistic size.

Fills a database (SQLite file, and a fresh PostgreSQL database) with 10,000 batches,
100,000 jobs and 1,000,000 submissions, graded (work items and grade results, two
models on a tenth of the jobs), one batch holding a job of 100,000 graded documents;
bulk inserts into the schema `grading-app db upgrade` makes (`api_data.py`). Then it
starts the real server (`grading-app serve`, WORKER_CONCURRENCY=0) in a subprocess and
times, over HTTP on 127.0.0.1, p50/p95 of: the batch list unfiltered, with each
filter, with search, at offset 9,000; a batch's detail and analytics; a job's detail
and a page of its submissions; and the export of the 100,000-document batch (rows per
second, and the server's memory growth from /proc/<pid>/status sampled meanwhile).
The list and detail are also timed on databases of 1,000 and 100,000 batches, to show
whether their cost grows with the table. Then the web application's pages, signed in
through the sign-in form (`api_pages.py`): each must render in under 100 ms p95.

An endpoint that answers 404 (not built yet) is reported "not available"; one that
refuses a filter (422), or a page that does not answer 200, is reported with its status.

    python benchmarks/api.py [--scale 1.0] [--only sqlite|postgresql] [--repeat 30]
                             [--no-flat] [--keep DIR]

`--scale 0.01` runs everything at a hundredth of the size. PostgreSQL comes from
GRADING_APP_TEST_POSTGRES (as in the tests); its databases are dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import api_data  # noqa: E402
import api_pages  # noqa: E402
from tests.conftest import create_postgres_database, drop_postgres_database  # noqa: E402

LIST_TARGET_MS = 50.0
ANALYTICS_TARGET_MS = 200.0
EXPORT_RATE_TARGET = 20_000.0
EXPORT_MEMORY_TARGET_MB = 100.0
# No endpoint is timed for longer than this (after at least MIN_SAMPLES requests).
BUDGET_SECONDS = 20.0
MIN_SAMPLES = 3
# The accounts `accounts()` makes; the pages sign in as them through the form.
ADMIN, TEACHER, PASSWORD = "bench", "teacher", "benchmark password"


def iso(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def list_queries(batches: int, template_id: str | None) -> list[tuple[str, str]]:
    now = api_data.NOW
    offset = max(batches * 9 // 10, 0)
    return [
        ("list", "/api/batches?limit=50"),
        ("list status=processing", "/api/batches?limit=50&status=processing"),
        ("list status=completed|failed", "/api/batches?limit=50&status=completed&status=failed"),
        ("list priority_min=7", "/api/batches?limit=50&priority_min=7"),
        ("list priority_max=3", "/api/batches?limit=50&priority_max=3"),
        ("list tag=english", "/api/batches?limit=50&tag=english&tags_match=any"),
        ("list tag=a&tag=b (all)", "/api/batches?limit=50&tag=a&tag=b&tags_match=all"),
        ("list created_from", f"/api/batches?limit=50&created_from={iso(now - timedelta(30))}"),
        ("list deadline_to", f"/api/batches?limit=50&deadline_to={iso(now + timedelta(7))}"),
        ("list started_from", f"/api/batches?limit=50&started_from={iso(now - timedelta(60))}"),
        ("list completed_to", f"/api/batches?limit=50&completed_to={iso(now - timedelta(200))}"),
        ("list template_id", f"/api/batches?limit=50&template_id={template_id}"),
        ("list created_by", "/api/batches?limit=50&created_by=teacher3@school.example"),
        ("list q=essay", "/api/batches?limit=50&q=essay"),
        ("list sort=deadline asc", "/api/batches?limit=50&sort=deadline&order=asc"),
        (f"list offset={offset:,}", f"/api/batches?limit=50&offset={offset}"),
    ]


# ------------------------------------------------------------------------ server


@dataclass
class Server:
    base_url: str
    pid: int
    # Access tokens: an administrator's (sees every batch) and a teacher's, who owns
    # the batches of priority 3 (a tenth) and sees only those.
    admin_token: str = ""
    teacher_token: str = ""

    def client(self, role: str = "admin") -> httpx.Client:
        token = self.admin_token if role == "admin" else self.teacher_token
        return httpx.Client(
            base_url=self.base_url, timeout=120, headers={"Authorization": f"Bearer {token}"}
        )


def accounts(url: str) -> tuple[str, str]:
    """The first administrator (who adopts every row the fill made without an owner)
    and a teacher owning a tenth of the batches; a token of each."""
    import sqlalchemy as sa

    from grading_app.accounts import credentials, users
    from grading_app.accounts.principal import Role
    from grading_app.db import make_engine, make_sessionmaker, unit_of_work
    from grading_app.models import JobBatch

    engine = make_engine(url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            admin = users.find_user(session, ADMIN) or users.create_first_admin(
                session, username=ADMIN, password=PASSWORD
            )
            teacher = users.find_user(session, TEACHER) or users.create_user(
                session, username=TEACHER, password=PASSWORD, role=Role.TEACHER
            )
            session.execute(
                sa.update(JobBatch).where(JobBatch.priority == 3).values(owner_id=teacher.id)
            )
            return (
                credentials.create_token(session, admin, name="bench").token,
                credentials.create_token(session, teacher, name="bench").token,
            )
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(url: str, scratch: Path) -> Iterator[Server]:
    """`grading-app serve` on the database, without workers, until the block ends."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "WORKER_CONCURRENCY": "0",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "UPLOAD_DIR": str(scratch / "uploads"),
    }
    command = [str(Path(sys.executable).parent / "grading-app"), "serve"]
    with open(scratch / f"server-{port}.log", "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the server stopped; see {log.name}")
                try:
                    if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not answer /health within 120 s")
                time.sleep(0.2)
            admin_token, teacher_token = accounts(url)
            yield Server(base_url, process.pid, admin_token, teacher_token)
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def memory_kb(pid: int) -> dict[str, int]:
    figures: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0])
    return figures


# ---------------------------------------------------------------------- figures


@dataclass
class Timing:
    label: str
    status: str  # "ok", "not available", or what went wrong
    samples: list[float]
    target_ms: float | None = None
    note: str = ""

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        if len(self.samples) < 2:
            return self.samples[0]
        return statistics.quantiles(self.samples, n=20, method="inclusive")[18]

    @property
    def verdict(self) -> str:
        if self.status != "ok" or self.target_ms is None:
            return ""
        return "PASS" if self.p95 < self.target_ms else "FAIL"


def failure(response: httpx.Response) -> str:
    """What a non-200 answer said: the API's `detail`, a redirect's target, or its text."""
    detail: Any = response.headers.get("location") or response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        detail = response.json().get("detail", detail)
    return f"{response.status_code}: {str(detail)[:70]}"


def time_get(
    client: httpx.Client,
    label: str,
    path: str,
    *,
    repeat: int,
    target_ms: float | None,
    check: Callable[[httpx.Response], str] | None = None,
) -> Timing:
    first = client.get(path)
    if first.status_code != 200:
        status = failure(first)
        if status == "404: Not Found":  # no such route: not built yet
            status = "not available"
        return Timing(label, status, [], target_ms)
    note = check(first) if check else ""
    samples: list[float] = []
    started = time.perf_counter()
    for _ in range(repeat):
        before = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - before) * 1000)
        response.raise_for_status()
        if len(samples) >= MIN_SAMPLES and time.perf_counter() - started > BUDGET_SECONDS:
            note = (note + f" stopped after {len(samples)} requests").strip()
            break
    return Timing(label, "ok", samples, target_ms, note)


@dataclass
class Export:
    label: str
    status: str
    rows: int = 0
    seconds: float = 0.0
    growth_mb: float = 0.0
    hwm_mb: float = 0.0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def verdict(self) -> str:
        if self.status != "ok":
            return ""
        met = self.rate >= EXPORT_RATE_TARGET and self.growth_mb < EXPORT_MEMORY_TARGET_MB
        return "PASS" if met else "FAIL"


def time_export(client: httpx.Client, server: Server, label: str, path: str) -> Export:
    """Streams the export, counting its lines, while a thread samples the server's RSS."""
    baseline = memory_kb(server.pid)["VmRSS"]
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, memory_kb(server.pid)["VmRSS"])
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = 0
    started = time.perf_counter()
    try:
        with client.stream("GET", path, timeout=600) as response:
            if response.status_code == 404:
                response.read()
                if response.json().get("detail") == "Not Found":
                    return Export(label, "not available")
            if response.status_code != 200:
                return Export(label, f"{response.status_code}: {response.read()[:70]!r}")
            for chunk in response.iter_bytes():
                lines += chunk.count(b"\n")
        seconds = time.perf_counter() - started
    finally:
        done.set()
        sampler.join()
    hwm = memory_kb(server.pid)["VmHWM"]
    return Export(
        label,
        "ok",
        rows=max(lines - 1, 0),  # the header line
        seconds=seconds,
        growth_mb=(peak - baseline) / 1024,
        hwm_mb=hwm / 1024,
    )


# -------------------------------------------------------------------------- runs


@dataclass
class Sizes:
    batches: int
    jobs: int
    submissions: int
    export_documents: int

    @classmethod
    def scaled(cls, scale: float) -> Sizes:
        return cls(
            batches=max(int(10_000 * scale), 20),
            jobs=max(int(100_000 * scale), 40),
            submissions=max(int(1_000_000 * scale), 400),
            export_documents=max(int(100_000 * scale), 100),
        )


@contextmanager
def database(dialect: str, scratch: Path, name: str) -> Iterator[str]:
    if dialect == "sqlite":
        yield f"sqlite:///{scratch / f'{name}.db'}"
        return
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


def known_ids() -> dict[str, str]:
    return {
        "export_batch": api_data.numbered_id(api_data.BATCH, 0),
        "export_job": api_data.numbered_id(api_data.JOB, 0),
        "batch": api_data.numbered_id(api_data.BATCH, 1),
        "job": api_data.numbered_id(api_data.JOB, 1),
    }


def measure_main(server: Server, sizes: Sizes, repeat: int) -> tuple[list[Timing], list[Export]]:
    known = known_ids()
    timings: list[Timing] = []
    with server.client() as client:
        # Batch 0 has a template (every fifth batch has one).
        template_id = client.get(f"/api/batches/{known['export_batch']}").json()["template_id"]
        unfiltered_total = client.get("/api/batches?limit=1").json().get("total")
        for label, path in list_queries(sizes.batches, template_id):

            def check(response: httpx.Response, label: str = label) -> str:
                total = response.json().get("total")
                ignored = label != "list" and "offset" not in label and total == unfiltered_total
                return f"total {total:,}" + (" (filter ignored?)" if ignored else "")

            timings.append(
                time_get(client, label, path, repeat=repeat, target_ms=LIST_TARGET_MS, check=check)
            )
        big = f"{sizes.export_documents:,}"
        reads = [
            ("batch detail", f"/api/batches/{known['batch']}", LIST_TARGET_MS),
            (f"batch detail ({big} docs)", f"/api/batches/{known['export_batch']}", LIST_TARGET_MS),
            ("batch analytics", f"/api/batches/{known['batch']}/analytics", ANALYTICS_TARGET_MS),
            (
                f"batch analytics ({big} docs)",
                f"/api/batches/{known['export_batch']}/analytics",
                ANALYTICS_TARGET_MS,
            ),
            ("job detail", f"/api/jobs/{known['job']}", LIST_TARGET_MS),
            (f"job detail ({big} docs)", f"/api/jobs/{known['export_job']}", LIST_TARGET_MS),
            (
                f"job submissions page ({big} docs)",
                f"/api/jobs/{known['export_job']}/submissions?limit=50",
                LIST_TARGET_MS,
            ),
            (
                f"job submissions page 1,000 ({big} docs)",
                f"/api/jobs/{known['export_job']}/submissions?limit=50&offset=1000",
                LIST_TARGET_MS,
            ),
        ]
        for label, path, target in reads:
            timings.append(time_get(client, label, path, repeat=repeat, target_ms=target))
        exports = [
            time_export(
                client,
                server,
                f"batch export csv ({big} docs)",
                f"/api/batches/{known['export_batch']}/export?format=csv",
            ),
            time_export(
                client,
                server,
                f"batch export xlsx ({big} docs)",
                f"/api/batches/{known['export_batch']}/export?format=xlsx",
            ),
            time_export(
                client,
                server,
                f"job results.csv ({big} docs)",
                f"/api/jobs/{known['export_job']}/results.csv",
            ),
        ]
    # An xlsx is a zip: its lines say nothing about rows.
    for export in exports:
        if "xlsx" in export.label and export.status == "ok":
            export.rows = sizes.export_documents
    return timings, exports


def measure_flat(server: Server, batches: int, repeat: int) -> dict[str, Timing]:
    detail = f"/api/batches/{api_data.numbered_id(api_data.BATCH, batches // 2)}"
    reads = {
        "list": "/api/batches?limit=50",
        "list q=essay": "/api/batches?limit=50&q=essay",
        "list status=processing": "/api/batches?limit=50&status=processing",
        "list offset 90%": f"/api/batches?limit=50&offset={batches * 9 // 10}",
        "batch detail": detail,
    }
    with server.client() as client, server.client("teacher") as teacher:
        timings = {
            label: time_get(client, label, path, repeat=repeat, target_ms=LIST_TARGET_MS)
            for label, path in reads.items()
        }
        # A teacher's list reads only their own and shared batches.
        timings["list (a teacher)"] = time_get(
            teacher, "list (a teacher)", reads["list"], repeat=repeat, target_ms=LIST_TARGET_MS
        )
        return timings


def run(dialect: str, sizes: Sizes, options: argparse.Namespace, scratch: Path) -> int:
    print(f"\n{dialect}:")
    failures = 0
    with database(dialect, scratch, "api") as url:
        plan = api_data.plan(
            batches=sizes.batches,
            jobs=sizes.jobs,
            submissions=sizes.submissions,
            export_documents=sizes.export_documents,
        )
        print(
            f"  building {sizes.batches:,} batches, {sizes.jobs:,} jobs, "
            f"{plan.submissions:,} submissions (one batch of {sizes.export_documents:,})"
        )
        seconds = api_data.build(url, plan)
        print(f"  built in {seconds:.1f} s")
        with serving(url, scratch) as server:
            timings, exports = measure_main(server, sizes, options.repeat)
            main_flat = measure_flat(server, sizes.batches, options.repeat)
            logins = {"admin": (ADMIN, PASSWORD), "teacher": (TEACHER, PASSWORD)}
            pages = api_pages.measure_pages(server.base_url, logins, plan, options.repeat, time_get)
    flat: dict[int, dict[str, Timing]] = {sizes.batches: main_flat}
    if not options.no_flat:
        for batches in (max(sizes.batches // 10, 10), sizes.batches * 10):
            with database(dialect, scratch, f"flat{batches}") as url:
                plan = api_data.plan(batches=batches, jobs=0, submissions=0, export_documents=0)
                seconds = api_data.build(url, plan, say=lambda _: None)
                print(f"  built {batches:,} batches (no jobs) in {seconds:.1f} s")
                with serving(url, scratch) as server:
                    flat[batches] = measure_flat(server, batches, options.repeat)
    failures += print_tables(dialect, timings, exports, flat)
    failures += print_timings(f"{dialect}: pages over HTTP (ms)", pages, "page")
    return failures


def print_timings(title: str, timings: list[Timing], column: str = "endpoint") -> int:
    """A table of p50/p95 against each target; returns the number of FAILs."""
    failures = 0
    print(f"\n  {title}")
    header = f"  {column:<40} {'p50':>8} {'p95':>8} {'n':>4}  {'target':>8}  result"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for t in timings:
        target = f"< {t.target_ms:g}" if t.target_ms else ""
        if t.status != "ok":
            print(f"  {t.label:<40} {'':>8} {'':>8} {'':>4}  {target:>8}  {t.status}")
            continue
        failures += t.verdict == "FAIL"
        line = f"  {t.label:<40} {t.p50:>8.1f} {t.p95:>8.1f} {len(t.samples):>4}  {target:>8}"
        print(f"{line}  {t.verdict}  {t.note}".rstrip())
    return failures


def print_tables(
    dialect: str, timings: list[Timing], exports: list[Export], flat: dict[int, dict[str, Timing]]
) -> int:
    failures = print_timings(f"{dialect}: reads over HTTP (ms)", timings)
    print(
        f"\n  {dialect}: exports (targets: >= {EXPORT_RATE_TARGET:,.0f} rows/s, server RSS "
        f"growth < {EXPORT_MEMORY_TARGET_MB:g} MB, sampled every 20 ms)"
    )
    for e in exports:
        if e.status != "ok":
            print(f"  {e.label:<40} {e.status}")
            continue
        failures += e.verdict == "FAIL"
        print(
            f"  {e.label:<40} {e.rows:,} rows in {e.seconds:.2f} s = {e.rate:,.0f} rows/s, "
            f"RSS growth {e.growth_mb:.1f} MB (VmHWM {e.hwm_mb:.0f} MB)  {e.verdict}"
        )
    sizes = sorted(flat)
    print(f"\n  {dialect}: p95 (ms) by number of batches")
    print(f"  {'endpoint':<40} " + " ".join(f"{n:>10,}" for n in sizes))
    for label in flat[sizes[0]]:
        cells = []
        for n in sizes:
            t = flat[n][label]
            cells.append(f"{t.p95:>10.1f}" if t.status == "ok" else f"{'n/a':>10}")
        print(f"  {label:<40} " + " ".join(cells))
    return failures


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        ram = f"{int(memory) / 1024 / 1024:.0f} GiB"
    except OSError:
        ram = "unknown memory"
    return (
        f"{platform.node()}, {platform.system()} {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} cores, {ram}, Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 10,000 batches")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--repeat", type=int, default=30, help="requests per endpoint")
    parser.add_argument("--no-flat", action="store_true", help="skip the 1/10x and 10x runs")
    parser.add_argument("--keep", type=Path, help="build SQLite files in DIR and keep them")
    options = parser.parse_args()
    sizes = Sizes.scaled(options.scale)
    print(f"API reads: {machine()}")
    print(
        f"scale {options.scale:g}: {sizes.batches:,} batches, {sizes.jobs:,} jobs, "
        f"{sizes.submissions:,} submissions"
    )
    status = 0
    for dialect in [options.only] if options.only else ["sqlite", "postgresql"]:
        with tempfile.TemporaryDirectory(prefix="api-bench-") as temporary:
            scratch = options.keep or Path(temporary)
            scratch.mkdir(parents=True, exist_ok=True)
            try:
                if run(dialect, sizes, options, scratch):
                    status = max(status, 1)
            except Exception as exc:  # report the run that could not happen, go on
                print(f"  {dialect}: could not run: {type(exc).__name__}: {exc}")
                status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
