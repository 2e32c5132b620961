"""The fake vendor for the provider clients' tests, and what every failed live call
must show."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from grading_app.providers.base import ProviderError
from tests.fakes import FakeLLMServer


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def failed_once(server: FakeLLMServer, model: str, call: Callable[[], object]) -> ProviderError:
    """The ProviderError that `call` raised after one request for `model` reached the
    vendor: the SDK's own retries are off, the pipeline's do the retrying."""
    with pytest.raises(ProviderError) as caught:
        call()
    assert server.count(model) == 1
    assert server.requests[0].headers["x-stainless-retry-count"] == "0"
    return caught.value
