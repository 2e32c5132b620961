"""FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from grading_app import __version__, api_schema, migrations
from grading_app.accounts.access import guard_path
from grading_app.accounts.audit import audit_path_action
from grading_app.accounts.auth import CrossSiteGuard, authenticate
from grading_app.config import Settings, get_settings
from grading_app.db import database_error_reason, make_engine, make_sessionmaker
from grading_app.deps import reject_unknown_query_parameters
from grading_app.errors import AppError, BadRequest, DatabaseUnavailable
from grading_app.jobs.orphans import OrphanSweep
from grading_app.request_guard import RequestGuard
from grading_app.security import NetworkGuard, UploadSlots
from grading_app.web.shell import TEMPLATES

log = logging.getLogger(__name__)
# Swagger UI and ReDoc as the fastapi-offline package ships them (a dependency, nothing
# copied here), so /docs works on a server without internet; FastAPI's own pages load
# them from a CDN.
DOCS_ASSETS = Path(str(resources.files("fastapi_offline") / "static"))
DOCS_ASSETS_URL = "/static/docs"


class HealthOut(BaseModel):
    status: str
    version: str
    database: str
    dialect: str | None = None
    revision: str | None
    head: str | None
    schema_current: bool


def validation_message(errors: Sequence[Any]) -> str:
    """'Invalid request: limit (query): Input should be ...; ...' from pydantic errors."""
    for error in errors:
        if error.get("type") == "json_invalid":
            # loc is ("body", character offset); ctx.error is the json module's reason.
            where = error.get("loc", ())[-1]
            reason = (error.get("ctx") or {}).get("error") or "it cannot be parsed"
            at = f" at character {where}" if isinstance(where, int) else ""
            return f"The request body is not valid JSON: {reason}{at}"
        if error.get("type") == "missing" and tuple(error.get("loc", ())) == ("body",):
            return "The request has no body: send a JSON object (content-type application/json)"
    problems = []
    for error in errors[:5]:
        where = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        kind = next((p for p in error.get("loc", ()) if p in ("body", "query", "path")), None)
        field = ".".join(where) or "request"
        problems.append(f"{field}{f' ({kind})' if kind else ''}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "Invalid request: " + "; ".join(problems) + more


def database_status(engine: Any) -> dict[str, Any]:
    """Reachability and schema revision; never the URL, which may hold a password."""
    head = migrations.head_revision()
    try:
        with engine.connect() as connection:
            revision = migrations.current_revision(connection)
    except SQLAlchemyError as exc:
        log.warning("database unreachable: %s", type(exc).__name__)
        return {"database": "unreachable", "revision": None, "head": head, "schema_current": False}
    return {
        "database": "reachable",
        "dialect": engine.dialect.name,
        "revision": revision,
        "head": head,
        "schema_current": revision == head,
    }


def _start_processing(settings: Settings, engine: Any) -> Any:
    """In-process workers (the default), or a Celery dispatcher when a broker is set."""
    import threading

    from grading_app.processing.runtime import worker_dependencies
    from grading_app.processing.worker import LocalWorker

    if settings.worker_concurrency == 0:
        return None
    sessions = make_sessionmaker(engine)
    stop = threading.Event()
    runner: Any
    if settings.broker_url:
        from grading_app.processing.celery_executor import CeleryDispatcher

        runner = CeleryDispatcher(
            sessions,
            capacity=settings.worker_concurrency,
            request_timeout=settings.request_timeout_seconds,
            lease_seconds=settings.effective_lease_seconds,
        )
    else:
        resolve, limiter = worker_dependencies(settings)
        runner = LocalWorker(
            sessions,
            resolve_provider=resolve,
            limiter=limiter,
            concurrency=settings.worker_concurrency,
            request_timeout=settings.request_timeout_seconds,
            lease_seconds=settings.effective_lease_seconds,
        )
    thread = threading.Thread(target=runner.run, args=(stop,), name="grading", daemon=True)
    thread.start()
    log.info("processing started: %s", type(runner).__name__)

    def stop_processing() -> None:
        stop.set()
        thread.join(timeout=settings.request_timeout_seconds + 5)
        if isinstance(runner, LocalWorker):
            runner.release_all()

    return stop_processing


def _add_docs_pages(application: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from the bundled assets, under any root_path."""
    openapi_url = application.openapi_url or "/openapi.json"

    @application.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> Any:
        # Our page, not FastAPI's: its Swagger UI is started by an inline script, which
        # the Content-Security-Policy (security.py) refuses; ours loads a static file.
        root = request.scope.get("root_path", "")
        context = {
            "title": f"{application.title} - API",
            "openapi_url": f"{root}{openapi_url}",
            "assets": f"{root}{DOCS_ASSETS_URL}",
            "root": root,
        }
        return TEMPLATES.TemplateResponse(request, "swagger.html", context)

    @application.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{application.title} - API",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


def create_app(
    settings: Settings | None = None,
    *,
    require_current_schema: bool = False,
    start_workers: bool = False,
) -> FastAPI:
    settings = settings or get_settings()
    if require_current_schema:
        # Before the application's engine exists: its connections switch SQLite to WAL,
        # and a legacy database must reach the upgrade exactly as it was.
        from grading_app.upgrade.serving import prepare_database_for_serving

        prepare_database_for_serving(settings.database_url, write=log.info)
    engine = make_engine(
        settings.database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        statement_timeout_s=settings.statement_timeout_seconds,
    )
    # Grades are priced as they are stored, with this application's GRADING_APP_PRICES.
    from grading_app.reports.price_book import use_overrides

    use_overrides(engine, settings.price_overrides)
    # Stored files a crash left behind (jobs/orphans.py): swept at start and once more.
    orphan_sweep = OrphanSweep(engine, settings.upload_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        orphan_sweep.start()
        stop = _start_processing(settings, engine) if start_workers else None
        try:
            yield
        finally:
            orphan_sweep.stop()
            if stop is not None:
                stop()
            engine.dispose()

    application = FastAPI(
        title="Grading App",
        version=__version__,
        description="Grade documents with large language models at batch scale.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(reject_unknown_query_parameters)],
    )
    # Mounted before /static, which would otherwise take its requests.
    application.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    application.mount(
        "/static",
        StaticFiles(directory=str(Path(__file__).parent / "web" / "static")),
        name="static",
    )
    _add_docs_pages(application)
    application.state.engine = engine
    application.state.sessionmaker = make_sessionmaker(engine)
    application.state.settings = settings
    application.state.upload_slots = UploadSlots(settings.max_concurrent_uploads)
    application.state.orphan_sweep = orphan_sweep

    @application.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Any:
        if "text/html" in request.headers.get("accept", ""):
            return TEMPLATES.TemplateResponse(
                request, "error.html", {"message": exc.message}, status_code=exc.status_code
            )
        return JSONResponse(
            {"detail": exc.message}, status_code=exc.status_code, headers=exc.headers
        )

    @application.exception_handler(OperationalError)
    async def _database_failed(request: Request, exc: OperationalError) -> Any:
        # The database went away, timed out on a lock, or chose this transaction as a
        # deadlock's victim: the request's transaction was rolled back, and trying again
        # is what helps. A 503 that says so, not a 500 with a traceback.
        # The driver's own message may name the server's host and port: neither the
        # answer nor the log repeats it.
        reason = database_error_reason(exc)
        log.warning("database error on %s %s: %s", request.method, request.url.path, reason)
        return await _app_error(
            request,
            DatabaseUnavailable(
                f"The database could not complete this request: {reason}. Nothing was "
                "saved; try again in a moment"
            ),
        )

    @application.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Any:
        # One sentence a person can act on, like every other error. A field the schema
        # describes (type, range, format, a required part) that does not match is a 422;
        # a rule of ours between fields or items (ValueError in a validator: a reversed
        # range, a rubric level above its criterion's maximum), which no schema can say,
        # is a 400, as the services' own refusals are.
        errors = exc.errors()
        status = 400 if all(e.get("type") == "value_error" for e in errors) else 422
        return await _app_error(request, BadRequest(validation_message(errors), status))

    from grading_app.accounts.routes import auth_router
    from grading_app.accounts.routes import router as accounts_router
    from grading_app.batches.routes import router as batches_router
    from grading_app.jobs.routes import router as jobs_router
    from grading_app.jobs.submission_routes import router as submissions_router
    from grading_app.library.routes import marking_schemes as marking_schemes_router
    from grading_app.library.routes import prompts as prompts_router
    from grading_app.processing.routes import router as provider_batches_router
    from grading_app.reports.routes import router as reports_router
    from grading_app.templates.routes import router as templates_router
    from grading_app.trust.routes import router as review_router

    # Sign-in and first-run setup are open; every other API route needs an account.
    application.include_router(auth_router)
    application.include_router(accounts_router)
    signed_in = [Depends(authenticate), Depends(guard_path), Depends(audit_path_action)]
    for router in (
        batches_router,
        provider_batches_router,
        jobs_router,
        submissions_router,
        prompts_router,
        marking_schemes_router,
        templates_router,
        reports_router,
        review_router,
    ):
        application.include_router(router, dependencies=signed_in)

    @application.get(
        "/health",
        tags=["system"],
        response_model=HealthOut,
        responses={503: {"model": HealthOut, "description": "Database unreachable or not current"}},
    )
    def health() -> JSONResponse:
        status = database_status(engine)
        healthy = status["database"] == "reachable" and status["schema_current"]
        body = {"status": "ok" if healthy else "degraded", "version": __version__, **status}
        return JSONResponse(body, status_code=200 if healthy else 503)

    from grading_app.web.account_pages import router as account_pages_router
    from grading_app.web.batch_edit_page import router as batch_edit_router
    from grading_app.web.batch_pages import router as batch_pages_router
    from grading_app.web.document_pages import router as document_pages_router
    from grading_app.web.library_pages import router as library_pages_router
    from grading_app.web.new_batch_page import router as new_batch_router
    from grading_app.web.pages import router as pages_router
    from grading_app.web.provider_pages import router as provider_pages_router
    from grading_app.web.review_pages import router as review_pages_router
    from grading_app.web.template_edit_page import router as template_edit_router
    from grading_app.web.template_pages import router as template_pages_router

    application.include_router(pages_router)
    application.include_router(new_batch_router)  # /batches/new before /batches/{id}
    application.include_router(batch_pages_router)
    application.include_router(batch_edit_router)
    application.include_router(document_pages_router)
    application.include_router(review_pages_router)
    application.include_router(account_pages_router)
    application.include_router(provider_pages_router)
    application.include_router(library_pages_router)
    application.include_router(template_pages_router)
    application.include_router(template_edit_router)

    # Outside the routes, so every route (those added later too) gets its checks.
    application.add_middleware(
        RequestGuard, router=application.router, max_body_bytes=settings.max_body_bytes
    )
    application.add_middleware(CrossSiteGuard)
    # Outermost: a request for another host name reaches nothing; every answer, errors
    # included, carries the security headers.
    application.add_middleware(NetworkGuard, trusted_hosts=settings.trusted_host_list)
    api_schema.install(application)
    return application
