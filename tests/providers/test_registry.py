"""Provider configuration from the environment, and building providers by name."""

from __future__ import annotations

import json

import pytest

from grading_app.errors import BadRequest
from grading_app.grading.schema import GRADE_JSON_SCHEMA
from grading_app.providers.anthropic_provider import AnthropicProvider
from grading_app.providers.base import ChatRequest
from grading_app.providers.openai_compat import OpenAICompatProvider
from grading_app.providers.registry import (
    ProviderConfigError,
    ProviderNotConfigured,
    RateLimits,
    UnknownProvider,
    canonical_name,
    get_provider,
    load_provider_configs,
)
from tests.fakes import FakeLLMServer, expected_grade

SECRET = "sk-or-v1-0123456789abcdef"


def test_builtins_are_known_with_their_defaults_even_when_nothing_is_set() -> None:
    configs = load_provider_configs({})

    assert list(configs) == ["openai", "openrouter", "claude", "lm_studio", "ollama"]
    assert configs["openrouter"].base_url == "https://openrouter.ai/api/v1"
    assert configs["claude"].kind == "anthropic"
    assert configs["lm_studio"].base_url == "http://localhost:1234/v1"
    assert configs["ollama"].base_url == "http://localhost:11434/v1"
    assert not any(config.configured for config in configs.values())
    assert not any(config.has_key for config in configs.values())


def test_keys_and_addresses_come_from_the_environment() -> None:
    configs = load_provider_configs(
        {
            "OPENAI_API_KEY": "sk-openai",
            "OPENAI_BASE_URL": "http://proxy.local/v1/",
            "OPENROUTER_API_KEY": SECRET,
            "OPENROUTER_MODEL": "anthropic/claude-3.5-haiku",
            "LM_STUDIO_URL": "http://10.0.0.5:1234/v1",
            "OLLAMA_URL": "",  # empty counts as unset
        }
    )

    assert configs["openai"].api_key == "sk-openai"
    assert configs["openai"].base_url == "http://proxy.local/v1"
    assert configs["openrouter"].configured and configs["openrouter"].api_key == SECRET
    assert configs["openrouter"].default_model == "anthropic/claude-3.5-haiku"
    assert configs["lm_studio"].configured and configs["lm_studio"].base_url.startswith("http://10")
    assert not configs["ollama"].configured


def test_claude_reads_the_legacy_key_and_prefers_the_new_one() -> None:
    legacy = load_provider_configs({"CLAUDE_API_KEY": "sk-ant-legacy"})["claude"]
    both = load_provider_configs(
        {"CLAUDE_API_KEY": "sk-ant-legacy", "ANTHROPIC_API_KEY": "sk-ant-new"}
    )["claude"]

    assert legacy.api_key == "sk-ant-legacy" and legacy.key_env == "CLAUDE_API_KEY"
    assert both.api_key == "sk-ant-new" and both.key_env == "ANTHROPIC_API_KEY"


@pytest.mark.parametrize(
    ("stored", "canonical"),
    [
        ("openrouter", "openrouter"),
        ("claude", "claude"),
        ("anthropic", "claude"),
        ("Anthropic", "claude"),
        ("lm_studio", "lm_studio"),
        ("LM Studio", "lm_studio"),
        ("lm-studio", "lm_studio"),
        ("lmstudio", "lm_studio"),
        (" OpenRouter ", "openrouter"),
    ],
)
def test_legacy_and_alias_names_resolve(stored: str, canonical: str) -> None:
    environ = {"OPENROUTER_API_KEY": SECRET, "CLAUDE_API_KEY": "sk-ant-legacy"}
    configs = load_provider_configs(environ)

    assert canonical_name(stored) == canonical
    assert configs[stored].name == canonical
    assert configs.get(stored) is configs[canonical]
    assert get_provider(stored, configs).name == canonical


def test_provider_kinds() -> None:
    configs = load_provider_configs({"OPENROUTER_API_KEY": SECRET, "ANTHROPIC_API_KEY": "k"})

    assert isinstance(get_provider("claude", configs), AnthropicProvider)
    assert isinstance(get_provider("openrouter", configs), OpenAICompatProvider)
    assert isinstance(get_provider("ollama", configs), OpenAICompatProvider)  # no key needed


def test_unknown_provider_lists_the_available_ones() -> None:
    with pytest.raises(UnknownProvider) as caught:
        get_provider("gemini", load_provider_configs({}))

    assert isinstance(caught.value, BadRequest)
    assert caught.value.message.startswith("unknown provider 'gemini'; available: ")
    assert "openrouter" in caught.value.message and "lm_studio" in caught.value.message


@pytest.mark.parametrize(
    ("name", "advice"),
    [
        ("openrouter", "OpenRouter has no API key: set OPENROUTER_API_KEY"),
        ("openai", "OpenAI has no API key: set OPENAI_API_KEY"),
        (
            "claude",
            "Anthropic has no API key: set ANTHROPIC_API_KEY (or the legacy CLAUDE_API_KEY)",
        ),
    ],
)
def test_missing_key_says_which_variable_to_set(name: str, advice: str) -> None:
    with pytest.raises(ProviderNotConfigured) as caught:
        get_provider(name, load_provider_configs({}))

    assert caught.value.message == advice
    assert caught.value.status_code == 400


def test_repr_masks_the_key() -> None:
    configs = load_provider_configs({"OPENROUTER_API_KEY": SECRET})
    config = configs["openrouter"]

    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert SECRET not in repr(configs)
    assert "api_key='***'" in repr(config)
    assert "api_key=None" in repr(configs["openai"])
    assert SECRET not in repr(get_provider("openrouter", configs))


def test_custom_openai_compatible_endpoints() -> None:
    configs = load_provider_configs(
        {
            "GRADING_APP_CUSTOM_PROVIDERS": "vllm=http://gpu:8000/v1, Together=https://api.together.xyz/v1",
            "VLLM_MODEL": "qwen2.5-7b",
            "TOGETHER_API_KEY": "tg-key",
        }
    )

    assert configs["vllm"].kind == "openai"
    assert configs["vllm"].base_url == "http://gpu:8000/v1"
    assert configs["vllm"].default_model == "qwen2.5-7b"
    assert configs["vllm"].api_key is None and configs["vllm"].key_env == "VLLM_API_KEY"
    assert configs["together"].api_key == "tg-key" and configs["together"].configured
    assert isinstance(get_provider("vllm", configs), OpenAICompatProvider)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("vllm", "cannot read 'vllm'"),
        ("vllm=gpu:8000", "cannot read"),
        ("9bad=http://x/v1", "cannot read"),
        ("openrouter=http://x/v1", "'openrouter' is a built-in provider"),
    ],
)
def test_bad_custom_provider_entries_are_refused(value: str, fragment: str) -> None:
    with pytest.raises(ProviderConfigError, match=fragment):
        load_provider_configs({"GRADING_APP_CUSTOM_PROVIDERS": value})


def test_rate_limits_per_provider_and_per_model() -> None:
    configs = load_provider_configs(
        {
            "GRADING_APP_RATE_LIMITS": (
                "openrouter=60/8, openrouter:openai/gpt-4o=20/2, anthropic=50, "
                "ollama=-/1, ollama:llama3:8b=/3"
            )
        }
    )

    openrouter = configs["openrouter"]
    assert (openrouter.rpm, openrouter.concurrency) == (60, 8)
    assert openrouter.limits_for("openai/gpt-4o") == RateLimits(20, 2)
    assert openrouter.limits_for("meta/llama") == RateLimits(60, 8)
    rpm, concurrency = configs["claude"].limits_for("claude-x")  # unpacks like a tuple
    assert (rpm, concurrency) == (50, None)
    assert configs["ollama"].limits_for("llama3:8b") == RateLimits(None, 3)
    assert configs["ollama"].limits_for("mistral") == RateLimits(None, 1)
    assert configs["openai"].limits_for("gpt-4o") == RateLimits(None, None)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("gemini=60/2", "unknown provider 'gemini'"),
        ("openrouter=sixty", "positive whole numbers"),
        ("openrouter=0/2", "positive whole numbers"),
        ("openrouter", "cannot read 'openrouter'"),
    ],
)
def test_bad_rate_limits_are_refused(value: str, fragment: str) -> None:
    with pytest.raises(ProviderConfigError, match=fragment):
        load_provider_configs({"GRADING_APP_RATE_LIMITS": value})


def test_environment_points_providers_at_the_fake_vendor() -> None:
    with FakeLLMServer() as server:
        environ = {
            "OPENROUTER_API_KEY": SECRET,
            "OPENROUTER_BASE_URL": server.openai_base_url,
            "CLAUDE_API_KEY": "sk-ant-legacy",
            "ANTHROPIC_BASE_URL": server.anthropic_base_url,
        }
        configs = load_provider_configs(environ)
        request = ChatRequest(
            model="m1", system="s", user="<document>Text</document>", json_schema=GRADE_JSON_SCHEMA
        )

        routed = get_provider("openrouter", configs).complete(request)
        legacy = get_provider("claude", configs).complete(request)

        assert json.loads(routed.text) == expected_grade("m1", "Text")
        assert json.loads(legacy.text) == expected_grade("m1", "Text")
        assert [r.path for r in server.requests] == ["/v1/chat/completions", "/v1/messages"]
        assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
