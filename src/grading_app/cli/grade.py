"""`grading-app grade`: files in, a batch in the database, grades out as CSV."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import sqlalchemy as sa
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from grading_app.cli import from_files
from grading_app.config import Settings
from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.documents.extract import extract_file
from grading_app.documents.validate import DocumentError, display_name
from grading_app.errors import AppError, BadRequest
from grading_app.jobs.uploads import PreparedDocument, discard, release_spooled
from grading_app.lifecycle import service as lifecycle
from grading_app.models import GradingJob, JobBatch
from grading_app.processing.runtime import worker_dependencies
from grading_app.processing.worker import Limiter, LocalWorker, worker_name
from grading_app.providers.base import Provider
from grading_app.providers.targets import Target, parse_targets
from grading_app.reports.analytics import agreement
from grading_app.reports.scope import job_scope
from grading_app.reports.writers import write_csv
from grading_app.templates import service as templates
from grading_app.upgrade.schema import upgrade_schema


@dataclass(frozen=True)
class GradeRequest:
    paths: list[Path]
    template: str | None
    prompt_file: Path | None
    scheme_file: Path | None
    provider: str | None
    models: list[str]
    out: Path
    name: str | None
    concurrency: int
    database_url: str
    # A re-run grades the items that failed last time again (--keep-failed: it does not).
    retry_failed: bool = True


def _read_instructions(path: Path, *, what: str, max_bytes: int) -> str:
    try:
        return extract_file(path, max_bytes=max_bytes).text
    except FileNotFoundError as exc:
        raise BadRequest(f"The {what} file {path} does not exist") from exc
    except DocumentError as exc:
        raise BadRequest(f"The {what} file {path} cannot be used: {exc.message}") from exc


class ExportFailed(AppError):
    """The grades are stored, but the CSV could not be written."""


def check_writable(out: Path) -> None:
    """Refuse an --out the CSV cannot be written to, before anything is graded."""
    if out.is_dir():
        raise BadRequest(
            f"--out {out} is a folder: give a file name, such as {out / 'results.csv'}"
        )
    folder = out.parent
    if not folder.exists():
        raise BadRequest(f"--out {out}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise BadRequest(f"--out {out}: {folder} is not a folder")
    if out.exists():
        if not os.access(out, os.W_OK):
            raise BadRequest(f"--out {out}: that file cannot be written (permission denied)")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise BadRequest(f"--out {out}: the folder {folder} cannot be written (permission denied)")


def run_grade(request: GradeRequest, *, settings: Settings, console: Console) -> int:
    """Grade the files of `request` (resuming the batch of an earlier identical run),
    write the CSV and say how it went; returns the exit status."""
    if bool(request.template) == bool(request.prompt_file):
        raise BadRequest("Give exactly one of --template NAME or --prompt FILE")
    targets = parse_targets(request.models, default_provider=request.provider)
    if not targets:
        raise BadRequest("Give at least one --model (repeat it to compare models)")
    check_writable(request.out)
    files = from_files.collect_files(request.paths)
    upgrade_schema(request.database_url, write=lambda _: None)
    engine = make_engine(request.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    sessions = make_sessionmaker(engine)
    try:
        resolve, limiter = worker_dependencies(settings)
        for target in targets:  # fail now on an unknown provider or a missing key
            resolve(target.provider)
        plan = _plan(sessions, request, files=files, targets=targets, settings=settings)
        with unit_of_work(sessions, read_only=True) as session:
            found = from_files.find_resumable(session, fingerprint=plan.fingerprint())
            resumable_id = found.id if found is not None else None
        if resumable_id is not None:
            batch_id, job_id = _resume(
                sessions, batch_id=resumable_id, retry_failed=request.retry_failed, console=console
            )
        else:
            batch_id, job_id = _create(sessions, plan=plan, settings=settings, console=console)
        interrupted = _grade_batch(
            sessions,
            batch_id=batch_id,
            request=request,
            settings=settings,
            console=console,
            resolve=resolve,
            limiter=limiter,
        )
        return _report(
            sessions,
            batch_id=batch_id,
            job_id=job_id,
            out=request.out,
            interrupted=interrupted,
            console=console,
        )
    finally:
        engine.dispose()


def _plan(
    sessions: sessionmaker[Session],
    request: GradeRequest,
    *,
    files: list[Path],
    targets: list[Target],
    settings: Settings,
) -> from_files.GradingPlan:
    """What to grade with: the prompt and scheme files (read with no transaction open),
    or the template's instructions."""
    prompt_text = scheme_text = None
    if request.prompt_file:
        prompt_text = _read_instructions(
            request.prompt_file, what="prompt", max_bytes=settings.max_upload_bytes
        )
    if request.scheme_file:
        scheme_text = _read_instructions(
            request.scheme_file, what="marking scheme", max_bytes=settings.max_upload_bytes
        )
    template_id = None
    if request.template:
        with unit_of_work(sessions, read_only=True) as session:
            template = templates.find_template(session, name=request.template)
            instructions, template_scheme = templates.template_instructions(template)
            template_id = template.id
        if not instructions.strip():
            raise BadRequest(
                f"Template '{template.name}' has no grading prompt; grade with "
                "--prompt FILE instead"
            )
    else:
        assert prompt_text is not None
        instructions, template_scheme = prompt_text, None
    return from_files.GradingPlan(
        files=files,
        instructions=instructions,
        marking_scheme=scheme_text or template_scheme,
        targets=targets,
        name=request.name or from_files.batch_name(request.paths, files),
        template_id=template_id,
    )


def _report(
    sessions: sessionmaker[Session],
    *,
    batch_id: str,
    job_id: str | None,
    out: Path,
    interrupted: bool,
    console: Console,
) -> int:
    """Write the CSV, print the summary and the failures; the exit status: 0 when every
    document was graded, 2 when some failed or wait, 130 when interrupted."""
    # A read: the CSV is written while it streams, and must not hold the write lock.
    export_error: OSError | None = None
    with unit_of_work(sessions, read_only=True) as session:
        batch = session.get(JobBatch, batch_id)
        job = session.get(GradingJob, job_id) if job_id is not None else None
        assert batch is not None and job is not None and job_id is not None
        unreadable = from_files.unreadable_documents(session, job_id=job_id)
        failed_documents = job.failed_submissions or 0
        try:
            rows = _export(session, job_id=job_id, out=out)
        except OSError as exc:
            export_error = exc
        _summary(session, batch, job, unreadable=unreadable, console=console)
        _print_failures(session, job_id=job_id, out=out, console=console)
    if export_error is not None:
        raise ExportFailed(
            f"Could not write {out}: {export_error.strerror or export_error}. "
            f"The grades are stored in the database (batch '{batch.batch_name}'): run the "
            "same command again with a writable --out to export them (nothing is graded "
            f"twice), or download /api/jobs/{job_id}/results.csv from `grading-app serve`."
        ) from export_error
    console.print(f"Wrote {rows} rows to {out}")
    if interrupted:
        console.print(
            "Interrupted: run the same command again to resume where it stopped.",
            style="yellow",
        )
        return 130
    waiting = batch.total_items - batch.completed_items - batch.failed_items
    if waiting > 0:  # paused or cancelled from elsewhere (the web app, the API)
        console.print(
            f"{waiting} items were not graded: the batch is {batch.status}. Resume it and "
            "run the same command again to finish.",
            style="yellow",
        )
    # Unreadable documents are among the job's failed ones (failed_submissions).
    clean = batch.failed_items == 0 and failed_documents == 0 and waiting <= 0
    return 0 if clean else 2


def _resume(
    sessions: sessionmaker[Session], *, batch_id: str, retry_failed: bool, console: Console
) -> tuple[str, str | None]:
    """Carry on with the batch an earlier run of the same command made: interrupted
    items back in the queue, and failed ones too unless --keep-failed."""
    with unit_of_work(sessions) as session:
        requeued = from_files.requeue_abandoned(session, batch_id=batch_id)
        batch = lifecycle.get_batch(session, batch_id=batch_id)
        job_id = session.scalar(sa.select(GradingJob.id).where(GradingJob.batch_id == batch_id))
        graded, failed, total = batch.completed_items, batch.failed_items, batch.total_items
        name, status = batch.batch_name, batch.status
        retried = 0
        if retry_failed and failed and status in lifecycle.BATCH_ACTIONS["retry"]:
            retried = lifecycle.retry_failed_batch(session, batch_id=batch_id)
    notes = [f"{graded} of {total} items graded"]
    if requeued:
        notes.append(f"{requeued} interrupted items requeued")
    if retried:
        notes.append(f"{retried} failed item{'s' if retried != 1 else ''} queued again")
    elif failed and not retry_failed:
        notes.append(
            f"{failed} failed item{'s' if failed != 1 else ''} kept as failed (--keep-failed)"
        )
    elif failed:
        notes.append(f"{failed} failed, not retried: the batch is {status}")
    console.print(
        f"Resuming batch '{escape(name)}': {'; '.join(notes)}", highlight=False, soft_wrap=True
    )
    return batch_id, job_id


def _create(
    sessions: sessionmaker[Session],
    *,
    plan: from_files.GradingPlan,
    settings: Settings,
    console: Console,
) -> tuple[str, str]:
    upload_dir, max_bytes = settings.upload_dir, settings.max_upload_bytes
    documents = from_files.prepare_files(plan.files, upload_dir=upload_dir, max_bytes=max_bytes)
    try:
        with unit_of_work(sessions) as session:
            batch, job, problems = from_files.create_batch_from_files(
                session, plan=plan, documents=documents
            )
            batch_id, job_id = batch.id, job.id
    except BaseException:
        discard(documents, upload_dir=upload_dir)
        raise
    finally:
        release_spooled(documents)
    for problem in problems:
        console.print(
            f"[yellow]Skipped[/] {escape(problem)}", markup=True, highlight=False, soft_wrap=True
        )
    _print_warnings(documents, console)
    return batch_id, job_id


def _print_warnings(documents: list[PreparedDocument], console: Console) -> None:
    """Each document's warnings, one line each, as the API lists them per file."""
    for document in documents:
        name = document.original_filename
        for warning in document.warnings:
            # Most warnings name their file already; the others get its name in front.
            text = warning if display_name(name) in warning else f"{name}: {warning}"
            console.print(
                f"[yellow]Warning[/] {escape(text)}", markup=True, highlight=False, soft_wrap=True
            )


FAILURES_SHOWN = 20


def _print_failures(session: Session, *, job_id: str, out: Path, console: Console) -> None:
    """Why each failed document or grading failed, one line each (the first
    FAILURES_SHOWN; the CSV has them all)."""
    failures, total = from_files.failures(session, job_id=job_id, limit=FAILURES_SHOWN)
    for failure in failures:
        where = failure.document + (f" ({failure.model})" if failure.model else "")
        console.print(
            f"[red]Failed[/] {escape(where)}: {escape(failure.reason)}",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )
    if total > len(failures):
        console.print(f"... and {total - len(failures)} more failures: see {out}", markup=False)


def _export(session: Session, *, job_id: str, out: Path) -> int:
    """Write the CSV; a half-written file is removed, so no one imports half a gradebook."""
    handle = out.open("w", newline="", encoding="utf-8")
    try:
        with handle:
            return write_csv(session, job_scope(session, job_id=job_id), out=handle)
    except OSError:
        if out.is_file():  # never a device such as /dev/stdout
            out.unlink(missing_ok=True)
        raise


def _grade_batch(
    sessions: sessionmaker[Session],
    *,
    batch_id: str,
    request: GradeRequest,
    settings: Settings,
    console: Console,
    resolve: Callable[[str], Provider],
    limiter: Limiter,
) -> bool:
    """Run a worker on this batch with a progress bar; True if interrupted."""
    with unit_of_work(sessions, read_only=True) as session:
        batch = session.get(JobBatch, batch_id)
        assert batch is not None
        total, done = batch.total_items, batch.completed_items + batch.failed_items
    progress = Progress(
        TextColumn("Grading"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeRemainingColumn(),
        console=console,
    )
    task = progress.add_task("grading", total=total, completed=done, failed=0)
    failed = 0

    def on_done(_item: str, outcome: str) -> None:
        nonlocal failed
        if outcome == "completed":
            progress.advance(task)
        elif outcome == "failed":
            failed += 1
            progress.advance(task)
            progress.update(task, failed=failed)

    worker = LocalWorker(
        sessions,
        resolve_provider=resolve,
        limiter=limiter,
        concurrency=request.concurrency,
        owner=worker_name("cli"),
        request_timeout=settings.request_timeout_seconds,
        batch_id=batch_id,
        on_item_done=on_done,
        poll_interval=0.2,
    )
    stop = threading.Event()
    finished = threading.Event()
    interrupted = threading.Event()

    def work() -> None:
        try:
            worker.run(stop, until_idle=True)
        finally:
            finished.set()

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        # A handler rather than KeyboardInterrupt: an interrupted Thread.join() can
        # return before the thread ends (CPython issue 90882), and results of calls in
        # flight would then be thrown away.
        if not interrupted.is_set():
            interrupted.set()
            stop.set()
            progress.console.print("Stopping: waiting for calls in flight…")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with progress:
            threading.Thread(target=work, name="grade-worker").start()
            while not finished.wait(0.2):
                pass
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted.is_set():
        worker.release_all()
    return interrupted.is_set()


def _summary(
    session: Session, batch: JobBatch, job: GradingJob, *, unreadable: int, console: Console
) -> None:
    table = Table(title=f"Batch '{escape(batch.batch_name)}' ({batch.status})")
    table.add_column("items")
    table.add_column("graded")
    table.add_column("failed")
    # Unreadable documents have no items (nothing was sent to a model), so they are
    # counted apart; they make the exit status 2 just as failed items do.
    table.add_column("unreadable documents")
    table.add_row(
        str(batch.total_items), str(batch.completed_items), str(batch.failed_items), str(unreadable)
    )
    console.print(table)
    if isinstance(job.models_to_compare, list) and len(job.models_to_compare) > 1:
        figures = agreement(session, job_scope(session, job_id=job.id))
        if figures.documents_compared:
            text = (
                f"Model agreement over {figures.documents_compared} documents: mean spread "
                f"{figures.mean_spread_points or 0:.1f} points (max "
                f"{figures.max_spread_points or 0:.1f})"
            )
            if figures.mean_pairwise_correlation is not None:
                text += f", mean correlation {figures.mean_pairwise_correlation:.2f}"
            console.print(text)
