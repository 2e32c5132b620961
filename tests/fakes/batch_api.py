"""The fake vendor's batch APIs, served by `FakeLLMServer` on its own port.

OpenAI (https://platform.openai.com/docs/api-reference/batch):

    POST /v1/files                   multipart/form-data upload, purpose "batch"
    GET  /v1/files/{id}              the file object
    GET  /v1/files/{id}/content      the file's bytes (input, output or error JSONL)
    DELETE /v1/files/{id}
    POST /v1/batches                 {input_file_id, endpoint, completion_window, metadata}
    GET  /v1/batches/{id}            the batch object (a status read; see below)
    POST /v1/batches/{id}/cancel
    GET  /v1/batches                 newest first, `limit` and `after`

Anthropic (https://docs.anthropic.com/en/api/creating-message-batches):

    POST /v1/messages/batches              {requests: [{custom_id, params}]}
    GET  /v1/messages/batches/{id}         the batch object (a status read)
    GET  /v1/messages/batches/{id}/results JSONL, one line per request
    POST /v1/messages/batches/{id}/cancel
    GET  /v1/messages/batches              newest first, `limit`, `after_id`, `before_id`

Every request line is answered with ``fake.answer(path, body, behaviour)``, so grades,
structured output and usage are exactly what the same live call gets. Time does not
pass in the fake: a batch moves on when its status is read. It reports in progress for
its first ``polls_until_done`` status reads (counted from its creation), then ends, and
its lines are answered at that moment (and recorded in ``server.requests`` with method
``"BATCH"``, the line's path and body, and headers ``x-batch-id`` and ``x-custom-id``).

Scripting, on ``server.batches`` (``server.reset()`` clears it):

    server.batches.polls_until_done = 2     # for batches created from now on
    server.batches.script_line("item-7", Fault.server_error())   # by custom id ...
    server.batches.script_line("m1", [Fault.status(400, "bad"), "ok"], then="ok")  # ... or model
    server.batches.expire_next(answered=3)  # the next batch answers 3 lines; the rest expire
    server.batches.refuse_next(Fault.status(400, "too many"))   # the next creation is refused
    server.batches.fail_next("the input file is malformed")     # OpenAI: next batch "failed"
    server.batches.answer_before_cancel = 1 # lines answered before a cancel takes effect
    server.batches.failing_deletes = 1      # the next file deletion fails (a 500)

A line's behaviour comes from its custom id's queue, else its model's queue (each
consumed in order, then its ``then``), else "ok"; a line's custom id or model script
never touches live calls, nor live scripts batch lines. Behaviours are those of live
calls (`Fault`): a status becomes that error on the line (OpenAI's error file, or an
Anthropic "errored" result), ``timeout`` a 504 error, ``broken_body`` an answer body
that is not a chat completion or message; delays are ignored.

A cancel is taken at once (``cancelling`` / ``canceling``) and completes at the next
status read: the first ``answer_before_cancel`` lines (in input order) are answered,
the rest come back cancelled (OpenAI: error file lines with code ``batch_cancelled``;
Anthropic: ``canceled`` results). Expired lines likewise (``batch_expired`` /
``expired``).

``server.batches.ids()`` lists the batch ids created, oldest first;
``server.batches.custom_ids(id)`` a batch's custom ids, in input order;
``server.batches.file_ids()`` the files stored (not deleted).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

from tests.fakes.llm_server import Behaviour, RecordedRequest, Reply, _behaviour, error_reply

if TYPE_CHECKING:
    from tests.fakes.llm_server import FakeLLMServer

Vendor = Literal["openai", "anthropic"]
Outcome = Literal["completed", "expired", "cancelled", "failed"]

CHAT_PATH = "/v1/chat/completions"
MESSAGES_PATH = "/v1/messages"
COMPLETION_WINDOW_SECONDS = 24 * 3600
_ANTHROPIC_CUSTOM_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_JSONL = {"Content-Type": "application/jsonl"}
_BINARY = {"Content-Type": "application/octet-stream"}


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass
class _Line:
    custom_id: str
    body: dict[str, Any]


@dataclass
class _Batch:
    id: str
    vendor: Vendor
    lines: list[_Line]
    created_at: int
    polls_left: int
    answered_limit: int | None = None  # set: only this many lines are answered (expiry)
    failure: str | None = None  # OpenAI validation failure
    metadata: dict[str, str] | None = None
    input_file_id: str | None = None
    endpoint: str = CHAT_PATH
    cancel_requested_at: int | None = None
    reads: int = 0  # status reads so far
    ending: bool = False  # a status read is answering the lines
    outcome: Outcome | None = None
    ended_at: int | None = None
    # (custom id, result) in input order, filled when the batch ends; a result is
    # ("ok", chat completion or message), ("error", status, error body), ("expired",)
    # or ("cancelled",).
    results: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def expires_at(self) -> int:
        return self.created_at + COMPLETION_WINDOW_SECONDS

    @property
    def model(self) -> str | None:
        model = self.lines[0].body.get("model") if self.lines else None
        return model if isinstance(model, str) else None


class FakeBatches:
    """The batch endpoints' state and scripting for one `FakeLLMServer`."""

    def __init__(self, fake: FakeLLMServer) -> None:
        self._fake = fake
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._files: dict[str, _File] = {}
        self._batches: dict[str, _Batch] = {}
        self._line_queues: dict[str, list[Behaviour]] = {}
        self._line_then: dict[str, Behaviour] = {}
        self._expire_next: int | None = None
        self._refuse_next: Behaviour | None = None
        self._fail_next: str | None = None
        self.polls_until_done = 0
        self.answer_before_cancel = 0
        # The next this many file deletions fail with a 500 (the file stays).
        self.failing_deletes = 0

    # scripting
    def script_line(
        self,
        key: str,
        behaviours: Behaviour | str | Iterable[Behaviour | str],
        *,
        then: Behaviour | str = "ok",
    ) -> None:
        """Behaviours for batch lines with this custom id, or else of this model."""
        if isinstance(behaviours, Behaviour | str):
            behaviours = [behaviours]
        queue = [_behaviour(b) for b in behaviours]
        with self._lock:
            self._line_queues[key] = queue
            self._line_then[key] = _behaviour(then)

    def expire_next(self, *, answered: int = 0) -> None:
        with self._lock:
            self._expire_next = answered

    def refuse_next(self, behaviour: Behaviour | str) -> None:
        with self._lock:
            self._refuse_next = _behaviour(behaviour)

    def fail_next(self, message: str) -> None:
        with self._lock:
            self._fail_next = message

    # inspection
    def file_ids(self) -> list[str]:
        with self._lock:
            return list(self._files)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._batches)

    def custom_ids(self, batch_id: str) -> list[str]:
        with self._lock:
            return [line.custom_id for line in self._batches[batch_id].lines]

    # wire
    def read_form(self, content_type: str, raw: bytes) -> dict[str, Any]:
        """A multipart/form-data body's fields (a file field as (filename, bytes))."""
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if not isinstance(name, str) or not isinstance(payload, bytes):
                continue
            filename = part.get_filename()
            fields[name] = (filename, payload) if filename else payload.decode()
        return fields

    def reply(self, method: str, path: str, query: str, body: Any) -> Reply | None:
        """The answer to a batch or file request, or None if the path is not one."""
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        parts = path.strip("/").split("/")
        if parts[:2] == ["v1", "files"]:
            return self._files_route(method, parts[2:], body)
        if parts[:2] == ["v1", "batches"]:
            return self._openai_route(method, parts[2:], params, body)
        if parts[:3] == ["v1", "messages", "batches"]:
            return self._anthropic_route(method, parts[3:], params, body)
        return None

    # --- OpenAI files -----------------------------------------------------------------

    def _files_route(self, method: str, rest: list[str], body: Any) -> Reply | None:
        if method == "POST" and not rest:
            return self._upload(body)
        if method not in ("GET", "DELETE") or not rest:
            return None
        with self._lock:
            file = self._files.get(rest[0])
            if file is not None and method == "DELETE" and not rest[1:]:
                if self.failing_deletes > 0:
                    self.failing_deletes -= 1
                    return _openai_error(500, "the file could not be deleted", "server_error")
                del self._files[file.id]
                return Reply(200, {"id": file.id, "object": "file", "deleted": True})
        if file is None:
            return _openai_error(404, f"No such File object: {rest[0]}", "invalid_request_error")
        if method != "GET":
            return None
        if rest[1:] == ["content"]:
            return Reply(200, file.content, dict(_BINARY))
        if not rest[1:]:
            return Reply(200, file.public())
        return None

    def _upload(self, body: Any) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("file"), tuple):
            return _openai_error(
                400, "expected a multipart upload with a file", "invalid_request_error"
            )
        if body.get("purpose") != "batch":
            return _openai_error(
                400, "this fake takes purpose 'batch' only", "invalid_request_error"
            )
        filename, content = body["file"]
        return Reply(200, self._store_file(filename, "batch", content).public())

    def _store_file(self, filename: str, purpose: str, content: bytes) -> _File:
        with self._lock:
            file = _File(f"file-fake{next(self._ids)}", filename, purpose, content, _now())
            self._files[file.id] = file
        return file

    # --- OpenAI batches ---------------------------------------------------------------

    def _openai_route(
        self, method: str, rest: list[str], params: dict[str, str], body: Any
    ) -> Reply | None:
        if not rest:
            if method == "POST":
                return self._openai_create(body)
            if method == "GET":
                return self._list("openai", params)
            return None
        batch = self._find(rest[0], "openai")
        if batch is None:
            return _openai_error(
                404, f"No batch found with id '{rest[0]}'.", "invalid_request_error"
            )
        if method == "GET" and not rest[1:]:
            self._read(batch)
            return Reply(200, self._openai_object(batch))
        if method == "POST" and rest[1:] == ["cancel"]:
            return self._cancel(batch)
        return None

    def _openai_create(self, body: Any) -> Reply:
        if not isinstance(body, dict):
            return _openai_error(400, "a JSON body is required", "invalid_request_error")
        refusal = self._take_refusal()
        if refusal is not None:
            return _refusal_reply("/v1/batches", refusal)
        if body.get("endpoint") != CHAT_PATH:
            return _openai_error(
                400, f"this fake batches {CHAT_PATH} only", "invalid_request_error"
            )
        if body.get("completion_window") != "24h":
            return _openai_error(400, "completion_window must be '24h'", "invalid_request_error")
        with self._lock:
            file = self._files.get(str(body.get("input_file_id")))
        if file is None or file.purpose != "batch":
            return _openai_error(
                400,
                f"input_file_id {body.get('input_file_id')!r} is not a batch file",
                "invalid_request_error",
            )
        lines, problem = _input_lines(file.content)
        batch = self._new_batch("openai", f"batch_fake{next(self._ids)}", lines)
        batch.input_file_id = file.id
        batch.metadata = body.get("metadata") or None
        with self._lock:
            failure, self._fail_next = self._fail_next, None
        batch.failure = problem or failure
        return Reply(200, self._openai_object(batch))

    def _openai_object(self, batch: _Batch) -> dict[str, Any]:
        with self._lock:
            outcome, answered = batch.outcome, len(batch.results)
            ok = sum(1 for _, r in batch.results if r[0] == "ok")
        if outcome is not None:
            status = outcome
        elif batch.cancel_requested_at:
            status = "cancelling"
        else:
            status = (
                "finalizing" if batch.ending else "in_progress" if batch.reads else "validating"
            )
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "model": batch.model,
            "errors": (
                {
                    "object": "list",
                    "data": [
                        {
                            "code": "invalid_request",
                            "message": batch.failure,
                            "param": None,
                            "line": None,
                        }
                    ],
                }
                if outcome == "failed"
                else None
            ),
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": batch.created_at,
            "in_progress_at": batch.created_at if outcome != "failed" else None,
            "expires_at": batch.expires_at,
            "finalizing_at": batch.ended_at if outcome == "completed" else None,
            "completed_at": batch.ended_at if outcome == "completed" else None,
            "failed_at": batch.ended_at if outcome == "failed" else None,
            "expired_at": batch.ended_at if outcome == "expired" else None,
            "cancelling_at": batch.cancel_requested_at,
            "cancelled_at": batch.ended_at if outcome == "cancelled" else None,
            "request_counts": {
                "total": len(batch.lines) if outcome != "failed" else 0,
                "completed": ok,
                "failed": answered - ok if outcome is not None else 0,
            },
            "metadata": batch.metadata,
        }

    # --- Anthropic message batches ----------------------------------------------------

    def _anthropic_route(
        self, method: str, rest: list[str], params: dict[str, str], body: Any
    ) -> Reply | None:
        if not rest:
            if method == "POST":
                return self._anthropic_create(body)
            if method == "GET":
                return self._list("anthropic", params)
            return None
        batch = self._find(rest[0], "anthropic")
        if batch is None:
            return error_reply(
                "/v1/messages/batches", 404, f"message batch {rest[0]} not found", "not_found_error"
            )
        if method == "GET" and not rest[1:]:
            self._read(batch)
            return Reply(200, self._anthropic_object(batch))
        if method == "GET" and rest[1:] == ["results"]:
            return self._anthropic_results(batch)
        if method == "POST" and rest[1:] == ["cancel"]:
            return self._cancel(batch)
        return None

    def _anthropic_create(self, body: Any) -> Reply:
        path = "/v1/messages/batches"
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return error_reply(
                path, 400, "requests: at least one is required", "invalid_request_error"
            )
        refusal = self._take_refusal()
        if refusal is not None:
            return _refusal_reply(path, refusal)
        lines: list[_Line] = []
        for index, request in enumerate(requests):
            custom_id = request.get("custom_id") if isinstance(request, dict) else None
            params = request.get("params") if isinstance(request, dict) else None
            if (
                not isinstance(custom_id, str)
                or not 1 <= len(custom_id) <= 64
                or not set(custom_id) <= _ANTHROPIC_CUSTOM_ID
            ):
                return error_reply(
                    path,
                    400,
                    f"requests.{index}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$",
                    "invalid_request_error",
                )
            if not isinstance(params, dict) or not {"model", "max_tokens", "messages"} <= set(
                params
            ):
                return error_reply(
                    path,
                    400,
                    f"requests.{index}.params: model, max_tokens and messages are required",
                    "invalid_request_error",
                )
            lines.append(_Line(custom_id, params))
        if len({line.custom_id for line in lines}) != len(lines):
            return error_reply(
                path, 400, "requests: custom_id values must be unique", "invalid_request_error"
            )
        batch = self._new_batch("anthropic", f"msgbatch_fake{next(self._ids)}", lines)
        return Reply(200, self._anthropic_object(batch))

    def _anthropic_object(self, batch: _Batch) -> dict[str, Any]:
        with self._lock:
            outcome = batch.outcome
            kinds = [r[0] for _, r in batch.results]
        if outcome is None:
            status = "canceling" if batch.cancel_requested_at else "in_progress"
        else:
            status = "ended"
        counts = {
            "processing": len(batch.lines) if outcome is None else 0,
            "succeeded": kinds.count("ok"),
            "errored": kinds.count("error"),
            "canceled": kinds.count("cancelled"),
            "expired": kinds.count("expired"),
        }
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "ended_at": _rfc3339(batch.ended_at),
            "created_at": _rfc3339(batch.created_at),
            "expires_at": _rfc3339(batch.expires_at),
            "archived_at": None,
            "cancel_initiated_at": _rfc3339(batch.cancel_requested_at),
            "results_url": (
                f"{self._fake.base_url}/v1/messages/batches/{batch.id}/results"
                if outcome is not None
                else None
            ),
        }

    def _anthropic_results(self, batch: _Batch) -> Reply:
        with self._lock:
            results = list(batch.results) if batch.outcome is not None else None
        if results is None:
            return error_reply(
                "/v1/messages/batches",
                400,
                f"message batch {batch.id} is still processing; results are not ready",
                "invalid_request_error",
            )
        lines = []
        for custom_id, result in results:
            if result[0] == "ok":
                entry: dict[str, Any] = {"type": "succeeded", "message": result[1]}
            elif result[0] == "error":
                error = result[2].get("error") if isinstance(result[2], dict) else None
                entry = {
                    "type": "errored",
                    "error": {
                        "type": "error",
                        "error": error,
                        "request_id": f"req_fake_{custom_id}",
                    },
                }
            else:
                entry = {"type": "canceled" if result[0] == "cancelled" else "expired"}
            lines.append({"custom_id": custom_id, "result": entry})
        return Reply(200, _jsonl(lines), dict(_JSONL))

    # --- shared ---------------------------------------------------------------------

    def _new_batch(self, vendor: Vendor, batch_id: str, lines: list[_Line]) -> _Batch:
        with self._lock:
            answered_limit, self._expire_next = self._expire_next, None
            batch = _Batch(
                id=batch_id,
                vendor=vendor,
                lines=lines,
                created_at=_now(),
                polls_left=self.polls_until_done,
                answered_limit=answered_limit,
            )
            self._batches[batch.id] = batch
        return batch

    def _find(self, batch_id: str, vendor: Vendor) -> _Batch | None:
        with self._lock:
            batch = self._batches.get(batch_id)
        return batch if batch is not None and batch.vendor == vendor else None

    def _take_refusal(self) -> Behaviour | None:
        with self._lock:
            refusal, self._refuse_next = self._refuse_next, None
        return refusal

    def _read(self, batch: _Batch) -> None:
        """A status read: the batch ends once its scripted in-progress reads are used up,
        or at once after a cancel."""
        with self._lock:
            if batch.outcome is not None or batch.ending:
                return
            batch.reads += 1
            if batch.cancel_requested_at is None and batch.polls_left > 0:
                batch.polls_left -= 1
                return
            batch.ending = True
        self._end(batch)

    def _cancel(self, batch: _Batch) -> Reply:
        with self._lock:
            outcome = batch.outcome
            if outcome is None and batch.cancel_requested_at is None:
                batch.cancel_requested_at = _now()
        if batch.vendor == "anthropic":
            # Cancelling an ended batch changes nothing; the batch is returned as it is.
            return Reply(200, self._anthropic_object(batch))
        if outcome is not None:
            return _openai_error(
                400, f"Cannot cancel a batch with status '{outcome}'.", "invalid_request_error"
            )
        return Reply(200, self._openai_object(batch))

    def _end(self, batch: _Batch) -> None:
        """Answer the batch's lines (outside the lock: answering is the vendor's work)."""
        if batch.failure is not None:
            outcome: Outcome = "failed"
            limit = 0
        elif batch.cancel_requested_at is not None:
            outcome, limit = "cancelled", self.answer_before_cancel
        elif batch.answered_limit is not None:
            outcome, limit = "expired", batch.answered_limit
        else:
            outcome, limit = "completed", len(batch.lines)
        results: list[tuple[str, tuple[Any, ...]]] = []
        if outcome != "failed":
            for index, line in enumerate(batch.lines):
                if index < limit:
                    results.append((line.custom_id, self._answer(batch, line)))
                else:
                    results.append(
                        (line.custom_id, ("cancelled" if outcome == "cancelled" else "expired",))
                    )
        output_file_id = error_file_id = None
        if batch.vendor == "openai" and outcome != "failed":
            output_file_id, error_file_id = self._openai_files(batch, results)
        with self._lock:
            batch.results = results
            batch.output_file_id, batch.error_file_id = output_file_id, error_file_id
            batch.ended_at = _now()
            batch.outcome = outcome

    def _answer(self, batch: _Batch, line: _Line) -> tuple[Any, ...]:
        path = CHAT_PATH if batch.vendor == "openai" else MESSAGES_PATH
        model = line.body.get("model")
        behaviour = self._line_behaviour(line.custom_id, model if isinstance(model, str) else None)
        self._fake._record(
            RecordedRequest(
                method="BATCH",
                path=path,
                model=model if isinstance(model, str) else None,
                headers={"x-batch-id": batch.id, "x-custom-id": line.custom_id},
                body=line.body,
                behaviour=behaviour.kind,
            )
        )
        if behaviour.kind == "timeout":
            return ("error", 504, _error_body(path, 504, "Gateway timeout", "timeout_error"))
        reply = self._fake.answer(path, line.body, behaviour)
        if reply.status != 200:
            return ("error", reply.status, reply.body)
        if isinstance(reply.body, bytes):  # a broken body: not a completion or message
            return ("ok", reply.body.decode(errors="replace"))
        return ("ok", reply.body)

    def _line_behaviour(self, custom_id: str, model: str | None) -> Behaviour:
        with self._lock:
            for key in (custom_id, model or ""):
                queue = self._line_queues.get(key)
                if queue:
                    return queue.pop(0)
                if key in self._line_then:
                    return self._line_then[key]
        return _behaviour("ok")

    def _openai_files(
        self, batch: _Batch, results: list[tuple[str, tuple[Any, ...]]]
    ) -> tuple[str | None, str | None]:
        output: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, (custom_id, result) in enumerate(results):
            line_id = f"batch_req_fake_{batch.id}_{index}"
            if result[0] == "ok":
                output.append(_openai_line(line_id, custom_id, 200, result[1]))
            elif result[0] == "error":
                errors.append(_openai_line(line_id, custom_id, result[1], result[2]))
            else:
                code = "batch_cancelled" if result[0] == "cancelled" else "batch_expired"
                message = (
                    "This request was not executed because the batch was cancelled."
                    if result[0] == "cancelled"
                    else "This request could not be executed before the completion window expired."
                )
                errors.append(
                    {
                        "id": line_id,
                        "custom_id": custom_id,
                        "response": None,
                        "error": {"code": code, "message": message},
                    }
                )
        output_id = (
            self._store_file(f"{batch.id}_output.jsonl", "batch_output", _jsonl(output)).id
            if output
            else None
        )
        error_id = (
            self._store_file(f"{batch.id}_error.jsonl", "batch_output", _jsonl(errors)).id
            if errors
            else None
        )
        return output_id, error_id

    def _list(self, vendor: Vendor, params: dict[str, str]) -> Reply:
        with self._lock:
            newest_first = [b for b in reversed(self._batches.values()) if b.vendor == vendor]
        limit = max(1, min(int(params.get("limit") or 20), 100 if vendor == "openai" else 1000))
        after = params.get("after") or params.get("after_id")
        before = params.get("before_id")
        ids = [b.id for b in newest_first]
        if after in ids:
            newest_first = newest_first[ids.index(after) + 1 :]
        elif before in ids:
            newest_first = newest_first[: ids.index(before)][-limit:]
        page = newest_first[:limit]
        has_more = len(newest_first) > len(page)
        to_object = self._openai_object if vendor == "openai" else self._anthropic_object
        data = [to_object(b) for b in page]
        body: dict[str, Any] = {
            "object": "list",
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
        return Reply(200, body)


def _input_lines(content: bytes) -> tuple[list[_Line], str | None]:
    """The input file's lines, and what is wrong with it (OpenAI fails such a batch)."""
    lines: list[_Line] = []
    seen: set[str] = set()
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            return lines, f"line {number} is not valid JSON"
        custom_id = entry.get("custom_id") if isinstance(entry, dict) else None
        if not isinstance(custom_id, str) or not custom_id:
            return lines, f"line {number}: custom_id is required"
        if custom_id in seen:
            return lines, f"line {number}: duplicate custom_id '{custom_id}'"
        if entry.get("method") != "POST" or entry.get("url") != CHAT_PATH:
            return lines, f"line {number}: method must be POST and url {CHAT_PATH}"
        if not isinstance(entry.get("body"), dict):
            return lines, f"line {number}: body must be an object"
        seen.add(custom_id)
        lines.append(_Line(custom_id, entry["body"]))
    if not lines:
        return lines, "the input file has no requests"
    return lines, None


def _openai_line(line_id: str, custom_id: str, status: int, body: Any) -> dict[str, Any]:
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": f"req_fake_{custom_id}", "body": body},
        "error": None,
    }


def _error_body(path: str, status: int, message: str, error_type: str) -> Any:
    return error_reply(path, status, message, error_type).body


def _refusal_reply(path: str, behaviour: Behaviour) -> Reply:
    return error_reply(
        path,
        behaviour.status if behaviour.kind == "status" else 500,
        behaviour.message or "the batch could not be created",
        behaviour.error_type or "api_error",
        code=behaviour.error_code,
        retry_after=behaviour.retry_after,
    )


def _openai_error(status: int, message: str, error_type: str) -> Reply:
    return error_reply("/v1/batches", status, message, error_type)


def _jsonl(entries: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(entry).encode() + b"\n" for entry in entries)


def _now() -> int:
    return int(time.time())


def _rfc3339(epoch: int | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
