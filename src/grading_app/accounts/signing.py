"""Signing in and first-run setup over HTTP, shared by the API (JSON) and the pages
(forms): throttling, session fixation, the cookie."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response

from grading_app.accounts import audit, credentials, throttle, users
from grading_app.accounts.auth import SESSION_COOKIE, app_signing_key
from grading_app.accounts.passwords import verify_password
from grading_app.accounts.principal import Principal, Role
from grading_app.config import Settings, is_loopback
from grading_app.db import unit_of_work
from grading_app.errors import AppError, Forbidden, NotSignedIn
from grading_app.models import User, utcnow

WRONG_CREDENTIALS = "Wrong username or password"


class TooManyAttempts(AppError):
    status_code = 429


@dataclass(frozen=True)
class SignedIn:
    user: User
    issued: credentials.IssuedSession


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def setup_allowed_here(request: Request) -> bool:
    """First-run setup only from the server's own machine, over a loopback name."""
    host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
    return is_loopback(client_address(request) or "") and is_loopback(host)


def set_session_cookie(
    response: Response, request: Request, issued: credentials.IssuedSession, settings: Settings
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        issued.cookie,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _start(request: Request, user_id: str) -> SignedIn:
    key = app_signing_key(request)  # made (once) in a transaction of its own
    with unit_of_work(request.app.state.sessionmaker) as session:
        credentials.purge_expired_sessions(session)  # a sign-in is rare enough to tidy up
        user = users.get_user(session, user_id)
        issued = credentials.start_session(
            session,
            user,
            key=key,
            hours=_settings(request).session_hours,
            user_agent=request.headers.get("user-agent"),
        )
        return SignedIn(user, issued)


def set_up_first_admin(
    request: Request, *, username: str, password: str, display_name: str | None
) -> SignedIn:
    """Create the first administrator and sign them in (403 away from the server's own
    machine; 409 once any account exists)."""
    if not setup_allowed_here(request):
        raise Forbidden(
            "The first administrator can only be created from the machine the server runs "
            "on (open http://127.0.0.1:PORT/ there), or with `grading-app users create-admin`"
        )
    with unit_of_work(request.app.state.sessionmaker) as session:
        user = users.create_first_admin(
            session, username=username, password=password, display_name=display_name
        )
        actor = Principal(user.id, user.username, Role.ADMIN, "session")
        audit.record(session, actor, "create_first_admin", "user", user.id)
        user_id = user.id
    return _start(request, user_id)


def sign_in(request: Request, *, username: str, password: str) -> SignedIn:
    """Check the password (throttled per account name and address) and start a session;
    the session the browser came with ends (no session fixation)."""
    settings = _settings(request)
    sessions = request.app.state.sessionmaker
    keys = throttle.keys(username, client_address(request))
    policy = throttle.ThrottlePolicy(
        max_failures=settings.sign_in_max_failures,
        window=timedelta(minutes=settings.sign_in_lock_minutes),
        lock=timedelta(minutes=settings.sign_in_lock_minutes),
    )
    with unit_of_work(sessions, read_only=True) as session:
        locked = throttle.locked_until(session, keys)
        user = users.find_user(session, username)
        password_hash = user.password_hash if user is not None and user.is_active else None
    if locked is not None:
        minutes = max(1, round((locked - utcnow()).total_seconds() / 60))
        raise TooManyAttempts(
            f"Too many failed sign-ins: try again in {minutes} minute(s), or ask an "
            "administrator to reset the password",
            headers={"Retry-After": str(minutes * 60)},
        )
    # Verified outside any transaction: argon2 is slow on purpose.
    if not verify_password(password_hash, password) or user is None:
        with unit_of_work(sessions) as session:
            throttle.record_failure(session, keys, policy)
        raise NotSignedIn(WRONG_CREDENTIALS)
    end_presented_session(request)
    with unit_of_work(sessions) as session:
        throttle.clear(session, keys[0])
    return _start(request, user.id)


def end_presented_session(request: Request) -> None:
    """End the session the browser's cookie names, if any."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return
    session_id = credentials.session_id_from_cookie(cookie, key=app_signing_key(request))
    if session_id is not None:
        with unit_of_work(request.app.state.sessionmaker) as session:
            credentials.end_session(session, session_id)
