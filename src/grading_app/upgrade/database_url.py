"""DATABASE_URL as the database commands read it: the one setting they need, nothing else.

Deployments of earlier releases carry settings this release refuses or never had
(`HOST=0.0.0.0` without `ALLOW_PUBLIC_BIND`, a `PORT` that is not a number, ...); the
upgrade has to run there before anything else, so it does not load the application's
`Settings`. It reads `DATABASE_URL` the same way they do (the environment first, then a
`.env` file in the working directory; names are case-insensitive) and ignores the rest.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from grading_app.config import DEFAULT_DATABASE_URL
from grading_app.db import parse_url
from grading_app.errors import BadRequest

EXAMPLES = "e.g. sqlite:///grading_app.db or postgresql://user@host/dbname"


class _DatabaseUrlOnly(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL


def read_database_url(override: str | None = None) -> str:
    """The URL as the user wrote it (`--database-url`, DATABASE_URL, or the default)."""
    if override and override.strip():
        return override.strip()
    return _DatabaseUrlOnly().database_url.strip() or DEFAULT_DATABASE_URL


def to_engine_url(database_url: str) -> URL:
    """The URL to connect with: `postgres://` and `postgresql://` use psycopg 3.

    Refuses, with a message that never repeats the URL (it may hold a password), text
    that is not a database URL or names a database other than SQLite or PostgreSQL.
    """
    text = database_url.strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    try:
        make_url(text)
    except Exception as exc:  # sqlalchemy's ArgumentError says only "Could not parse"
        raise BadRequest(f"DATABASE_URL is not a database URL ({EXAMPLES})") from exc
    return parse_url(text)
