"""The vendor batch clients against the fake vendor's batch endpoints, over real HTTP,
for both vendors."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from grading_app.grading.schema import GRADE_JSON_SCHEMA
from grading_app.providers.anthropic_provider import AnthropicProvider
from grading_app.providers.base import ChatRequest, ChatResponse, ProviderError
from grading_app.providers.batch_api import (
    CANCELLED,
    EXPIRED,
    AnthropicBatchAPI,
    BatchAPI,
    BatchLine,
    BatchResult,
    BatchTooLarge,
    OpenAIBatchAPI,
    batch_api_for,
    supports_batch_api,
)
from grading_app.providers.openai_compat import OpenAICompatProvider
from grading_app.providers.registry import build_provider, load_provider_configs
from tests.fakes import FakeLLMServer, Fault

KEYS = {"openai": "sk-openai-secret-123456", "claude": "sk-ant-secret-654321"}
VENDORS = ["openai", "claude"]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def _provider(server: FakeLLMServer, vendor: str) -> OpenAICompatProvider | AnthropicProvider:
    configs = load_provider_configs(
        {
            "OPENAI_API_KEY": KEYS["openai"],
            "OPENAI_BASE_URL": server.openai_base_url,
            "ANTHROPIC_API_KEY": KEYS["claude"],
            "ANTHROPIC_BASE_URL": server.anthropic_base_url,
        }
    )
    return build_provider(configs[vendor])


def _api(provider: OpenAICompatProvider | AnthropicProvider) -> BatchAPI:
    api = batch_api_for(provider)
    assert api is not None
    return api


def _request(document: str, *, model: str = "m1", temperature: float | None = 0.0) -> ChatRequest:
    return ChatRequest(
        model=model,
        system="You grade essays. Answer with the grade.",
        user=f'Grade it.\n<document name="e.txt">\n{document}\n</document>',
        json_schema=GRADE_JSON_SCHEMA,
        temperature=temperature,
        max_tokens=500,
        timeout_seconds=10,
    )


def _lines(count: int, *, model: str = "m1") -> list[BatchLine]:
    return [
        BatchLine(f"item-{i}", _request(f"Essay number {i}.", model=model)) for i in range(count)
    ]


def _collect(
    api: BatchAPI, external_id: str, *, model: str | None = None
) -> dict[str, BatchResult]:
    batch = api.status(external_id)
    assert batch.ended
    if model is not None:  # what the caller knows from its records (Anthropic does not say)
        batch = dataclasses.replace(batch, model=model)
    return {result.custom_id: result for result in api.results(batch)}


def _same_answer(batch: ChatResponse, live: ChatResponse) -> None:
    # Latency differs by nature, and prompt-cache hits by order: the second call of the
    # same prefix reads what the first wrote.
    ignore = {"latency_ms": 0, "extra": {}, "cached_tokens": None, "cache_write_tokens": None}
    assert dataclasses.replace(batch, **ignore) == dataclasses.replace(live, **ignore)


def _batch_lines(server: FakeLLMServer) -> list[dict]:
    return [r.body for r in server.requests if r.method == "BATCH"]


# --- which providers ---------------------------------------------------------------


def test_openai_and_claude_have_batch_apis_other_endpoints_do_not(server: FakeLLMServer) -> None:
    configs = load_provider_configs(
        {
            "OPENAI_API_KEY": "k",
            "ANTHROPIC_API_KEY": "k",
            "OPENROUTER_API_KEY": "k",
            "GRADING_APP_CUSTOM_PROVIDERS": f"vllm={server.openai_base_url}",
        }
    )

    supported = {name for name, config in configs.items() if supports_batch_api(config)}

    assert supported == {"openai", "claude"}
    assert isinstance(batch_api_for(build_provider(configs["openai"])), OpenAIBatchAPI)
    assert isinstance(batch_api_for(build_provider(configs["claude"])), AnthropicBatchAPI)
    for name in ("openrouter", "lm_studio", "ollama", "vllm"):
        assert batch_api_for(build_provider(configs[name])) is None
    api = batch_api_for(build_provider(configs["claude"]))
    assert api is not None and api.provider == "claude"
    assert api.completion_window.total_seconds() == 24 * 3600
    assert (OpenAIBatchAPI.max_requests, AnthropicBatchAPI.max_requests) == (50_000, 100_000)


# --- happy path --------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
def test_answers_equal_what_live_calls_give(server: FakeLLMServer, vendor: str) -> None:
    provider = _provider(server, vendor)
    api = _api(provider)
    lines = _lines(3)
    server.batches.polls_until_done = 1

    submitted = api.submit(lines, metadata={"grading_batch": "b-1"})
    first_read = api.status(submitted.external_id)
    results = _collect(api, submitted.external_id)

    assert not submitted.ended and not first_read.ended
    with pytest.raises(ValueError, match="once it has ended"):
        list(api.results(first_read))
    assert submitted.counts["total"] == 3 and submitted.counts["processing"] == 3
    assert submitted.expires_at is not None and submitted.expires_at.tzinfo is None
    ended = api.status(submitted.external_id)
    assert ended.counts["succeeded"] == 3 and ended.counts["processing"] == 0
    assert set(results) == {"item-0", "item-1", "item-2"}
    for line in lines:
        result = results[line.custom_id]
        assert result.error is None and result.unanswered is None
        assert result.response is not None
        _same_answer(result.response, provider.complete(line.request))
        assert result.response.structured is True


@pytest.mark.parametrize("vendor", VENDORS)
def test_lines_are_the_bodies_live_calls_send(server: FakeLLMServer, vendor: str) -> None:
    provider = _provider(server, vendor)
    line = _lines(1)[0]

    _collect(_api(provider), _api(provider).submit([line], metadata={}).external_id)
    provider.complete(line.request)

    live = [r.body for r in server.requests if r.method == "POST" and r.model == "m1"]
    assert _batch_lines(server) == live


def test_openai_batch_carries_metadata_and_the_response_format(server: FakeLLMServer) -> None:
    api = _api(_provider(server, "openai"))

    batch = api.submit(_lines(2), metadata={"grading_batch": "b-1"})

    assert batch.input_file_id is not None
    assert batch.model == "m1"
    assert batch.metadata["grading_batch"] == "b-1"
    upload = next(r for r in server.requests if r.path == "/v1/files")
    assert upload.body["purpose"] == "batch"
    assert upload.headers["authorization"] == f"Bearer {KEYS['openai']}"


@pytest.mark.parametrize("vendor", VENDORS)
def test_lines_over_a_vendor_batch_say_how_many_fit(server: FakeLLMServer, vendor: str) -> None:
    api = _api(_provider(server, vendor))
    api.max_requests = 3  # the vendors' own limits are tens of thousands

    with pytest.raises(BatchTooLarge) as too_many:
        api.submit(_lines(4), metadata={})
    api.max_bytes = 1_000
    with pytest.raises(BatchTooLarge) as too_big:
        api.submit(_lines(2), metadata={})

    assert too_many.value.fits == 3
    assert too_big.value.fits == 0  # one line of the grade schema is over 1,000 bytes
    assert server.batches.ids() == [] and server.batches.file_ids() == []


def test_openai_batches_one_model_at_a_time(server: FakeLLMServer) -> None:
    api = _api(_provider(server, "openai"))

    with pytest.raises(ValueError, match="one model"):
        api.submit(_lines(1, model="m1") + _lines(1, model="m2"), metadata={})
    with pytest.raises(ValueError, match="at least one"):
        api.submit([], metadata={})


# --- partial failures --------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
def test_failed_lines_are_results_classified_as_live_calls(
    server: FakeLLMServer, vendor: str
) -> None:
    api = _api(_provider(server, vendor))
    server.batches.script_line("item-1", Fault.server_error())
    server.batches.script_line("item-2", Fault.rate_limit())
    server.batches.script_line("item-3", Fault.status(404, "model not found"))
    server.batches.script_line("item-4", Fault.status(400, "prompt is too long"))

    results = _collect(api, api.submit(_lines(5), metadata={}).external_id)

    assert results["item-0"].response is not None
    failures = {cid: results[cid].error for cid in ("item-1", "item-2", "item-3", "item-4")}
    assert all(error is not None for error in failures.values())
    retryable = {cid: error.retryable for cid, error in failures.items() if error}
    assert retryable == {"item-1": True, "item-2": True, "item-3": False, "item-4": False}
    item_4 = failures["item-4"]
    assert item_4 is not None and "prompt is too long" in item_4.message
    assert all(KEYS[vendor] not in str(error) for error in failures.values())


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_answer_that_cannot_be_read_is_a_retryable_error(
    server: FakeLLMServer, vendor: str
) -> None:
    api = _api(_provider(server, vendor))
    server.batches.script_line("item-0", Fault.broken_body())

    results = _collect(api, api.submit(_lines(2), metadata={}).external_id)

    broken = results["item-0"]
    assert broken.response is None and broken.error is not None
    assert broken.error.retryable is True
    assert "could not be read" in broken.error.message
    assert results["item-1"].response is not None


def test_a_claude_model_that_refuses_temperature_is_asked_again_without(
    server: FakeLLMServer,
) -> None:
    provider = _provider(server, "claude")
    api = _api(provider)
    server.no_temperature_models = {"m1"}

    first = _collect(api, api.submit(_lines(1), metadata={}).external_id, model="m1")
    again = _collect(api, api.submit(_lines(1), metadata={}).external_id, model="m1")

    refused = first["item-0"].error
    assert refused is not None and refused.retryable is True
    assert "model 'm1'" in refused.message
    assert "temperature" not in _batch_lines(server)[-1]
    assert again["item-0"].response is not None


# --- expiry, refusal, failure ------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_expired_batch_returns_its_answers_and_the_rest_unanswered(
    server: FakeLLMServer, vendor: str
) -> None:
    api = _api(_provider(server, vendor))
    server.batches.expire_next(answered=1)

    submitted = api.submit(_lines(3), metadata={})
    results = _collect(api, submitted.external_id)

    assert api.status(submitted.external_id).vendor_status == (
        "expired" if vendor == "openai" else "ended"
    )
    assert results["item-0"].response is not None
    for cid in ("item-1", "item-2"):
        assert results[cid] == BatchResult(cid, None, None, unanswered=EXPIRED)


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_refused_batch_is_a_provider_error(server: FakeLLMServer, vendor: str) -> None:
    api = _api(_provider(server, vendor))
    server.batches.refuse_next(Fault.status(400, "Enqueued token limit reached for m1"))

    with pytest.raises(ProviderError) as refused:
        api.submit(_lines(1), metadata={})
    server.batches.refuse_next(Fault.rate_limit(retry_after=7))
    with pytest.raises(ProviderError) as limited:
        api.submit(_lines(1), metadata={})

    assert refused.value.retryable is False and refused.value.status_code == 400
    assert "Enqueued token limit" in refused.value.message
    assert limited.value.retryable is True and limited.value.retry_after == 7
    assert server.batches.ids() == []
    assert server.batches.file_ids() == []  # OpenAI's unused uploads are deleted


def test_a_batch_openai_failed_ends_with_its_reason_and_no_results(server: FakeLLMServer) -> None:
    api = _api(_provider(server, "openai"))
    server.batches.fail_next("the input file is malformed")

    submitted = api.submit(_lines(2), metadata={})
    status = api.status(submitted.external_id)

    assert status.ended and status.vendor_status == "failed"
    assert status.error == "the input file is malformed"
    assert list(api.results(status)) == []


@pytest.mark.parametrize("vendor", VENDORS)
def test_vendor_failures_are_provider_errors_without_the_key(
    server: FakeLLMServer, vendor: str
) -> None:
    api = _api(_provider(server, vendor))

    with pytest.raises(ProviderError) as missing:
        api.status("batch_does_not_exist")
    server.api_key = "another-key"
    with pytest.raises(ProviderError) as rejected:
        api.submit(_lines(1), metadata={})

    assert missing.value.status_code == 404 and missing.value.retryable is False
    assert "has no batch 'batch_does_not_exist'" in missing.value.message
    assert rejected.value.status_code == 401 and rejected.value.retryable is False
    assert KEYS[vendor] not in str(rejected.value)


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_unreachable_vendor_is_a_retryable_error(server: FakeLLMServer, vendor: str) -> None:
    api = _api(_provider(server, vendor))
    server.stop()

    with pytest.raises(ProviderError) as unreachable:
        api.status("any")

    assert unreachable.value.retryable is True
    assert "unreachable" in unreachable.value.message


# --- cancel ------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
def test_cancel_returns_what_was_answered_and_the_rest_cancelled(
    server: FakeLLMServer, vendor: str
) -> None:
    api = _api(_provider(server, vendor))
    server.batches.polls_until_done = 10
    server.batches.answer_before_cancel = 1
    submitted = api.submit(_lines(3), metadata={})

    cancelling = api.cancel(submitted.external_id)
    results = _collect(api, submitted.external_id)
    ended = api.status(submitted.external_id)

    assert not cancelling.ended
    assert cancelling.vendor_status == ("cancelling" if vendor == "openai" else "canceling")
    assert ended.counts["succeeded"] == 1
    assert results["item-0"].response is not None
    for cid in ("item-1", "item-2"):
        assert results[cid] == BatchResult(cid, None, None, unanswered=CANCELLED)
    # Cancelling an ended batch changes nothing.
    assert api.cancel(submitted.external_id) == ended


# --- find --------------------------------------------------------------------------


def test_openai_batch_is_found_by_its_metadata(server: FakeLLMServer) -> None:
    api = _api(_provider(server, "openai"))
    older = api.submit(_lines(1), metadata={"provider_batch": "pb-1"})
    api.submit(_lines(1), metadata={"provider_batch": "pb-2"})

    found = api.find("provider_batch", "pb-1")

    assert found is not None and found.external_id == older.external_id
    assert api.find("provider_batch", "pb-3") is None


def test_claude_batches_keep_no_metadata_to_find_by(server: FakeLLMServer) -> None:
    api = _api(_provider(server, "claude"))
    api.submit(_lines(1), metadata={"provider_batch": "pb-1"})

    assert api.find("provider_batch", "pb-1") is None
