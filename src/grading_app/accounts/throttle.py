"""Sign-in throttling: failures counted per account name and per client address, in the
database so every server process shares the count. Too many in the window locks that
key for a while; the lock applies whether or not the account exists, so it tells an
attacker nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from grading_app.models import SignInThrottle, utcnow

# An address may try more names than one name may be tried (a school behind one NAT).
ADDRESS_FACTOR = 4


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lock: timedelta = timedelta(minutes=15)


def keys(username: str, address: str | None) -> tuple[str, ...]:
    account = f"user:{username.strip().lower()[:300]}"
    return (account, f"addr:{address}") if address else (account,)


def locked_until(session: Session, keys_: tuple[str, ...]) -> datetime | None:
    now = utcnow()
    latest: datetime | None = None
    for key in keys_:
        row = session.get(SignInThrottle, key)
        if row is not None and row.locked_until is not None and row.locked_until > now:
            latest = max(latest or row.locked_until, row.locked_until)
    return latest


def record_failure(session: Session, keys_: tuple[str, ...], policy: ThrottlePolicy) -> None:
    now = utcnow()
    for key in keys_:
        limit = policy.max_failures * (ADDRESS_FACTOR if key.startswith("addr:") else 1)
        row = session.get(SignInThrottle, key, with_for_update=True)
        if row is None:
            row = SignInThrottle(key=key, failures=0, window_started_at=now)
            session.add(row)
        if row.window_started_at < now - policy.window:
            row.failures, row.window_started_at = 0, now
        row.failures += 1
        if row.failures >= limit:
            row.locked_until = now + policy.lock
            row.failures, row.window_started_at = 0, now
    session.flush()


def clear(session: Session, key: str) -> None:
    row = session.get(SignInThrottle, key)
    if row is not None:
        session.delete(row)
        session.flush()
