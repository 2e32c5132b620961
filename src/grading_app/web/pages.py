"""The start page: on a fresh install the form that creates the administrator (from the
server's own machine), then sign-in, and once signed in the system's state and sign-out.

Plain HTML forms, no script. The sign-out form carries the session's CSRF token; the
setup and sign-in forms are covered by the cross-site guard (their Origin must be ours).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from grading_app import __version__
from grading_app.accounts import signing, users
from grading_app.accounts.auth import CSRF_FIELD, SESSION_COOKIE, authenticate, form_principal
from grading_app.accounts.principal import Principal
from grading_app.db import unit_of_work
from grading_app.errors import AppError
from grading_app.web.shell import NAVIGATION, TEMPLATES

router = APIRouter(include_in_schema=False)


def _signed_in(request: Request) -> Principal | None:
    if not request.cookies.get(SESSION_COOKIE):
        return None
    try:
        return authenticate(request)
    except AppError:
        return None


def _page(request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
    from grading_app.app import database_status

    status = database_status(request.app.state.engine)
    setup_required = False
    if status["schema_current"]:
        with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
            setup_required = not users.any_user_exists(session)
    base = {
        "version": __version__,
        "status": status,
        "principal": _signed_in(request) if status["schema_current"] else None,
        "setup_required": setup_required,
        "setup_allowed": signing.setup_allowed_here(request),
        "csrf_field": CSRF_FIELD,
        "navigation": NAVIGATION,
        "current": "/",
        "username": "",
        "error": None,
        "next_page": "/",
    }
    return TEMPLATES.TemplateResponse(
        request, "home.html", {**base, **context}, status_code=status_code
    )


def _safe_next(target: str) -> str:
    """Where to go after signing in: a path of this site only (never //elsewhere)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _home_with_cookie(request: Request, signed: signing.SignedIn, target: str = "/") -> Response:
    response = RedirectResponse(_safe_next(target), status_code=303)
    signing.set_session_cookie(response, request, signed.issued, request.app.state.settings)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    return _page(request, next_page=_safe_next(request.query_params.get("next", "/")))


@router.post("/setup", response_class=HTMLResponse)
def setup(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    password_again: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    if password != password_again:
        return _page(request, 400, username=username, error="The two passwords differ")
    try:
        signed = signing.set_up_first_admin(
            request, username=username, password=password, display_name=None
        )
    except AppError as exc:
        return _page(request, exc.status_code, username=username, error=exc.message)
    return _home_with_cookie(request, signed)


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next_page: Annotated[str, Form(alias="next", max_length=2000)] = "/",
) -> Response:
    try:
        signed = signing.sign_in(request, username=username, password=password)
    except AppError as exc:
        return _page(
            request, exc.status_code, username=username, error=exc.message, next_page=next_page
        )
    return _home_with_cookie(request, signed, next_page)


@router.post("/sign-out", response_class=HTMLResponse)
def sign_out(request: Request, csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    if form_principal(request, csrf_token) is not None:
        signing.end_presented_session(request)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
