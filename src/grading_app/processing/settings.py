"""The processing settings a batch carries (`job_batches.batch_settings`): their keys,
ranges and defaults, for batches and the templates that start them alike."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from grading_app.errors import BadRequest
from grading_app.migrations.default_templates import COMMON_RULES
from grading_app.processing.delivery import BATCH_API_PROVIDERS, Delivery
from grading_app.providers.registry import canonical_name

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


def _regular_expression(value: Any) -> Any:
    if isinstance(value, str):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
    return value


StudentNumberPattern = Annotated[
    str, Field(min_length=1, max_length=200), AfterValidator(_regular_expression)
]
RosterName = Annotated[str, Field(min_length=1, max_length=200)]
# trust/settings.py's HIDDEN_INSTRUCTION_ACTIONS.
HiddenInstructionAction = Literal["flag", "hold", "strip"]

DELIVERIES = tuple(Delivery)
MAX_BUDGET_USD = 1_000_000.0


def _one_of_deliveries(value: Any) -> Any:
    """A ValueError (a 400 naming the choices), not the Literal's own refusal (a 422)."""
    if value not in DELIVERIES:
        raise ValueError(
            f"must be one of {', '.join(map(str, DELIVERIES))} (live: each call answered at once; "
            "batch_api: the vendor's batch API, half price, answered within 24 hours; auto: "
            f"the batch API while the deadline leaves room, live otherwise), not {value!r}"
        )
    return value


def _usd_amount(value: Any) -> Any:
    """A budget in USD: a positive number (null, for none, is taken before this)."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or not (0 < value <= MAX_BUDGET_USD) or value != value:
        raise ValueError(
            "must be an amount in USD greater than 0 (e.g. 5 or 12.50), or null for no "
            f"budget, not {value!r}"
        )
    return float(value)


DeliverySetting = Annotated[
    Literal[Delivery.LIVE, Delivery.BATCH_API, Delivery.AUTO], BeforeValidator(_one_of_deliveries)
]
BudgetUsd = Annotated[float, Field(gt=0, le=MAX_BUDGET_USD), BeforeValidator(_usd_amount)]


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
    # Trust (trust/settings.py reads them): personal data replaced before any text
    # leaves the machine; what a hidden-instruction finding does (grade and flag it,
    # hold the document for review, or strip the hidden text and grade); when a document
    # goes to the review queue.
    redact_pii: bool
    hidden_instructions: HiddenInstructionAction
    disagreement_threshold: Annotated[float, Field(ge=0, le=100)]
    grade_boundaries: Annotated[list[Annotated[float, Field(ge=0, le=100)]], Field(max_length=20)]
    boundary_margin: Annotated[float, Field(ge=0, le=50)]
    student_number_patterns: Annotated[list[StudentNumberPattern], Field(max_length=20)]
    roster: Annotated[list[RosterName], Field(max_length=2000)]
    # Cost (processing/delivery.py reads them): how calls reach the vendor, and the most
    # the batch may spend in USD before it pauses for a person (null: no budget).
    delivery: DeliverySetting
    budget: BudgetUsd | None


# What every batch starts from, under a template's processing rules and the request's
# own settings: the values the default templates share.
DEFAULT_SETTINGS = cast(BatchSettings, dict(COMMON_RULES))


def has_batch_api(provider: str) -> bool:
    return canonical_name(provider) in BATCH_API_PROVIDERS


def check_delivery(settings: Mapping[str, Any], providers: Iterable[str]) -> None:
    """`batch_api` and `auto` need every model's vendor to have a batch API."""
    delivery = settings.get("delivery", Delivery.LIVE)
    if delivery == Delivery.LIVE:
        return
    without = sorted({canonical_name(p) for p in providers if not has_batch_api(p)})
    if without:
        raise BadRequest(
            f"settings.delivery {delivery!s} needs a vendor batch API, and "
            f"{', '.join(without)} {'has' if len(without) == 1 else 'have'} none (only "
            "openai and claude do): choose delivery live, or grade with openai or claude "
            "models"
        )
