"""What the server answers on a database an earlier release made (or an older schema of
this one): a page saying what to run, instead of failing to start. It never opens the
database, so the file reaches the upgrade exactly as it was."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from grading_app import __version__
from grading_app.config import Settings
from grading_app.security import NetworkGuard
from grading_app.web.shell import TEMPLATES


def upgrade_notice_app(settings: Settings, message: str) -> NetworkGuard:
    """Every page: the notice (503); every API call and /health: the same as JSON."""

    async def answer(request: Request) -> Response:
        wants_page = "text/html" in request.headers.get("accept", "")
        if request.url.path.startswith(("/api/", "/health")) or not wants_page:
            body = {"detail": message, "status": "needs upgrade", "version": __version__}
            return JSONResponse(body, status_code=503, headers={"Retry-After": "3600"})
        return TEMPLATES.TemplateResponse(
            request,
            "upgrade_notice.html",
            {"message": message, "version": __version__},
            status_code=503,
        )

    static = StaticFiles(directory=str(Path(__file__).parent / "static"))
    app = Starlette(
        routes=[
            Mount("/static", app=static, name="static"),
            Route(
                "/{path:path}", answer, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
            ),
        ]
    )
    return NetworkGuard(app, trusted_hosts=settings.trusted_host_list)
