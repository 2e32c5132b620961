"""Typed settings, read once from the environment (and a `.env` file if present)."""

from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///grading_app.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Exactly as the migration guide says: DATABASE_URL, default a SQLite file in the
    # working directory.
    database_url: str = Field(default=DEFAULT_DATABASE_URL)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Serving on a public address is only allowed when the operator says so explicitly,
    # because the application has no authentication of its own yet.
    allow_public_bind: bool = False
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)

    # Documents
    upload_dir: Path = Path("uploads")
    max_upload_mb: int = Field(default=16, ge=1, le=1024)

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

    @model_validator(mode="after")
    def _refuse_public_bind(self) -> "Settings":
        if not self.allow_public_bind and not _is_loopback(self.host):
            raise ValueError(
                f"HOST={self.host} would expose the application beyond this machine, and it "
                "has no authentication; set ALLOW_PUBLIC_BIND=true if that is what you want"
            )
        return self


def default_lease_seconds(request_timeout: float) -> float:
    """Long enough for a call, its repair call, their timeouts and a margin."""
    return 2 * request_timeout + 60


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
