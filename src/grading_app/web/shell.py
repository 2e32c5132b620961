"""What every signed-in page shares: who is looking (or a redirect to sign in), the
rendering with the navigation, the 404 page, checking a form's CSRF token, and checking
access as the API route a page action mirrors.

Pages call the same services as the API, under the same access rules (`access`); they
hold no logic of their own beyond reading forms and choosing what to show.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from grading_app import __version__
from grading_app.accounts import access
from grading_app.accounts.auth import CSRF_FIELD, SESSION_COOKIE, authenticate, form_principal
from grading_app.accounts.principal import Principal
from grading_app.db import unit_of_work
from grading_app.errors import AppError

# Costs are kept to the millionth of a dollar (batches/estimate.py, the price book).
SMALLEST_USD = 0.000001

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _pager(params: Any, offset: int) -> str:
    """The page's query string with another `offset` (filters kept)."""
    pairs = [(k, v) for k, v in params.multi_items() if k != "offset"]
    return urlencode([*pairs, ("offset", str(offset))])


def _usd(amount: float | None) -> str:
    """Dollars to the cent; under a cent (one document graded by a small model costs a
    fraction of one) to two significant digits, at least to the hundredth of a cent, so
    an amount that is not zero never reads as zero; a dash when unknown. app.js's `usd`
    writes the same."""
    if amount is None:
        return "—"
    if amount == 0 or abs(amount) >= 0.01:
        return f"${amount:,.2f}"
    if abs(amount) < SMALLEST_USD / 2:
        return f"under ${SMALLEST_USD:.6f}"
    digits = min(6, max(4, 1 - math.floor(math.log10(abs(amount)))))
    text = f"{amount:.{digits}f}"
    # No trailing zero past the hundredth of a cent: $0.00005, not $0.000050.
    return "$" + (text.rstrip("0") if digits > 4 else text)


TEMPLATES.env.filters["pager"] = _pager
TEMPLATES.env.filters["usd"] = _usd

NAVIGATION = (
    ("/dashboard", "Dashboard"),
    ("/batches", "Batches"),
    ("/batches/new", "New batch"),
    ("/templates", "Templates"),
    ("/library", "Library"),
    ("/providers", "Providers"),
    ("/account", "Account"),
)
ADMIN_NAVIGATION = (("/admin/users", "Users"),)


def viewer(request: Request) -> Principal:
    """The signed-in user of a page; without a session, a redirect to the sign-in form
    that comes back here afterwards."""
    if request.cookies.get(SESSION_COOKIE):
        try:
            return authenticate(request)
        except AppError:
            pass
    target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    raise HTTPException(status_code=303, headers={"Location": f"/?next={target}"})


def form_viewer(request: Request, csrf_token: str) -> Principal:
    """The signed-in user of a form post, its CSRF token checked (403 if wrong)."""
    principal = form_principal(request, csrf_token)
    if principal is None:
        raise HTTPException(status_code=303, headers={"Location": "/"})
    return principal


def _section(path: str) -> str:
    """The navigation entry a page belongs to: the longest that starts its path."""
    everything = NAVIGATION + ADMIN_NAVIGATION
    matches = [href for href, _ in everything if path == href or path.startswith(href + "/")]
    if "/batches/new" in matches and path != "/batches/new":
        matches.remove("/batches/new")
    return max(matches, key=len, default="")


def render(
    request: Request,
    template: str,
    principal: Principal | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    base = {
        "version": __version__,
        "principal": principal,
        "navigation": NAVIGATION + (ADMIN_NAVIGATION if principal and principal.is_admin else ()),
        "current": _section(request.url.path),
        "csrf_field": CSRF_FIELD,
        "csrf_token": principal.csrf_token if principal else "",
    }
    return TEMPLATES.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )


def not_found(request: Request, principal: Principal, message: str) -> HTMLResponse:
    """The error page as a 404, with the navigation: what a viewer may not see does not
    exist for them (DESIGN "Access")."""
    return render(request, "error.html", principal, status_code=404, message=message)


def no_such_batch(request: Request, principal: Principal, batch_id: str) -> HTMLResponse:
    """The 404 of a batch that does not exist, or that the viewer may not see."""
    return not_found(request, principal, f"No batch with id {batch_id}")


@contextmanager
def checked_unit_of_work(
    request: Request, principal: Principal, method: str, api_path: str, **params: str
) -> Iterator[Session]:
    """A page action's unit of work, whose first step checks the access rule of the API
    route (`method`, `api_path`) the action mirrors: NotFound or Forbidden if it fails,
    as the API answers."""
    with unit_of_work(request.app.state.sessionmaker) as session:
        access.check_path_access(session, principal, method, api_path, params)
        yield session


def check_access(
    request: Request, principal: Principal, method: str, api_path: str, **params: str
) -> None:
    """The same check in a read-only transaction of its own, for actions that run their
    own transactions (the services that take `sessions`)."""
    with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
        access.check_path_access(session, principal, method, api_path, params)
