"""Shapes of the accounts API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from grading_app.accounts.principal import Role
from grading_app.fields import UtcDateTime

Username = Field(min_length=1, max_length=64)
Password = Field(min_length=1, max_length=256)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    display_name: str | None
    role: Role
    is_active: bool
    created_at: UtcDateTime
    last_sign_in_at: UtcDateTime | None


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Username
    password: str = Password


class Setup(SignIn):
    display_name: str | None = Field(default=None, max_length=255)


class SessionOut(BaseModel):
    user: UserOut
    via: Literal["session", "token"]
    # Send it back as the X-CSRF-Token header on every change made with the cookie.
    csrf_token: str | None = None
    expires_at: UtcDateTime | None = None


class SetupStatus(BaseModel):
    setup_required: bool
    # Setup is only offered to a browser on the machine the server runs on.
    setup_allowed_here: bool


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Password
    new_password: str = Password


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_password: str = Password


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Username
    password: str = Password
    role: Role = Role.TEACHER
    display_name: str | None = Field(default=None, max_length=255)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = None
    display_name: str | None = Field(default=None, max_length=255)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    created_at: UtcDateTime
    expires_at: UtcDateTime | None
    last_used_at: UtcDateTime | None
    revoked_at: UtcDateTime | None


class TokenCreated(TokenOut):
    # Shown once, now; only its hash is kept.
    token: str


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: UtcDateTime
    actor: str
    action: str
    target_type: str
    target_id: str | None
    detail: dict[str, Any] | None
