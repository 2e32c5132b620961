"""What a model's tokens cost: dated defaults, overridden by `GRADING_APP_PRICES`.

Every figure is an estimate: vendors change prices, discount cached or batched input,
and bill some models (reasoning tokens) differently. A model found in neither table has
no cost (None), never a cost of 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from grading_app.providers.registry import canonical_name

# The date the default list prices below were read from the vendors' published pricing.
PRICES_AS_OF = date(2025, 6, 1)

# USD per million (input, output) tokens, standard tier.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "openai:gpt-4o": (2.50, 10.00),
    "openai:gpt-4o-mini": (0.15, 0.60),
    "openai:gpt-4.1": (2.00, 8.00),
    "openai:gpt-4.1-mini": (0.40, 1.60),
    "openai:gpt-4.1-nano": (0.10, 0.40),
    "openai:o4-mini": (1.10, 4.40),
    "claude:claude-3-5-haiku": (0.80, 4.00),
    "claude:claude-3-5-sonnet": (3.00, 15.00),
    "claude:claude-3-7-sonnet": (3.00, 15.00),
    "claude:claude-sonnet-4": (3.00, 15.00),
    "claude:claude-opus-4": (15.00, 75.00),
    "openrouter:openai/gpt-4o": (2.50, 10.00),
    "openrouter:openai/gpt-4o-mini": (0.15, 0.60),
    "openrouter:anthropic/claude-3.5-sonnet": (3.00, 15.00),
    "openrouter:anthropic/claude-sonnet-4": (3.00, 15.00),
}

# A dated snapshot or alias of a listed model costs what the model does:
# gpt-4o-2024-08-06, claude-3-5-haiku-20241022, claude-3-5-sonnet-latest.
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


@dataclass(frozen=True)
class Price:
    input_per_million: float
    output_per_million: float
    source: str  # "default" (as of PRICES_AS_OF) or "GRADING_APP_PRICES"
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


@dataclass(frozen=True)
class PriceTable:
    overrides: dict[str, tuple[float, float]]

    @classmethod
    def of(cls, overrides: dict[str, tuple[float, float]]) -> PriceTable:
        """From `Settings.price_overrides`, providers named as the registry names them
        (`anthropic:...` is `claude:...`)."""
        named = {}
        for key, figures in overrides.items():
            provider, colon, model = key.partition(":")
            named[f"{canonical_name(provider)}{colon}{model}"] = figures
        return cls(named)

    def price(self, provider: str, model: str) -> Price | None:
        """The override for the model, then for its provider, then the default."""
        provider = canonical_name(provider)
        names = [model]
        base = _SNAPSHOT.sub("", model)
        if base != model:
            names.append(base)
        for name in names:
            if f"{provider}:{name}" in self.overrides:
                return _price(self.overrides[f"{provider}:{name}"], "GRADING_APP_PRICES")
        if provider in self.overrides:
            return _price(self.overrides[provider], "GRADING_APP_PRICES")
        for name in names:
            if f"{provider}:{name}" in DEFAULT_PRICES:
                return _price(DEFAULT_PRICES[f"{provider}:{name}"], "default")
        return None


def _price(figures: tuple[float, float], source: str) -> Price:
    return Price(input_per_million=figures[0], output_per_million=figures[1], source=source)
