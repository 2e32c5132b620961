"""`grading-app users ...` and `grading-app tokens ...`: accounts from the command line.

These open the database directly, as the operating-system user, so they work before any
account exists (that is how the first administrator of a server is made) and when
everyone is locked out.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from grading_app.accounts.principal import OPERATOR, Role
from grading_app.errors import AppError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

users_app = typer.Typer(help="Create and list user accounts.", no_args_is_help=True)
tokens_app = typer.Typer(help="Personal access tokens for the API.", no_args_is_help=True)
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="Overrides DATABASE_URL (default sqlite:///grading_app.db)."
    ),
]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from standard input (for scripts)."),
]


def _fail(exc: AppError) -> typer.Exit:
    errors.print(f"Error: {exc.message}", markup=False, soft_wrap=True)
    return typer.Exit(code=1)


@contextmanager
def _database(database_url: str | None) -> Iterator[Session]:
    """One transaction on the application's database (created if missing; a legacy one
    is refused with what to run)."""
    from grading_app.config import load_settings
    from grading_app.db import make_engine, make_sessionmaker, unit_of_work
    from grading_app.upgrade.serving import prepare_database_for_serving

    overrides = {"database_url": database_url} if database_url else {}
    try:
        settings = load_settings(**overrides)
        prepare_database_for_serving(settings.database_url, write=lambda line: errors.print(line))
    except AppError as exc:
        raise _fail(exc) from exc
    engine = make_engine(settings.database_url)
    try:
        # A refusal inside the `with` (a weak password, an unknown user) is one line.
        with unit_of_work(make_sessionmaker(engine)) as session:
            yield session
    except AppError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()


def _password(from_stdin: bool, *, username: str) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt(f"Password for {username}", hide_input=True, confirmation_prompt=True))


@users_app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Argument(help="The administrator's username.")] = "admin",
    display_name: Annotated[str | None, typer.Option(help="Name shown in the app.")] = None,
    password_stdin: PasswordStdin = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an administrator. The first one also takes ownership of every batch, job,
    template and library item that has no owner (those from an earlier release)."""
    from grading_app.accounts import audit, users

    password = _password(password_stdin, username=username)
    with _database(database_url) as session:
        first = not users.any_user_exists(session)
        if first:
            user = users.create_first_admin(
                session, username=username, password=password, display_name=display_name
            )
        else:
            user = users.create_user(
                session,
                username=username,
                password=password,
                role=Role.ADMIN,
                display_name=display_name,
            )
        audit.record(session, OPERATOR, "create_user", "user", user.id, role=user.role)
        name = user.username
    console.print(
        f"✓ Administrator {name} created" + (" (the first: owns earlier items)" if first else "")
    )


@users_app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="The new user's username.")],
    role: Annotated[Role, typer.Option(help="teacher or admin.")] = Role.TEACHER,
    display_name: Annotated[str | None, typer.Option(help="Name shown in the app.")] = None,
    password_stdin: PasswordStdin = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a user (a teacher unless --role admin)."""
    from grading_app.accounts import audit, users

    password = _password(password_stdin, username=username)
    with _database(database_url) as session:
        if not users.any_user_exists(session):
            raise _fail(AppError("Create the administrator first: grading-app users create-admin"))
        user = users.create_user(
            session, username=username, password=password, role=role, display_name=display_name
        )
        audit.record(session, OPERATOR, "create_user", "user", user.id, role=user.role)
        name, role_name = user.username, user.role
    console.print(f"✓ User {name} created ({role_name})")


@users_app.command("list")
def list_users(database_url: DatabaseUrl = None) -> None:
    """Every account, with its role and last sign-in."""
    from grading_app.accounts import users

    with _database(database_url) as session:
        rows = [
            (u.username, u.role, "yes" if u.is_active else "no", str(u.last_sign_in_at or "never"))
            for u in users.list_users(session)
        ]
    if not rows:
        console.print("No users yet: grading-app users create-admin")
        return
    table = Table("username", "role", "active", "last sign-in (UTC)")
    for row in rows:
        table.add_row(*row)
    console.print(table)


@users_app.command("reset-password")
def reset_password(
    username: Annotated[str, typer.Argument(help="Whose password to set.")],
    password_stdin: PasswordStdin = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Set a user's password and end their sessions (for a forgotten password)."""
    from grading_app.accounts import audit, users

    password = _password(password_stdin, username=username)
    with _database(database_url) as session:
        user = users.require_user(session, username)
        users.set_password(session, user, password)
        audit.record(session, OPERATOR, "reset_password", "user", user.id)
    console.print(f"✓ Password of {username.strip().lower()} set; their sessions ended")


@tokens_app.command("create")
def create_token(
    username: Annotated[str, typer.Argument(help="Whose token it is.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Expire after this many days.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a personal access token and print it once (only its hash is kept)."""
    from grading_app.accounts import audit, credentials, users

    with _database(database_url) as session:
        user = users.require_user(session, username)
        issued = credentials.create_token(session, user, name=name, expires_in_days=expires_in_days)
        audit.record(session, OPERATOR, "create_token", "token", issued.row.id, name=name)
    errors.print(
        f"Token for {user.username} ({name}); shown once, send it as "
        "'Authorization: Bearer <token>':"
    )
    print(issued.token)


@tokens_app.command("list")
def list_tokens(
    username: Annotated[str, typer.Argument(help="Whose tokens.")],
    database_url: DatabaseUrl = None,
) -> None:
    """A user's tokens (their first characters, never the tokens)."""
    from grading_app.accounts import credentials, users

    with _database(database_url) as session:
        user = users.require_user(session, username)
        rows = credentials.list_tokens(session, user.id)
        table = Table("id", "name", "starts with", "created (UTC)", "last used", "state")
        for row in rows:
            state = "revoked" if row.revoked_at else "active"
            table.add_row(
                row.id,
                row.name,
                row.prefix + "…",
                str(row.created_at),
                str(row.last_used_at or "never"),
                state,
            )
    console.print(table)


@tokens_app.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(help="The token's id (see tokens list).")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a token; it stops working at once."""
    from grading_app.accounts import audit, credentials

    with _database(database_url) as session:
        row = credentials.revoke_token(session, token_id=token_id, user_id=None)
        audit.record(session, OPERATOR, "revoke_token", "token", row.id, name=row.name)
    console.print(f"✓ Token {token_id} revoked")
