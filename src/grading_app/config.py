"""Typed settings, read once from the environment (and a `.env` file if present)."""

import re
from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from grading_app.errors import AppError

DEFAULT_DATABASE_URL = "sqlite:///grading_app.db"
# Settings whose values are never shown in a message, even a refused one.
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Exactly as the migration guide says: DATABASE_URL, default a SQLite file in the
    # working directory.
    database_url: str = Field(default=DEFAULT_DATABASE_URL)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Accounts: a browser session lasts this long after its last use.
    session_hours: float = Field(default=12.0, gt=0, le=24 * 90)
    # Failed sign-ins for one account name within the window lock it for the lock
    # time (an address gets four times as many; see accounts/throttle.py).
    sign_in_max_failures: int = Field(default=5, ge=1, le=1000)
    sign_in_lock_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    # Network safety (security.py): host names this server answers to, comma-separated
    # ("*" any; unset: loopback names and HOST); how long a PostgreSQL statement may run
    # (a lock must not hang a request); uploads received at once.
    trusted_hosts: str = ""
    statement_timeout_seconds: float = Field(default=30.0, ge=0)
    max_concurrent_uploads: int = Field(default=4, ge=1, le=1024)

    # Documents
    upload_dir: Path = Path("uploads")
    max_upload_mb: int = Field(default=16, ge=1, le=1024)
    # Every other request body (JSON, small forms); uploads have MAX_UPLOAD_MB. 2 MB
    # holds every text field at its longest (a 100,000-character prompt is up to 1.2 MB
    # when each character is written as JSON escapes).
    max_body_kb: int = Field(default=2048, ge=1, le=1024 * 1024)

    # Processing: in-process workers by default; a broker URL switches to Celery.
    worker_concurrency: int = Field(default=8, ge=0, le=256)
    request_timeout_seconds: float = Field(default=120.0, gt=0)
    # How long a claimed item stays leased before the reaper hands it to another
    # worker; by default long enough for a call and its repair call.
    lease_seconds: float | None = Field(default=None, gt=0)
    broker_url: str | None = None
    # Where rate-limit counters live: shared by every worker when in Redis. Unset: the
    # broker's Redis under Celery (its workers are separate processes), else memory.
    rate_limit_storage: str | None = None

    # Costs: model prices (USD per million input/output tokens, optionally cached input
    # and cache writes) over the defaults, as "provider:model=INPUT/OUTPUT, ...";
    # `provider=INPUT/OUTPUT` covers a provider's every model ("ollama=0/0" for local
    # models). An administrator's prices (the providers page) win over these.
    prices: str = Field(default="", validation_alias=AliasChoices("GRADING_APP_PRICES", "prices"))

    @property
    def price_overrides(self) -> dict[str, tuple[float, ...]]:
        """`prices` read into {"provider:model" or "provider": (input, output[, cached
        input[, cache write]])}."""
        return parse_prices(self.prices)

    @property
    def effective_lease_seconds(self) -> float:
        return self.lease_seconds or default_lease_seconds(self.request_timeout_seconds)

    @property
    def effective_rate_limit_storage(self) -> str:
        if self.rate_limit_storage:
            return self.rate_limit_storage
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return "memory://"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_kb * 1024

    @property
    def trusted_host_list(self) -> tuple[str, ...]:
        from grading_app.security import trusted_host_list

        return trusted_host_list(self.trusted_hosts, bind_host=self.host)

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return DEFAULT_DATABASE_URL
        # Old releases and many hosting providers hand out `postgres://` URLs; SQLAlchemy
        # wants a dialect name, and we use psycopg 3 as the driver.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @field_validator("prices")
    @classmethod
    def _readable_prices(cls, value: str) -> str:
        parse_prices(value)  # a ValueError says what is wrong
        return value


PRICES_FORMAT = (
    "provider:model=INPUT/OUTPUT[/CACHED_INPUT[/CACHE_WRITE]] in USD per million tokens, "
    "comma-separated (e.g. openai:gpt-4o=2.5/10/1.25, claude:claude-sonnet-4=3/15)"
)


def parse_prices(text: str) -> dict[str, tuple[float, ...]]:
    """ "openai:gpt-4o=2.5/10, ollama=0/0" -> {"openai:gpt-4o": (2.5, 10.0), ...}; the
    provider is lower-cased (it names a provider), the model kept as written."""
    prices: dict[str, tuple[float, ...]] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        target, _, figures = entry.rpartition("=")
        provider, colon, model = target.strip().partition(":")
        key = f"{provider.strip().lower()}{colon}{model.strip()}"
        parts = figures.split("/")
        try:
            values = tuple(float(part) for part in parts)
        except ValueError:
            values = ()
        if (
            not provider.strip()
            or (colon and not model.strip())
            or not 2 <= len(values) <= 4
            or not all(0 <= v < float("inf") for v in values)
        ):
            raise ValueError(f"'{entry}' cannot be read; give {PRICES_FORMAT}")
        prices[key] = values
    return prices


def default_lease_seconds(request_timeout: float) -> float:
    """Long enough for a call, its repair call, their timeouts and a margin."""
    return 2 * request_timeout + 60


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


class InvalidSettings(AppError):
    """Settings that cannot be used; the message has one line per bad setting."""

    status_code = 400


def load_settings(**overrides: Any) -> Settings:
    """The settings, with command-line `overrides` on top of the environment; refused
    values raise `InvalidSettings` naming each variable, rather than pydantic's report."""
    try:
        return Settings(**overrides) if overrides else get_settings()
    except ValidationError as exc:
        raise InvalidSettings("\n".join(describe_invalid_settings(exc))) from None


def describe_invalid_settings(
    exc: ValidationError, *, model: type[BaseSettings] = Settings
) -> list[str]:
    """One line per refused setting: its variable, its value (masked if it may be a
    secret) and what it accepts."""
    lines: list[str] = []
    for error in exc.errors():
        if not error["loc"]:  # a model validator's ValueError: its message says it all
            cause = (error.get("ctx") or {}).get("error")
            lines.append(str(cause) if cause else error["msg"])
            continue
        name = str(error["loc"][0])
        field = model.model_fields.get(name)
        shown = _shown_value(name, error.get("input"))
        cause = (error.get("ctx") or {}).get("error")
        if error["type"] == "value_error" and cause:  # a field validator's own words
            lines.append(f"{name.upper()}={shown} is not accepted: {cause}")
            continue
        accepted = _accepted(field) if field is not None else "a valid value"
        lines.append(f"{name.upper()}={shown} is not accepted: give {accepted}")
    return list(dict.fromkeys(lines))


def _shown_value(name: str, value: Any) -> str:
    text = "" if value is None else str(value)
    if _SECRET_NAME.search(name):
        return "***"
    if "://" in text:
        from grading_app.db import mask_url  # the one masking rule for URLs

        return mask_url(text)
    return text if len(text) <= 60 else text[:57] + "..."


_KINDS: dict[Any, str] = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "text",
    Path: "a path",
}


def _accepted(field: FieldInfo) -> str:
    """What a field takes, in words: its type and its bounds."""
    annotation = field.annotation
    members: tuple[Any, ...] = (annotation,)
    if get_origin(annotation) in (Union, UnionType):
        members = get_args(annotation)
    kinds = [member for member in members if member is not NoneType]
    text = _KINDS.get(kinds[0], "a valid value") if kinds else "a valid value"
    bounds = {
        key: getattr(item, key)
        for item in field.metadata
        for key in ("ge", "gt", "le", "lt")
        if getattr(item, key, None) is not None
    }
    if "ge" in bounds and "le" in bounds:
        text += f" from {bounds['ge']:g} to {bounds['le']:g}"
    else:
        words = {
            "ge": "at least",
            "gt": "greater than",
            "le": "at most",
            "lt": "less than",
        }
        text += "".join(f" {words[key]} {value:g}" for key, value in bounds.items())
    if NoneType in members:
        text += ", or leave it unset"
    return text
