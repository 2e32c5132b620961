"""`grading-app`: serve the application and manage its database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from grading_app import __version__
from grading_app.config import Settings, load_settings
from grading_app.errors import AppError

app = typer.Typer(
    help="Grade documents with large language models at batch scale.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Create, upgrade and inspect the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _register_providers() -> None:
    from grading_app.cli.accounts import tokens_app, users_app
    from grading_app.cli.providers import providers_app

    app.add_typer(providers_app, name="providers")
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")


_register_providers()
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="Overrides DATABASE_URL (default sqlite:///grading_app.db)."
    ),
]


def _settings(**overrides: object) -> Settings:
    """The settings with the command's options on top; a bad one is a message naming
    the variable, not pydantic's report."""
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except AppError as exc:
        raise _fail(exc) from None


def _db_command_url(override: str | None) -> str:
    """DATABASE_URL as the user wrote it, read without the application's other settings.

    The database commands, the upgrade above all, run on deployments of earlier releases
    whose other settings this release may refuse (a PORT that is no number,
    say); they need this one value only.
    """
    from grading_app.upgrade.database_url import read_database_url

    return read_database_url(override)


def _fail(exc: AppError) -> typer.Exit:
    for line in exc.message.splitlines():  # one line per problem, unwrapped
        errors.print(f"Error: {line}", markup=False, soft_wrap=True)
    return typer.Exit(code=1)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"grading-app {__version__}")


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default PORT or 8000).")] = None,
) -> None:
    """Serve the web application and API (/docs) with in-process workers."""
    import uvicorn

    from grading_app.app import create_app
    from grading_app.upgrade.serving import UpgradeNeeded, prepare_database_for_serving

    settings = _settings(host=host, port=port)
    application: Any
    try:
        refuse_unprotected_public_bind(settings)
        # A missing or empty database is created here, with a line saying so; one an
        # earlier release made gets a notice page saying what to run (it is not opened).
        try:
            prepare_database_for_serving(
                settings.database_url, write=lambda line: console.print(line, markup=False)
            )
            application = create_app(settings, start_workers=True)
        except UpgradeNeeded as exc:
            from grading_app.web.upgrade_notice import upgrade_notice_app

            errors.print(f"Error: {exc.message}", markup=False, soft_wrap=True)
            errors.print("Serving a page that says so until it is done.", markup=False)
            application = upgrade_notice_app(settings, exc.message)
        for line in exposure(settings):
            console.print(line, markup=False)
    except AppError as exc:
        raise _fail(exc) from exc
    except ValueError as exc:
        errors.print(f"Error: {exc}", markup=False)
        raise typer.Exit(code=1) from exc
    uvicorn.run(application, host=settings.host, port=settings.port, log_level="info")


def refuse_unprotected_public_bind(settings: Settings) -> None:
    """A non-loopback HOST is served only once an account exists to protect it. Checked
    before the database is created or touched (a legacy file must stay as it is)."""
    from grading_app.accounts.users import accounts_exist
    from grading_app.config import is_loopback

    if not is_loopback(settings.host) and not accounts_exist(settings.database_url):
        raise AppError(
            f"HOST={settings.host} would let other machines reach this server, and no account "
            "exists yet to protect it. Create the administrator first (grading-app users "
            "create-admin), then serve again; or serve on 127.0.0.1."
        )


def exposure(settings: Settings) -> list[str]:
    """What serving on HOST exposes, in plain words."""
    import os

    from grading_app.config import is_loopback

    address = f"{settings.host}:{settings.port}"
    notes = []
    if "ALLOW_PUBLIC_BIND" in os.environ:
        notes.append(
            "ALLOW_PUBLIC_BIND is no longer used: a non-loopback HOST is served once an "
            "account exists, and sign-in protects it."
        )
    if is_loopback(settings.host):
        return [*notes, f"Serving on http://{address}: only this machine can connect."]
    return [
        *notes,
        f"Serving on {address}: reachable from other machines on the network.",
        "Exposed: the API and pages (sign-in required; /health, /docs and the sign-in "
        "endpoints are open). Put it behind an HTTPS reverse proxy for anything beyond a "
        "trusted network; see the README's 'Running for a department'.",
    ]


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrlOption = None) -> None:
    """Create a new database, or bring a version-stamped one to the current schema."""
    from grading_app.upgrade.schema import upgrade_schema

    try:
        upgrade_schema(_db_command_url(database_url), write=console.print)
    except AppError as exc:
        raise _fail(exc) from exc


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "0001_legacy_baseline",
    database_url: DatabaseUrlOption = None,
) -> None:
    """Take the schema back (default: the legacy G6 schema), keeping every legacy row."""
    from grading_app.upgrade.schema import downgrade_schema

    try:
        downgrade_schema(_db_command_url(database_url), revision, write=console.print)
    except AppError as exc:
        raise _fail(exc) from exc


@db_app.command("current")
def db_current(database_url: DatabaseUrlOption = None) -> None:
    """Show the database's schema revision and whether it is current."""
    from grading_app import migrations
    from grading_app.db import mask_url
    from grading_app.upgrade.schema import read_state

    url = _db_command_url(database_url)
    try:
        state = read_state(url)
    except AppError as exc:
        raise _fail(exc) from exc
    head = migrations.head_revision()
    console.print(f"Database: {mask_url(url)}", markup=False)
    if state.is_empty:
        console.print("Schema: empty database (run `grading-app db upgrade`)", markup=False)
    elif state.revision == head:
        console.print(f"Schema: {state.revision} (head)", markup=False)
    else:
        console.print(f"Schema: {state.describe()}; this release's head is {head}", markup=False)


@db_app.command("history")
def db_history() -> None:
    """List the schema revisions, oldest first."""
    from grading_app import migrations

    table = Table("revision", "description")
    revisions = list(migrations.script_directory().walk_revisions())
    for revision in reversed(revisions):
        table.add_row(revision.revision, (revision.doc or "").splitlines()[0])
    console.print(table)


@db_app.command("check")
def db_check(database_url: DatabaseUrlOption = None) -> None:
    """Compare the database schema with this release's models (like `alembic check`)."""
    from grading_app.upgrade.schema import read_drift

    try:
        drift = read_drift(_db_command_url(database_url))
    except AppError as exc:
        raise _fail(exc) from exc
    for line in drift["missing"] + drift["other"]:
        console.print(f"  {line}", markup=False)
    if drift["missing"] or drift["other"]:
        errors.print("Schema differs from the models")
        raise typer.Exit(code=1)
    console.print("✓ Schema matches the models")


@db_app.command("migrate-batch-system")
def db_migrate_batch_system(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    no_backup: Annotated[
        bool, typer.Option("--no-backup", help="Skip the automatic backup (you have your own).")
    ] = False,
    lock_wait: Annotated[
        float, typer.Option(help="Seconds to wait for another upgrade or a busy database.")
    ] = 30.0,
    info_file: Annotated[Path, typer.Option(help="Where to write the migration details.")] = Path(
        "migration_backup_info.json"
    ),
    database_url: DatabaseUrlOption = None,
) -> None:
    """Upgrade a database from an earlier release to the Enhanced Batch System."""
    from grading_app.upgrade.runner import UpgradeOptions, run_upgrade

    options = UpgradeOptions(
        database_url=_db_command_url(database_url),
        backup=not no_backup,
        dry_run=dry_run,
        lock_wait_seconds=lock_wait,
        info_path=info_file,
    )
    try:
        run_upgrade(options, write=lambda line: print(line, flush=True))
    except AppError as exc:
        raise typer.Exit(code=1) from exc


@app.command()
def grade(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of .docx/.pdf/.txt/.md.")],
    template: Annotated[
        str | None, typer.Option(help="Use a batch template's prompt and criteria.")
    ] = None,
    prompt: Annotated[Path | None, typer.Option(help="File with the grading instructions.")] = None,
    scheme: Annotated[Path | None, typer.Option(help="Marking scheme file.")] = None,
    provider: Annotated[
        str | None, typer.Option(help="Provider for models given without one.")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="Model to grade with; repeat to compare models."),
    ] = None,
    out: Annotated[Path, typer.Option(help="CSV file to write.")] = Path("results.csv"),
    name: Annotated[str | None, typer.Option(help="Name of the batch.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Parallel provider calls.")] = None,
    keep_failed: Annotated[
        bool,
        typer.Option(
            "--keep-failed",
            help="On a re-run, leave the items that failed before as failed (by default "
            "they are graded again).",
        ),
    ] = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Grade documents, store them as a batch, and write a CSV of the grades.

    Interrupted (Ctrl-C), the same command resumes where it stopped; run again after
    failures, it grades the failed items again (unless --keep-failed).
    """
    from grading_app.cli.grade import GradeRequest, run_grade

    settings = _settings(database_url=database_url)
    request = GradeRequest(
        paths=paths,
        template=template,
        prompt_file=prompt,
        scheme_file=scheme,
        provider=provider,
        models=model or [],
        out=out,
        name=name,
        concurrency=concurrency or max(settings.worker_concurrency, 1),
        database_url=settings.database_url,
        retry_failed=not keep_failed,
    )
    try:
        code = run_grade(request, settings=settings, console=console)
    except AppError as exc:
        raise _fail(exc) from exc
    raise typer.Exit(code=code)


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Parallel provider calls.")] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Grade queued work from the database until stopped (Ctrl-C or SIGTERM).

    Run any number of workers, on any machines, against one PostgreSQL database.
    """
    from grading_app.processing.standalone import run_worker

    settings = _settings(database_url=database_url)
    try:
        run_worker(
            settings.database_url,
            settings=settings,
            concurrency=concurrency or max(settings.worker_concurrency, 1),
            console=console,
        )
    except AppError as exc:
        raise _fail(exc) from exc


def main() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


def migrate_main() -> None:
    """`python migrate_batch_system.py [--dry-run] [--no-backup] ...`"""
    typer.run(db_migrate_batch_system)
