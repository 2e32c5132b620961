"""Accounts API: first-run setup, sign-in and out, one's own account and tokens, and
(administrators) users and the audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from grading_app.accounts import audit, credentials, signing, users
from grading_app.accounts.auth import SESSION_COOKIE, AdminUser, CurrentUser
from grading_app.accounts.schemas import (
    AuditEventOut,
    PasswordChange,
    PasswordReset,
    SessionOut,
    Setup,
    SetupStatus,
    SignIn,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    UserUpdate,
)
from grading_app.deps import (
    ErrorOut,
    Page,
    Paging,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    paging,
)
from grading_app.errors import BadRequest
from grading_app.fields import UtcDateTime

auth_router = APIRouter(prefix="/api/auth", tags=["accounts"])
router = APIRouter(prefix="/api", tags=["accounts"])


def _session_out(signed: signing.SignedIn) -> SessionOut:
    return SessionOut(
        user=UserOut.model_validate(signed.user),
        via="session",
        csrf_token=signed.issued.csrf_token,
        expires_at=signed.issued.expires_at,
    )


@auth_router.get("/setup", response_model=SetupStatus)
def setup_status(request: Request, session: ReadSessionDep) -> Any:
    """Whether the first administrator still has to be created (no sign-in needed)."""
    return SetupStatus(
        setup_required=not users.any_user_exists(session),
        setup_allowed_here=signing.setup_allowed_here(request),
    )


@auth_router.post(
    "/setup",
    response_model=SessionOut,
    status_code=201,
    responses={403: {"model": ErrorOut, "description": "Not from the server's own machine"}},
)
def setup(data: Setup, request: Request, response: Response, settings: SettingsDep) -> Any:
    """Create the first administrator and sign them in. Only while no account exists,
    and only from the machine the server runs on."""
    signed = signing.set_up_first_admin(
        request, username=data.username, password=data.password, display_name=data.display_name
    )
    signing.set_session_cookie(response, request, signed.issued, settings)
    return _session_out(signed)


@auth_router.post(
    "/sign-in",
    response_model=SessionOut,
    responses={
        401: {"model": ErrorOut, "description": signing.WRONG_CREDENTIALS},
        429: {"model": ErrorOut, "description": "Too many failed sign-ins: locked for a while"},
    },
)
def sign_in(data: SignIn, request: Request, response: Response, settings: SettingsDep) -> Any:
    """Sign in with a username and password; sets the session cookie and answers the
    CSRF token to send with every change."""
    signed = signing.sign_in(request, username=data.username, password=data.password)
    signing.set_session_cookie(response, request, signed.issued, settings)
    return _session_out(signed)


@auth_router.post("/sign-out", status_code=204)
def sign_out(principal: CurrentUser, response: Response, session: SessionDep) -> Response:
    """End this browser session on the server (the cookie is worthless afterwards)."""
    if principal.session_id is not None:
        credentials.end_session(session, principal.session_id)
    response.status_code = 204
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@auth_router.get("/me", response_model=SessionOut)
def me(principal: CurrentUser, session: ReadSessionDep) -> Any:
    """Who is signed in, and (for a browser session) its CSRF token."""
    user = users.get_user(session, principal.user_id or "")
    return SessionOut(
        user=UserOut.model_validate(user),
        via="session" if principal.via == "session" else "token",
        csrf_token=principal.csrf_token,
    )


@router.post("/account/password", status_code=204, tags=["accounts"])
def change_password(data: PasswordChange, principal: CurrentUser, session: SessionDep) -> Response:
    """Change your own password; your other sessions end (this one stays signed in)."""
    user = users.get_user(session, principal.user_id or "")
    users.change_password(
        session,
        user,
        current=data.current_password,
        new=data.new_password,
        keep_session=principal.session_id,
    )
    audit.record(session, principal, "change_password", "user", user.id)
    return Response(status_code=204)


# --- tokens -------------------------------------------------------------------------------


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(principal: CurrentUser, session: ReadSessionDep) -> Any:
    """Your access tokens (never the tokens themselves: only their first characters)."""
    return credentials.list_tokens(session, principal.user_id or "")


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(data: TokenCreate, principal: CurrentUser, session: SessionDep) -> Any:
    """A new personal access token, shown once in `token`: copy it now."""
    user = users.get_user(session, principal.user_id or "")
    issued = credentials.create_token(
        session, user, name=data.name, expires_in_days=data.expires_in_days
    )
    audit.record(session, principal, "create_token", "token", issued.row.id, name=issued.row.name)
    return TokenCreated(**TokenOut.model_validate(issued.row).model_dump(), token=issued.token)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: str, principal: CurrentUser, session: SessionDep) -> Response:
    """Revoke one of your tokens; it stops working at once."""
    owner = None if principal.is_admin else principal.user_id
    row = credentials.revoke_token(session, token_id=token_id, user_id=owner)
    audit.record(session, principal, "revoke_token", "token", row.id, name=row.name)
    return Response(status_code=204)


# --- users (administrators) ---------------------------------------------------------------


@router.get("/users", response_model=list[UserOut])
def list_users(_: AdminUser, session: ReadSessionDep) -> Any:
    return users.list_users(session)


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(data: UserCreate, principal: AdminUser, session: SessionDep) -> Any:
    """Add an account; tell its owner the password, which they can change."""
    user = users.create_user(
        session,
        username=data.username,
        password=data.password,
        role=data.role,
        display_name=data.display_name,
    )
    audit.record(session, principal, "create_user", "user", user.id, role=user.role)
    return user


@router.patch("/users/{user_id}", response_model=UserOut)
def update_user(user_id: str, data: UserUpdate, principal: AdminUser, session: SessionDep) -> Any:
    """Change a user's role, display name, or deactivate them (which signs them out)."""
    user = users.get_user(session, user_id)
    users.update_user(
        session,
        user,
        role=data.role,
        is_active=data.is_active,
        display_name=data.display_name,
        acting_user_id=principal.user_id,
    )
    changes = data.model_dump(exclude_none=True)
    audit.record(session, principal, "update_user", "user", user.id, **changes)
    return user


@router.post("/users/{user_id}/password", status_code=204)
def reset_password(
    user_id: str, data: PasswordReset, principal: AdminUser, session: SessionDep
) -> Response:
    """Set a user's password (no e-mail needed); every session of theirs ends."""
    user = users.get_user(session, user_id)
    if user.id == principal.user_id:
        raise BadRequest("Change your own password under your account (POST /api/account/password)")
    users.set_password(session, user, data.new_password)
    audit.record(session, principal, "reset_password", "user", user.id)
    return Response(status_code=204)


@router.get("/audit", response_model=Page[AuditEventOut])
def list_audit_events(
    _: AdminUser,
    session: ReadSessionDep,
    page: Annotated[Paging, paging(100)],
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
    target_type: Annotated[str | None, Query(max_length=30)] = None,
    target_id: Annotated[str | None, Query(max_length=36)] = None,
    since: UtcDateTime | None = None,
    until: UtcDateTime | None = None,
) -> Any:
    """The audit trail, newest first."""
    total, events = audit.list_events(
        session,
        limit=page.limit,
        offset=page.offset,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=since.replace(tzinfo=None) if since else None,
        until=until.replace(tzinfo=None) if until else None,
    )
    return Page[AuditEventOut].of(page, total, events)
