"""One protocol for every LLM vendor: send a grading request, get raw text back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ChatRequest:
    """One grading call. The system prompt and `user_prefix` are the same for every
    document graded with the same instructions, so vendors can cache them; `user` is
    that prefix followed by the document (`document_part`), which always comes last."""

    model: str
    system: str
    user: str
    # JSON schema the answer must follow; providers use their structured-output
    # mechanism (OpenAI json_schema response_format, Anthropic tool use) when they have one.
    json_schema: dict[str, Any] | None = None
    schema_name: str = "grade"
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_seconds: float = 120.0
    # The head of `user` shared by every call of a job (instructions, marking scheme);
    # empty when the request has no shared part worth marking for the cache.
    user_prefix: str = ""

    def __post_init__(self) -> None:
        if not self.user.startswith(self.user_prefix):
            raise ValueError("user_prefix must be the start of user")

    @property
    def document_part(self) -> str:
        """What follows the shared prefix: the document (and a repair's follow-up)."""
        return self.user[len(self.user_prefix) :]


@dataclass(frozen=True)
class ChatResponse:
    text: str  # the raw answer (for tool use: the tool input, as JSON text)
    model: str
    # Every input token, cached ones included (Anthropic reports them apart: summed).
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: int = 0
    # Of prompt_tokens: read from the vendor's prompt cache, and written to it.
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    structured: bool = False  # whether the provider's JSON mechanism was used
    extra: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """A failed provider call.

    `retryable` errors (timeouts, 429, 5xx, overload) are retried by the processing
    pipeline with backoff; the others (bad key, unknown model, no credit, bad request)
    fail the item at once with `message`, which names the cause for a person.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status_code = status_code
        # Answers already received in this grading (the first answer, when the repair
        # call is what failed), kept so a failure still stores what the model said.
        self.answers: list[ChatResponse] = []


class Provider(Protocol):
    name: str

    def complete(self, request: ChatRequest) -> ChatResponse: ...
