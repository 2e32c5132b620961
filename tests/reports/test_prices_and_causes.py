"""The price table (defaults, GRADING_APP_PRICES) and the failure causes read from the
messages the providers and the grader write."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from grading_app.config import InvalidSettings, Settings, load_settings
from grading_app.reports.causes import Cause, classify
from grading_app.reports.prices import PriceTable


def test_defaults_cover_dated_snapshots_and_unknown_models_have_no_price():
    table = PriceTable.of({})
    gpt = table.price("openai", "gpt-4o")
    assert gpt is not None and (gpt.input_per_million, gpt.output_per_million) == (2.5, 10.0)
    assert gpt.source == "default"
    assert table.price("openai", "gpt-4o-2024-08-06") == gpt
    assert table.price("anthropic", "claude-3-5-haiku-20241022") is not None  # alias, snapshot
    mini = table.price("openai", "gpt-4o-mini")
    assert mini is not None and mini.input_per_million == 0.15  # not gpt-4o's price
    assert table.price("openai", "gpt-4o-audio-preview") is None
    assert table.price("ollama", "llama3") is None
    assert gpt.cost(1_000_000, 500_000) == pytest.approx(2.5 + 5.0)


def test_overrides_win_by_model_then_by_provider(monkeypatch):
    monkeypatch.setenv(
        "GRADING_APP_PRICES", "openai:gpt-4o=1/2, Ollama=0/0, anthropic:claude-x=3/15"
    )
    table = PriceTable.of(Settings().price_overrides)

    gpt = table.price("openai", "gpt-4o")
    assert gpt is not None and gpt.source == "GRADING_APP_PRICES"
    assert (gpt.input_per_million, gpt.output_per_million) == (1.0, 2.0)
    local = table.price("ollama", "llama3:8b")
    assert local is not None and local.cost(10_000, 10_000) == 0.0
    assert table.price("claude", "claude-x") is not None  # the provider's own name
    assert table.price("openai", "gpt-4o-mini").source == "default"


@pytest.mark.parametrize(
    "value", ["openai:gpt-4o=2.5", "openai:gpt-4o=a/b", "=1/2", "openai:=1/2", "x=-1/2", "x=nan/1"]
)
def test_a_price_that_cannot_be_read_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("GRADING_APP_PRICES", value)
    with pytest.raises(ValidationError):
        Settings()
    with pytest.raises(InvalidSettings) as refused:
        load_settings(host="127.0.0.1")
    message = refused.value.message
    assert message.startswith(f"GRADING_APP_PRICES={value} is not accepted")
    assert "provider:model=INPUT/OUTPUT" in message


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        ("OpenAI rate limit reached for model 'gpt-4o' (429); retry after 2s", Cause.RATE_LIMIT),
        ("out of credit at OpenRouter (402): add credit to the account", Cause.AUTH_OR_CREDIT),
        ("OpenAI rejected the API key (401): check OPENAI_API_KEY", Cause.AUTH_OR_CREDIT),
        ("Anthropic refused access to model 'x' (403)", Cause.AUTH_OR_CREDIT),
        ("OpenAI did not answer within 120s (model 'gpt-4o')", Cause.TIMEOUT),
        (
            "the model's answer was not a valid grade, even after a repair request: no score",
            Cause.INVALID_ANSWER,
        ),
        ("model 'x' refused to grade: I cannot", Cause.INVALID_ANSWER),
        (
            "OpenAI server error (503) for model 'gpt-4o' (gave up after 4 attempts)",
            Cause.PROVIDER_ERROR,
        ),
        ("Anthropic is overloaded (529)", Cause.PROVIDER_ERROR),
        ("LM Studio unreachable at http://localhost:1234/v1", Cause.PROVIDER_ERROR),
        ("model 'x' not found at OpenAI (https://api.openai.com/v1) (404)", Cause.PROVIDER_ERROR),
        ("cancelled before grading", Cause.CANCELLED),
        ("internal error while grading (KeyError: 'x')", Cause.OTHER),
        (None, Cause.OTHER),
    ],
)
def test_failure_causes(message, cause):
    assert classify(message) == cause
