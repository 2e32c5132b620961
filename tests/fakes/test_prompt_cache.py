"""The fake vendor counts tokens like a tokenizer and reports prompt caching as OpenAI
and Anthropic do, spoken to with plain HTTP (no SDK)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import FakeLLMServer

SYSTEM = "You grade essays. " * 100  # 1800 characters: 450 tokens
INSTRUCTIONS = "Grade the essay for argument and evidence. " * 60  # 2580 characters: 645
PREFIX = SYSTEM + INSTRUCTIONS  # 1095 tokens, more than the vendors' minimum of 1024


def _document(text: str) -> str:
    return f'<document name="a.txt">\n{text}\n</document>'


def _chat(server: FakeLLMServer, document: str, *, model: str = "m1") -> dict[str, Any]:
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": INSTRUCTIONS + _document(document)},
        ],
    }
    response = httpx.post(f"{server.openai_base_url}/chat/completions", json=body, timeout=10)
    response.raise_for_status()
    return response.json()["usage"]


def _message(
    server: FakeLLMServer, document: str, *, mark_system: bool = True, mark_user: bool = True
) -> dict[str, Any]:
    mark = {"cache_control": {"type": "ephemeral"}}
    body = {
        "model": "claude-x",
        "max_tokens": 100,
        "system": [{"type": "text", "text": SYSTEM, **(mark if mark_system else {})}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": INSTRUCTIONS, **(mark if mark_user else {})},
                    {"type": "text", "text": _document(document)},
                ],
            }
        ],
    }
    response = httpx.post(f"{server.anthropic_base_url}/v1/messages", json=body, timeout=10)
    response.raise_for_status()
    return response.json()["usage"]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def test_tokens_are_about_four_characters() -> None:
    from tests.fakes.llm_server import _tokens

    assert _tokens("") == 1
    assert _tokens("abcd") == 1 and _tokens("abcde") == 2
    assert _tokens("x" * 4000) == 1000


def test_openai_reports_a_repeated_prefix_as_cached_in_steps_of_128(server) -> None:
    first = _chat(server, "The first essay.")
    second = _chat(server, "Another essay, longer than the first one.")
    other_model = _chat(server, "The first essay.", model="m2")

    prefix_tokens = math.ceil(len(PREFIX) / 4)
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    assert second["prompt_tokens_details"]["cached_tokens"] == prefix_tokens // 128 * 128 == 1024
    assert second["prompt_tokens"] == math.ceil(
        len(PREFIX + _document("Another essay, longer than the first one.")) / 4
    )
    assert other_model["prompt_tokens_details"]["cached_tokens"] == 0  # caches are per model


def test_openai_caches_no_prefix_below_the_minimum(server) -> None:
    server.cache_min_tokens = 2000
    _chat(server, "One.")

    assert _chat(server, "Two.")["prompt_tokens_details"]["cached_tokens"] == 0


def test_anthropic_writes_the_marked_prefix_then_reads_it(server) -> None:
    first = _message(server, "The first essay.")
    second = _message(server, "The second essay.")

    prefix_tokens = math.ceil(len(PREFIX) / 4)
    rest = math.ceil(len(_document("The second essay.")) / 4)
    assert (first["cache_creation_input_tokens"], first["cache_read_input_tokens"]) == (
        prefix_tokens,
        0,
    )
    assert (second["cache_creation_input_tokens"], second["cache_read_input_tokens"]) == (
        0,
        prefix_tokens,
    )
    assert second["input_tokens"] == rest  # Anthropic counts the cached part apart


def test_anthropic_reads_the_longest_marked_prefix_it_has_seen(server) -> None:
    server.cache_min_tokens = 400  # the system prompt alone (450 tokens) is cacheable
    _message(server, "An essay.", mark_user=False)  # only the system prompt is cached
    usage = _message(server, "An essay.")

    system_tokens = math.ceil(len(SYSTEM) / 4)
    assert usage["cache_read_input_tokens"] == system_tokens
    assert usage["cache_creation_input_tokens"] == math.ceil(len(PREFIX) / 4) - system_tokens


def test_anthropic_without_marks_caches_nothing(server) -> None:
    _message(server, "One.", mark_system=False, mark_user=False)
    usage = _message(server, "One.", mark_system=False, mark_user=False)

    assert usage["cache_creation_input_tokens"] == usage["cache_read_input_tokens"] == 0
    assert usage["input_tokens"] == math.ceil(len(PREFIX + _document("One.")) / 4)


def test_reset_empties_the_cache(server) -> None:
    _chat(server, "One.")
    _message(server, "One.")
    server.reset()

    assert _chat(server, "Two.")["prompt_tokens_details"]["cached_tokens"] == 0
    assert _message(server, "Two.")["cache_read_input_tokens"] == 0
