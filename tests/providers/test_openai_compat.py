"""The OpenAI-compatible provider against the fake vendor, over real HTTP."""

from __future__ import annotations

import json
import socket

import pytest

from grading_app.grading.parse import parse_grade
from grading_app.grading.schema import GRADE_JSON_SCHEMA
from grading_app.providers.base import ChatRequest, ProviderError
from grading_app.providers.openai_compat import (
    OpenAICompatProvider,
    parse_retry_after,
    strict_compatible,
)
from tests.fakes import Behaviour, FakeLLMServer, Fault, expected_grade
from tests.providers.conftest import failed_once

KEY = "sk-or-v1-secret-abcdef123456"


@pytest.fixture
def provider(server: FakeLLMServer) -> OpenAICompatProvider:
    return OpenAICompatProvider(
        name="openrouter",
        base_url=server.openai_base_url,
        api_key=KEY,
        label="OpenRouter",
        key_env="OPENROUTER_API_KEY",
    )


def _request(*, model: str = "m1", schema: bool = True, timeout: float = 10.0) -> ChatRequest:
    return ChatRequest(
        model=model,
        system="You grade. Answer in JSON.",
        user='Grade it.\n<document name="e.txt">\nA short essay.\n</document>',
        json_schema=GRADE_JSON_SCHEMA if schema else None,
        temperature=0.0,
        max_tokens=500,
        timeout_seconds=timeout,
    )


def test_structured_output_uses_json_schema(
    server: FakeLLMServer, provider: OpenAICompatProvider
) -> None:
    response = provider.complete(_request())

    sent = server.requests[-1].body
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "grade", "schema": GRADE_JSON_SCHEMA, "strict": True},
    }
    assert sent["messages"][0] == {"role": "system", "content": "You grade. Answer in JSON."}
    assert sent["temperature"] == 0.0 and sent["max_tokens"] == 500
    assert json.loads(response.text) == expected_grade("m1", "A short essay.")
    assert response.structured is True
    assert response.model == "m1"
    assert response.prompt_tokens and response.completion_tokens
    assert response.latency_ms >= 0
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_without_schema_sends_no_response_format_and_the_answer_still_parses(
    server: FakeLLMServer, provider: OpenAICompatProvider
) -> None:
    response = provider.complete(_request(schema=False))

    assert "response_format" not in server.requests[-1].body
    assert response.structured is False
    assert "```json" in response.text
    assert (
        parse_grade(response.text).overall_score
        == expected_grade("m1", "A short essay.")["overall_score"]
    )


def test_rejected_json_schema_falls_back_to_json_object_and_is_remembered(
    server: FakeLLMServer, provider: OpenAICompatProvider
) -> None:
    server.structured_output = "json_object_only"

    first = provider.complete(_request())
    second = provider.complete(_request())

    formats = [r.body["response_format"]["type"] for r in server.requests]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert first.structured and second.structured
    assert json.loads(second.text) == expected_grade("m1", "A short essay.")
    assert provider.response_format_for("m1") == "json_object"
    assert provider.response_format_for("other") == "json_schema"  # remembered per model


def test_server_rejecting_every_response_format_falls_back_to_plain(
    server: FakeLLMServer, provider: OpenAICompatProvider
) -> None:
    server.structured_output = "reject"

    response = provider.complete(_request())
    provider.complete(_request())

    assert [r.body.get("response_format", {}).get("type") for r in server.requests] == [
        "json_schema",
        "json_object",
        None,
        None,
    ]
    assert response.structured is False
    assert parse_grade(response.text).max_score == 30


def test_server_ignoring_response_format_is_reported_as_unstructured(
    server: FakeLLMServer, provider: OpenAICompatProvider
) -> None:
    server.structured_output = "ignore"

    response = provider.complete(_request())

    assert server.count() == 1
    assert response.structured is False
    assert (
        parse_grade(response.text).overall_score
        == expected_grade("m1", "A short essay.")["overall_score"]
    )


def test_unrelated_400_is_not_mistaken_for_a_format_rejection(
    server: FakeLLMServer, provider: OpenAICompatProvider
) -> None:
    server.script("m1", [Fault.status(400, "context length exceeded")])

    with pytest.raises(ProviderError) as caught:
        provider.complete(_request())

    assert server.count() == 1
    assert caught.value.retryable is False
    assert "context length exceeded" in caught.value.message


@pytest.mark.parametrize(
    ("behaviour", "status", "retryable", "fragment"),
    [
        (Fault.server_error(), 500, True, "OpenRouter server error (500)"),
        (Fault.server_error(503, retry_after=7), 503, True, "retry after 7s"),
        (Fault.overloaded(), 529, True, "overloaded"),
        (
            Fault.status(401, "invalid api key"),
            401,
            False,
            "OpenRouter rejected the API key (401): check OPENROUTER_API_KEY",
        ),
        (Fault.status(403, "region not allowed"), 403, False, "refused access"),
        (Fault.status(404, "model not found"), 404, False, "model 'm1' not found at OpenRouter"),
        (Fault.status(402, "insufficient credit"), 402, False, "out of credit at OpenRouter"),
        (Fault.insufficient_quota(), 429, False, "out of credit"),
        (Fault.status(422, "bad temperature"), 422, False, "rejected the request"),
    ],
)
def test_status_errors_map_to_provider_errors(
    server: FakeLLMServer,
    provider: OpenAICompatProvider,
    behaviour: Behaviour,
    status: int,
    retryable: bool,
    fragment: str,
) -> None:
    server.script("m1", [behaviour])

    error = failed_once(server, "m1", lambda: provider.complete(_request()))

    assert error.status_code == status
    assert error.retryable is retryable
    assert fragment in error.message
    assert KEY not in error.message


def test_rate_limit_is_retryable_with_retry_after_seconds(
    server: FakeLLMServer, provider: OpenAICompatProvider
) -> None:
    server.script("m1", [Fault.rate_limit(retry_after=2)])

    error = failed_once(server, "m1", lambda: provider.complete(_request()))

    assert error.retryable is True
    assert error.retry_after == 2
    assert error.status_code == 429
    assert "rate limit" in error.message


def test_rate_limit_retry_after_as_http_date(
    server: FakeLLMServer, provider: OpenAICompatProvider
) -> None:
    server.script("m1", [Fault.rate_limit(retry_after=30, http_date=True)])

    with pytest.raises(ProviderError) as caught:
        provider.complete(_request())

    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 31


def test_timeout_is_retryable_and_not_retried_by_the_sdk(
    server: FakeLLMServer, provider: OpenAICompatProvider
) -> None:
    server.script("m1", [Fault.timeout()])

    error = failed_once(server, "m1", lambda: provider.complete(_request(timeout=0.5)))

    assert error.retryable is True
    assert "did not answer within 0.5s" in error.message


def test_unreadable_body_is_retryable(
    server: FakeLLMServer, provider: OpenAICompatProvider
) -> None:
    server.script("m1", [Fault.broken_body()])

    with pytest.raises(ProviderError) as caught:
        provider.complete(_request())

    assert caught.value.retryable is True
    assert "could not be read" in caught.value.message


def test_unreachable_server_is_retryable_and_says_where() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAICompatProvider(
        name="lm_studio",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key=None,
        label="LM Studio",
        unreachable_hint="is LM Studio running?",
    )

    with pytest.raises(ProviderError) as caught:
        provider.complete(_request(timeout=5))

    assert caught.value.retryable is True
    assert f"LM Studio unreachable at http://127.0.0.1:{port}/v1" in caught.value.message
    assert caught.value.message.endswith("is LM Studio running?")


def test_key_echoed_by_the_vendor_is_scrubbed(
    server: FakeLLMServer, provider: OpenAICompatProvider
) -> None:
    server.script("m1", [Fault.status(400, f"malformed key {KEY} in request")])

    with pytest.raises(ProviderError) as caught:
        provider.complete(_request())

    assert KEY not in caught.value.message
    assert "***" in caught.value.message
    assert KEY not in repr(provider)


def test_401_without_a_key_says_which_variable_to_set(server: FakeLLMServer) -> None:
    server.api_key = "needed"
    provider = OpenAICompatProvider(
        name="vllm", base_url=server.openai_base_url, api_key=None, key_env="VLLM_API_KEY"
    )

    with pytest.raises(ProviderError) as caught:
        provider.complete(_request())

    assert caught.value.message == "vllm requires an API key (401): set VLLM_API_KEY"


def test_check_lists_models_and_verifies_the_key_where_listing_does_not(
    server: FakeLLMServer,
) -> None:
    server.models = ["openai/gpt-4o-mini", "m1"]
    provider = OpenAICompatProvider(
        name="openrouter", base_url=server.openai_base_url, api_key=KEY, key_check_path="/key"
    )

    summary = provider.check(default_model="gone/model")

    assert summary == "2 models available (default model 'gone/model' is not among them)"
    assert [r.path for r in server.requests] == ["/v1/models", "/v1/key"]


def test_check_reports_a_rejected_key(server: FakeLLMServer) -> None:
    server.api_key = "the-right-key"
    provider = OpenAICompatProvider(
        name="openai", base_url=server.openai_base_url, api_key=KEY, key_env="OPENAI_API_KEY"
    )

    with pytest.raises(ProviderError, match="rejected the API key"):
        provider.check()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "soon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str] | None, expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_strict_mode_only_for_closed_schemas() -> None:
    assert strict_compatible(GRADE_JSON_SCHEMA)
    assert not strict_compatible({"type": "object", "properties": {"a": {"type": "string"}}})
    open_items = {
        "type": "object",
        "properties": {"xs": {"type": "array", "items": {"type": "object", "properties": {}}}},
        "required": ["xs"],
        "additionalProperties": False,
    }
    assert not strict_compatible(open_items)
