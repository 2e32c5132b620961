"""Fields that batches, jobs and templates all take, checked one way: names, tags,
timestamps, model lists and generation settings. Each check raises `BadRequest` with a
message that says what is allowed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints
from pydantic.json_schema import JsonDict

from grading_app.errors import BadRequest

# Column widths (PostgreSQL enforces them; SQLite would not complain).
NAME_LENGTH = 255
MAX_TAGS, TAG_LENGTH = 20, 50
TEMPERATURE_RANGE = (0.0, 2.0)
MAX_TOKENS_LIMIT = 200_000
# Text columns have no width, but every list page carries its items' descriptions, and
# every grading call its prompt: a megabyte description would make each list that big.
DESCRIPTION_LENGTH = 10_000
PROMPT_LENGTH = 100_000
CATEGORY_LENGTH = 100  # the legacy library columns' width
# A marking scheme's text (a rubric document's worth).
SCHEME_LENGTH = 500_000
ID_LENGTH = 36  # uuid4 text, as every id column holds

# What the API takes as text, each with its longest value (pydantic refuses a longer
# one with a 422 naming the field). Characters no column can hold (NUL, unpaired
# surrogates) are refused for every field by the request guard.
Name = Annotated[str, StringConstraints(max_length=NAME_LENGTH)]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_LENGTH)]
Prompt = Annotated[str, StringConstraints(max_length=PROMPT_LENGTH)]
Tag = Annotated[str, StringConstraints(max_length=TAG_LENGTH)]
Category = Annotated[str, StringConstraints(max_length=CATEGORY_LENGTH)]
SchemeText = Annotated[str, StringConstraints(max_length=SCHEME_LENGTH)]
Identifier = Annotated[str, StringConstraints(max_length=ID_LENGTH)]

# Ranges the services check themselves (their message says what is allowed), written
# into the OpenAPI document so that it tells clients the same.
TEMPERATURE_SCHEMA: JsonDict = {"minimum": TEMPERATURE_RANGE[0], "maximum": TEMPERATURE_RANGE[1]}
MAX_TOKENS_SCHEMA: JsonDict = {"minimum": 1, "maximum": MAX_TOKENS_LIMIT}


def _in_utc(value: datetime) -> datetime:
    """Stored timestamps are naive UTC (as in legacy databases), and so is a client's
    value without an offset; one with an offset is converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Every timestamp the API takes or gives: aware UTC, which pydantic writes with "Z".
UtcDateTime = Annotated[datetime, AfterValidator(_in_utc)]


def check_name(value: str | None, *, what: str) -> str:
    name = (value or "").strip()
    if not name:
        raise BadRequest(f"The {what} needs a name")
    if len(name) > NAME_LENGTH:
        raise BadRequest(f"The {what} name is {len(name)} characters; at most {NAME_LENGTH}")
    return name


def naive_utc(value: datetime | None) -> datetime | None:
    """Stored as naive UTC, like every legacy timestamp; a naive value is taken as UTC."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def clean_tags(tags: Sequence[Any]) -> list[str]:
    cleaned: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            raise BadRequest(f"Tags are words or short phrases, not {tag!r}")
        text = tag.strip()
        if len(text) > TAG_LENGTH:
            raise BadRequest(f"Tag '{text[:20]}...' is longer than {TAG_LENGTH} characters")
        if text and text not in cleaned:
            cleaned.append(text)
    if len(cleaned) > MAX_TAGS:
        raise BadRequest(f"A batch takes at most {MAX_TAGS} tags, not {len(cleaned)}")
    return cleaned


def check_generation(temperature: Any, max_tokens: Any) -> None:
    low, high = TEMPERATURE_RANGE
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not low <= temperature <= high
    ):
        raise BadRequest(f"Temperature must be from {low:g} to {high:g}, not {temperature!r}")
    if max_tokens is not None and (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= MAX_TOKENS_LIMIT
    ):
        raise BadRequest(
            f"max_tokens must be a whole number from 1 to {MAX_TOKENS_LIMIT}, not {max_tokens!r}"
        )


def split_models(values: Sequence[str]) -> list[str]:
    """Repeated fields, or one field with commas: both are how forms send lists."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
