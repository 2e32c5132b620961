"""Per (provider, model) limits, in memory and on the real Redis shared by limiters."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from grading_app.providers.base import ProviderError
from grading_app.providers.ratelimit import RateLimiter, SlotTimeout

REDIS_URL = os.environ.get("GRADING_APP_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _redis_problem() -> str | None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def redis_url() -> str:
    problem = _redis_problem()
    if problem:
        if os.environ.get("GRADING_APP_REQUIRE_REDIS"):
            pytest.fail(f"Redis is required but unreachable at {REDIS_URL}: {problem}")
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {problem}")
    return REDIS_URL


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A namespace of its own per test, removed afterwards."""
    name = f"ga_test_{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"*{name}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(params=["memory", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> Callable[..., RateLimiter]:
    """Limiters that share state: one process's memory, or one Redis namespace."""
    if request.param == "memory":
        shared = RateLimiter(window_seconds=1)
        return lambda **_: shared
    url = request.getfixturevalue("redis_url")
    space = request.getfixturevalue("namespace")
    return lambda **kw: RateLimiter(url, namespace=space, window_seconds=1, **kw)


def _take(limiter: RateLimiter, provider: str, model: str, **limits: float | None) -> None:
    with limiter.slot(provider, model, **limits):  # type: ignore[arg-type]
        pass


def _hold(limiter: RateLimiter, model: str, **limits: int | None) -> Callable[[], None]:
    """Enter a slot and keep it until the returned function is called."""
    slot = limiter.slot("openrouter", model, **limits)  # type: ignore[arg-type]
    slot.__enter__()
    return lambda: slot.__exit__(None, None, None)


def test_rpm_allows_the_budget_then_waits(make_limiter: Callable[..., RateLimiter]) -> None:
    limiter = make_limiter()
    for _ in range(3):
        with limiter.slot("openrouter", "m", rpm=3, concurrency=None, timeout=0.5):
            pass

    with pytest.raises(SlotTimeout) as caught:  # fourth in the same window
        _take(limiter, "openrouter", "m", rpm=3, concurrency=None, timeout=0.2)
    assert isinstance(caught.value, ProviderError) and caught.value.retryable
    assert "limit of 3 requests" in caught.value.message

    started = time.monotonic()
    with limiter.slot("openrouter", "m", rpm=3, concurrency=None, timeout=5):
        waited = time.monotonic() - started
    assert 0.1 < waited < 2.5  # blocked until the 1 s window moved on


def test_rpm_budgets_are_per_provider_and_model(make_limiter: Callable[..., RateLimiter]) -> None:
    limiter = make_limiter()
    with limiter.slot("openrouter", "a", rpm=1, concurrency=None, timeout=0.2):
        pass
    with limiter.slot("openrouter", "b", rpm=1, concurrency=None, timeout=0.2):
        pass
    with limiter.slot("ollama", "a", rpm=1, concurrency=None, timeout=0.2):
        pass
    with pytest.raises(SlotTimeout):
        _take(limiter, "openrouter", "a", rpm=1, concurrency=None, timeout=0.2)


def test_concurrency_limits_calls_in_flight(make_limiter: Callable[..., RateLimiter]) -> None:
    limiter = make_limiter()
    in_flight = 0
    most = 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal in_flight, most
        with limiter.slot("claude", "c", rpm=None, concurrency=2, timeout=10):
            with lock:
                in_flight += 1
                most = max(most, in_flight)
            time.sleep(0.1)
            with lock:
                in_flight -= 1

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert most == 2


def test_concurrency_slot_is_freed_on_exit_and_on_error(
    make_limiter: Callable[..., RateLimiter],
) -> None:
    limiter = make_limiter()
    release = _hold(limiter, "m", rpm=None, concurrency=1)

    with pytest.raises(SlotTimeout, match="limit of 1 concurrent calls"):
        _take(limiter, "openrouter", "m", rpm=None, concurrency=1, timeout=0.2)
    release()
    with (
        pytest.raises(RuntimeError),
        limiter.slot("openrouter", "m", rpm=None, concurrency=1, timeout=0.5),
    ):
        raise RuntimeError("the call failed")
    with limiter.slot("openrouter", "m", rpm=None, concurrency=1, timeout=0.5):
        pass


def test_waiting_for_rpm_gives_back_the_concurrency_slot(
    make_limiter: Callable[..., RateLimiter],
) -> None:
    limiter = make_limiter()
    with limiter.slot("openrouter", "m", rpm=1, concurrency=1, timeout=0.5):
        pass
    with pytest.raises(SlotTimeout, match="requests per"):
        _take(limiter, "openrouter", "m", rpm=1, concurrency=1, timeout=0.2)
    time.sleep(1.1)  # the window moves on; the concurrency slot must be free too
    with limiter.slot("openrouter", "m", rpm=1, concurrency=1, timeout=0.5):
        pass


def test_two_limiters_on_one_redis_share_the_limits(redis_url: str, namespace: str) -> None:
    first = RateLimiter(redis_url, namespace=namespace, window_seconds=60)
    second = RateLimiter(redis_url, namespace=namespace, window_seconds=60)

    for limiter in (first, second, first):
        with limiter.slot("openrouter", "m", rpm=3, concurrency=None, timeout=0.2):
            pass
    with pytest.raises(SlotTimeout):
        _take(second, "openrouter", "m", rpm=3, concurrency=None, timeout=0.2)

    release_first = _hold(first, "c", rpm=None, concurrency=2)
    release_second = _hold(second, "c", rpm=None, concurrency=2)
    with pytest.raises(SlotTimeout):
        _take(first, "openrouter", "c", rpm=None, concurrency=2, timeout=0.2)
    release_second()
    with first.slot("openrouter", "c", rpm=None, concurrency=2, timeout=0.5):
        pass
    release_first()


def test_other_namespaces_and_memory_limiters_do_not_share(redis_url: str, namespace: str) -> None:
    shared = RateLimiter(redis_url, namespace=namespace)
    elsewhere = RateLimiter(redis_url, namespace=f"{namespace}_other")
    with shared.slot("openrouter", "m", rpm=1, concurrency=None, timeout=0.2):
        pass
    with elsewhere.slot("openrouter", "m", rpm=1, concurrency=None, timeout=0.2):
        pass
    with RateLimiter().slot("openrouter", "m", rpm=1, concurrency=None, timeout=0.2):
        pass
    with RateLimiter().slot("openrouter", "m", rpm=1, concurrency=None, timeout=0.2):
        pass


def test_a_crashed_holder_frees_its_redis_slot_when_the_lease_expires(
    redis_url: str, namespace: str
) -> None:
    crashed = RateLimiter(redis_url, namespace=namespace, lease_seconds=1)
    survivor = RateLimiter(redis_url, namespace=namespace, lease_seconds=1)
    # Never released, as if the worker died. Keep a reference: a collected generator
    # would run its `finally` and release the slot, which a killed process never does.
    held = _hold(crashed, "m", rpm=None, concurrency=1)

    with pytest.raises(SlotTimeout):
        _take(survivor, "openrouter", "m", rpm=None, concurrency=1, timeout=0.3)
    with survivor.slot("openrouter", "m", rpm=None, concurrency=1, timeout=3):
        pass
    assert held is not None


@pytest.mark.parametrize(("rpm", "concurrency"), [(None, 1), (5, None)])
def test_unreachable_redis_is_a_retryable_error_without_the_password(
    rpm: int | None, concurrency: int | None
) -> None:
    limiter = RateLimiter("redis://:hunter2@127.0.0.1:1/0")

    with pytest.raises(ProviderError) as caught:
        _take(limiter, "openrouter", "m", rpm=rpm, concurrency=concurrency, timeout=1)

    assert caught.value.retryable
    assert "rate limit storage unavailable at redis://:***@127.0.0.1:1/0" in caught.value.message
    assert "hunter2" not in caught.value.message
    assert "hunter2" not in repr(limiter)


def test_no_limits_means_no_waiting() -> None:
    limiter = RateLimiter()
    started = time.monotonic()
    for _ in range(100):
        with limiter.slot("ollama", "m", rpm=None, concurrency=None):
            pass
    assert time.monotonic() - started < 1


def test_unsupported_storage_is_refused() -> None:
    with pytest.raises(ValueError, match="memory:// or a redis:// URL"):
        RateLimiter("memcached://localhost:11211")
