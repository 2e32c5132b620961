"""How a batch's calls reach the vendor, and what it may spend: the batch settings
`delivery` and `budget`, read leniently from stored settings (rows of earlier releases
may hold anything) with safe defaults: live calls, no budget."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Delivery(StrEnum):
    LIVE = "live"  # one call per grading, answered at once
    BATCH_API = "batch_api"  # the vendor's batch API: half price, answered within a day
    AUTO = "auto"  # batch API while the deadline leaves room, live otherwise


def delivery_setting(batch_settings: Any) -> Delivery:
    value = batch_settings.get("delivery") if isinstance(batch_settings, dict) else None
    return Delivery(value) if value in set(Delivery) else Delivery.LIVE


def budget_setting(batch_settings: Any) -> float | None:
    """The batch's budget in USD; None: no budget."""
    value = batch_settings.get("budget") if isinstance(batch_settings, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value) if value > 0 else None
    return None


# The stored provider names (legacy spellings included) whose vendor has a batch API:
# OpenAI's Batch API and Anthropic's Message Batches. Every other provider (OpenRouter,
# LM Studio, Ollama, custom endpoints) is called live whatever the batch says.
BATCH_API_PROVIDERS = frozenset({"openai", "claude", "anthropic"})
# How long both vendors may take to answer a batch (OpenAI: completion_window "24h";
# Anthropic: batches end within 24 hours).
BATCH_API_WINDOW = timedelta(hours=24)
# Room kept before a deadline on top of the vendor's window: collecting, a repair call,
# and the items the vendor sends back going live.
DEADLINE_MARGIN = timedelta(hours=1)


def uses_batch_api(
    delivery: Delivery,
    *,
    deadline: datetime | None,
    now: datetime,
    window: timedelta = BATCH_API_WINDOW,
) -> bool:
    """Whether a batch's calls go through the vendor's batch API now (for providers that
    have one): always for `batch_api`; for `auto` while the deadline leaves the vendor
    its whole window plus DEADLINE_MARGIN (or there is no deadline); never for `live`.
    Claiming (live workers keep off these batches) and the provider batch manager
    (sends them) ask this one question. (A provider batch already sent for an `auto`
    batch is cancelled only when the deadline is under DEADLINE_MARGIN away.)"""
    if delivery is Delivery.BATCH_API:
        return True
    if delivery is Delivery.AUTO:
        return deadline is None or deadline - now > window + DEADLINE_MARGIN
    return False
