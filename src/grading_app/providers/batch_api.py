"""Vendor batch APIs: OpenAI's Batch API and Anthropic's Message Batches, which answer
within 24 hours at half the price of live calls.

- OpenAI: https://platform.openai.com/docs/guides/batch (upload a JSONL file, create a
  batch, poll it, download the output and error files).
- Anthropic: https://docs.anthropic.com/en/docs/build-with-claude/batch-processing
  (create a message batch, poll it, stream its results).

A line is built and its answer read by the same functions as a live call
(`chat_body`/`chat_response`, `message_params`/`message_response`), so an answer is the
same whichever way it came. Vendor failures become `ProviderError`s through the
provider's `VendorErrors`, classified as live calls are; a line that failed is a
`BatchResult` carrying its error, never an exception.

A batch's results hold the lines the vendor reports on; a line it reports nothing for
(a batch the vendor failed as a whole) was not answered, and its work goes back to the
queue.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar

from grading_app.providers.base import ChatRequest, ChatResponse, Provider, ProviderError

if TYPE_CHECKING:
    import anthropic
    import openai

    from grading_app.providers.anthropic_provider import AnthropicProvider
    from grading_app.providers.openai_compat import (
        OpenAICompatProvider,
        ResponseFormat,
        VendorErrors,
    )
    from grading_app.providers.registry import ProviderConfig

logger = logging.getLogger(__name__)

COMPLETION_WINDOW = timedelta(hours=24)
EXPIRED = "the provider batch expired before answering"
CANCELLED = "the provider batch was cancelled before answering"
# Batch calls move whole files; live calls' timeouts are per answer.
_CALL_TIMEOUT = 300.0
# How many of the account's batches `find` reads (newest first) before giving up: the
# batch it looks for was created moments before a crash, not weeks ago.
_FIND_LIMIT = 1_000
# How far the vendor's clock may be from ours when a batch is matched by its creation
# time (Anthropic: `find_sent`).
_CLOCK_SKEW = timedelta(minutes=1)
# The format every structured line of an OpenAI batch was sent with, kept in the
# batch's metadata so its answers are read as they were asked for.
FORMAT_KEY = "grading_app_response_format"


class BatchTooLarge(ValueError):
    """The lines are more than one vendor batch takes; the first `fits` of them fit."""

    def __init__(self, message: str, *, fits: int) -> None:
        super().__init__(message)
        self.fits = fits


@dataclass(frozen=True)
class BatchLine:
    custom_id: str  # the work item's id
    request: ChatRequest


@dataclass(frozen=True)
class VendorBatch:
    external_id: str
    vendor_status: str  # the vendor's own word
    ended: bool  # nothing more will be answered: collect now
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    expires_at: datetime | None = None  # naive UTC like the rest of the app
    # total, succeeded, failed, processing, canceled, expired (as far as the vendor says)
    counts: dict[str, int] = field(default_factory=dict)
    # The model every line asked: OpenAI says; for Anthropic, set it from your records
    # (dataclasses.replace) so that a failed line's error names it.
    model: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # why the vendor failed the whole batch


@dataclass(frozen=True)
class BatchResult:
    custom_id: str
    response: ChatResponse | None  # the answer, read as a live answer is
    error: ProviderError | None  # a failed request, retryable or not as live calls are
    unanswered: str | None = None  # neither: why (EXPIRED, CANCELLED)


@dataclass(frozen=True)
class SentBatch:
    """A batch we may have sent but whose id we did not record (the worker sending it
    stopped): what it must look like at the vendor."""

    metadata: tuple[str, str]  # the (key, value) it was sent with
    request_count: int
    created_at: datetime  # naive UTC: our row's creation, right before the send
    known_ids: frozenset[str]  # vendor batches already recorded: not it


class BatchAPI(Protocol):
    provider: str  # the registry's provider name ("openai", "claude")
    completion_window: timedelta
    max_requests: int  # per vendor batch
    max_bytes: int  # per vendor batch, its lines as JSON (submit raises BatchTooLarge)

    def submit(self, lines: Sequence[BatchLine], *, metadata: dict[str, str]) -> VendorBatch: ...

    def status(self, external_id: str) -> VendorBatch: ...

    def cancel(self, external_id: str) -> VendorBatch: ...

    def results(self, batch: VendorBatch) -> Iterator[BatchResult]: ...

    def find(self, key: str, value: str) -> VendorBatch | None: ...

    def find_sent(self, sent: SentBatch) -> VendorBatch | None: ...

    def delete_files(self, file_ids: Iterable[str | None]) -> None: ...


def supports_batch_api(config: ProviderConfig) -> bool:
    """Whether the provider has a vendor batch API (OpenAI's own endpoint and Claude;
    not OpenRouter or local servers)."""
    return config.batch_api


def batch_api_for(provider: Provider) -> BatchAPI | None:
    """The provider's batch API, or None if its vendor has none."""
    from grading_app.providers.anthropic_provider import AnthropicProvider
    from grading_app.providers.openai_compat import OpenAICompatProvider

    if isinstance(provider, AnthropicProvider):
        return AnthropicBatchAPI(provider)
    if isinstance(provider, OpenAICompatProvider) and provider.batch_api:
        return OpenAIBatchAPI(provider)
    return None


_VendorProvider = TypeVar("_VendorProvider", "OpenAICompatProvider", "AnthropicProvider")


class _SDKBatchAPI(Generic[_VendorProvider]):
    """What both vendors' batch APIs share: the provider's own SDK client (its retries
    off) with a batch call's timeout, and SDK failures read as ProviderErrors."""

    completion_window = COMPLETION_WINDOW

    def __init__(self, provider: _VendorProvider, *, sdk: ModuleType) -> None:
        self._sdk = sdk
        self._provider: _VendorProvider = provider
        self.provider = provider.name
        self._errors: VendorErrors = provider.errors
        # Typed by each vendor's class: the SDKs' clients have nothing in common.
        self._client: Any = provider.client.with_options(timeout=_CALL_TIMEOUT)

    def status(self, external_id: str) -> VendorBatch:
        raise NotImplementedError  # each vendor's class reads its own batches

    def _cancel_unless_ended(
        self, external_id: str, cancel: Callable[[], VendorBatch]
    ) -> VendorBatch:
        try:
            with self._calls(external_id=external_id):
                return cancel()
        except ProviderError as exc:
            # The vendors refuse to cancel an ended batch (400 or 409): then there is
            # nothing to stop.
            if exc.status_code not in (400, 409):
                raise
            current = self.status(external_id)
            if not current.ended:
                raise
            return current

    @contextmanager
    def _calls(self, model: str | None = None, *, external_id: str | None = None) -> Iterator[None]:
        with _vendor_calls(self._sdk, self._errors, model=model, external_id=external_id):
            yield


# --- OpenAI ------------------------------------------------------------------------

_OPENAI_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
_CHAT_PATH: Final = "/v1/chat/completions"


class OpenAIBatchAPI(_SDKBatchAPI["OpenAICompatProvider"]):
    """OpenAI's Batch API over the provider's own SDK client (its retries off)."""

    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024
    _client: openai.OpenAI

    def __init__(self, provider: OpenAICompatProvider) -> None:
        import openai

        super().__init__(provider, sdk=openai)

    def submit(self, lines: Sequence[BatchLine], *, metadata: dict[str, str]) -> VendorBatch:
        """Upload the lines as a JSONL file and create a batch of them. Every line must
        ask the same model (OpenAI batches one model at a time)."""
        from grading_app.providers.openai_compat import chat_body

        model = _one_model(lines)
        fmt = self._provider.response_format_for(model)
        encoded = [
            json.dumps(
                {
                    "custom_id": line.custom_id,
                    "method": "POST",
                    "url": _CHAT_PATH,
                    "body": chat_body(line.request, fmt if line.request.json_schema else "plain"),
                }
            ).encode()
            + b"\n"
            for line in lines
        ]
        _check_size(encoded, max_requests=self.max_requests, max_bytes=self.max_bytes)
        content = b"".join(encoded)
        with self._calls(model):
            upload = self._client.files.create(
                file=("grading-batch.jsonl", content, "application/jsonl"), purpose="batch"
            )
        try:
            with self._calls(model):
                batch = self._client.batches.create(
                    input_file_id=upload.id,
                    endpoint=_CHAT_PATH,
                    completion_window="24h",
                    metadata={**metadata, FORMAT_KEY: fmt},
                )
        except ProviderError:
            self._delete_file(upload.id)
            raise
        return self._vendor_batch(batch)

    def status(self, external_id: str) -> VendorBatch:
        with self._calls(external_id=external_id):
            batch = self._client.batches.retrieve(external_id)
        return self._vendor_batch(batch)

    def cancel(self, external_id: str) -> VendorBatch:
        """Ask the vendor to stop; a batch that already ended is returned as it is."""
        return self._cancel_unless_ended(
            external_id, lambda: self._vendor_batch(self._client.batches.cancel(external_id))
        )

    def results(self, batch: VendorBatch) -> Iterator[BatchResult]:
        """The answers (output file), then the failures and unanswered lines (error
        file), streamed. Call it once the batch has ended."""
        _require_ended(batch)
        fmt: ResponseFormat = _response_format(batch.metadata.get(FORMAT_KEY))
        model = batch.model or "(batch)"
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id is None:
                continue
            for entry in self._entries(file_id, external_id=batch.external_id):
                result = self._result(entry, model=model, fmt=fmt)
                if result is not None:
                    yield result

    def find(self, key: str, value: str) -> VendorBatch | None:
        """The newest of the account's recent batches whose metadata has key=value."""
        with self._calls():
            for seen, batch in enumerate(self._client.batches.list(limit=100)):
                if seen >= _FIND_LIMIT:
                    break
                if (batch.metadata or {}).get(key) == value:
                    return self._vendor_batch(batch)
        return None

    def find_sent(self, sent: SentBatch) -> VendorBatch | None:
        """By the metadata it was sent with: exact."""
        return self.find(*sent.metadata)

    def delete_files(self, file_ids: Iterable[str | None]) -> None:
        """Delete a batch's files (input, output, error) from the account's storage, where
        OpenAI keeps them until they are deleted
        (https://platform.openai.com/docs/api-reference/files/delete). A failure is
        logged and left: the results are stored already, and a file left behind costs
        storage, not grades."""
        for file_id in dict.fromkeys(file_id for file_id in file_ids if file_id):
            self._delete_file(file_id)

    def _delete_file(self, file_id: str) -> None:
        try:
            with self._calls():
                self._client.files.delete(file_id)
        except ProviderError as exc:
            logger.warning("could not delete the batch file %s at the vendor: %s", file_id, exc)

    def _entries(self, file_id: str, *, external_id: str) -> Iterator[Any]:
        with (
            self._calls(external_id=external_id),
            self._client.files.with_streaming_response.content(file_id) as response,
        ):
            for number, line in enumerate(response.iter_lines(), start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except ValueError:
                    logger.warning(
                        "line %d of %s's file %s is not JSON; skipped", number, external_id, file_id
                    )

    def _result(self, entry: Any, *, model: str, fmt: ResponseFormat) -> BatchResult | None:
        from openai.types.chat import ChatCompletion
        from pydantic import ValidationError

        from grading_app.providers.openai_compat import chat_response

        custom_id = entry.get("custom_id") if isinstance(entry, dict) else None
        if not isinstance(custom_id, str):
            logger.warning("a batch result without a custom_id was skipped")
            return None
        response, error = entry.get("response"), entry.get("error")
        if isinstance(response, dict):
            status, body = response.get("status_code"), response.get("body")
            if status != 200:
                failure = self._errors.status(
                    status if isinstance(status, int) else 500, model=model, body=body, headers=None
                )
                return BatchResult(custom_id, None, failure)
            try:
                completion = ChatCompletion.model_validate(body)
                answer = chat_response(
                    completion,
                    _request_for(completion.model or model),
                    fmt=fmt,
                    latency_ms=0,
                    label=self._errors.label,
                )
            except ValidationError as exc:
                return BatchResult(custom_id, None, self._errors.unreadable(model=model, cause=exc))
            except ProviderError as exc:
                return BatchResult(custom_id, None, exc)
            return BatchResult(custom_id, answer, None)
        error_code = error.get("code") if isinstance(error, dict) else None
        if error_code == "batch_expired":
            return BatchResult(custom_id, None, None, unanswered=EXPIRED)
        if error_code == "batch_cancelled":
            return BatchResult(custom_id, None, None, unanswered=CANCELLED)
        message = error.get("message") if isinstance(error, dict) else None
        # A line the vendor could not run, with no HTTP status: its problem, not ours.
        failure = ProviderError(
            f"{self._errors.label} could not run the request for model '{model}' "
            f"({error_code or 'no code'}): {self._errors.scrub(str(message or 'no reason given'))}",
            retryable=True,
        )
        return BatchResult(custom_id, None, failure)

    def _vendor_batch(self, batch: Any) -> VendorBatch:
        counts = batch.request_counts
        total = counts.total if counts else 0
        succeeded = counts.completed if counts else 0
        failed = counts.failed if counts else 0
        ended = batch.status in _OPENAI_ENDED
        errors = [e.message for e in (batch.errors.data or [])] if batch.errors else []
        return VendorBatch(
            external_id=batch.id,
            vendor_status=batch.status,
            ended=ended,
            input_file_id=batch.input_file_id,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            expires_at=_naive_utc(batch.expires_at),
            counts={
                "total": total,
                "succeeded": succeeded,
                "failed": failed,
                "processing": 0 if ended else max(0, total - succeeded - failed),
            },
            model=batch.model,
            metadata=dict(batch.metadata or {}),
            error="; ".join(str(e) for e in errors if e) or None,
        )


# --- Anthropic ---------------------------------------------------------------------

# Anthropic reports a failed request of a batch by its error type alone; these are the
# statuses the same error has on a live call
# (https://docs.anthropic.com/en/api/errors#http-errors).
_ANTHROPIC_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicBatchAPI(_SDKBatchAPI["AnthropicProvider"]):
    """Anthropic's Message Batches over the provider's own SDK client (retries off)."""

    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024
    _client: anthropic.Anthropic

    def __init__(self, provider: AnthropicProvider) -> None:
        import anthropic

        super().__init__(provider, sdk=anthropic)

    def submit(self, lines: Sequence[BatchLine], *, metadata: dict[str, str]) -> VendorBatch:
        """Create a message batch of the lines. Anthropic keeps no metadata: `find`
        cannot look a batch up by it."""
        from grading_app.providers.anthropic_provider import message_params

        if not lines:
            raise ValueError("a batch needs at least one line")
        requests = [
            {
                "custom_id": line.custom_id,
                "params": message_params(
                    line.request, self._provider.temperature_for(line.request)
                ),
            }
            for line in lines
        ]
        _check_size(
            [json.dumps(request).encode() for request in requests],
            max_requests=self.max_requests,
            max_bytes=self.max_bytes,
        )
        models = sorted({line.request.model for line in lines})
        with self._calls(", ".join(models)):
            batch = self._client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        return replace(_anthropic_batch(batch), model=models[0] if len(models) == 1 else None)

    def status(self, external_id: str) -> VendorBatch:
        with self._calls(external_id=external_id):
            batch = self._client.messages.batches.retrieve(external_id)
        return _anthropic_batch(batch)

    def cancel(self, external_id: str) -> VendorBatch:
        """Ask the vendor to stop; a batch that already ended is returned as it is."""
        return self._cancel_unless_ended(
            external_id, lambda: _anthropic_batch(self._client.messages.batches.cancel(external_id))
        )

    def results(self, batch: VendorBatch) -> Iterator[BatchResult]:
        """Every request's result, streamed. Call it once the batch has ended, with
        `batch.model` set: an errored result does not say its model, and a model that
        refuses a temperature is remembered by it."""
        _require_ended(batch)
        with (
            self._calls(external_id=batch.external_id),
            self._client.messages.batches.with_streaming_response.results(
                batch.external_id
            ) as response,
        ):
            for number, line in enumerate(response.iter_lines(), start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    logger.warning(
                        "line %d of %s's results is not JSON; skipped", number, batch.external_id
                    )
                    continue
                result = self._result(entry, default_model=batch.model or "(batch)")
                if result is not None:
                    yield result

    def find(self, key: str, value: str) -> VendorBatch | None:
        """Anthropic keeps no metadata on a message batch: nothing to find by."""
        return None

    def find_sent(self, sent: SentBatch) -> VendorBatch | None:
        """Anthropic keeps no metadata, so by its shape: of the account's batches created
        since just before ours was about to be sent, not recorded by us, with as many
        requests, the one created nearest that moment. Two unrecorded batches of one
        size sent together may be taken for each other; their results name items of the
        other row then, and are ignored (processing/provider_batches.py)."""
        earliest = sent.created_at - _CLOCK_SKEW
        candidates: list[tuple[timedelta, VendorBatch]] = []
        with self._calls():
            for seen, batch in enumerate(self._client.messages.batches.list(limit=100)):
                created = _naive_utc(batch.created_at)
                if seen >= _FIND_LIMIT or (created is not None and created < earliest):
                    break  # newest first: the rest are older
                found = _anthropic_batch(batch)
                if found.external_id in sent.known_ids or created is None:
                    continue
                if found.counts.get("total") == sent.request_count:
                    candidates.append((abs(created - sent.created_at), found))
        return min(candidates, key=lambda c: c[0])[1] if candidates else None

    def delete_files(self, file_ids: Iterable[str | None]) -> None:
        """Message batches upload no files of ours: nothing to delete."""

    def _result(self, entry: Any, *, default_model: str) -> BatchResult | None:
        from anthropic.types import Message
        from pydantic import ValidationError

        from grading_app.providers.anthropic_provider import message_response

        custom_id = entry.get("custom_id") if isinstance(entry, dict) else None
        result = entry.get("result") if isinstance(entry, dict) else None
        if not isinstance(custom_id, str) or not isinstance(result, dict):
            logger.warning("a batch result without a custom_id or result was skipped")
            return None
        kind = result.get("type")
        if kind == "expired":
            return BatchResult(custom_id, None, None, unanswered=EXPIRED)
        if kind == "canceled":
            return BatchResult(custom_id, None, None, unanswered=CANCELLED)
        raw_message = result.get("message")
        named = raw_message.get("model") if isinstance(raw_message, dict) else None
        model = named if isinstance(named, str) else default_model
        if kind == "errored":
            return BatchResult(custom_id, None, self._line_error(result.get("error"), model))
        try:
            if kind != "succeeded":
                raise ValueError(f"unknown result type {kind!r}")
            message = Message.model_validate(raw_message)
            answer = message_response(message, _request_for(model), latency_ms=0)
        except (ValidationError, ValueError, AttributeError) as exc:
            return BatchResult(custom_id, None, self._errors.unreadable(model=model, cause=exc))
        return BatchResult(custom_id, answer, None)

    def _line_error(self, error: Any, model: str) -> ProviderError:
        inner = error.get("error") if isinstance(error, dict) else None
        error_type = inner.get("type") if isinstance(inner, dict) else None
        status = _ANTHROPIC_ERROR_STATUS.get(str(error_type), 500)
        failure = self._errors.status(status, model=model, body=error, headers=None)
        message = str(inner.get("message", "")) if isinstance(inner, dict) else ""
        if status == 400 and self._provider.refuses_temperature(model, message):
            # As a live call would, ask again without it: this process remembers.
            failure = ProviderError(failure.message, retryable=True, status_code=400)
        return failure


def _anthropic_batch(batch: Any) -> VendorBatch:
    counts = batch.request_counts
    numbers = {
        "succeeded": counts.succeeded,
        "failed": counts.errored,
        "processing": counts.processing,
        "canceled": counts.canceled,
        "expired": counts.expired,
    }
    return VendorBatch(
        external_id=batch.id,
        vendor_status=batch.processing_status,
        ended=batch.processing_status == "ended",
        expires_at=_naive_utc(batch.expires_at),
        counts={"total": sum(numbers.values()), **numbers},
    )


# --- shared ------------------------------------------------------------------------


@contextmanager
def _vendor_calls(
    sdk: ModuleType, errors: VendorErrors, *, model: str | None, external_id: str | None
) -> Iterator[None]:
    """SDK failures as ProviderErrors, classified as live calls' are."""
    subject = model or (f"(batch {external_id})" if external_id else "(batches)")
    try:
        yield
    except sdk.APIStatusError as exc:
        if exc.status_code == 404 and external_id:
            raise ProviderError(
                f"{errors.label} has no batch '{external_id}' (404): it may have been "
                f"deleted, or belong to another account or base URL ({errors.base_url})",
                retryable=False,
                status_code=404,
            ) from exc
        raise errors.status(
            exc.status_code, model=subject, body=exc.body, headers=exc.response.headers
        ) from exc
    except sdk.APITimeoutError as exc:
        raise errors.timeout(model=subject, seconds=_CALL_TIMEOUT) from exc
    except sdk.APIConnectionError as exc:
        raise errors.unreachable(exc.__cause__ or exc) from exc
    except sdk.APIResponseValidationError as exc:
        raise errors.unreadable(model=subject, cause=exc) from exc


def _one_model(lines: Sequence[BatchLine]) -> str:
    if not lines:
        raise ValueError("a batch needs at least one line")
    models = {line.request.model for line in lines}
    if len(models) != 1:
        raise ValueError(f"one model per OpenAI batch, not {sorted(models)}")
    return models.pop()


def _check_size(encoded: Sequence[bytes], *, max_requests: int, max_bytes: int) -> None:
    total = sum(len(line) for line in encoded)
    if len(encoded) <= max_requests and total <= max_bytes:
        return
    fits, size = 0, 0
    for line in encoded[:max_requests]:
        size += len(line)
        if size > max_bytes:
            break
        fits += 1
    raise BatchTooLarge(
        f"{len(encoded)} lines of {total} bytes are over one batch's {max_requests} lines "
        f"or {max_bytes} bytes; the first {fits} fit",
        fits=fits,
    )


def _require_ended(batch: VendorBatch) -> None:
    # Results of a batch still running are not "unanswered": the vendor may still answer
    # (and bill) them, so their work must not go back to the queue yet.
    if not batch.ended:
        raise ValueError(
            f"batch {batch.external_id} is {batch.vendor_status}: collect it once it has ended"
        )


def _request_for(model: str) -> ChatRequest:
    # chat_response/message_response read only the model from the request (a fallback
    # for an answer that names none, and for messages).
    return ChatRequest(model=model, system="", user="")


def _response_format(value: str | None) -> ResponseFormat:
    if value in ("json_schema", "json_object", "plain"):
        return value  # type: ignore[return-value]
    return "json_schema"


def _naive_utc(value: int | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(value, UTC)
    return moment.astimezone(UTC).replace(tzinfo=None)
