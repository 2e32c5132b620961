"""Your account (password, access tokens) and, for administrators, the users and the
audit trail: forms over the same services as /api/account, /api/tokens, /api/users and
/api/audit."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from grading_app.accounts import audit, credentials, users
from grading_app.accounts.principal import Principal, Role
from grading_app.db import unit_of_work
from grading_app.errors import AppError, Forbidden
from grading_app.web.shell import form_viewer, render, viewer

router = APIRouter(include_in_schema=False)
AUDIT_PAGE = 50


def _sessions(request: Request) -> Any:
    return request.app.state.sessionmaker


def _back(path: str, notice: str) -> Response:
    return RedirectResponse(f"{path}?notice={quote(notice)}", status_code=303)


def _form_page(
    request: Request,
    template: str,
    principal: Principal,
    *,
    status_code: int,
    errors: dict[str, str] | None,
    **context: Any,
) -> Response:
    """The account or users page: with the notice a redirect brought, and after a
    refused form its errors beside their fields."""
    return render(
        request,
        template,
        principal,
        status_code=status_code,
        notice=request.query_params.get("notice"),
        errors=errors or {},
        **context,
    )


def _account(
    request: Request,
    *,
    new_token: str | None = None,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    principal = viewer(request)
    with unit_of_work(_sessions(request), read_only=True) as session:
        user = users.get_user(session, principal.user_id or "")
        tokens = credentials.list_tokens(session, user.id)
    return _form_page(
        request,
        "account.html",
        principal,
        status_code=status_code,
        errors=errors,
        user=user,
        tokens=tokens,
        new_token=new_token,
    )


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request) -> Response:
    return _account(request)


@router.post("/account/password", response_class=HTMLResponse)
def change_password(
    request: Request,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    current_password: Annotated[str, Form(max_length=256)] = "",
    new_password: Annotated[str, Form(max_length=256)] = "",
    new_password_again: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    if new_password != new_password_again:
        return _account(
            request, status_code=400, errors={"new_password": "The two new passwords differ"}
        )
    try:
        with unit_of_work(_sessions(request)) as session:
            user = users.get_user(session, principal.user_id or "")
            users.change_password(
                session,
                user,
                current=current_password,
                new=new_password,
                keep_session=principal.session_id,
            )
            audit.record(session, principal, "change_password", "user", user.id)
    except AppError as exc:
        field = "current_password" if exc.message.startswith("current_password") else "new_password"
        message = exc.message.split(": ", 1)[-1]
        return _account(request, status_code=exc.status_code, errors={field: message})
    return _back("/account", "Password changed; your other sessions were signed out")


@router.post("/account/tokens", response_class=HTMLResponse)
def create_token(
    request: Request,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=100)] = "",
    expires_in_days: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    principal = form_viewer(request, csrf_token)
    days = (
        int(expires_in_days)
        if expires_in_days.isdigit() and 0 < int(expires_in_days) <= 3650
        else None
    )
    if not name.strip():
        return _account(
            request, status_code=400, errors={"token_name": "Name the token (what it is for)"}
        )
    with unit_of_work(_sessions(request)) as session:
        user = users.get_user(session, principal.user_id or "")
        issued = credentials.create_token(session, user, name=name, expires_in_days=days)
        audit.record(
            session, principal, "create_token", "token", issued.row.id, name=issued.row.name
        )
    # Shown once, on this answer only (never in a URL).
    return _account(request, new_token=issued.token, status_code=201)


@router.post("/account/tokens/{token_id}/revoke", response_class=HTMLResponse)
def revoke_token(
    request: Request, token_id: str, csrf_token: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    principal = form_viewer(request, csrf_token)
    try:
        with unit_of_work(_sessions(request)) as session:
            row = credentials.revoke_token(session, token_id=token_id, user_id=principal.user_id)
            audit.record(session, principal, "revoke_token", "token", row.id, name=row.name)
    except AppError as exc:
        return _back("/account", exc.message)
    return _back("/account", f"Token {row.name} revoked")


# --- administrators -------------------------------------------------------------------


def _admin(principal: Principal) -> Principal:
    if not principal.is_admin:
        raise Forbidden("Only an administrator can do this")
    return principal


def _users(
    request: Request,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    principal = _admin(viewer(request))
    with unit_of_work(_sessions(request), read_only=True) as session:
        everyone = users.list_users(session)
    return _form_page(
        request,
        "users.html",
        principal,
        status_code=status_code,
        errors=errors,
        users=everyone,
        roles=[role.value for role in Role],
        form=form or {},
    )


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request) -> Response:
    return _users(request)


@router.post("/admin/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    role: Annotated[str, Form(max_length=20)] = "teacher",
    display_name: Annotated[str, Form(max_length=255)] = "",
) -> Response:
    principal = _admin(form_viewer(request, csrf_token))
    form = {"username": username, "role": role, "display_name": display_name}
    try:
        with unit_of_work(_sessions(request)) as session:
            user = users.create_user(
                session,
                username=username,
                password=password,
                role=Role(role) if role in Role._value2member_map_ else Role.TEACHER,
                display_name=display_name,
            )
            audit.record(session, principal, "create_user", "user", user.id, role=user.role)
    except AppError as exc:
        field = "password" if exc.message.startswith("password") else "username"
        return _users(request, status_code=exc.status_code, errors={field: exc.message}, form=form)
    return _back("/admin/users", f"User {user.username} created")


@router.post("/admin/users/{user_id}", response_class=HTMLResponse)
def update_user(
    request: Request,
    user_id: str,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
    active: Annotated[str, Form(max_length=5)] = "",
    new_password: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    principal = _admin(form_viewer(request, csrf_token))
    try:
        with unit_of_work(_sessions(request)) as session:
            user = users.get_user(session, user_id)
            if new_password:
                if user.id == principal.user_id:
                    raise AppError("Change your own password under Account", 400)
                users.set_password(session, user, new_password)
                audit.record(session, principal, "reset_password", "user", user.id)
                notice = f"Password of {user.username} set; their sessions ended"
            else:
                users.update_user(
                    session,
                    user,
                    role=Role(role) if role in Role._value2member_map_ else None,
                    is_active={"yes": True, "no": False}.get(active),
                    acting_user_id=principal.user_id,
                )
                audit.record(
                    session,
                    principal,
                    "update_user",
                    "user",
                    user.id,
                    role=user.role,
                    is_active=user.is_active,
                )
                notice = f"{user.username} updated"
    except AppError as exc:
        return _back("/admin/users", exc.message)
    return _back("/admin/users", notice)


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_page(request: Request) -> Response:
    principal = _admin(viewer(request))
    params = request.query_params
    try:
        offset = max(int(params.get("offset", "0")), 0)
    except ValueError:
        offset = 0
    with unit_of_work(_sessions(request), read_only=True) as session:
        total, events = audit.list_events(
            session,
            limit=AUDIT_PAGE,
            offset=offset,
            actor=params.get("actor") or None,
            action=params.get("action") or None,
            target_id=params.get("target_id") or None,
        )
    return render(
        request,
        "audit.html",
        principal,
        events=events,
        total=total,
        offset=offset,
        page_size=AUDIT_PAGE,
        form=params,
    )
