"""Who is making a request: a signed-in user (by session or token), or the operator at
the command line, who acts on the database directly as the operating-system user."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    ADMIN = "admin"
    TEACHER = "teacher"


@dataclass(frozen=True)
class Principal:
    user_id: str | None
    username: str
    role: Role
    via: Literal["session", "token", "system"]
    # The session's CSRF token (browser sessions only).
    csrf_token: str | None = None
    session_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


# The command line (grade, worker, db): no account, everything visible. New rows it
# creates belong to the first administrator (see accounts.service.default_owner_id).
OPERATOR = Principal(user_id=None, username="operator", role=Role.ADMIN, via="system")
