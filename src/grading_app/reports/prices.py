"""What a model's tokens cost: dated list prices, under `GRADING_APP_PRICES`, under the
prices an administrator keeps (`reports/price_book.py` reads those).

Every figure is a price in USD per million tokens. Vendors change prices and bill some
models (reasoning tokens) differently, so a stored cost is what the price of the time
said. A model found in no table has no cost (None), never a cost of 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Literal

from grading_app.providers.registry import canonical_name

PriceSource = Literal["administrator", "GRADING_APP_PRICES", "default"]

# The date the default list prices below were read from the vendors' pricing pages
# (https://openai.com/api/pricing, https://www.anthropic.com/pricing#api,
# https://openrouter.ai/models); check them against those pages before relying on them.
PRICES_AS_OF = date(2025, 11, 1)

# The share the vendors' batch APIs take off every token: OpenAI Batch API and
# Anthropic Message Batches both bill half the standard price. OpenRouter has none.
BATCH_DISCOUNTS: dict[str, float] = {"openai": 0.5, "claude": 0.5}

# A dated snapshot or alias of a listed model costs what the model does:
# gpt-4o-2024-08-06, claude-3-5-haiku-20241022, claude-3-5-sonnet-latest.
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
# An administrator's or GRADING_APP_PRICES' price for every model of a provider.
EVERY_MODEL = "*"


@dataclass(frozen=True)
class Price:
    input_per_million: float
    output_per_million: float
    source: PriceSource = "default"
    # None: cached input, and writing the cache, cost what plain input does.
    cached_input_per_million: float | None = None
    cache_write_per_million: float | None = None
    # The share the batch API takes off every figure (0.5: half price).
    batch_discount: float = 0.0

    def cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
        batch: bool = False,
    ) -> float:
        """USD for a call's tokens; `prompt_tokens` counts every input token, the cached
        and cache-written ones among them."""
        cached_rate = self.cached_input_per_million
        write_rate = self.cache_write_per_million
        plain = max(0, prompt_tokens - cached_tokens - cache_write_tokens)
        total = (
            plain * self.input_per_million
            + cached_tokens * (self.input_per_million if cached_rate is None else cached_rate)
            + cache_write_tokens * (self.input_per_million if write_rate is None else write_rate)
            + completion_tokens * self.output_per_million
        ) / 1_000_000
        return total * (1 - self.batch_discount) if batch else total


def _openai(input_price: float, output: float, *, cached: float) -> Price:
    """OpenAI: cached input at `cached` (50% of input for the gpt-4o family, 25% for
    gpt-4.1 and o-series, 10% for gpt-5); writing the cache costs nothing extra."""
    return Price(
        input_per_million=input_price,
        output_per_million=output,
        cached_input_per_million=cached,
        cache_write_per_million=input_price,
        batch_discount=BATCH_DISCOUNTS["openai"],
    )


def _anthropic(
    input_price: float,
    output: float,
    *,
    cached: float | None = None,
    cache_write: float | None = None,
) -> Price:
    """Anthropic: cache reads at 0.1x input, 5-minute cache writes at 1.25x input,
    unless the list gives other figures (Claude 3 Haiku's)."""
    return Price(
        input_per_million=input_price,
        output_per_million=output,
        cached_input_per_million=round(input_price * 0.1, 6) if cached is None else cached,
        cache_write_per_million=(
            round(input_price * 1.25, 6) if cache_write is None else cache_write
        ),
        batch_discount=BATCH_DISCOUNTS["claude"],
    )


def _openrouter(price: Price) -> Price:
    """OpenRouter passes the vendor's token and cache prices on, without a batch API."""
    return replace(price, batch_discount=0.0)


# Standard-tier list prices, USD per million tokens, as of PRICES_AS_OF.
DEFAULT_PRICES: dict[str, Price] = {
    "openai:gpt-4o": _openai(2.50, 10.00, cached=1.25),
    "openai:gpt-4o-mini": _openai(0.15, 0.60, cached=0.075),
    "openai:gpt-4.1": _openai(2.00, 8.00, cached=0.50),
    "openai:gpt-4.1-mini": _openai(0.40, 1.60, cached=0.10),
    "openai:gpt-4.1-nano": _openai(0.10, 0.40, cached=0.025),
    "openai:o3": _openai(2.00, 8.00, cached=0.50),
    "openai:o4-mini": _openai(1.10, 4.40, cached=0.275),
    "openai:gpt-5": _openai(1.25, 10.00, cached=0.125),
    "openai:gpt-5-mini": _openai(0.25, 2.00, cached=0.025),
    "openai:gpt-5-nano": _openai(0.05, 0.40, cached=0.005),
    "claude:claude-3-haiku": _anthropic(0.25, 1.25, cached=0.03, cache_write=0.30),
    "claude:claude-3-5-haiku": _anthropic(0.80, 4.00),
    "claude:claude-haiku-4-5": _anthropic(1.00, 5.00),
    "claude:claude-3-5-sonnet": _anthropic(3.00, 15.00),
    "claude:claude-3-7-sonnet": _anthropic(3.00, 15.00),
    "claude:claude-sonnet-4": _anthropic(3.00, 15.00),
    "claude:claude-sonnet-4-5": _anthropic(3.00, 15.00),
    "claude:claude-opus-4": _anthropic(15.00, 75.00),
    "claude:claude-opus-4-1": _anthropic(15.00, 75.00),
    "openrouter:openai/gpt-4o": _openrouter(_openai(2.50, 10.00, cached=1.25)),
    "openrouter:openai/gpt-4o-mini": _openrouter(_openai(0.15, 0.60, cached=0.075)),
    "openrouter:anthropic/claude-3.5-sonnet": _openrouter(_anthropic(3.00, 15.00)),
    "openrouter:anthropic/claude-sonnet-4": _openrouter(_anthropic(3.00, 15.00)),
}


def override_price(provider: str, figures: Sequence[float]) -> Price:
    """A `GRADING_APP_PRICES` entry: input and output, then optionally cached input and
    cache writes (else as input); the provider's batch API discount applies."""
    cached = figures[2] if len(figures) > 2 else None
    write = figures[3] if len(figures) > 3 else None
    return Price(
        input_per_million=figures[0],
        output_per_million=figures[1],
        source="GRADING_APP_PRICES",
        cached_input_per_million=cached,
        cache_write_per_million=write,
        batch_discount=BATCH_DISCOUNTS.get(canonical_name(provider), 0.0),
    )


def price_key(provider: str, model: str) -> str:
    """ "provider:model" with the provider as the registry names it (`anthropic:...` is
    `claude:...`); the model "*" gives the provider's own key."""
    provider = canonical_name(provider)
    return provider if model == EVERY_MODEL else f"{provider}:{model}"


@dataclass(frozen=True)
class PriceTable:
    """Prices by "provider:model" or "provider" (every model of it), one table per
    source; an administrator's win over GRADING_APP_PRICES, which win over defaults."""

    overrides: Mapping[str, Price]
    administrator: Mapping[str, Price] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        overrides: Mapping[str, Sequence[float]],
        administrator: Mapping[str, Price] | None = None,
    ) -> PriceTable:
        """From `Settings.price_overrides` (and an administrator's prices by key)."""
        named: dict[str, Price] = {}
        for key, figures in overrides.items():
            provider, _, model = key.partition(":")
            named[price_key(provider, model or EVERY_MODEL)] = override_price(provider, figures)
        return cls(named, dict(administrator or {}))

    def price(self, provider: str, model: str) -> Price | None:
        """The first source that prices the model (or its dated base name), or else
        every model of its provider; then the next source."""
        provider = canonical_name(provider)
        names = [f"{provider}:{model}"]
        base = _SNAPSHOT.sub("", model)
        if base != model:
            names.append(f"{provider}:{base}")
        for table in (self.administrator, self.overrides):
            for name in names:
                if name in table:
                    return table[name]
            if provider in table:
                return table[provider]
        for name in names:
            if name in DEFAULT_PRICES:
                return DEFAULT_PRICES[name]
        return None

    def listed(self) -> list[tuple[str, Price]]:
        """Every price a source names, by key, the effective one of each key only."""
        keys = sorted({*DEFAULT_PRICES, *self.overrides, *self.administrator})
        effective = []
        for key in keys:
            for table in (self.administrator, self.overrides, DEFAULT_PRICES):
                if key in table:
                    effective.append((key, table[key]))
                    break
        return effective
