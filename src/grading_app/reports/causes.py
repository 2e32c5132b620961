"""Why work items failed, in a few causes a person can act on, read from the message
the worker stored (`work_items.last_error`; see providers/openai_compat.py for how
vendor errors are worded). The same rules classify in Python and in SQL."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import sqlalchemy as sa


class Cause(StrEnum):
    AUTH_OR_CREDIT = "auth_or_credit"
    RATE_LIMIT = "rate_limit"
    TIMEOUT = "timeout"
    INVALID_ANSWER = "invalid_answer"
    CANCELLED = "cancelled"
    PROVIDER_ERROR = "provider_error"
    OTHER = "other"


# First match wins; the words are matched in the lower-cased message.
_RULES: tuple[tuple[Cause, tuple[str, ...]], ...] = (
    (
        Cause.AUTH_OR_CREDIT,
        ("out of credit", "api key", "(401)", "(402)", "(403)", "refused access", "quota"),
    ),
    (Cause.RATE_LIMIT, ("rate limit", "(429)")),
    (Cause.TIMEOUT, ("did not answer within", "timed out", "timeout")),
    (Cause.INVALID_ANSWER, ("not a valid grade", "refused to grade", "marking scheme")),
    (Cause.CANCELLED, ("cancelled",)),
    (
        Cause.PROVIDER_ERROR,
        (
            "server error",
            "overloaded",
            "unreachable",
            "could not be read",
            "returned no answer",
            "not found",
            "rejected the request",
            " answered ",
        ),
    ),
)


def classify(message: str | None) -> Cause:
    text = (message or "").lower()
    for cause, words in _RULES:
        if any(word in text for word in words):
            return cause
    return Cause.OTHER


def cause_of(message: Any) -> sa.ColumnElement[str]:
    """`classify` as a SQL expression over a text column."""
    text = sa.func.lower(sa.func.coalesce(message, ""))
    return sa.case(
        *(
            (sa.or_(*(text.contains(word, autoescape=True) for word in words)), cause.value)
            for cause, words in _RULES
        ),
        else_=Cause.OTHER.value,
    )
