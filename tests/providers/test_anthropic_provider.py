"""The Anthropic provider against the fake vendor's messages API, over real HTTP."""

from __future__ import annotations

import json

import pytest

from grading_app.grading.parse import parse_grade
from grading_app.grading.schema import GRADE_JSON_SCHEMA
from grading_app.providers.anthropic_provider import DEFAULT_MAX_TOKENS, AnthropicProvider
from grading_app.providers.base import ChatRequest, ProviderError
from tests.fakes import Behaviour, FakeLLMServer, Fault, expected_grade
from tests.providers.conftest import failed_once

KEY = "sk-ant-api03-secret-987654"
DOCUMENT = "An essay about rivers."


@pytest.fixture
def provider(server: FakeLLMServer) -> AnthropicProvider:
    return AnthropicProvider(
        name="claude",
        base_url=server.anthropic_base_url,
        api_key=KEY,
        label="Anthropic",
        key_env="ANTHROPIC_API_KEY",
    )


def _sent_key(headers: dict[str, str]) -> str | None:
    # Older SDKs send x-api-key, newer ones a bearer token; the vendor accepts both.
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


def _request(
    *,
    schema: bool = True,
    timeout: float = 10.0,
    max_tokens: int | None = None,
    temperature: float | None = None,
):
    return ChatRequest(
        model="claude-test",
        temperature=temperature,
        system="You grade.",
        user=f"Grade it.\n<document>\n{DOCUMENT}\n</document>",
        json_schema=GRADE_JSON_SCHEMA if schema else None,
        max_tokens=max_tokens,
        timeout_seconds=timeout,
    )


def test_structured_output_is_a_forced_tool_call(
    server: FakeLLMServer, provider: AnthropicProvider
) -> None:
    response = provider.complete(_request())

    sent = server.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.body["tools"][0]["name"] == "grade"
    assert sent.body["tools"][0]["input_schema"] == GRADE_JSON_SCHEMA
    assert sent.body["tool_choice"] == {"type": "tool", "name": "grade"}
    assert sent.body["system"] == [
        {"type": "text", "text": "You grade.", "cache_control": {"type": "ephemeral"}}
    ]
    assert sent.body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert _sent_key(sent.headers) == KEY
    assert json.loads(response.text) == expected_grade("claude-test", DOCUMENT)
    assert response.structured is True
    assert response.prompt_tokens and response.completion_tokens
    assert response.extra["stop_reason"] == "tool_use"


def test_without_a_tool_call_the_text_is_kept(
    server: FakeLLMServer, provider: AnthropicProvider
) -> None:
    server.structured_output = "ignore"

    response = provider.complete(_request(max_tokens=300))

    assert server.requests[-1].body["max_tokens"] == 300
    assert response.structured is False
    assert (
        parse_grade(response.text).overall_score
        == (expected_grade("claude-test", DOCUMENT)["overall_score"])
    )


def test_temperature_reaches_the_vendor(server: FakeLLMServer, provider: AnthropicProvider) -> None:
    # The SDK no longer takes temperature as an argument; it must still be sent.
    provider.complete(_request(temperature=0.2))

    assert server.requests[-1].body["temperature"] == 0.2


def test_no_temperature_is_sent_when_none_is_set(
    server: FakeLLMServer, provider: AnthropicProvider
) -> None:
    provider.complete(_request())

    assert "temperature" not in server.requests[-1].body


def test_a_model_that_refuses_temperature_is_graded_without_it(
    server: FakeLLMServer, provider: AnthropicProvider
) -> None:
    server.no_temperature_models = {"claude-test"}

    response = provider.complete(_request(temperature=0.2))

    assert parse_grade(response.text).overall_score >= 0
    first, second = server.requests
    assert first.body["temperature"] == 0.2 and "temperature" not in second.body
    # Not asked with a temperature again: one call per grade from then on.
    provider.complete(_request(temperature=0.2))
    assert len(server.requests) == 3 and "temperature" not in server.requests[-1].body


def test_other_bad_requests_are_not_repeated(
    server: FakeLLMServer, provider: AnthropicProvider
) -> None:
    server.script(
        "claude-test", [Fault.status(400, "messages: text content blocks must be non-empty")]
    )

    with pytest.raises(ProviderError, match="rejected the request"):
        provider.complete(_request(temperature=0.2))
    assert len(server.requests) == 1


def test_without_schema_no_tools_are_sent(
    server: FakeLLMServer, provider: AnthropicProvider
) -> None:
    response = provider.complete(_request(schema=False))

    assert "tools" not in server.requests[-1].body
    assert "```json" in response.text


@pytest.mark.parametrize(
    ("behaviour", "status", "retryable", "fragment"),
    [
        (Fault.server_error(), 500, True, "Anthropic server error (500)"),
        (Fault.overloaded(), 529, True, "Anthropic is overloaded (529)"),
        (
            Fault.status(401, "invalid x-api-key"),
            401,
            False,
            "Anthropic rejected the API key (401): check ANTHROPIC_API_KEY",
        ),
        (Fault.status(404, "model: claude-test"), 404, False, "model 'claude-test' not found"),
        (Fault.status(402, "payment required"), 402, False, "out of credit at Anthropic (402)"),
        (
            # How Anthropic really reports an empty balance: a 400.
            Fault.status(400, "Your credit balance is too low to access the Anthropic API."),
            400,
            False,
            "out of credit at Anthropic (400)",
        ),
    ],
)
def test_status_errors_map_to_provider_errors(
    server: FakeLLMServer,
    provider: AnthropicProvider,
    behaviour: Behaviour,
    status: int,
    retryable: bool,
    fragment: str,
) -> None:
    server.script("claude-test", [behaviour])

    error = failed_once(server, "claude-test", lambda: provider.complete(_request()))

    assert error.status_code == status
    assert error.retryable is retryable
    assert fragment in error.message
    assert KEY not in error.message


def test_rate_limit_carries_retry_after(server: FakeLLMServer, provider: AnthropicProvider) -> None:
    server.script("claude-test", [Fault.rate_limit(retry_after=4)])

    error = failed_once(server, "claude-test", lambda: provider.complete(_request()))

    assert error.retryable is True
    assert error.retry_after == 4


def test_timeout_is_retryable(server: FakeLLMServer, provider: AnthropicProvider) -> None:
    server.script("claude-test", [Fault.timeout()])

    error = failed_once(server, "claude-test", lambda: provider.complete(_request(timeout=0.5)))

    assert error.retryable is True
    assert "did not answer within 0.5s" in error.message


def test_malformed_json_arrives_as_text_for_the_parser_to_judge(
    server: FakeLLMServer, provider: AnthropicProvider
) -> None:
    server.script("claude-test", [Fault.malformed_json()])

    response = provider.complete(_request())

    assert response.structured is False
    with pytest.raises(ValueError):
        json.loads(response.text)


def test_check_lists_models(server: FakeLLMServer, provider: AnthropicProvider) -> None:
    server.models = ["claude-test"]
    assert provider.check(default_model="claude-test") == "1 model available"
    assert _sent_key(server.requests[-1].headers) == KEY
