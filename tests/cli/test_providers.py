"""`grading-app providers` and `providers check`, against the fake vendor and a closed port."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from grading_app.cli.providers import providers_app
from tests.fakes import FakeLLMServer, Fault

SECRET = "sk-or-v1-do-not-print-me"
CLAUDE_SECRET = "sk-ant-legacy-do-not-print"

# Every variable the registry reads, blanked, so the developer's own keys never leak in.
_BLANK = {
    name: ""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_MODEL",
        "OPENROUTER_API_KEY",
        "OPENROUTER_BASE_URL",
        "OPENROUTER_MODEL",
        "ANTHROPIC_API_KEY",
        "CLAUDE_API_KEY",
        "ANTHROPIC_BASE_URL",
        "CLAUDE_MODEL",
        "ANTHROPIC_MODEL",
        "LM_STUDIO_URL",
        "LM_STUDIO_API_KEY",
        "LM_STUDIO_MODEL",
        "OLLAMA_URL",
        "OLLAMA_API_KEY",
        "OLLAMA_MODEL",
        "GRADING_APP_CUSTOM_PROVIDERS",
        "GRADING_APP_RATE_LIMITS",
    )
}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        fake.models = ["openai/gpt-4o-mini", "claude-sonnet-5-5", "local-model"]
        yield fake


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**values: str) -> dict[str, str]:
    return {**_BLANK, "COLUMNS": "250", **values}


def _run(args: list[str], env: dict[str, str]):
    return CliRunner().invoke(providers_app, args, env=env)


def test_listing_shows_every_provider_and_never_a_key(server: FakeLLMServer) -> None:
    result = _run(
        [],
        _env(
            OPENROUTER_API_KEY=SECRET,
            OPENROUTER_BASE_URL=server.openai_base_url,
            CLAUDE_API_KEY=CLAUDE_SECRET,
            GRADING_APP_RATE_LIMITS="openrouter=60/8,openrouter:openai/gpt-4o=20/2",
        ),
    )

    assert result.exit_code == 0, result.output
    out = result.output
    assert SECRET not in out and CLAUDE_SECRET not in out
    for name in ("openai", "openrouter", "claude", "lm_studio", "ollama"):
        assert name in out
    assert "yes (OPENROUTER_API_KEY)" in out
    assert "yes (CLAUDE_API_KEY)" in out
    assert "no: set OPENAI_API_KEY" in out
    assert "not needed" in out
    assert server.openai_base_url in out
    assert "60/min, 8 at once" in out
    assert "openai/gpt-4o: 20/min, 2 at once" in out
    assert "openai (not set up)" in out


def test_check_reports_ok_and_the_unreachable_local_server(
    server: FakeLLMServer, closed_port: int
) -> None:
    lm_studio_url = f"http://127.0.0.1:{closed_port}/v1"
    result = _run(
        ["check", "--timeout", "5"],
        _env(
            OPENROUTER_API_KEY=SECRET,
            OPENROUTER_BASE_URL=server.openai_base_url,
            CLAUDE_API_KEY=CLAUDE_SECRET,
            ANTHROPIC_BASE_URL=server.anthropic_base_url,
            LM_STUDIO_URL=lm_studio_url,
        ),
    )

    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("OK   openrouter: 3 models available") for line in lines)
    assert any(line.startswith("OK   claude: 3 models available") for line in lines)
    lm_line = next(line for line in lines if "lm_studio" in line)
    assert lm_line.startswith("FAIL lm_studio: LM Studio unreachable at " + lm_studio_url)
    assert lm_line.endswith("is LM Studio running with its local server started?")
    # Providers that are not set up are not checked; OpenRouter's key was proven.
    assert "openai:" not in result.output and "ollama" not in result.output
    assert "/v1/key" in [r.path for r in server.requests]
    assert SECRET not in result.output


def test_check_one_provider_passes(server: FakeLLMServer) -> None:
    result = _run(
        ["check", "lm-studio"],
        _env(LM_STUDIO_URL=server.openai_base_url, LM_STUDIO_MODEL="local-model"),
    )

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "OK   lm_studio: 3 models available"


def test_check_with_grade_runs_the_whole_grading_path(server: FakeLLMServer) -> None:
    result = _run(
        ["check", "claude", "--grade", "claude-sonnet-5-5", "--temperature", "0.2"],
        _env(ANTHROPIC_API_KEY=CLAUDE_SECRET, ANTHROPIC_BASE_URL=server.anthropic_base_url),
    )

    assert result.exit_code == 0, result.output
    assert "OK   claude: 3 models available; graded a test document with" in result.output
    assert "(structured output)" in result.output
    graded = server.requests[-1]
    assert graded.path == "/v1/messages" and graded.body["temperature"] == 0.2


def test_check_with_grade_says_why_grading_fails(server: FakeLLMServer) -> None:
    server.script("fake-grader", [Fault.invalid_grade(), Fault.invalid_grade()])
    result = _run(
        ["check", "openai", "--grade", "fake-grader"],
        _env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=server.openai_base_url),
    )

    assert result.exit_code == 1
    assert result.output.startswith("FAIL openai: ")
    assert SECRET not in result.output


def test_check_with_grade_needs_the_provider_named() -> None:
    result = _run(["check", "--grade", "some-model"], _env())

    assert result.exit_code == 1
    assert "--grade needs the provider" in result.output


def test_check_says_the_key_was_rejected(server: FakeLLMServer) -> None:
    server.api_key = "the-real-key"
    result = _run(
        ["check", "openrouter"],
        _env(OPENROUTER_API_KEY=SECRET, OPENROUTER_BASE_URL=server.openai_base_url),
    )

    assert result.exit_code == 1
    assert "FAIL openrouter: OpenRouter rejected the API key (401): check OPENROUTER_API_KEY" in (
        result.output
    )
    assert SECRET not in result.output


def test_check_of_a_provider_without_its_key_says_what_to_set() -> None:
    result = _run(["check", "openai"], _env())

    assert result.exit_code == 1
    assert "FAIL openai: OpenAI has no API key: set OPENAI_API_KEY" in result.output


def test_check_of_an_unknown_provider_fails_with_the_known_names() -> None:
    result = _run(["check", "gemini"], _env())

    assert result.exit_code == 1
    assert "unknown provider 'gemini'; available:" in result.output


def test_check_with_nothing_set_up_explains_how() -> None:
    result = _run(["check"], _env())

    assert result.exit_code == 1
    assert "No provider is set up" in result.output


def test_bad_configuration_is_a_one_line_error() -> None:
    result = _run([], _env(GRADING_APP_RATE_LIMITS="gemini=1"))

    assert result.exit_code == 1
    assert "Error: GRADING_APP_RATE_LIMITS: unknown provider 'gemini'" in result.output
