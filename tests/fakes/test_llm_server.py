"""The fake vendor itself, spoken to with plain HTTP (no SDK), so its wire format is
pinned independently of the providers that use it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from grading_app.grading.schema import GRADE_JSON_SCHEMA
from tests.fakes import FakeLLMServer, Fault, document_of, expected_grade
from tests.processing.helpers import wait_for


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def _chat(server: FakeLLMServer, model: str = "m1", user: str = "<document>Hi</document>", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": user}], **extra}
    return httpx.post(f"{server.openai_base_url}/chat/completions", json=body, timeout=10)


def _content(response: httpx.Response) -> str:
    return response.json()["choices"][0]["message"]["content"]


def _schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "grade", "schema": schema}}


def test_grade_is_a_function_of_model_and_document(server: FakeLLMServer) -> None:
    fmt = _schema_format(GRADE_JSON_SCHEMA)
    first = json.loads(
        _content(_chat(server, user="<document>An essay</document>", response_format=fmt))
    )
    again = json.loads(
        _content(
            _chat(server, user="Other words <document>An essay</document>", response_format=fmt)
        )
    )
    other_model = json.loads(
        _content(
            _chat(server, model="m2", user="<document>An essay</document>", response_format=fmt)
        )
    )

    assert first == again == expected_grade("m1", "An essay")
    assert other_model == expected_grade("m2", "An essay")
    assert first != other_model
    assert first["overall_score"] == sum(c["score"] for c in first["criteria"])
    assert all(c["score"] <= c["max_score"] for c in first["criteria"])


def test_document_is_taken_from_the_document_tags_or_the_whole_message() -> None:
    assert (
        document_of('Grade this:\n<document name="a.txt">\nBody text\n</document>') == "Body text"
    )
    assert document_of("no tags at all") == "no tags at all"


def test_schema_required_names_are_produced_exactly(server: FakeLLMServer) -> None:
    schema = {
        "type": "object",
        "properties": {"overall_score": {"type": "number"}, "verdict": {"type": "string"}},
        "required": ["overall_score", "verdict"],
    }
    answer = json.loads(_content(_chat(server, response_format=_schema_format(schema))))

    assert set(answer) == {"overall_score", "verdict"}
    assert answer["overall_score"] == expected_grade("m1", "Hi")["overall_score"]


def test_without_structured_output_the_json_is_fenced_in_prose(server: FakeLLMServer) -> None:
    text = _content(_chat(server))

    assert not text.lstrip().startswith("{")
    fenced = text.split("```json", 1)[1].split("```", 1)[0]
    assert json.loads(fenced) == expected_grade("m1", "Hi")


def test_usage_is_reported(server: FakeLLMServer) -> None:
    usage = _chat(server).json()["usage"]

    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_anthropic_tool_use_answers_with_the_grade_as_input(server: FakeLLMServer) -> None:
    body = {
        "model": "claude-x",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "<document>Essay</document>"}],
        "tools": [{"name": "grade", "input_schema": GRADE_JSON_SCHEMA}],
        "tool_choice": {"type": "tool", "name": "grade"},
    }
    answer = httpx.post(f"{server.anthropic_base_url}/v1/messages", json=body).json()

    block = answer["content"][0]
    assert block["type"] == "tool_use" and block["name"] == "grade"
    assert block["input"] == expected_grade("claude-x", "Essay")
    assert answer["stop_reason"] == "tool_use"
    assert answer["usage"]["input_tokens"] > 0 and answer["usage"]["output_tokens"] > 0


def test_script_is_consumed_in_order_per_model_then_the_default(server: FakeLLMServer) -> None:
    server.script(
        "m1",
        [Fault.rate_limit(retry_after=3), Fault.server_error(), Fault.status(402, "no credit")],
        then=Fault.overloaded(),
    )

    statuses = [_chat(server).status_code for _ in range(5)]
    limited = server.requests[0]

    assert statuses == [429, 500, 402, 529, 529]
    assert _chat(server, model="m2").status_code == 200  # other models are untouched
    assert [r.behaviour for r in server.requests][:3] == ["status", "status", "status"]
    assert server.count("m1") == 5 and server.count("m2") == 1
    assert limited.model == "m1"


def test_rate_limit_carries_retry_after_in_seconds_or_as_a_date(server: FakeLLMServer) -> None:
    server.script("m1", [Fault.rate_limit(retry_after=2), Fault.rate_limit(5, http_date=True)])

    seconds, dated = _chat(server), _chat(server)

    assert seconds.headers["retry-after"] == "2"
    assert dated.headers["retry-after"].endswith("GMT")
    assert seconds.json()["error"]["type"] == "rate_limit_error"


def test_error_bodies_follow_each_vendor_shape(server: FakeLLMServer) -> None:
    server.script("m1", [Fault.status(404, "model not found")])
    server.script("c1", [Fault.status(401, "invalid x-api-key")])

    openai_error = _chat(server).json()
    anthropic_error = httpx.post(
        f"{server.anthropic_base_url}/v1/messages",
        json={"model": "c1", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    ).json()

    assert openai_error["error"]["message"] == "model not found"
    assert anthropic_error == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }


def test_malformed_and_non_json_answers(server: FakeLLMServer) -> None:
    server.script("m1", ["malformed_json", "non_json_text", Fault.content("just this")])
    fmt = {"type": "json_object"}

    malformed = _content(_chat(server, response_format=fmt))
    prose = _content(_chat(server, response_format=fmt))
    fixed = _content(_chat(server, response_format=fmt))

    with pytest.raises(ValueError):
        json.loads(malformed)
    assert "{" not in prose
    assert fixed == "just this"


def test_broken_body_is_not_json(server: FakeLLMServer) -> None:
    server.script("m1", [Fault.broken_body()])
    with pytest.raises(ValueError):
        _chat(server).json()


def test_structured_output_modes(server: FakeLLMServer) -> None:
    fmt = _schema_format(GRADE_JSON_SCHEMA)

    server.structured_output = "json_object_only"
    rejected = _chat(server, response_format=fmt)
    accepted = _chat(server, response_format={"type": "json_object"})
    server.structured_output = "ignore"
    ignored = _chat(server, response_format=fmt)

    assert rejected.status_code == 400 and "response_format" in rejected.json()["error"]["message"]
    assert json.loads(_content(accepted)) == expected_grade("m1", "Hi")
    assert "```json" in _content(ignored)


def test_api_key_is_checked_when_set(server: FakeLLMServer) -> None:
    server.api_key = "sk-right"

    wrong = httpx.post(
        f"{server.openai_base_url}/chat/completions",
        json={"model": "m1", "messages": []},
        headers={"Authorization": "Bearer sk-wrong"},
    )
    right = httpx.get(f"{server.openai_base_url}/models", headers={"x-api-key": "sk-right"})

    assert wrong.status_code == 401
    assert right.status_code == 200
    assert server.requests[0].headers["authorization"] == "Bearer sk-wrong"


def test_unknown_models_get_404_when_known_models_is_set(server: FakeLLMServer) -> None:
    server.known_models = {"m1"}
    assert _chat(server, model="m1").status_code == 200
    assert _chat(server, model="nope").status_code == 404


def test_model_list(server: FakeLLMServer) -> None:
    server.models = ["a", "b"]
    listed = httpx.get(f"{server.openai_base_url}/models").json()
    assert [m["id"] for m in listed["data"]] == ["a", "b"]


def test_timeout_outlasts_the_client_and_stop_is_fast() -> None:
    server = FakeLLMServer().start()
    server.script("m1", [Fault.timeout(30)])
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{server.openai_base_url}/chat/completions",
                json={"model": "m1", "messages": []},
                timeout=0.3,
            )
    finally:
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 2


def test_handles_64_concurrent_connections(server: FakeLLMServer) -> None:
    # Every request waits at the gate until all 64 are in, however slowly the threads
    # start on a busy machine; then they are answered together.
    server.gate = threading.Event()
    results: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        body = {"model": "m1", "messages": [{"role": "user", "content": "Hi"}]}
        response = httpx.post(f"{server.openai_base_url}/chat/completions", json=body, timeout=120)
        with lock:
            results.append(response.status_code)

    threads = [threading.Thread(target=call) for _ in range(64)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: server.in_flight == 64, "64 requests in flight at once")
    finally:
        server.gate.set()
    for thread in threads:
        thread.join(timeout=60)

    assert results == [200] * 64
    assert server.max_in_flight == 64


def test_reset_clears_scripts_and_records(server: FakeLLMServer) -> None:
    server.script("m1", ["server_error"])
    server.latency = 0.5
    server.reset()

    assert _chat(server).status_code == 200
    assert server.count() == 1 and server.latency == 0


def test_unknown_behaviour_name_is_refused(server: FakeLLMServer) -> None:
    with pytest.raises(ValueError, match="unknown behaviour"):
        server.script("m1", ["explode"])
