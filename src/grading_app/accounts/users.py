"""Users: create (the first administrator, then anyone an admin adds), list, change
role or active state, change and reset passwords.

The first administrator adopts every row that has no owner: batches, jobs, templates
and library items from an earlier release, and those the command line made before any
account existed.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from grading_app.accounts.passwords import check_new_password, hash_password, verify_password
from grading_app.accounts.principal import Role
from grading_app.db import rows_affected
from grading_app.errors import BadRequest, Conflict, NotFound
from grading_app.models import (
    BatchTemplate,
    GradingJob,
    InstanceSecret,
    JobBatch,
    SavedMarkingScheme,
    SavedPrompt,
    User,
    UserSession,
    utcnow,
)

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{0,63}$")
FIRST_ADMIN_MARK = "first_admin"
SYSTEM_CREATOR = "system"


def normalise_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise BadRequest(
            "username: use 1-64 letters, digits or . _ @ + - (starting with a letter or digit)"
        )
    return name


def any_user_exists(session: Session) -> bool:
    return session.scalar(sa.select(sa.literal(1)).select_from(User).limit(1)) is not None


def accounts_exist(database_url: str) -> bool:
    """Whether the database at `database_url` holds any user, read without creating,
    migrating or otherwise changing it (SQLite is opened read-only)."""
    import sqlite3

    from grading_app.db import parse_url, sqlite_path

    url = parse_url(database_url)
    path = sqlite_path(url)
    query = "SELECT 1 FROM users LIMIT 1"
    if url.get_backend_name() == "sqlite":
        if path is None or not path.exists() or path.stat().st_size == 0:
            return False
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return connection.execute(query).fetchone() is not None
        except sqlite3.Error:  # no users table: a database from before accounts
            return False
        finally:
            connection.close()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as pg:
            if not sa.inspect(pg).has_table("users"):
                return False
            return pg.execute(sa.text(query)).first() is not None
    finally:
        engine.dispose()


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(sa.select(User).where(User.username == username.strip().lower()))


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} not found")
    return user


def require_user(session: Session, username: str) -> User:
    user = find_user(session, username)
    if user is None:
        raise NotFound(f"No user named {username.strip().lower()!r}")
    return user


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role,
    display_name: str | None = None,
) -> User:
    name = normalise_username(username)
    check_new_password(password, username=name)
    if find_user(session, name) is not None:
        raise Conflict(f"A user named {name!r} already exists")
    user = User(
        username=name,
        display_name=(display_name or "").strip() or None,
        role=Role(role).value,
        password_hash=hash_password(password),
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # created by another request meanwhile
        raise Conflict(f"A user named {name!r} already exists") from exc
    return user


def create_first_admin(
    session: Session, *, username: str, password: str, display_name: str | None = None
) -> User:
    """The installation's first administrator; refused once any user exists. A marker
    row with a fixed key makes two concurrent attempts collide rather than both win."""
    if any_user_exists(session):
        raise Conflict("An administrator already exists: sign in, or ask them for an account")
    user = create_user(
        session, username=username, password=password, role=Role.ADMIN, display_name=display_name
    )
    session.add(InstanceSecret(name=FIRST_ADMIN_MARK, value=user.id))
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict("An administrator was created meanwhile: sign in instead") from exc
    adopt_ownerless_rows(session, user.id)
    return user


def first_admin_id(session: Session) -> str | None:
    mark = session.get(InstanceSecret, FIRST_ADMIN_MARK)
    return mark.value if mark is not None else None


def adopt_ownerless_rows(session: Session, owner_id: str) -> int:
    """Give every row without an owner to `owner_id` (the system's templates excepted)."""
    adopted = 0
    for model in (JobBatch, GradingJob, SavedPrompt, SavedMarkingScheme):
        adopted += rows_affected(
            session.execute(
                sa.update(model).where(model.owner_id.is_(None)).values(owner_id=owner_id)
            )
        )
    adopted += rows_affected(
        session.execute(
            sa.update(BatchTemplate)
            .where(
                BatchTemplate.owner_id.is_(None),
                sa.func.coalesce(BatchTemplate.created_by, "") != SYSTEM_CREATOR,
            )
            .values(owner_id=owner_id)
        )
    )
    return adopted


def list_users(session: Session) -> list[User]:
    return list(session.scalars(sa.select(User).order_by(User.username)))


def update_user(
    session: Session,
    user: User,
    *,
    role: Role | None = None,
    is_active: bool | None = None,
    display_name: str | None = None,
    acting_user_id: str | None = None,
) -> User:
    demoting = role is not None and role != Role.ADMIN and user.role == Role.ADMIN
    deactivating = is_active is False and user.is_active and user.role == Role.ADMIN
    if (demoting or deactivating) and _active_admins(session) <= 1:
        raise Conflict(
            f"{user.username} is the only active administrator; make someone else an "
            "administrator first"
        )
    if user.id == acting_user_id and is_active is False:
        raise Conflict("You cannot deactivate your own account")
    if role is not None:
        user.role = Role(role).value
    if is_active is not None:
        user.is_active = is_active
        if not is_active:
            end_sessions(session, user.id)
    if display_name is not None:
        user.display_name = display_name.strip() or None
    session.flush()
    return user


def _active_admins(session: Session) -> int:
    return (
        session.scalar(
            sa.select(sa.func.count()).where(User.role == Role.ADMIN.value, User.is_active)
        )
        or 0
    )


def change_password(
    session: Session, user: User, *, current: str, new: str, keep_session: str | None
) -> None:
    """Change one's own password; every other session of theirs ends."""
    if not verify_password(user.password_hash, current):
        raise BadRequest("current_password: it is not your current password")
    set_password(session, user, new, keep_session=keep_session)


def set_password(
    session: Session, user: User, new: str, *, keep_session: str | None = None
) -> None:
    """Set a password (own change or admin reset) and end the user's other sessions."""
    check_new_password(new, username=user.username)
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    end_sessions(session, user.id, keep=keep_session)
    session.flush()


def end_sessions(session: Session, user_id: str, *, keep: str | None = None) -> int:
    query = sa.delete(UserSession).where(UserSession.user_id == user_id)
    if keep is not None:
        query = query.where(UserSession.id != keep)
    return rows_affected(session.execute(query))
