"""Requests per minute and concurrent calls per (provider, model), across all workers.

Requests per minute use the `limits` package's moving window, in memory for one
process or in Redis for many (https://limits.readthedocs.io/en/stable/strategies.html).
`limits` has no notion of a held slot, so concurrency is our own: in memory a counter
under a condition variable; in Redis a sorted set of (token, lease expiry) per key,
changed only by Lua scripts so acquire is atomic. A worker that crashes inside a slot
leaves a token that stops counting once its lease expires, so no slot is lost for good.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit, urlunsplit

import redis
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from grading_app.providers.base import ProviderError

# Redis time, not the caller's clock, so workers on machines with skewed clocks agree.
# TIME inside a script is allowed since Redis 5 (effects replication).
_ACQUIRE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 1)
  return 1
end
return 0
"""

_POLL_SECONDS = 0.05  # between attempts at a full concurrency slot
_MAX_RPM_SLEEP = 0.25  # re-check at least this often while the window is full


class SlotTimeout(ProviderError):
    """No slot within the caller's timeout; retryable, like a 429 from the vendor."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retryable=True, retry_after=retry_after)


class RateLimiter:
    """Blocking per-(provider, model) limits. Thread-safe; share one per process.

    `storage_uri` is "memory://" (this process only) or a Redis URL
    ("redis://host:6379/0", "rediss://..."), shared by every limiter that uses it with
    the same `namespace`. `lease_seconds` bounds how long a crashed holder keeps a
    concurrency slot in Redis: keep it above the longest call (with its repair call).
    `window_seconds` is the RPM window: 60, changed only by tests.
    """

    def __init__(
        self,
        storage_uri: str = "memory://",
        *,
        namespace: str = "grading_app",
        lease_seconds: float = 300.0,
        window_seconds: int = 60,
    ) -> None:
        scheme = urlsplit(storage_uri).scheme
        if scheme not in ("memory", "redis", "rediss"):
            raise ValueError(
                f"rate limit storage must be memory:// or a redis:// URL, not {scheme}://"
            )
        self.storage_uri = storage_uri
        self.namespace = namespace
        self.lease_seconds = lease_seconds
        self.window_seconds = window_seconds
        self._rpm = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._redis: redis.Redis | None = None
        if scheme != "memory":
            self._redis = redis.Redis.from_url(storage_uri)
            self._acquire_script = self._redis.register_script(_ACQUIRE)
        self._held: dict[str, int] = {}
        self._freed = threading.Condition()

    def __repr__(self) -> str:
        return f"RateLimiter({_without_password(self.storage_uri)!r})"

    @contextmanager
    def slot(
        self,
        provider: str,
        model: str,
        *,
        rpm: int | None,
        concurrency: int | None,
        timeout: float | None = None,
    ) -> Iterator[None]:
        """Wait until both limits allow a call, hold the slot for the `with` body.
        Raises SlotTimeout if `timeout` seconds pass first (None waits for ever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        release: Callable[[], None] | None = None
        try:
            # Concurrency first: a request counts against the minute only once it can
            # really be sent, so waiting for a free slot does not burn the RPM budget.
            if concurrency:
                release = self._acquire(provider, model, concurrency, deadline)
            if rpm:
                self._hit(provider, model, rpm, deadline)
        except redis.RedisError as exc:
            if release is not None:
                release()
            raise ProviderError(
                f"rate limit storage unavailable at {_without_password(self.storage_uri)}: {exc}",
                retryable=True,
            ) from exc
        except BaseException:
            if release is not None:
                release()
            raise
        try:
            yield
        finally:
            if release is not None:
                release()

    # requests per minute
    def _item(self, rpm: int) -> RateLimitItem:
        return RateLimitItemPerSecond(rpm, self.window_seconds, namespace=self.namespace)

    def _hit(self, provider: str, model: str, rpm: int, deadline: float | None) -> None:
        item = self._item(rpm)
        while not self._rpm.hit(item, provider, model):
            stats = self._rpm.get_window_stats(item, provider, model)
            wait = max(0.0, stats.reset_time - time.time())
            _sleep_or_give_up(
                min(wait, _MAX_RPM_SLEEP) or _POLL_SECONDS,
                deadline,
                SlotTimeout(
                    f"{provider} model '{model}' is at its limit of {rpm} requests per "
                    f"{self.window_seconds}s",
                    retry_after=wait or None,
                ),
            )

    # concurrent calls
    def _acquire(
        self, provider: str, model: str, limit: int, deadline: float | None
    ) -> Callable[[], None]:
        key = f"{self.namespace}:concurrency:{provider}:{model}"

        timed_out = SlotTimeout(
            f"{provider} model '{model}' is at its limit of {limit} concurrent calls"
        )

        if self._redis is None:
            with self._freed:
                while self._held.get(key, 0) >= limit:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise timed_out
                    self._freed.wait(remaining)
                self._held[key] = self._held.get(key, 0) + 1
            return lambda: self._release_local(key)

        client = self._redis
        token = uuid.uuid4().hex
        while not self._acquire_script(keys=[key], args=[limit, token, self.lease_seconds]):
            _sleep_or_give_up(_POLL_SECONDS, deadline, timed_out)
        return lambda: _release_redis(client, key, token)

    def _release_local(self, key: str) -> None:
        with self._freed:
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]
            self._freed.notify()


def _release_redis(client: redis.Redis, key: str, token: str) -> None:
    # If Redis is away the token is not lost for good: its lease expires on its own.
    with suppress(redis.RedisError):
        client.zrem(key, token)


def _sleep_or_give_up(seconds: float, deadline: float | None, error: SlotTimeout) -> None:
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise error
        seconds = min(seconds, remaining)
    time.sleep(seconds)


def _without_password(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
