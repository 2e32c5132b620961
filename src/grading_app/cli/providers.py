"""`grading-app providers`: list the configured LLM providers and check they answer."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from grading_app.errors import AppError
from grading_app.grading.prompt import build_request
from grading_app.grading.service import GradingFailed, grade_document
from grading_app.providers.base import ProviderError
from grading_app.providers.registry import (
    ProviderConfig,
    ProviderConfigs,
    build_provider,
    load_provider_configs,
    resolve_config,
)

providers_app = typer.Typer(
    help="List the configured LLM providers, or check that they answer.",
    invoke_without_command=True,
    add_completion=False,
)


def _consoles() -> tuple[Console, Console]:
    # Made per command so the terminal width and environment of this run apply.
    return Console(highlight=False), Console(stderr=True, highlight=False)


def _configs(errors: Console) -> ProviderConfigs:
    try:
        return load_provider_configs()
    except AppError as exc:
        errors.print(f"Error: {exc.message}", markup=False)
        raise typer.Exit(code=1) from exc


@providers_app.callback()
def list_providers(ctx: typer.Context) -> None:
    """List providers: kind, base URL, whether a key is set (never the key), limits."""
    if ctx.invoked_subcommand is not None:
        return
    console, errors = _consoles()
    configs = _configs(errors)
    table = Table(title="LLM providers")
    for column in ("name", "kind", "base URL", "API key", "default model", "limits"):
        table.add_column(column, overflow="fold")
    for config in configs.values():
        name = config.name if config.configured else f"{config.name} (not set up)"
        table.add_row(
            name,
            config.kind,
            config.base_url,
            _key_state(config),
            config.default_model or "-",
            _limits_text(config),
        )
    console.print(table)


@providers_app.command()
def check(
    name: Annotated[
        str | None,
        typer.Argument(help="Check only this provider (default: every one that is set up)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.")] = 10.0,
    grade: Annotated[
        str | None,
        typer.Option(
            "--grade",
            metavar="MODEL",
            help="Also grade a two-sentence test document with this model of the provider "
            "named (one small paid call): the whole grading path, structured answer "
            "included, not just the connection.",
        ),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="With --grade: the temperature to ask for, as a job would."),
    ] = None,
) -> None:
    """Make a real, tiny call to each provider and say what is wrong, if anything."""
    console, errors = _consoles()
    configs = _configs(errors)
    if grade is not None and name is None:
        errors.print(
            "Error: --grade needs the provider to grade with, e.g. "
            "`grading-app providers check claude --grade claude-sonnet-5-5`",
            markup=False,
        )
        raise typer.Exit(code=1)
    if name is not None:
        try:
            selected = [resolve_config(name, configs)]
        except AppError as exc:
            errors.print(f"Error: {exc.message}", markup=False)
            raise typer.Exit(code=1) from exc
    else:
        selected = [c for c in configs.values() if c.configured]
        if not selected:
            errors.print(
                "No provider is set up: set an API key (e.g. OPENROUTER_API_KEY) or a local "
                "server address (LM_STUDIO_URL, OLLAMA_URL); `grading-app providers` lists "
                "them all.",
                markup=False,
            )
            raise typer.Exit(code=1)
    failures = 0
    for config in selected:
        try:
            summary = _check_one(config, timeout)
            if grade is not None:
                summary += "; " + _grade_test_document(config, grade, timeout, temperature)
        except (ProviderError, AppError, GradingFailed) as exc:
            failures += 1
            console.print(f"[red]FAIL[/red] {config.name}: ", end="")
            message = exc.reason if isinstance(exc, GradingFailed) else exc.message
            console.print(message, markup=False)
        else:
            console.print(f"[green]OK[/green]   {config.name}: ", end="")
            console.print(summary, markup=False)
    if failures:
        raise typer.Exit(code=1)


def _check_one(config: ProviderConfig, timeout: float) -> str:
    provider = build_provider(config)
    return provider.check(default_model=config.default_model, timeout=timeout)


TEST_DOCUMENT = (
    "Rivers shape the land they cross. Over thousands of years they carve valleys, "
    "carry soil to the sea and build the plains where most people now live."
)


def _grade_test_document(
    config: ProviderConfig, model: str, timeout: float, temperature: float | None
) -> str:
    """Grade TEST_DOCUMENT as a job would; a summary, or the error that stopped it."""
    request = build_request(
        model=model,
        instructions="Grade this short paragraph out of 10 for clarity and accuracy.",
        document_text=TEST_DOCUMENT,
        document_name="provider-check.txt",
        temperature=temperature,
        max_tokens=1024,
        timeout_seconds=timeout,
    )
    outcome = grade_document(build_provider(config), request)
    how = "structured output" if outcome.structured else "JSON found in the text"
    if outcome.repaired:
        how += ", after one repair request"
    return (
        f"graded a test document with '{model}': {outcome.grade.overall_score:g}/"
        f"{outcome.grade.max_score:g} in {outcome.latency_ms / 1000:.1f} s ({how})"
    )


def _key_state(config: ProviderConfig) -> str:
    if config.has_key:
        return f"yes ({config.key_env})"
    if config.requires_key:
        return f"no: set {config.key_env}"
    return "not needed"


def _limits_text(config: ProviderConfig) -> str:
    def one(rpm: int | None, concurrency: int | None) -> str:
        parts = []
        if rpm:
            parts.append(f"{rpm}/min")
        if concurrency:
            parts.append(f"{concurrency} at once")
        return ", ".join(parts) or "none"

    lines = [one(config.rpm, config.concurrency)]
    lines += [f"{model}: {one(*limits)}" for model, limits in config.model_limits.items()]
    return "\n".join(lines)
