"""Who is asking: the dependency every protected route runs, and the cross-site guard.

Credentials, in order: `Authorization: Bearer <token>` (API and CLI), then the session
cookie (browsers). A write made with the cookie must also carry the session's CSRF
token in the `X-CSRF-Token` header (pages put it in a form field), so a cookie alone,
which the browser attaches to any site's request, cannot change anything. Separately,
`CrossSiteGuard` refuses any write whose `Origin` is not this server.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from grading_app.accounts import credentials
from grading_app.accounts.principal import Principal
from grading_app.accounts.users import any_user_exists
from grading_app.config import Settings, get_settings
from grading_app.db import unit_of_work
from grading_app.errors import Forbidden, NotSignedIn

SESSION_COOKIE = "grading_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="grading-app"'}


def _sessions(request: Request) -> sessionmaker:
    return request.app.state.sessionmaker  # type: ignore[no-any-return]


def _settings(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


def app_signing_key(request: Request) -> bytes:
    key: bytes | None = getattr(request.app.state, "signing_key", None)
    if key is None:
        with unit_of_work(_sessions(request)) as session:
            key = credentials.signing_key(session)
        request.app.state.signing_key = key
    return key


def _not_signed_in(request: Request) -> NotSignedIn:
    with unit_of_work(_sessions(request), read_only=True) as session:
        setup_needed = not any_user_exists(session)
    if setup_needed:
        return NotSignedIn(
            "No account exists yet: open this server's home page from the machine it runs "
            "on to create the administrator, or run `grading-app users create-admin`",
            headers=_BEARER_CHALLENGE,
        )
    return NotSignedIn(
        "Sign in first: send `Authorization: Bearer <token>` (create a token under your "
        "account or with `grading-app tokens create USERNAME`) or sign in at /api/auth/sign-in",
        headers=_BEARER_CHALLENGE,
    )


def _from_token(request: Request, header: str) -> Principal:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotSignedIn(
            "The Authorization header must be `Bearer <token>`", headers=_BEARER_CHALLENGE
        )
    sessions = _sessions(request)
    with unit_of_work(sessions, read_only=True) as session:
        found = credentials.token_principal(session, token.strip())
    if found is None:
        raise NotSignedIn(
            "This access token is not valid: it may have been revoked or have expired. "
            "Create a new one under your account.",
            headers=_BEARER_CHALLENGE,
        )
    principal, row = found
    if credentials.token_needs_touch(row):  # a write at most once a minute, not per read
        with unit_of_work(sessions) as session:
            credentials.touch_token(session, row.id)
    return principal


def _from_cookie(request: Request, cookie: str, *, form_csrf: str | None = None) -> Principal:
    session_id = credentials.session_id_from_cookie(cookie, key=app_signing_key(request))
    found = None
    sessions = _sessions(request)
    if session_id is not None:
        with unit_of_work(sessions, read_only=True) as session:
            found = credentials.session_principal(session, session_id)
    if found is None:
        raise NotSignedIn("Your session has ended: sign in again")
    principal, row = found
    if request.method in UNSAFE_METHODS:
        check_csrf(principal, form_csrf or request.headers.get(CSRF_HEADER))
    if row.last_seen_at < credentials.utcnow() - credentials.TOUCH_INTERVAL:
        with unit_of_work(sessions) as session:
            credentials.touch_session(session, row.id, hours=_settings(request).session_hours)
    return principal


def check_csrf(principal: Principal, sent: str | None) -> None:
    expected = principal.csrf_token or ""
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise Forbidden(
            f"This change needs the {CSRF_HEADER} header (or the form's {CSRF_FIELD} field) "
            "with your session's CSRF token: reload the page and try again"
        )


def authenticate(request: Request) -> Principal:
    """The signed-in principal; 401 without valid credentials (403 for a write made with
    the session cookie but without its CSRF token)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if header:
        principal = _from_token(request, header)
    elif cookie:
        principal = _from_cookie(request, cookie)
    else:
        raise _not_signed_in(request)
    request.state.principal = principal
    return principal


def form_principal(request: Request, csrf_token: str) -> Principal | None:
    """For a page's form post: the signed-in principal, the CSRF token taken from the
    form's field; None without a session (403 for a session without the right token)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        principal = _from_cookie(request, cookie, form_csrf=csrf_token)
    except NotSignedIn:
        return None
    request.state.principal = principal
    return principal


def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("Only an administrator can do this")
    return principal


CurrentUser = Annotated[Principal, Depends(authenticate)]
AdminUser = Annotated[Principal, Depends(require_admin)]


class CrossSiteGuard:
    """Refuse writes that a browser sends on behalf of another site: an `Origin` that is
    not this server's own, or `Sec-Fetch-Site: cross-site`. Requests without those
    headers (curl, the CLI, old browsers) pass here; the cookie path still needs CSRF."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
        cross = headers.get("sec-fetch-site") == "cross-site"
        if cross or (origin is not None and origin.lower().rstrip("/") != own):
            body = json.dumps(
                {
                    "detail": "Cross-site request refused: changes can only be made from this "
                    "server's own pages or with an access token"
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
