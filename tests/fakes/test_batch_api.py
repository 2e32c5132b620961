"""The fake vendor's batch endpoints, spoken to with plain HTTP (listing also with the
SDKs' pagination), so their wire format is pinned apart from our clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.fakes import FakeLLMServer, Fault, expected_grade

# One client for the module: a new one per request costs tens of milliseconds.
_http = httpx.Client(timeout=10)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def _chat_line(custom_id: str, document: str, model: str = "m1") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model,
            "messages": [{"role": "user", "content": f"<document>{document}</document>"}],
        },
    }


def _jsonl(entries: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in entries)


def _lines(content: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in content.splitlines() if line.strip()]


def _openai_batch(
    server: FakeLLMServer, entries: list[dict[str, Any]], **extra: Any
) -> httpx.Response:
    upload = _http.post(
        f"{server.openai_base_url}/files",
        data={"purpose": "batch"},
        files={"file": ("in.jsonl", _jsonl(entries), "application/jsonl")},
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["purpose"] == "batch"
    body = {
        "input_file_id": upload.json()["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        **extra,
    }
    return _http.post(f"{server.openai_base_url}/batches", json=body)


def _get(server: FakeLLMServer, path: str) -> httpx.Response:
    return _http.get(f"{server.base_url}{path}")


def _message_request(custom_id: str, document: str, model: str = "c1") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": model,
            "max_tokens": 100,
            "messages": [{"role": "user", "content": f"<document>{document}</document>"}],
        },
    }


def _anthropic_batch(server: FakeLLMServer, requests: list[dict[str, Any]]) -> httpx.Response:
    return _http.post(f"{server.base_url}/v1/messages/batches", json={"requests": requests})


# --- OpenAI ------------------------------------------------------------------------


def test_openai_batch_is_in_progress_for_the_scripted_reads_then_answers_every_line(
    server: FakeLLMServer,
) -> None:
    server.batches.polls_until_done = 2
    created = _openai_batch(
        server,
        [_chat_line("a", "First essay"), _chat_line("b", "Second essay")],
        metadata={"job": "j1"},
    ).json()
    assert created["status"] == "validating"
    assert created["metadata"] == {"job": "j1"}
    assert created["request_counts"] == {"total": 2, "completed": 0, "failed": 0}

    statuses = [_get(server, f"/v1/batches/{created['id']}").json() for _ in range(3)]

    assert [s["status"] for s in statuses] == ["in_progress", "in_progress", "completed"]
    done = statuses[-1]
    assert done["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    assert done["error_file_id"] is None
    output = _lines(_get(server, f"/v1/files/{done['output_file_id']}/content").content)
    assert [line["custom_id"] for line in output] == ["a", "b"]
    first = output[0]["response"]
    assert first["status_code"] == 200 and output[0]["error"] is None
    assert first["body"]["object"] == "chat.completion"
    feedback = expected_grade("m1", "First essay")["feedback"]
    assert feedback in first["body"]["choices"][0]["message"]["content"]
    answered = [r for r in server.requests if r.method == "BATCH"]
    assert [(r.path, r.headers["x-custom-id"]) for r in answered] == [
        ("/v1/chat/completions", "a"),
        ("/v1/chat/completions", "b"),
    ]


def test_openai_lines_answer_as_live_calls_do(server: FakeLLMServer) -> None:
    line = _chat_line("a", "Same essay")
    line["body"]["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "grade", "schema": {"type": "object"}},
    }
    batch = _openai_batch(server, [line]).json()
    done = _get(server, f"/v1/batches/{batch['id']}").json()
    answer = _lines(_get(server, f"/v1/files/{done['output_file_id']}/content").content)[0]
    live = _http.post(f"{server.openai_base_url}/chat/completions", json=line["body"]).json()

    batch_body = answer["response"]["body"]
    assert batch_body["choices"] == live["choices"]
    assert batch_body["usage"] == live["usage"]


def test_openai_failed_lines_go_to_the_error_file_with_their_status(
    server: FakeLLMServer,
) -> None:
    server.batches.script_line("b", Fault.status(400, "bad request"))
    server.batches.script_line("m2", [Fault.server_error(), "ok"])
    batch = _openai_batch(
        server,
        [
            _chat_line("a", "x"),
            _chat_line("b", "y"),
            _chat_line("c", "z", model="m2"),
            _chat_line("d", "w", model="m2"),
        ],
    ).json()

    done = _get(server, f"/v1/batches/{batch['id']}").json()

    assert done["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    errors = _lines(_get(server, f"/v1/files/{done['error_file_id']}/content").content)
    assert [(e["custom_id"], e["response"]["status_code"]) for e in errors] == [
        ("b", 400),
        ("c", 500),
    ]
    assert errors[0]["response"]["body"]["error"]["message"] == "bad request"
    output = _lines(_get(server, f"/v1/files/{done['output_file_id']}/content").content)
    assert [o["custom_id"] for o in output] == ["a", "d"]


def test_batch_scripts_and_live_scripts_do_not_touch(server: FakeLLMServer) -> None:
    server.script("m1", [Fault.server_error()])
    server.batches.script_line("m1", Fault.status(404, "gone"))
    batch = _openai_batch(server, [_chat_line("a", "x")]).json()
    done = _get(server, f"/v1/batches/{batch['id']}").json()

    errors = _lines(_get(server, f"/v1/files/{done['error_file_id']}/content").content)
    assert errors[0]["response"]["status_code"] == 404
    live = _http.post(
        f"{server.openai_base_url}/chat/completions", json=_chat_line("a", "x")["body"]
    )
    assert live.status_code == 500


def test_openai_expired_batch_answers_some_and_expires_the_rest(server: FakeLLMServer) -> None:
    server.batches.expire_next(answered=1)
    batch = _openai_batch(server, [_chat_line("a", "x"), _chat_line("b", "y")]).json()

    done = _get(server, f"/v1/batches/{batch['id']}").json()

    assert done["status"] == "expired"
    assert done["expired_at"] is not None
    output = _lines(_get(server, f"/v1/files/{done['output_file_id']}/content").content)
    errors = _lines(_get(server, f"/v1/files/{done['error_file_id']}/content").content)
    assert [o["custom_id"] for o in output] == ["a"]
    assert errors == [
        {
            "id": errors[0]["id"],
            "custom_id": "b",
            "response": None,
            "error": {
                "code": "batch_expired",
                "message": "This request could not be executed before the completion "
                "window expired.",
            },
        }
    ]
    # Only the next batch expires.
    again = _openai_batch(server, [_chat_line("c", "z")]).json()
    assert _get(server, f"/v1/batches/{again['id']}").json()["status"] == "completed"


def test_openai_cancel_answers_the_scripted_lines_and_cancels_the_rest(
    server: FakeLLMServer,
) -> None:
    server.batches.polls_until_done = 5
    server.batches.answer_before_cancel = 1
    batch = _openai_batch(server, [_chat_line("a", "x"), _chat_line("b", "y")]).json()

    cancelling = _http.post(f"{server.openai_base_url}/batches/{batch['id']}/cancel").json()
    cancelled = _get(server, f"/v1/batches/{batch['id']}").json()

    assert cancelling["status"] == "cancelling"
    assert cancelling["cancelling_at"] is not None
    assert cancelled["status"] == "cancelled"
    assert cancelled["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    errors = _lines(_get(server, f"/v1/files/{cancelled['error_file_id']}/content").content)
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [("b", "batch_cancelled")]
    again = _http.post(f"{server.openai_base_url}/batches/{batch['id']}/cancel")
    assert again.status_code == 400
    assert "cancelled" in again.json()["error"]["message"]


def test_openai_batch_refused_or_failed(server: FakeLLMServer) -> None:
    server.batches.refuse_next(Fault.status(400, "Enqueued token limit reached"))
    refused = _openai_batch(server, [_chat_line("a", "x")])
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "Enqueued token limit reached"

    server.batches.fail_next("the input file is malformed")
    failed = _openai_batch(server, [_chat_line("a", "x")]).json()
    status = _get(server, f"/v1/batches/{failed['id']}").json()
    assert status["status"] == "failed"
    assert status["errors"]["data"][0]["message"] == "the input file is malformed"
    assert status["output_file_id"] is None and status["error_file_id"] is None

    duplicate = _openai_batch(server, [_chat_line("a", "x"), _chat_line("a", "y")]).json()
    status = _get(server, f"/v1/batches/{duplicate['id']}").json()
    assert status["status"] == "failed"
    assert "duplicate custom_id" in status["errors"]["data"][0]["message"]
    assert not [r for r in server.requests if r.method == "BATCH"]


def test_openai_batch_creation_checks_its_input(server: FakeLLMServer) -> None:
    wrong_window = _openai_batch(server, [_chat_line("a", "x")], completion_window="1h")
    unknown_file = _http.post(
        f"{server.openai_base_url}/batches",
        json={
            "input_file_id": "file-nope",
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    )
    assert wrong_window.status_code == 400
    assert unknown_file.status_code == 400
    assert _get(server, "/v1/batches/batch_nope").status_code == 404
    assert _get(server, "/v1/files/file-nope/content").status_code == 404


def test_openai_list_is_newest_first_and_pages_through_the_sdk(server: FakeLLMServer) -> None:
    ids = [
        _openai_batch(server, [_chat_line("a", "x")], metadata={"n": str(i)}).json()["id"]
        for i in range(5)
    ]
    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url, max_retries=0)

    first_page = client.batches.list(limit=2)
    listed = list(client.batches.list(limit=2))

    assert [b.id for b in first_page.data] == ids[::-1][:2]
    assert first_page.has_more is True
    assert [b.id for b in listed] == ids[::-1]
    assert [b.metadata for b in listed] == [{"n": str(i)} for i in reversed(range(5))]


def test_openai_files_and_batches_read_with_the_sdk(server: FakeLLMServer) -> None:
    client = openai.OpenAI(api_key="k", base_url=server.openai_base_url, max_retries=0)
    upload = client.files.create(file=("in.jsonl", _jsonl([_chat_line("a", "x")])), purpose="batch")
    batch = client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    done = client.batches.retrieve(batch.id)
    output = client.files.retrieve(done.output_file_id or "")

    assert client.files.retrieve(upload.id).bytes == len(_jsonl([_chat_line("a", "x")]))
    assert done.status == "completed" and done.request_counts is not None
    assert done.request_counts.completed == 1
    assert output.purpose == "batch_output"
    assert _lines(client.files.content(output.id).content)[0]["custom_id"] == "a"


# --- Anthropic ---------------------------------------------------------------------


def test_anthropic_batch_ends_after_the_scripted_reads_with_results_for_every_request(
    server: FakeLLMServer,
) -> None:
    server.batches.polls_until_done = 1
    server.batches.script_line("b", Fault.overloaded())
    created = _anthropic_batch(
        server, [_message_request("a", "First"), _message_request("b", "Second")]
    ).json()
    assert created["processing_status"] == "in_progress"
    assert created["results_url"] is None
    early = _get(server, f"/v1/messages/batches/{created['id']}/results")
    assert early.status_code == 400

    statuses = [_get(server, f"/v1/messages/batches/{created['id']}").json() for _ in range(2)]

    assert [s["processing_status"] for s in statuses] == ["in_progress", "ended"]
    ended = statuses[-1]
    assert ended["request_counts"] == {
        "processing": 0,
        "succeeded": 1,
        "errored": 1,
        "canceled": 0,
        "expired": 0,
    }
    assert ended["ended_at"] and ended["expires_at"] > ended["created_at"]
    results = _lines(_http.get(ended["results_url"]).content)
    assert results[0]["custom_id"] == "a"
    assert results[0]["result"]["type"] == "succeeded"
    assert results[0]["result"]["message"]["type"] == "message"
    assert results[1] == {
        "custom_id": "b",
        "result": {
            "type": "errored",
            "error": {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
                "request_id": results[1]["result"]["error"]["request_id"],
            },
        },
    }


def test_anthropic_cancel_and_expiry(server: FakeLLMServer) -> None:
    server.batches.polls_until_done = 3
    server.batches.answer_before_cancel = 1
    batch = _anthropic_batch(server, [_message_request("a", "x"), _message_request("b", "y")])
    batch_id = batch.json()["id"]

    canceling = _http.post(f"{server.base_url}/v1/messages/batches/{batch_id}/cancel").json()
    ended = _get(server, f"/v1/messages/batches/{batch_id}").json()

    assert canceling["processing_status"] == "canceling"
    assert canceling["cancel_initiated_at"] is not None
    assert ended["processing_status"] == "ended"
    kinds = [r["result"]["type"] for r in _lines(_http.get(ended["results_url"]).content)]
    assert kinds == ["succeeded", "canceled"]

    server.batches.polls_until_done = 0
    server.batches.expire_next(answered=0)
    expiring = _anthropic_batch(server, [_message_request("c", "z")]).json()
    ended = _get(server, f"/v1/messages/batches/{expiring['id']}").json()
    assert ended["request_counts"]["expired"] == 1
    kinds = [r["result"]["type"] for r in _lines(_http.get(ended["results_url"]).content)]
    assert kinds == ["expired"]


def test_anthropic_batch_creation_checks_its_requests(server: FakeLLMServer) -> None:
    bad_id = _anthropic_batch(server, [_message_request("not ok!", "x")])
    duplicate = _anthropic_batch(server, [_message_request("a", "x"), _message_request("a", "y")])
    no_params = _anthropic_batch(server, [{"custom_id": "a", "params": {"model": "c1"}}])
    server.batches.refuse_next(Fault.rate_limit(retry_after=3))
    refused = _anthropic_batch(server, [_message_request("a", "x")])

    assert [r.status_code for r in (bad_id, duplicate, no_params, refused)] == [
        400,
        400,
        400,
        429,
    ]
    assert bad_id.json()["type"] == "error"
    assert refused.headers["retry-after"] == "3"
    assert server.batches.ids() == []


def test_anthropic_list_pages_through_the_sdk(server: FakeLLMServer) -> None:
    ids = [_anthropic_batch(server, [_message_request("a", "x")]).json()["id"] for _ in range(3)]
    client = anthropic.Anthropic(api_key="k", base_url=server.anthropic_base_url, max_retries=0)

    listed = list(client.messages.batches.list(limit=2))

    assert [b.id for b in listed] == ids[::-1]
    assert server.batches.custom_ids(ids[0]) == ["a"]
