"""How a batch's calls reach the vendor, and what it may spend: the batch settings
`delivery` and `budget`, read leniently from stored settings (rows of earlier releases
may hold anything) with safe defaults: live calls, no budget."""

from __future__ import annotations

import math
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
