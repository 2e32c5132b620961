"""Every OpenAI-compatible endpoint (OpenAI, OpenRouter, LM Studio, Ollama, vLLM) through
the official `openai` SDK, and the translation of vendor failures into ProviderError.

The SDK's own retries are off (`max_retries=0`): the processing pipeline retries with
backoff and honours Retry-After, and two retry loops would multiply the calls.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import Any, Literal

import openai
from openai.types.chat import ChatCompletion

from grading_app.providers.base import ChatRequest, ChatResponse, ProviderError

ResponseFormat = Literal["json_schema", "json_object", "plain"]
_FORMATS: tuple[ResponseFormat, ...] = ("json_schema", "json_object", "plain")

# A 400 whose text names one of these is a server that does not support the structured
# output mode we asked for (LM Studio, older vLLM and Ollama builds say so this way).
_FORMAT_REJECTED = re.compile(r"response_format|json_schema|json_object|structured", re.I)
# Anthropic reports an empty balance as a 400 ("Your credit balance is too low"),
# OpenAI as a 429 with code insufficient_quota, OpenRouter as a 402.
_NO_CREDIT = re.compile(r"credit|insufficient.quota|billing", re.I)
_NO_CREDIT_CODES = {"insufficient_quota", "billing_error", "insufficient_credits"}
_DETAIL_LIMIT = 300


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an
    HTTP date, RFC 9110 §10.2.3)."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class VendorErrors:
    """Turns HTTP failures into ProviderErrors whose message names the cause for a
    person, and never contains the API key."""

    label: str  # how a person knows the vendor: "OpenRouter", "LM Studio"
    base_url: str
    key_env: str | None = None  # the variable that holds the key, for the message
    api_key: str | None = None  # only to scrub it out of vendor text
    unreachable_hint: str | None = None  # "is LM Studio running?"

    def scrub(self, text: str) -> str:
        if self.api_key and len(self.api_key) >= 4:
            text = text.replace(self.api_key, "***")
        return text

    def status(
        self,
        status: int,
        *,
        model: str,
        body: object,
        headers: Mapping[str, str] | None,
    ) -> ProviderError:
        detail, code = _detail(body)
        detail = self.scrub(detail)[:_DETAIL_LIMIT]
        suffix = f": {detail}" if detail else ""
        retry_after = parse_retry_after(headers)

        def fail(message: str) -> ProviderError:
            return ProviderError(message, retryable=False, status_code=status)

        def retry(message: str) -> ProviderError:
            if retry_after is not None:
                message += f"; retry after {retry_after:g}s"
            return ProviderError(
                message, retryable=True, retry_after=retry_after, status_code=status
            )

        if (
            status == 402
            or code in _NO_CREDIT_CODES
            or (status in (400, 403) and _NO_CREDIT.search(detail))
        ):
            return fail(
                f"out of credit at {self.label} ({status}): add credit to the account{suffix}"
            )
        if status == 401:
            if self.api_key:
                where = f": check {self.key_env}" if self.key_env else ""
                return fail(f"{self.label} rejected the API key (401){where}")
            where = f": set {self.key_env}" if self.key_env else ""
            return fail(f"{self.label} requires an API key (401){where}")
        if status == 403:
            return fail(f"{self.label} refused access to model '{model}' (403){suffix}")
        if status == 404:
            return fail(
                f"model '{model}' not found at {self.label} ({self.base_url}) (404): check the "
                f"model name and the base URL{_tail(detail)}"
            )
        if status == 429:
            return retry(f"{self.label} rate limit reached for model '{model}' (429)")
        if status == 529 or code == "overloaded_error":
            return retry(f"{self.label} is overloaded ({status})")
        if status >= 500:
            return retry(f"{self.label} server error ({status}) for model '{model}'{suffix}")
        if status in (408, 409):  # request timeout, lock conflict: transient by definition
            return retry(f"{self.label} answered {status} for model '{model}'{suffix}")
        return fail(f"{self.label} rejected the request for model '{model}' ({status}){suffix}")

    def timeout(self, *, model: str, seconds: float) -> ProviderError:
        return ProviderError(
            f"{self.label} did not answer within {seconds:g}s (model '{model}')", retryable=True
        )

    def unreachable(self, cause: BaseException | None) -> ProviderError:
        reason = self.scrub(str(cause)) if cause is not None else ""
        message = f"{self.label} unreachable at {self.base_url}"
        if reason:
            message += f" ({reason[:_DETAIL_LIMIT]})"
        if self.unreachable_hint:
            message += f" — {self.unreachable_hint}"
        return ProviderError(message, retryable=True)

    def unreadable(self, *, model: str, cause: BaseException) -> ProviderError:
        # A half-written or non-JSON body is a vendor hiccup (a proxy error page, a cut
        # connection), not a property of our request, so it is worth another try.
        return ProviderError(
            f"{self.label} sent a response that could not be read for model '{model}': "
            f"{self.scrub(str(cause))[:_DETAIL_LIMIT]}",
            retryable=True,
        )

    @contextmanager
    def from_sdk(self, sdk: ModuleType, *, model: str, seconds: float) -> Iterator[None]:
        """A live call's SDK failures as ProviderErrors. `sdk` is the `openai` or the
        `anthropic` module: both name their exceptions alike."""
        try:
            yield
        except sdk.APIStatusError as exc:
            raise self.status(
                exc.status_code, model=model, body=exc.body, headers=exc.response.headers
            ) from exc
        except sdk.APITimeoutError as exc:  # before APIConnectionError: it is one
            raise self.timeout(model=model, seconds=seconds) from exc
        except sdk.APIConnectionError as exc:
            raise self.unreachable(exc.__cause__ or exc) from exc
        except (sdk.APIResponseValidationError, ValueError) as exc:
            raise self.unreadable(model=model, cause=exc) from exc


def _detail(body: object) -> tuple[str, str | None]:
    """The vendor's human message and its error code/type, from either error shape."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            message = inner.get("message")
            code = inner.get("code") or inner.get("type")
            return (
                str(message) if message else json.dumps(inner, default=str),
                str(code) if code else None,
            )
        if isinstance(inner, str):
            return inner, None
    if isinstance(body, str):
        return body, None
    return "", None


def _tail(detail: str) -> str:
    return f" ({detail})" if detail else ""


def strict_compatible(schema: Mapping[str, Any]) -> bool:
    """Whether OpenAI's strict mode accepts the schema: every object closed and all of its
    properties required (https://platform.openai.com/docs/guides/structured-outputs)."""
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required") or []) != set(properties):
            return False
        if not all(strict_compatible(p) for p in properties.values() if isinstance(p, Mapping)):
            return False
    items = schema.get("items")
    return not (isinstance(items, Mapping) and not strict_compatible(items))


class _FormatRejected(Exception):
    """The server refused the response_format we sent; try the next one."""


class OpenAICompatProvider:
    """One OpenAI-compatible endpoint. Thread-safe: the worker's threads share it."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: str | None,
        label: str | None = None,
        key_env: str | None = None,
        unreachable_hint: str | None = None,
        key_check_path: str | None = None,
        batch_api: bool = False,
    ) -> None:
        self.name = name
        self.base_url = base_url
        # Whether the endpoint has OpenAI's Batch API (providers/batch_api.py).
        self.batch_api = batch_api
        self.errors = VendorErrors(
            label=label or name,
            base_url=base_url,
            key_env=key_env,
            api_key=api_key,
            unreachable_hint=unreachable_hint,
        )
        self.key_check_path = key_check_path
        self._client = openai.OpenAI(
            # Local servers need no key, but the SDK insists on one; an explicit value
            # also keeps it from picking up OPENAI_API_KEY for a non-OpenAI endpoint.
            api_key=api_key or "not-needed",
            base_url=base_url,
            max_retries=0,
        )
        # The most structured mode each model's server accepted, so the fallback costs
        # one rejected request per model, not one per call.
        self._formats: dict[str, ResponseFormat] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAICompatProvider(name={self.name!r}, base_url={self.base_url!r})"

    @property
    def client(self) -> openai.OpenAI:
        """The SDK client (retries off), shared with the batch API."""
        return self._client

    def response_format_for(self, model: str) -> ResponseFormat:
        with self._lock:
            return self._formats.get(model, "json_schema")

    def complete(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        fmt: ResponseFormat = (
            self.response_format_for(request.model) if request.json_schema else "plain"
        )
        while True:
            try:
                completion = self._create(request, fmt)
                break
            except _FormatRejected:
                fmt = _FORMATS[_FORMATS.index(fmt) + 1]
                with self._lock:
                    self._formats[request.model] = fmt
        latency_ms = int((time.perf_counter() - started) * 1000)
        return chat_response(
            completion, request, fmt=fmt, latency_ms=latency_ms, label=self.errors.label
        )

    def _create(self, request: ChatRequest, fmt: ResponseFormat) -> Any:
        body = chat_body(request, fmt)
        with self.errors.from_sdk(openai, model=request.model, seconds=request.timeout_seconds):
            try:
                # The SDK's own request path, minus `chat.completions.create`'s recursive
                # transform of typed parameters: it walked the whole JSON schema on every
                # call (about a third of a grading's CPU time), and this body is plain
                # JSON already. Errors, timeouts and parsing stay the SDK's.
                return self._client.post(
                    "/chat/completions",
                    body=body,
                    cast_to=ChatCompletion,
                    options={"timeout": request.timeout_seconds},
                )
            except openai.APIStatusError as exc:
                if (
                    fmt != "plain"
                    and exc.status_code in (400, 422)
                    and _FORMAT_REJECTED.search(_detail(exc.body)[0] or str(exc.message))
                ):
                    raise _FormatRejected from exc
                raise

    def check(self, *, default_model: str | None = None, timeout: float = 10.0) -> str:
        """A real, tiny call: list the models (and check the key where listing does not).
        Returns a one-line summary; raises ProviderError with the reason."""
        model = default_model or "(model list)"
        client = self._client.with_options(timeout=timeout)
        with self.errors.from_sdk(openai, model=model, seconds=timeout):
            models = [m.id for m in client.models.list()]
            if self.key_check_path:
                # OpenRouter lists models without authentication; its key endpoint does not.
                client.get(self.key_check_path, cast_to=object)
        return models_summary(models, default_model)


def chat_body(request: ChatRequest, fmt: ResponseFormat) -> dict[str, Any]:
    """The chat-completions request body: sent as it is, or as one line of a batch.

    System first, then the user message whose shared prefix precedes the document:
    OpenAI caches a repeated prompt prefix of 1024 tokens or more by itself
    (https://platform.openai.com/docs/guides/prompt-caching), so the order is all it
    takes."""
    kwargs: dict[str, Any] = {}
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if request.max_tokens is not None:
        kwargs["max_tokens"] = request.max_tokens
    if fmt == "json_schema" and request.json_schema is not None:
        kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": request.schema_name,
                "schema": request.json_schema,
                "strict": strict_compatible(request.json_schema),
            },
        }
    elif fmt == "json_object":
        kwargs["response_format"] = {"type": "json_object"}
    return {
        "model": request.model,
        "messages": [
            {"role": "system", "content": request.system},
            {"role": "user", "content": request.user},
        ],
        **kwargs,
    }


def chat_response(
    completion: ChatCompletion,
    request: ChatRequest,
    *,
    fmt: ResponseFormat,
    latency_ms: int,
    label: str,
) -> ChatResponse:
    """What a chat completion said (live, or one result of a batch); ProviderError when
    it holds no answer or a refusal."""
    if not completion.choices:
        raise ProviderError(
            f"{label} returned no answer for model '{request.model}'", retryable=True
        )
    choice = completion.choices[0]
    message = choice.message
    refusal = getattr(message, "refusal", None)
    if not message.content and refusal:
        raise ProviderError(
            f"model '{request.model}' refused to grade: {refusal[:_DETAIL_LIMIT]}",
            retryable=False,
        )
    text = message.content or ""
    usage = completion.usage
    return ChatResponse(
        text=text,
        model=completion.model or request.model,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        latency_ms=latency_ms,
        cached_tokens=_cached_tokens(usage),
        # A server that silently ignores response_format answers prose: then the
        # mechanism was not in effect, whatever we sent.
        structured=fmt != "plain" and _is_json(text),
        extra={"response_format": fmt, "finish_reason": choice.finish_reason},
    )


def _cached_tokens(usage: Any) -> int | None:
    """Input tokens read from the prompt cache (part of prompt_tokens); None from a
    server that does not say (OpenRouter's and local servers' answers often do not).
    OpenAI writes to its cache at no charge and reports no write count."""
    details = getattr(usage, "prompt_tokens_details", None)
    return getattr(details, "cached_tokens", None)


def models_summary(models: list[str], default_model: str | None) -> str:
    summary = f"{len(models)} model{'s' if len(models) != 1 else ''} available"
    if default_model and models and default_model not in models:
        summary += f" (default model '{default_model}' is not among them)"
    return summary


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
