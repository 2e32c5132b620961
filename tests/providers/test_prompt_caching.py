"""Both providers send the shared prefix so that the vendor can cache it, and read the
cached tokens back, against the fake vendor over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from grading_app.grading.prompt import build_request
from grading_app.grading.schema import GRADE_JSON_SCHEMA
from grading_app.providers.anthropic_provider import (
    AnthropicProvider,
    message_params,
    message_response,
)
from grading_app.providers.base import ChatRequest
from grading_app.providers.openai_compat import OpenAICompatProvider, chat_body, chat_response
from tests.fakes import FakeLLMServer

EPHEMERAL = {"type": "ephemeral"}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        fake.cache_min_tokens = 256  # the system prompt and short instructions pass it
        yield fake


def _request(model: str, document: str) -> ChatRequest:
    return build_request(
        model=model,
        instructions="Grade the essay for argument and evidence.",
        document_text=document,
        document_name="essay.txt",
        max_tokens=500,
    )


def test_openai_reads_cached_tokens(server: FakeLLMServer) -> None:
    provider = OpenAICompatProvider(name="openai", base_url=server.openai_base_url, api_key="k")

    first = provider.complete(_request("gpt-x", "Rivers shape the land."))
    second = provider.complete(_request("gpt-x", "Engines compute numbers."))

    assert first.cached_tokens == 0 and first.cache_write_tokens is None
    assert second.cached_tokens and second.cached_tokens % 128 == 0
    assert second.prompt_tokens > second.cached_tokens  # the document is not cached


def test_openai_body_is_system_then_the_user_text_in_one_piece() -> None:
    request = _request("gpt-x", "Rivers.")

    body = chat_body(request, "json_schema")

    assert body["messages"] == [
        {"role": "system", "content": request.system},
        {"role": "user", "content": request.user_prefix + request.document_part},
    ]


def test_a_server_that_reports_no_cache_leaves_cached_tokens_unknown() -> None:
    completion = ChatCompletion.model_validate(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": "local",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "{}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }
    )

    response = chat_response(
        completion, _request("local", "x"), fmt="json_object", latency_ms=1, label="LM Studio"
    )

    assert response.prompt_tokens == 10 and response.cached_tokens is None


def test_claude_marks_the_system_prompt_and_the_shared_prefix_not_the_document() -> None:
    request = _request("claude-x", "Rivers.")

    params = message_params(request, None)

    assert params["system"] == [
        {"type": "text", "text": request.system, "cache_control": EPHEMERAL}
    ]
    assert params["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": request.user_prefix, "cache_control": EPHEMERAL},
                {"type": "text", "text": request.document_part},
            ],
        }
    ]
    assert params["tools"][0]["input_schema"] == GRADE_JSON_SCHEMA


def test_claude_without_a_shared_prefix_sends_the_text_as_it_is() -> None:
    request = ChatRequest(model="claude-x", system="You grade.", user="<document>x</document>")

    assert message_params(request, None)["messages"] == [
        {"role": "user", "content": "<document>x</document>"}
    ]


def test_claude_reads_cache_writes_and_reads(server: FakeLLMServer) -> None:
    provider = AnthropicProvider(name="claude", base_url=server.anthropic_base_url, api_key="k")

    first = provider.complete(_request("claude-x", "Rivers shape the land."))
    second = provider.complete(_request("claude-x", "Engines compute numbers."))

    assert first.cache_write_tokens and first.cached_tokens == 0
    assert second.cached_tokens == first.cache_write_tokens and second.cache_write_tokens == 0
    # Every input token counts in prompt_tokens, the cached ones included.
    assert second.prompt_tokens > second.cached_tokens


def test_claude_prompt_tokens_add_up_input_cache_reads_and_writes() -> None:
    message = Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [{"type": "text", "text": "{}"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 50,
                "output_tokens": 5,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 200,
            },
        }
    )

    response = message_response(message, _request("claude-x", "x"), latency_ms=1)

    assert (response.prompt_tokens, response.cached_tokens, response.cache_write_tokens) == (
        1250,
        1000,
        200,
    )
