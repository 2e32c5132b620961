"""Claude through the official `anthropic` SDK.

Structured output uses tool use: one tool whose input_schema is the grade's JSON schema,
forced with tool_choice, so the answer arrives as the tool call's already-parsed input
(https://docs.anthropic.com/en/docs/build-with-claude/tool-use). The SDK's own retries are
off (`max_retries=0`) so the pipeline's retries do not multiply.

Temperature goes in the request body itself: the SDK dropped its `temperature` argument
(1.0 and later raise TypeError for it), while the API still takes it for the models that
support sampling settings. A model that refuses it (newer Claude models do) is asked again
without it, once, and is not sent one again by this process.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import anthropic

from grading_app.providers.base import ChatRequest, ChatResponse
from grading_app.providers.openai_compat import VendorErrors, models_summary

# Messages API requires max_tokens; a grade with feedback fits well within this.
DEFAULT_MAX_TOKENS = 4096
# What a 400 says when the model takes no sampling settings.
_REFUSES_TEMPERATURE = re.compile(r"\btemperature\b", re.IGNORECASE)


class AnthropicProvider:
    """Thread-safe: the worker's threads share one instance and its connection pool."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: str | None,
        label: str | None = None,
        key_env: str | None = None,
        unreachable_hint: str | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.errors = VendorErrors(
            label=label or name,
            base_url=base_url,
            key_env=key_env,
            api_key=api_key,
            unreachable_hint=unreachable_hint,
        )
        # An explicit key (even an empty placeholder) keeps the SDK from reading
        # ANTHROPIC_API_KEY or credential files on its own: the registry decides.
        self._client = anthropic.Anthropic(
            api_key=api_key or "missing", base_url=base_url, max_retries=0
        )
        # Models that answered 400 to a temperature: asked without one from then on.
        self._no_temperature: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AnthropicProvider(name={self.name!r}, base_url={self.base_url!r})"

    @property
    def client(self) -> anthropic.Anthropic:
        """The SDK client (retries off), shared with the batch API."""
        return self._client

    def temperature_for(self, request: ChatRequest) -> float | None:
        """The request's temperature, unless its model refused one before."""
        with self._lock:
            return None if request.model in self._no_temperature else request.temperature

    def refuses_temperature(self, model: str, error_text: str) -> bool:
        """Whether a 400's text says the model takes no temperature; if so, it is sent
        none from now on."""
        if not _REFUSES_TEMPERATURE.search(error_text):
            return False
        with self._lock:
            self._no_temperature.add(model)
        return True

    def complete(self, request: ChatRequest) -> ChatResponse:
        temperature = request.temperature
        with self._lock:
            if request.model in self._no_temperature:
                temperature = None
        started = time.perf_counter()
        with self.errors.from_sdk(anthropic, model=request.model, seconds=request.timeout_seconds):
            try:
                message = self._create(request, temperature)
            except anthropic.BadRequestError as exc:
                if temperature is None or not _REFUSES_TEMPERATURE.search(str(exc.body)):
                    raise
                with self._lock:
                    self._no_temperature.add(request.model)
                message = self._create(request, None)
        latency_ms = int((time.perf_counter() - started) * 1000)
        return message_response(message, request, latency_ms=latency_ms)

    def _create(self, request: ChatRequest, temperature: float | None) -> Any:
        params = message_params(request, temperature)
        temperature_value = params.pop("temperature", None)
        return self._client.messages.create(
            **params,
            timeout=request.timeout_seconds,
            extra_body={"temperature": temperature_value}
            if temperature_value is not None
            else None,
        )

    def check(self, *, default_model: str | None = None, timeout: float = 10.0) -> str:
        """A real, tiny call: list the models (authenticated). Raises ProviderError."""
        model = default_model or "(model list)"
        with self.errors.from_sdk(anthropic, model=model, seconds=timeout):
            page = self._client.with_options(timeout=timeout).models.list(limit=100)
            models = [m.id for m in page.data]
        return models_summary(models, default_model)


# Marks the end of a prefix Claude may cache for reuse by the next calls
# (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching). A marked prefix
# shorter than the model's minimum (1024 or 2048 tokens) is simply not cached.
CACHE_CONTROL = {"type": "ephemeral"}


def message_params(request: ChatRequest, temperature: float | None) -> dict[str, Any]:
    """The Messages API request: sent as it is, or as one request of a message batch.

    The cache covers tools, system and messages in that order, up to a marked block:
    the system prompt is marked, and so is the user message's shared prefix; the
    document after it is not, so each call writes only its shared part to the cache."""
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": _user_content(request)}],
    }
    if request.system:
        params["system"] = [
            {"type": "text", "text": request.system, "cache_control": CACHE_CONTROL}
        ]
    if request.json_schema is not None:
        params["tools"] = [
            {
                "name": request.schema_name,
                "description": "Record the grade for the document.",
                "input_schema": request.json_schema,
            }
        ]
        params["tool_choice"] = {"type": "tool", "name": request.schema_name}
    if temperature is not None:
        params["temperature"] = temperature
    return params


def _user_content(request: ChatRequest) -> str | list[dict[str, Any]]:
    if not request.user_prefix:
        return request.user
    blocks: list[dict[str, Any]] = [
        {"type": "text", "text": request.user_prefix, "cache_control": CACHE_CONTROL}
    ]
    if request.document_part:  # the API refuses an empty text block
        blocks.append({"type": "text", "text": request.document_part})
    return blocks


def message_response(message: Any, request: ChatRequest, *, latency_ms: int) -> ChatResponse:
    """What a message said (live, or one result of a message batch)."""
    tool_input = next((block.input for block in message.content if block.type == "tool_use"), None)
    if tool_input is not None:
        text, structured = json.dumps(tool_input), True
    else:
        # No tool call (tools ignored, or a refusal in prose): keep the text so the
        # grading parser can still find the JSON or explain why not.
        text = "".join(block.text for block in message.content if block.type == "text")
        structured = False
    usage = message.usage
    # Anthropic's input_tokens leaves out what was read from or written to the cache;
    # our prompt_tokens counts every input token, so the three are summed.
    cached = getattr(usage, "cache_read_input_tokens", None)
    written = getattr(usage, "cache_creation_input_tokens", None)
    return ChatResponse(
        text=text,
        model=message.model or request.model,
        prompt_tokens=usage.input_tokens + (cached or 0) + (written or 0),
        completion_tokens=usage.output_tokens,
        latency_ms=latency_ms,
        cached_tokens=cached,
        cache_write_tokens=written,
        structured=structured,
        extra={"stop_reason": message.stop_reason},
    )
