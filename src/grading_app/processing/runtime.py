"""Wiring a worker to the configured providers and rate limits."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext

from grading_app.config import Settings
from grading_app.providers.base import Provider
from grading_app.providers.ratelimit import RateLimiter
from grading_app.providers.registry import ProviderConfig, get_provider, load_provider_configs


class ConfiguredLimiter:
    """Per (provider, model) limits from each provider's configuration."""

    def __init__(self, limiter: RateLimiter, configs: Mapping[str, ProviderConfig]) -> None:
        self.limiter = limiter
        self.configs = configs

    def slot(
        self, provider: str, model: str, *, timeout: float | None = None
    ) -> AbstractContextManager[None]:
        config = self.configs.get(provider)
        if config is None:
            return nullcontext()
        rpm, concurrency = config.limits_for(model)
        if not rpm and not concurrency:
            return nullcontext()
        # Keyed by the canonical name, so "anthropic" and "claude" share one budget.
        return self.limiter.slot(
            config.name, model, rpm=rpm, concurrency=concurrency, timeout=timeout
        )


def provider_resolver(
    environ: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], Provider], Mapping[str, ProviderConfig]]:
    """Providers are built once per name and shared by the worker's threads. Building
    one (an SDK client, its TLS context) costs tens of milliseconds of CPU: without the
    lock, every thread of a starting worker built its own at once, and under the GIL
    the first calls of all of them waited for the lot."""
    configs = load_provider_configs(environ)
    cache: dict[str, Provider] = {}
    lock = threading.Lock()

    def resolve(name: str) -> Provider:
        provider = cache.get(name)
        if provider is None:
            with lock:
                if name not in cache:
                    cache[name] = get_provider(name, configs)
                provider = cache[name]
        return provider

    return resolve, configs


def worker_dependencies(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> tuple[Callable[[str], Provider], ConfiguredLimiter]:
    resolve, configs = provider_resolver(environ)
    # A concurrency slot held by a worker that crashed frees itself after a lease.
    limiter = RateLimiter(
        settings.effective_rate_limit_storage, lease_seconds=settings.effective_lease_seconds
    )
    return resolve, ConfiguredLimiter(limiter, configs)
