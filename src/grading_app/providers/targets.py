"""Which models grade: `provider:model` targets, parsed and checked one way for every
path (API, forms, CLI, legacy jobs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from grading_app.errors import BadRequest
from grading_app.models import GradingJob
from grading_app.providers.registry import (
    ProviderConfig,
    ProviderConfigError,
    ProviderNotConfigured,
    UnknownProvider,
    load_provider_configs,
    require_key,
    resolve_config,
)

# Column widths (PostgreSQL enforces them; SQLite would not complain).
PROVIDER_LENGTH = 50
MODEL_LENGTH = 100
# A form field may list several models, comma-separated.
MODEL_FIELD_LENGTH = 2_000
# The shape `parse_targets` takes, for the OpenAPI document: a provider (not a URL), a
# colon, a model. Whether this server knows and has a key for the provider is its
# configuration, checked when a batch or job is created (a 400 saying which).
MODEL_LABEL_PATTERN = r"^\s*(?!http)[^\s:,][^:,]*:\s*[^\s,][^,]*$"


@dataclass(frozen=True)
class Target:
    provider: str
    model: str

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.model}"


def parse_targets(
    values: list[Any], *, default_provider: str | None, or_else: str = " or pass --provider"
) -> list[Target]:
    """Models as `provider:model`, `{"provider": .., "model": ..}`, or a bare model name
    for the default provider; duplicates removed, order kept."""
    targets: list[Target] = []
    for value in values:
        if isinstance(value, dict):
            provider, model = value.get("provider") or default_provider, value.get("model")
        elif isinstance(value, str) and ":" in value and not value.startswith("http"):
            provider, model = (part.strip() for part in value.split(":", 1))
        else:
            provider, model = default_provider, value
        if not provider or not model:
            raise BadRequest(
                f"Model {value!r} needs a provider: write it as provider:model "
                f"(for example openrouter:openai/gpt-4o){or_else}"
            )
        target = Target(str(provider), str(model))
        if target not in targets:
            targets.append(target)
    return targets


def check_targets(
    targets: Sequence[Target], *, configs: Mapping[str, ProviderConfig] | None = None
) -> list[Target]:
    """The targets with their providers' canonical names; an unknown provider, or one
    without its API key, is refused now rather than failing every item later."""
    configs = configs if configs is not None else load_provider_configs()
    checked: list[Target] = []
    for target in targets:
        try:
            config = resolve_config(target.provider, configs)
            require_key(config)
        except (UnknownProvider, ProviderNotConfigured) as exc:
            raise type(exc)(f"Model '{target.label}': {exc.message}") from exc
        if len(target.model) > MODEL_LENGTH:
            raise BadRequest(f"Model name '{target.model[:40]}...' is longer than {MODEL_LENGTH}")
        canonical = Target(config.name[:PROVIDER_LENGTH], target.model)
        if canonical not in checked:
            checked.append(canonical)
    return checked


def job_targets(job: GradingJob) -> list[Target]:
    compare = job.models_to_compare if isinstance(job.models_to_compare, list) else []
    if compare:
        return parse_targets(compare, default_provider=job.provider)
    if not job.model:
        raise BadRequest(f"Job '{job.job_name}' names no model to grade with")
    return [Target(job.provider, job.model)]


def _known_providers() -> str:
    try:
        return ", ".join(load_provider_configs())
    except ProviderConfigError as exc:  # the environment's own mistake, said elsewhere
        return f"none readable ({exc.message})"


def _provider_and_model(value: str) -> str:
    """A model as `provider:model` (a form may also send several, comma-separated): the
    same parser as every other path, and with no default provider, so `gpt-4o` alone is
    refused rather than quietly given one."""
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            parse_targets([part], default_provider=None, or_else="")
        except BadRequest as exc:
            raise PydanticCustomError(
                "model_label",
                "{reason}; known providers: {providers}",
                {"reason": exc.message, "providers": _known_providers()},
            ) from None
    return value


ModelLabel = Annotated[
    str,
    StringConstraints(max_length=MODEL_FIELD_LENGTH),
    AfterValidator(_provider_and_model),
    Field(json_schema_extra={"pattern": MODEL_LABEL_PATTERN}),
]
