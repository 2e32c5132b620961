"""Browser sessions and personal access tokens: issued, checked, ended.

A session cookie is `<secret>.<signature>`: 256 random bits, signed with this
installation's key (HMAC-SHA256) so a forged or truncated cookie is refused before the
database is asked. Only the SHA-256 of the secret is stored, as the session's id, so a
copy of the database holds no usable session. Tokens work the same way without the
signature: `gat_<secret>`, stored as its SHA-256, shown once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from grading_app.accounts.principal import Principal, Role
from grading_app.db import rows_affected
from grading_app.errors import NotFound
from grading_app.models import AccessToken, InstanceSecret, User, UserSession, utcnow

SIGNING_KEY = "session_signing_key"
TOKEN_PREFIX = "gat_"
# Activity extends a session at most this often (each extension is a write).
TOUCH_INTERVAL = timedelta(minutes=5)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def signing_key(session: Session) -> bytes:
    """This installation's cookie key, made on first use and shared by every process."""
    row = session.get(InstanceSecret, SIGNING_KEY)
    if row is None:
        try:
            with session.begin_nested():
                session.add(InstanceSecret(name=SIGNING_KEY, value=secrets.token_hex(32)))
        except IntegrityError:
            pass  # another process made it first
        row = session.get(InstanceSecret, SIGNING_KEY)
        assert row is not None
    return bytes.fromhex(row.value)


def _signature(key: bytes, secret: str) -> str:
    mac = hmac.new(key, secret.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


@dataclass(frozen=True)
class IssuedSession:
    cookie: str
    csrf_token: str
    expires_at: datetime


def start_session(
    session: Session, user: User, *, key: bytes, hours: float, user_agent: str | None = None
) -> IssuedSession:
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    row = UserSession(
        id=digest(secret),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=hours),
        user_agent=(user_agent or "")[:255] or None,
    )
    session.add(row)
    user.last_sign_in_at = now
    session.flush()
    return IssuedSession(f"{secret}.{_signature(key, secret)}", row.csrf_token, row.expires_at)


def session_id_from_cookie(cookie: str, *, key: bytes) -> str | None:
    """The stored id a well-signed cookie names, or None for a forged or malformed one."""
    secret, _, signature = cookie.partition(".")
    if not secret or not signature or len(cookie) > 200:
        return None
    if not hmac.compare_digest(signature, _signature(key, secret)):
        return None
    return digest(secret)


def session_principal(session: Session, session_id: str) -> tuple[Principal, UserSession] | None:
    found = session.execute(
        sa.select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.id == session_id)
    ).first()
    if found is None:
        return None
    row, user = found
    if row.expires_at <= utcnow() or not user.is_active:
        return None
    principal = Principal(
        user_id=user.id,
        username=user.username,
        role=Role(user.role),
        via="session",
        csrf_token=row.csrf_token,
        session_id=row.id,
    )
    return principal, row


def touch_session(session: Session, session_id: str, *, hours: float) -> None:
    """Slide the expiry of an active session forward."""
    now = utcnow()
    session.execute(
        sa.update(UserSession)
        .where(UserSession.id == session_id, UserSession.last_seen_at < now - TOUCH_INTERVAL)
        .values(last_seen_at=now, expires_at=now + timedelta(hours=hours))
    )


def end_session(session: Session, session_id: str) -> None:
    session.execute(sa.delete(UserSession).where(UserSession.id == session_id))


def purge_expired_sessions(session: Session) -> int:
    return rows_affected(
        session.execute(sa.delete(UserSession).where(UserSession.expires_at <= utcnow()))
    )


@dataclass(frozen=True)
class IssuedToken:
    token: str
    row: AccessToken


def create_token(
    session: Session, user: User, *, name: str, expires_in_days: int | None = None
) -> IssuedToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = AccessToken(
        user_id=user.id,
        name=name.strip() or "token",
        token_hash=digest(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(row)
    session.flush()
    return IssuedToken(secret, row)


def token_principal(session: Session, token: str) -> tuple[Principal, AccessToken] | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    found = session.execute(
        sa.select(AccessToken, User)
        .join(User, User.id == AccessToken.user_id)
        .where(AccessToken.token_hash == digest(token))
    ).first()
    if found is None:
        return None
    row, user = found
    now = utcnow()
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    if not user.is_active:
        return None
    return Principal(
        user_id=user.id, username=user.username, role=Role(user.role), via="token"
    ), row


TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def token_needs_touch(row: AccessToken) -> bool:
    return row.last_used_at is None or row.last_used_at < utcnow() - TOKEN_TOUCH_INTERVAL


def touch_token(session: Session, token_id: str) -> None:
    now = utcnow()
    session.execute(
        sa.update(AccessToken)
        .where(
            AccessToken.id == token_id,
            sa.or_(
                AccessToken.last_used_at.is_(None),
                AccessToken.last_used_at < now - TOKEN_TOUCH_INTERVAL,
            ),
        )
        .values(last_used_at=now)
    )


def list_tokens(session: Session, user_id: str) -> list[AccessToken]:
    return list(
        session.scalars(
            sa.select(AccessToken)
            .where(AccessToken.user_id == user_id)
            .order_by(AccessToken.created_at.desc(), AccessToken.id)
        )
    )


def revoke_token(session: Session, *, token_id: str, user_id: str | None) -> AccessToken:
    """Revoke one of `user_id`'s tokens (any token when `user_id` is None: an admin)."""
    row = session.get(AccessToken, token_id)
    if row is None or (user_id is not None and row.user_id != user_id):
        raise NotFound(f"Token {token_id} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row
