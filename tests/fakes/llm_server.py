"""A fake LLM vendor: a real HTTP server on 127.0.0.1 speaking two wire formats.

Only the vendor is faked; clients talk to it over real HTTP with the official SDKs.

Endpoints
    POST /v1/chat/completions   OpenAI chat completions (``response_format`` json_schema /
                                json_object, ``usage``)
    POST /v1/messages           Anthropic messages (``tools`` + ``tool_choice`` answer with a
                                ``tool_use`` block whose ``input`` is the grade; ``usage``)
    GET  /v1/models             model list, readable by both SDKs
    GET  /v1/key                key check (OpenRouter has one; the CLI's check uses it)
    /v1/files, /v1/batches      OpenAI Files and Batch API, and Anthropic Message Batches
    /v1/messages/batches        (tests/fakes/batch_api.py; scripted on ``server.batches``)

Use::

    with FakeLLMServer() as server:
        server.openai_base_url      # "http://127.0.0.1:PORT/v1"  (OpenAI SDK base_url)
        server.anthropic_base_url   # "http://127.0.0.1:PORT"     (Anthropic SDK base_url)

Scripting (all of it may be changed while the server runs; it is thread-safe)::

    server.latency = 0.3            # seconds added to every request
    server.gate = threading.Event() # if set, every request waits (in flight) until it is
                                    # set; server.in_flight says how many wait
    server.api_key = "sk-test"      # if set, other keys (Bearer or x-api-key) get a 401
    server.recording = False        # keep no requests (long benchmark runs)
    server.models = ["m1", "m2"]    # what GET /v1/models lists; see also known_models
    server.known_models = {"m1"}    # if set, other models get a 404 "model not found"
    server.structured_output = "full"   # how response_format / tools are treated:
        # "full"             honour json_schema, json_object and tools
        # "ignore"           ignore them, answer prose with a ```json block (like some
        #                    local servers)
        # "json_object_only" 400 for json_schema (message names response_format),
        #                    honour json_object
        # "reject"           400 for any response_format or tools
    server.script("m1", [
        Fault.rate_limit(retry_after=1),         # 429 with Retry-After: 1
        Fault.rate_limit(retry_after=2, http_date=True),   # Retry-After as an HTTP date
        Fault.server_error(),                    # 500 (Fault.server_error(503) etc.)
        Fault.overloaded(),                      # 529 overloaded_error
        Fault.timeout(),                         # no answer for 30 s (Fault.timeout(5.0))
        Fault.malformed_json(),                  # 200, the answer is truncated JSON
        Fault.non_json_text(),                   # 200, the answer is prose without JSON
        Fault.invalid_grade(),                   # 200, valid JSON, score above its maximum
        Fault.content("any text"),               # 200, exactly this answer text
        Fault.broken_body(),                     # 200, the HTTP body itself is not JSON
        Fault.status(401, "invalid api key"),    # any status with a vendor-style error body
        Fault.status(404, "model not found"),
        Fault.status(402, "insufficient credit"),
        Fault.insufficient_quota(),              # OpenAI's 429 with code insufficient_quota
        Fault.ok(delay=0.5),                     # a normal answer, after a delay
    ], then="ok")

Each model's queue is consumed in order, one behaviour per request; then the model's
``then`` behaviour (default ``"ok"``) answers every later request. A behaviour may be
given as a ``Behaviour`` or as the name of a no-argument one ("ok", "timeout",
"server_error", ...). ``server.reset()`` clears scripts, requests and options.

Grades are deterministic: ``expected_grade(model, document)`` is what an "ok" answer
contains, where the document is the text inside ``<document ...>...</document>`` in the
user message (the whole user message if there is no such tag). When the request's JSON
schema (response_format json_schema, or the forced tool's input_schema) lists required
property names, exactly those are produced. When it names a marking scheme's criteria
(grading/rubric.py lists them in the criteria's description as ``"name" out of N``, and
the total in ``max_score``'s enum), an "ok" answer scores exactly those, as a model
following the schema would; ``expected_grade(model, document, rubric=...)`` is that
answer. Without structured output the JSON comes
inside a fenced ```json block with prose around it.

Usage and prompt caching, as the vendors report them. Tokens are counted like a real
tokenizer counts English, about four characters a token (``ceil(len(text) / 4)``, at
least one for a whole prompt or answer), over the message texts (system included; not
the schema or tools). A prompt prefix of at least ``server.cache_min_tokens`` (default
1024, the vendors' minimum) is cached per model the first time it is answered:

- OpenAI: the prefix is the system message and the user text up to ``<document``;
  seen before, ``usage.prompt_tokens_details.cached_tokens`` is its token count rounded
  down to a multiple of 128 (else 0); ``prompt_tokens`` counts every input token.
- Anthropic: the prefix is every system and message block up to and including the last
  one marked ``cache_control``. The longest marked prefix seen before is read
  (``cache_read_input_tokens``), the rest up to the last mark is written
  (``cache_creation_input_tokens``), and ``input_tokens`` counts only what follows.

``server.reset()`` empties the cache.

Recording: ``server.requests`` is a list of ``RecordedRequest`` (method, path, model,
headers with lower-case names, parsed body, behaviour used); ``server.count("m1")``
counts requests for a model (``server.count()`` all of them, ``path=`` narrows it);
``server.max_in_flight`` is the most requests handled at once.

Batch APIs (tests/fakes/batch_api.py has the details): a batch's lines are answered by
the same code as live calls when the batch ends, and recorded with method ``"BATCH"``
(so ``server.count("m1")`` counts them too). Time does not pass; status reads move a
batch on. Scripted on ``server.batches``::

    server.batches.polls_until_done = 2          # in progress for 2 status reads, then ends
    server.batches.script_line("item-7", Fault.server_error())   # a line, by custom id
    server.batches.script_line("m1", ["rate_limit", "ok"])       # or by model
    server.batches.expire_next(answered=3)       # 3 lines answered, the rest expire
    server.batches.refuse_next(Fault.status(400, "too many"))    # creation refused
    server.batches.fail_next("malformed input")  # OpenAI: the next batch ends "failed"
    server.batches.answer_before_cancel = 1      # lines answered before a cancel lands
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

StructuredMode = Literal["full", "ignore", "json_object_only", "reject"]

CRITERIA = ("Content", "Structure", "Clarity")
CRITERION_MAX = 10
_DOCUMENT = re.compile(r"<document[^>]*>\n?(.*?)\n?</document>", re.DOTALL)


# --- behaviours --------------------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """One scripted answer. Build them with the `Fault` constructors."""

    kind: str
    status: int = 200
    message: str = ""
    error_type: str | None = None
    error_code: str | None = None
    retry_after: float | None = None
    http_date: bool = False
    delay: float = 0.0
    text: str | None = None


class Fault:
    """Constructors for scripted behaviours (see the module docstring)."""

    @staticmethod
    def ok(*, delay: float = 0.0) -> Behaviour:
        return Behaviour("ok", delay=delay)

    @staticmethod
    def rate_limit(retry_after: float | None = 1, *, http_date: bool = False) -> Behaviour:
        return Behaviour(
            "status",
            status=429,
            message="Rate limit reached, please slow down",
            error_type="rate_limit_error",
            error_code="rate_limit_exceeded",
            retry_after=retry_after,
            http_date=http_date,
        )

    @staticmethod
    def server_error(status: int = 500, *, retry_after: float | None = None) -> Behaviour:
        return Behaviour(
            "status",
            status=status,
            message="The server had an error while processing your request",
            error_type="api_error",
            retry_after=retry_after,
        )

    @staticmethod
    def overloaded() -> Behaviour:
        return Behaviour("status", status=529, message="Overloaded", error_type="overloaded_error")

    @staticmethod
    def timeout(seconds: float = 30.0) -> Behaviour:
        # Longer than any test's client timeout; the wait ends early when the server stops.
        return Behaviour("timeout", delay=seconds)

    @staticmethod
    def malformed_json() -> Behaviour:
        return Behaviour("malformed_json")

    @staticmethod
    def non_json_text() -> Behaviour:
        return Behaviour("non_json_text")

    @staticmethod
    def invalid_grade() -> Behaviour:
        return Behaviour("invalid_grade")

    @staticmethod
    def content(text: str) -> Behaviour:
        return Behaviour("content", text=text)

    @staticmethod
    def broken_body() -> Behaviour:
        return Behaviour("broken_body")

    @staticmethod
    def status(
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> Behaviour:
        return Behaviour(
            "status",
            status=status,
            message=message,
            error_type=error_type or _ERROR_TYPES.get(status, "api_error"),
            error_code=code,
            retry_after=retry_after,
        )

    @staticmethod
    def insufficient_quota() -> Behaviour:
        # OpenAI reports exhausted credit as a 429 with this code, not as a 402.
        return Behaviour(
            "status",
            status=429,
            message="You exceeded your current quota, please check your plan and billing details.",
            error_type="insufficient_quota",
            error_code="insufficient_quota",
        )


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}

_NAMED: dict[str, Behaviour] = {
    "ok": Fault.ok(),
    "rate_limit": Fault.rate_limit(),
    "server_error": Fault.server_error(),
    "overloaded": Fault.overloaded(),
    "timeout": Fault.timeout(),
    "malformed_json": Fault.malformed_json(),
    "non_json_text": Fault.non_json_text(),
    "invalid_grade": Fault.invalid_grade(),
    "broken_body": Fault.broken_body(),
    "insufficient_quota": Fault.insufficient_quota(),
}


def _behaviour(value: Behaviour | str) -> Behaviour:
    if isinstance(value, Behaviour):
        return value
    try:
        return _NAMED[value]
    except KeyError:
        raise ValueError(f"unknown behaviour {value!r}; known: {sorted(_NAMED)}") from None


# --- deterministic grades ----------------------------------------------------------


def document_of(user_text: str) -> str:
    """The graded document inside a user message, as the fake sees it."""
    match = _DOCUMENT.search(user_text)
    return match.group(1) if match else user_text


@dataclass(frozen=True)
class SchemaRubric:
    """The criteria (name, maximum) and total a request's schema asks a grade to score."""

    criteria: tuple[tuple[str, float], ...]
    total: float


_RUBRIC_ENTRY = re.compile(r'("(?:[^"\\]|\\.)*") out of (\d+(?:\.\d+)?)')


def rubric_of(schema: dict[str, Any] | None) -> SchemaRubric | None:
    """The rubric a grade schema names, if it names one."""
    properties = (schema or {}).get("properties") or {}
    description = (properties.get("criteria") or {}).get("description") or ""
    criteria = tuple(
        (json.loads(name), float(points)) for name, points in _RUBRIC_ENTRY.findall(description)
    )
    if not criteria:
        return None
    totals = (properties.get("max_score") or {}).get("enum") or []
    total = float(totals[0]) if totals else sum(points for _, points in criteria)
    return SchemaRubric(criteria, total)


def expected_grade(
    model: str, document: str, *, rubric: SchemaRubric | None = None
) -> dict[str, Any]:
    """The grade an "ok" answer carries for this model and document."""
    digest = hashlib.sha256(f"{model}\0{document}".encode()).digest()
    scored = rubric.criteria if rubric else tuple((name, CRITERION_MAX) for name in CRITERIA)
    criteria = [
        {
            "name": name,
            "score": digest[i % len(digest)] % (int(maximum) + 1),
            "max_score": maximum,
            "justification": _justification(name, model, digest[(i + 1) % len(digest)]),
            "evidence": _quotes(document, i),
        }
        for i, (name, maximum) in enumerate(scored)
    ]
    points = sum(c["score"] for c in criteria)
    maximum = float(sum(m for _, m in scored))
    total = rubric.total if rubric else maximum
    words = len(document.split())
    return {
        "overall_score": points if total == maximum else round(points * total / maximum, 2),
        "max_score": total if rubric else CRITERION_MAX * len(criteria),
        "criteria": criteria,
        "feedback": _feedback(words, model, [name for name, _ in scored]),
    }


# As long as a real model's answer (its length is what an answer costs): a justification
# of two sentences, feedback of four, around a hundred words.
_JUDGEMENTS = ("secure", "uneven", "clear", "developing", "strong", "limited")


def _justification(criterion: str, model: str, seed: int) -> str:
    judgement = _JUDGEMENTS[seed % len(_JUDGEMENTS)]
    return (
        f"{criterion} is {judgement} across the document, which meets most of what the "
        f"marking scheme asks at this level, though not consistently in every paragraph. "
        f"The strongest passages show it plainly, while others state points without "
        f"developing them, so the mark sits within the level rather than at its top "
        f"(judged by {model})."
    )


def _feedback(words: int, model: str, criteria: list[str]) -> str:
    first, last = criteria[0].lower(), criteria[-1].lower()
    return (
        f"This is a considered piece of {words} words with a clear sense of purpose. Your "
        f"{first} is the strongest part of the work: keep building each paragraph around "
        f"one point and show how it answers the question. To improve, give more attention "
        f"to {last}, and support every claim with a specific example or figure rather than "
        f"a general statement. Next time, plan the conclusion before you start so the "
        f"argument builds towards it (graded by {model})."
    )


def _quotes(document: str, index: int) -> list[str]:
    """A verbatim quote from the document as a criterion's evidence (six words from a
    place that differs per criterion); a document that asks for it gets an invented
    quote as well, which the evidence check must flag."""
    words = document.split()
    if not words:
        return []
    start = (index * 7) % max(len(words) - 6, 1)
    quotes = [" ".join(words[start : start + 6])]
    if "INVENT-A-QUOTE" in document:
        quotes.append("a sentence that appears nowhere in the essay")
    return quotes


def _shaped(grade: dict[str, Any], schema: dict[str, Any] | None) -> dict[str, Any]:
    """Exactly the schema's required properties, when it lists any."""
    if not schema or not isinstance(schema.get("required"), list):
        return grade
    properties = schema.get("properties") or {}
    return {
        name: grade[name] if name in grade else _placeholder(properties.get(name) or {})
        for name in schema["required"]
    }


def _placeholder(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return {
        "string": "fake",
        "number": 1,
        "integer": 1,
        "boolean": True,
        "array": [],
        "object": {},
    }.get(kind or "")


def _fenced(payload: dict[str, Any]) -> str:
    return (
        "Here is my assessment of the document.\n\n```json\n"
        + json.dumps(payload, indent=2)
        + "\n```\n\nI hope this helps."
    )


def _tokens(text: str) -> int:
    """A whole prompt's or answer's tokens: about four characters each."""
    return max(1, _part_tokens(text))


def _part_tokens(text: str) -> int:
    """A part of a prompt's tokens (an empty part has none)."""
    return math.ceil(len(text) / 4)


# --- recording ---------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    model: str | None
    headers: dict[str, str]
    body: Any
    behaviour: str
    at: float = field(default_factory=time.time)


# --- the server --------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    # Many graders connect at once; the default backlog of 5 would refuse connections.
    request_queue_size = 256
    daemon_threads = True
    block_on_close = False
    fake: FakeLLMServer


class FakeLLMServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None
        self.host, self.port = self._httpd.server_address[:2]  # type: ignore[misc]
        self._reset_state()

    def _reset_state(self) -> None:
        self.latency: float = 0.0
        self.api_key: str | None = None
        self.models: list[str] = ["fake-small", "fake-large"]
        self.known_models: set[str] | None = None
        # Models that refuse sampling settings, as newer Claude models do: a request
        # with a temperature gets a 400.
        self.no_temperature_models: set[str] = set()
        self.structured_output: StructuredMode = "full"
        # The shortest prompt prefix the vendors cache (OpenAI: 1024 tokens; Claude
        # 1024 or 2048 by model); tests lower it to cache short prompts.
        self.cache_min_tokens = 1024
        self._cached_prefixes: set[str] = set()
        # Off for long runs (benchmarks), which would otherwise keep every body.
        self.recording = True
        self._queues: dict[str, list[Behaviour]] = {}
        self._then: dict[str, Behaviour] = {}
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self.gate: threading.Event | None = None
        from tests.fakes.batch_api import FakeBatches  # it builds on this module

        self.batches = FakeBatches(self)

    # lifecycle
    def start(self) -> FakeLLMServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-llm-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes every sleeping timeout/latency at once
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        # The Anthropic SDK appends /v1/messages itself.
        return self.base_url

    # scripting
    def script(
        self, model: str, behaviours: Iterable[Behaviour | str], *, then: Behaviour | str = "ok"
    ) -> None:
        queue = [_behaviour(b) for b in behaviours]
        with self._lock:
            self._queues[model] = queue
            self._then[model] = _behaviour(then)

    def reset(self) -> None:
        with self._lock:
            self._reset_state()

    def next_behaviour(self, model: str | None) -> Behaviour:
        with self._lock:
            queue = self._queues.get(model or "")
            if queue:
                return queue.pop(0)
            return self._then.get(model or "", _NAMED["ok"])

    def cache(self, model: str, prefix: str) -> bool:
        """Put a prompt prefix in this model's cache; whether it was there already."""
        key = hashlib.sha256(f"{model}\0{prefix}".encode()).hexdigest()
        with self._lock:
            seen = key in self._cached_prefixes
            self._cached_prefixes.add(key)
            return seen

    def answer(self, path: str, body: Any, behaviour: Behaviour) -> Reply:
        """What a completion request gets (see `completion_reply`)."""
        return completion_reply(self, path, body, behaviour)

    # recording

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, model: str | None = None, *, path: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if (model is None or r.model == model) and (path is None or r.path == path)
        )

    def _record(self, request: RecordedRequest) -> None:
        if not self.recording:
            return
        with self._lock:
            self._requests.append(request)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def wait_at_gate(self) -> bool:
        """Hold the request until the gate opens or the server stops; True if stopping."""
        gate = self.gate
        while gate is not None and not gate.wait(0.05):
            if self._stopping.is_set():
                return True
        return self._stopping.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops first; True if it is stopping."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle's algorithm on, the body waits
    # for the client's delayed ACK (~40 ms on Linux), which no real vendor adds.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    @property
    def fake(self) -> FakeLLMServer:
        return self.server.fake

    # dispatch
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self._serve(path, body=None)

    do_DELETE = do_GET  # deleting a file (batch_api.py)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):  # a file upload
            self._serve(path, body=self.fake.batches.read_form(content_type, raw))
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._error(path, 400, "request body is not JSON", "invalid_request_error")
            return
        self._serve(path, body=body)

    def _serve(self, path: str, body: Any) -> None:
        fake = self.fake
        fake._enter()
        try:
            model = body.get("model") if isinstance(body, dict) else None
            is_completion = path in ("/v1/chat/completions", "/v1/messages")
            behaviour = fake.next_behaviour(model) if is_completion else Fault.ok()
            fake._record(
                RecordedRequest(
                    method=self.command,
                    path=path,
                    model=model,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    behaviour=behaviour.kind,
                )
            )
            if fake.wait_at_gate() or fake.sleep(fake.latency):
                self.close_connection = True  # shutting down: drop the request
                return
            if not self._authorised():
                self._error(path, 401, "Incorrect API key provided", "authentication_error")
            elif path == "/v1/models" and self.command == "GET":
                self._models()
            elif path == "/v1/key" and self.command == "GET":
                self._json(200, {"data": {"label": "fake key", "usage": 0}})
            elif is_completion and self.command == "POST":
                self._complete(path, body, behaviour)
            elif reply := fake.batches.reply(self.command, path, urlsplit(self.path).query, body):
                self._reply(reply)
            else:
                self._error(path, 404, f"no route {self.command} {path}", "not_found_error")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout); nothing to answer
        finally:
            fake._leave()

    def _authorised(self) -> bool:
        expected = self.fake.api_key
        if expected is None:
            return True
        bearer = self.headers.get("Authorization", "")
        return bearer == f"Bearer {expected}" or self.headers.get("x-api-key") == expected

    # answers
    def _models(self) -> None:
        # One shape both SDKs read: OpenAI's list fields plus Anthropic's paging fields.
        models = list(self.fake.models)
        data = [
            {
                "id": m,
                "object": "model",
                "created": 1_700_000_000,
                "owned_by": "fake",
                "type": "model",
                "display_name": m,
                "created_at": "2024-01-01T00:00:00Z",
            }
            for m in models
        ]
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "has_more": False,
                "first_id": models[0] if models else None,
                "last_id": models[-1] if models else None,
            },
        )

    def _complete(self, path: str, body: Any, behaviour: Behaviour) -> None:
        fake = self.fake
        if behaviour.kind == "timeout":
            fake.sleep(behaviour.delay)
            self.close_connection = True  # never answer: the client's timeout fires first
            return
        if fake.sleep(behaviour.delay):
            self.close_connection = True
            return
        self._reply(fake.answer(path, body, behaviour))

    # wire helpers
    def _error(
        self,
        path: str,
        status: int,
        message: str,
        error_type: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        http_date: bool = False,
    ) -> None:
        self._reply(
            error_reply(
                path,
                status,
                message,
                error_type,
                code=code,
                retry_after=retry_after,
                http_date=http_date,
            )
        )

    def _reply(self, reply: Reply) -> None:
        headers = dict(reply.headers)
        content_type = headers.pop("Content-Type", "application/json")
        if isinstance(reply.body, bytes):
            self._send(reply.status, reply.body, content_type, headers)
        else:
            self._json(reply.status, reply.body, headers)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


# --- answers (pure: what the server replies to one request body) ---------------------


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # JSON-able, or bytes sent as they are (a broken body)
    headers: dict[str, str] = field(default_factory=dict)


def error_reply(
    path: str,
    status: int,
    message: str,
    error_type: str,
    *,
    code: str | None = None,
    retry_after: float | None = None,
    http_date: bool = False,
) -> Reply:
    """A vendor-style error: Anthropic's shape on its paths, OpenAI's elsewhere."""
    if path.startswith("/v1/messages"):
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": error_type, "message": message},
        }
    else:
        body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = (
            formatdate(time.time() + retry_after, usegmt=True) if http_date else f"{retry_after:g}"
        )
    return Reply(status, body, headers)


def completion_reply(fake: FakeLLMServer, path: str, body: Any, behaviour: Behaviour) -> Reply:
    """The reply to one chat completion (OpenAI) or message (Anthropic) request body,
    for `behaviour`; timeouts and delays are the caller's (they need a connection)."""
    anthropic = path == "/v1/messages"
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return error_reply(path, 400, "model is required", "invalid_request_error")
    model: str = body["model"]
    if fake.known_models is not None and model not in fake.known_models:
        return error_reply(
            path,
            404,
            f"The model `{model}` does not exist",
            "not_found_error",
            code="model_not_found",
        )
    if model in fake.no_temperature_models and "temperature" in body:
        return error_reply(
            path,
            400,
            f"temperature is deprecated for model {model}; omit it",
            "invalid_request_error",
        )
    if behaviour.kind == "status":
        return error_reply(
            path,
            behaviour.status,
            behaviour.message,
            behaviour.error_type or "api_error",
            code=behaviour.error_code,
            retry_after=behaviour.retry_after,
            http_date=behaviour.http_date,
        )
    if behaviour.kind == "broken_body":
        return Reply(200, b'{"id": "broken", "choices": [')
    structure = _structure(fake.structured_output, body, anthropic)
    if isinstance(structure, str):
        return error_reply(path, 400, structure, "invalid_request_error")
    mode, schema, tool_name = structure
    user = user_text(body)
    grade = _shaped(expected_grade(model, document_of(user), rubric=rubric_of(schema)), schema)
    answer: str | dict[str, Any]
    if behaviour.kind == "malformed_json":
        whole = json.dumps(grade)
        answer = whole[: max(1, len(whole) // 2)]
    elif behaviour.kind == "non_json_text":
        answer = "I read the document carefully. It is well organised but needs more evidence."
    elif behaviour.kind == "invalid_grade":
        answer = json.dumps(dict(grade, overall_score=grade.get("max_score", 10) * 2))
    elif behaviour.kind == "content":
        answer = behaviour.text or ""
    elif mode == "tool":
        answer = grade  # a dict: becomes the tool_use input
    elif mode == "json":
        answer = json.dumps(grade)
    else:
        answer = _fenced(grade)
    if anthropic:
        usage = _anthropic_usage(fake, model, body)
        return Reply(200, _anthropic_message(model, answer, tool_name, usage))
    return Reply(200, _openai_completion(model, answer, _openai_usage(fake, model, body)))


def _openai_usage(fake: FakeLLMServer, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """prompt_tokens and prompt_tokens_details.cached_tokens for a chat completion."""
    text = "".join(_text(m.get("content")) for m in body.get("messages", []))
    user = user_text(body)
    # Where the document starts, found as document_of finds it: in the user message
    # (the system prompt may well mention the tag).
    match = _DOCUMENT.search(user)
    prefix = text[: text.rindex(user) + match.start()] if match and user else text
    prefix_tokens = _part_tokens(prefix)
    cached = 0
    if prefix_tokens >= fake.cache_min_tokens and fake.cache(model, prefix):
        cached = prefix_tokens // 128 * 128  # OpenAI caches in steps of 128 tokens
    return {
        "prompt_tokens": _tokens(text),
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
    }


def _anthropic_usage(fake: FakeLLMServer, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """input_tokens and the cache's read and written tokens for a message."""
    blocks = [*_blocks(body.get("system"))]
    for message in body.get("messages", []):
        blocks += _blocks(message.get("content"))
    texts = [text for text, _ in blocks]
    marks = [index + 1 for index, (_, marked) in enumerate(blocks) if marked]
    read = written = 0
    cached_end = 0  # blocks[:cached_end] are read from or written to the cache
    if marks and _part_tokens("".join(texts[: marks[-1]])) >= fake.cache_min_tokens:
        cached_end = marks[-1]
        for end in reversed(marks):  # the longest prefix seen before is read
            prefix = "".join(texts[:end])
            if _part_tokens(prefix) >= fake.cache_min_tokens and fake.cache(model, prefix):
                read = _part_tokens(prefix)
                break
        for end in marks:
            fake.cache(model, "".join(texts[:end]))
        written = _part_tokens("".join(texts[:cached_end])) - read
    rest = "".join(texts[cached_end:])
    return {
        "input_tokens": _part_tokens(rest) if cached_end else _tokens(rest),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
    }


def _blocks(content: Any) -> list[tuple[str, bool]]:
    """(text, marked with cache_control) for a string or a list of content blocks."""
    if isinstance(content, list):
        return [
            (str(b.get("text", "")), bool(b.get("cache_control")))
            for b in content
            if isinstance(b, dict)
        ]
    return [(str(content), False)] if content else []


def _text(content: Any) -> str:
    return "".join(text for text, _ in _blocks(content))


def _structure(
    setting: StructuredMode, body: dict[str, Any], anthropic: bool
) -> tuple[str, dict[str, Any] | None, str | None] | str:
    """("json"|"tool"|"text", schema, tool name), or an error message for a 400."""
    if anthropic:
        tools = body.get("tools") or []
        if not tools or setting == "ignore":
            return ("text", None, None)
        if setting == "reject":
            return "tools are not supported by this server"
        choice = body.get("tool_choice") or {}
        wanted = choice.get("name") if choice.get("type") == "tool" else None
        tool = next((t for t in tools if t.get("name") == wanted), tools[0])
        return ("tool", tool.get("input_schema"), tool.get("name"))
    response_format = body.get("response_format")
    if not response_format or setting == "ignore":
        return ("text", None, None)
    kind = response_format.get("type")
    if setting == "reject" and kind != "text":
        return f"response_format type '{kind}' is not supported"
    if kind == "json_schema":
        if setting == "json_object_only":
            return "response_format.type 'json_schema' is not supported; use 'json_object'"
        return ("json", (response_format.get("json_schema") or {}).get("schema"), None)
    if kind == "json_object":
        return ("json", None, None)
    return ("text", None, None)


def user_text(body: dict[str, Any]) -> str:
    """The last user message's text (content blocks joined)."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    if not users:
        return ""
    # Content blocks are parts of one text (a cached prefix, then the document).
    return _text(users[-1].get("content", ""))


def _openai_completion(model: str, answer: str | dict[str, Any], usage: dict[str, Any]) -> Any:
    text = answer if isinstance(answer, str) else json.dumps(answer)
    completion_tokens = _tokens(text)
    prompt_tokens = usage["prompt_tokens"]
    return {
        "id": f"chatcmpl-fake-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            **usage,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _anthropic_message(
    model: str, answer: str | dict[str, Any], tool_name: str | None, usage: dict[str, Any]
) -> Any:
    if isinstance(answer, dict):
        content: list[dict[str, Any]] = [
            {
                "type": "tool_use",
                "id": f"toolu_fake_{time.monotonic_ns()}",
                "name": tool_name or "grade",
                "input": answer,
            }
        ]
        stop_reason = "tool_use"
        output_tokens = _tokens(json.dumps(answer))
    else:
        content = [{"type": "text", "text": answer}]
        stop_reason = "end_turn"
        output_tokens = _tokens(answer)
    return {
        "id": f"msg_fake_{time.monotonic_ns()}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": output_tokens},
    }


# --- standalone -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Serve the fake vendor in a process of its own (benchmarks, manual tries):

        python -c "from tests.fakes.llm_server import main; main()" [--latency SECONDS]

    Prints one line, ``listening on http://127.0.0.1:PORT``, then serves until SIGTERM
    or Ctrl-C. A process of its own keeps the vendor's work off the grader's GIL.
    """
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    options = parser.parse_args(argv)
    server = FakeLLMServer(port=options.port)
    server.latency = options.latency
    server.recording = False
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with server:
        print(f"listening on {server.base_url}", flush=True)
        with suppress(KeyboardInterrupt):
            stopped.wait()


if __name__ == "__main__":
    main()
