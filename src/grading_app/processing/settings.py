"""The processing settings a batch carries (`job_batches.batch_settings`): their keys,
ranges and defaults, for batches and the templates that start them alike."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import BeforeValidator, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from grading_app.migrations.default_templates import COMMON_RULES

MAX_RETRIES = 10


def _whole_float_as_int(value: Any) -> Any:
    """JSON has one number type: 3.0 is the whole number 3 (as JSON Schema's "integer"
    says), while strict mode still refuses "3" and 3.5."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# The bounds before the validator: pydantic writes bounds placed after a
# BeforeValidator into the JSON schema as "ge"/"le", which JSON Schema does not know.
RetryCount = Annotated[int, Field(ge=0, le=MAX_RETRIES), BeforeValidator(_whole_float_as_int)]
Concurrency = Annotated[int, Field(ge=1, le=64), BeforeValidator(_whole_float_as_int)]


@with_config(ConfigDict(strict=True, extra="forbid"))
class BatchSettings(TypedDict, total=False):
    """The processing settings a request may send, with their ranges. These are the keys
    the default templates' processing rules set; the workers act on `max_retries` and
    `timeout_seconds`, and the others are kept with the batch as it describes itself.
    Rows already stored may hold other keys (legacy databases do): they are read as they
    are, never refused."""

    max_retries: RetryCount
    retry_backoff_seconds: Annotated[float, Field(ge=0, le=3600)]
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)]
    concurrency: Concurrency
    on_failure: Literal["continue"]
    require_structured_output: bool


# What every batch starts from, under a template's processing rules and the request's
# own settings: the values the default templates share.
DEFAULT_SETTINGS = cast(BatchSettings, dict(COMMON_RULES))
