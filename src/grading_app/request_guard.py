"""One ASGI middleware in front of every route, so that each endpoint, today's and those
added later, gets the same answers to malformed requests:

- a path that exists but not for this method is a 405 whose `Allow` lists every method
  the path takes (Starlette names only the first route's), `OPTIONS` answers with that
  list, and `HEAD` works wherever `GET` does;
- text that no database column can hold (NUL, which PostgreSQL refuses, and unpaired
  surrogates, which are not Unicode at all) is a 422 naming the parameter or field, in
  the path, the query, a JSON body, a form field or an uploaded file's name;
- a request body is at most `MAX_BODY_KB`, refused with a 413 from Content-Length or
  as soon as the bytes received pass it; routes that take uploads (`own_body_limit`)
  keep their own, larger limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before included routers were kept whole
    iter_route_contexts = None  # type: ignore[assignment]
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grading_app.documents.validate import format_size

_MULTIPART = "multipart/form-data"
# Methods every path answers without a route of its own.
_IMPLIED = {"OPTIONS"}


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    if "\x00" in value:
        return "must not contain the NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds an unpaired surrogate, e.g. \\ud800)"
    return None


def invalid(field: str, kind: str, problem: str) -> str:
    """The sentence `app.validation_message` would write for the same field."""
    return f"Invalid request: {field} ({kind}): {problem}"


def json_problem(document: Any) -> str | None:
    """The first string (value or key) in a parsed JSON body that cannot be stored,
    named by its place (`settings.key`, `tags.0`) the way validation errors name it."""
    pending: list[tuple[tuple[str, ...], Any]] = [((), document)]
    while pending:  # iterative: a deeply nested body must not exhaust the stack
        place, value = pending.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                return invalid(".".join(place) or "body", "body", problem)
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                problem = text_problem(key)
                if problem:
                    where = ".".join(place) or "body"
                    return invalid(where, "body", f"a key {problem}")
                pending.append(((*place, key), item))
        elif isinstance(value, list):
            pending.extend(((*place, str(i)), item) for i, item in reversed(list(enumerate(value))))
    return None


class FormChecker:
    """Reads a multipart body as it streams past (nothing is kept) and notes the first
    form field or file name that cannot be stored."""

    def __init__(self, content_type: str) -> None:
        _, params = parse_options_header(content_type)
        self.problem: str | None = None
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._field = ""
        self._is_file = False
        boundary = params.get(b"boundary")
        self._parser = (
            MultipartParser(
                boundary,
                {
                    "on_part_begin": self._part_begin,
                    "on_header_field": self._header_field,
                    "on_header_value": self._header_value_part,
                    "on_header_end": self._header_end,
                    "on_headers_finished": self._headers_finished,
                    "on_part_data": self._part_data,
                },
            )
            if boundary
            else None
        )

    def feed(self, chunk: bytes) -> str | None:
        if self._parser is not None and self.problem is None and chunk:
            try:
                self._parser.write(chunk)
            except FormParserError:
                # Malformed multipart: Starlette's own parser says so with a 400.
                self._parser = None
        return self.problem

    def _part_begin(self) -> None:
        self._headers, self._header_name, self._header_value = {}, b"", b""

    # A header may arrive in pieces when it straddles two chunks of the body.
    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._field = options.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = b"filename" in options
        if self._is_file:
            filename = options[b"filename"].decode("utf-8", "replace")
            problem = text_problem(filename)
            if problem:
                self.problem = invalid(self._field or "file", "file name", problem)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        # A form field's bytes are decoded strictly as UTF-8 (else as Latin-1), which
        # never yields a surrogate: NUL is the one character to look for.
        if not self._is_file and b"\x00" in data[start:end]:
            self.problem = invalid(self._field or "form", "form", text_problem("\x00") or "")


class RequestGuard:
    """See the module docstring. `router` is the application's, read on each request,
    so routes added after the middleware are covered too."""

    def __init__(self, app: ASGIApp, *, router: Router, max_body_bytes: int) -> None:
        self.app = app
        self.router = router
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, path_params, allowed = self._match(scope)
        method = scope["method"]
        if route is None and allowed:
            if method == "HEAD" and "GET" in allowed:
                await self(dict(scope, method="GET"), receive, _without_body(send))
                return
            await self._refuse_method(scope, method, allowed)(scope, receive, send)
            return
        problem = _url_problem(scope, path_params)
        if problem:
            await _error(422, problem)(scope, receive, send)
            return
        content_type = Headers(scope=scope).get("content-type", "")
        if getattr(route, "own_body_limit", False) and _media(content_type) == _MULTIPART:
            # Files: streamed to the route, which counts them against its own limit.
            await self.app(scope, _checked_stream(receive, content_type), send)
            return
        too_large = self._declared_too_large(scope)
        if too_large:
            await _error(413, too_large)(scope, receive, send)
            return
        body: list[bytes] = []
        size, disconnected = 0, False
        while True:
            message = await receive()
            if message["type"] != "http.request":
                disconnected = True
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _error(413, self._too_large_message())(scope, receive, send)
                return
            body.append(chunk)
            if not message.get("more_body", False):
                break
        whole = b"".join(body)
        problem = None if disconnected else _body_problem(whole, content_type)
        if problem:
            await _error(422, problem)(scope, receive, send)
            return
        await self.app(scope, _replay(whole, receive, disconnected), send)

    def _match(self, scope: Scope) -> tuple[BaseRoute | None, dict[str, Any], set[str]]:
        """The route that will answer (the first that matches, as routing picks it), its
        path parameters, and every method the path takes when no route takes this one."""
        allowed: set[str] = set()
        for matcher, route in _candidates(self.router):
            match, child = matcher.matches(scope)
            if match is Match.FULL:
                return route, child.get("path_params", {}), set()
            if match is Match.PARTIAL:
                allowed |= set(getattr(matcher, "methods", None) or ())
        if allowed:
            allowed |= _IMPLIED | ({"HEAD"} if "GET" in allowed else set())
        return None, {}, allowed

    def _refuse_method(self, scope: Scope, method: str, allowed: set[str]) -> Response:
        listed = ", ".join(sorted(allowed))
        if method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": listed})
        response = _error(405, f"{method} is not allowed on {scope['path']}; it takes {listed}")
        response.headers["Allow"] = listed
        return response

    def _declared_too_large(self, scope: Scope) -> str | None:
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return self._too_large_message(int(declared))
        return None

    def _too_large_message(self, size: int | None = None) -> str:
        what = f"The request body is {format_size(size)}," if size else "The request body is"
        return (
            f"{what} over the {format_size(self.max_body_bytes)} this endpoint takes "
            "(MAX_BODY_KB). Documents are uploaded as multipart/form-data to the upload "
            "endpoints, which have their own limit."
        )


def _candidates(router: Router) -> Iterator[tuple[Any, BaseRoute]]:
    """(what matches a request, the route it stands for) for every route, those of
    included routers too: FastAPI 0.12x and later keep an included router whole and
    list its routes through `iter_route_contexts`."""
    if iter_route_contexts is None:
        for route in router.routes:
            yield route, route
        return
    for context in iter_route_contexts(router.routes):
        yield context, context.original_route


def _error(status: int, message: str) -> Response:
    return JSONResponse({"detail": message}, status_code=status)


def _url_problem(scope: Scope, path_params: dict[str, Any]) -> str | None:
    for name, value in path_params.items():
        problem = text_problem(value) if isinstance(value, str) else None
        if problem:
            return invalid(name, "path", problem)
    problem = text_problem(scope.get("path", ""))
    if problem:
        return invalid("URL", "path", problem)
    # Decoded as Starlette decodes it, so what is checked is what the route receives.
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if text_problem(name):
            return invalid("a parameter name", "query", text_problem(name) or "")
        problem = text_problem(value)
        if problem:
            return invalid(name, "query", problem)
    return None


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(content_type: str) -> bool:
    # FastAPI reads a body as JSON when it says so, or says nothing at all.
    media = _media(content_type)
    return not media or media == "application/json" or media.endswith("+json")


def _body_problem(body: bytes, content_type: str) -> str | None:
    if not body:
        return None
    media = _media(content_type)
    if media == _MULTIPART:
        return FormChecker(content_type).feed(body)
    if media == "application/x-www-form-urlencoded":
        for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            problem = text_problem(value)
            if problem:
                return invalid(name, "form", problem)
        return None
    if not _is_json(content_type):
        return None
    try:
        # The same call Starlette's request.json() makes, so the same strings come out.
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None  # FastAPI answers malformed JSON with its own message
    return json_problem(document)


def _replay(body: bytes, receive: Receive, disconnected: bool) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent or disconnected:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _checked_stream(receive: Receive, content_type: str) -> Receive:
    """Passes an upload's body on unchanged, checking its form fields on the way."""
    checker = FormChecker(content_type)

    async def checked() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            problem = checker.feed(message.get("body", b""))
            if problem:
                # Raised inside FastAPI's form parsing, which passes an HTTPException
                # through to its handler (anything else would become a bare 400).
                raise HTTPException(422, detail=problem)
        return message

    return checked


def _without_body(send: Send) -> Send:
    """HEAD: the GET answer's status and headers, no body."""

    async def head_only(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return head_only
