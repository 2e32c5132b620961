"""What several forms offer and read alike: the models of the configured providers, the
models a form chose (checked boxes plus typed provider:model lines), the library items
one may use, and pydantic's complaints as errors beside the form's fields."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from grading_app.accounts import access
from grading_app.accounts.principal import Principal
from grading_app.library import service as library
from grading_app.models import SavedMarkingScheme, SavedPrompt
from grading_app.providers.registry import load_provider_configs

CHOICES = 200  # templates and library items offered in a select


def configured_models() -> list[str]:
    """`provider:model` for each configured provider's default model."""
    configs = load_provider_configs()
    return [
        f"{config.name}:{config.default_model}"
        for config in configs.values()
        if config.configured and config.default_model
    ]


def split_offered(models: Iterable[str], configured: list[str]) -> tuple[list[str], str]:
    """Stored models as a form shows them: those offered as boxes, and the others as the
    lines of the "other models" field."""
    listed = list(models)
    return [m for m in listed if m in configured], "\n".join(
        m for m in listed if m not in configured
    )


def chosen_models(
    form: dict[str, Any], configured: list[str], errors: dict[str, str], *, required: bool = True
) -> list[str]:
    """The models a form chose; one whose provider is not configured here is an error
    beside the "other models" field."""
    chosen = list(form.get("models") or [])
    chosen += [line.strip() for line in form.get("other_models", "").splitlines() if line.strip()]
    names = {label.split(":", 1)[0] for label in configured}
    for label in chosen:
        provider = label.split(":", 1)[0].strip().lower()
        if ":" not in label:
            errors["other_models"] = f"'{label}': write provider:model, e.g. openai:gpt-4o-mini"
        elif provider not in names:
            listed = ", ".join(sorted(names)) or "none (see the README's providers)"
            errors["other_models"] = (
                f"'{label}': the provider {provider} is not configured on this server; "
                f"configured: {listed}"
            )
    if required and not chosen:
        errors["models"] = "Choose at least one model"
    return list(dict.fromkeys(chosen))


def visible_library(
    session: Session, principal: Principal, *, limit: int
) -> tuple[list[SavedPrompt], list[SavedMarkingScheme]]:
    """The saved prompts and marking schemes `principal` may use, up to `limit` each."""
    _, prompts = library.list_prompts(
        session,
        q=None,
        category=None,
        limit=limit,
        offset=0,
        visible=access.library_visible(principal, SavedPrompt),
    )
    _, schemes = library.list_marking_schemes(
        session,
        q=None,
        category=None,
        limit=limit,
        offset=0,
        visible=access.library_visible(principal, SavedMarkingScheme),
    )
    return list(prompts), list(schemes)


def library_choices(session: Session, principal: Principal) -> dict[str, list[tuple[str, str]]]:
    """The saved prompts and marking schemes `principal` may use, as (id, name)."""
    prompts, schemes = visible_library(session, principal, limit=CHOICES)
    return {
        "prompts": [(p.id, p.name) for p in prompts],
        "schemes": [(s.id, s.name) for s in schemes],
    }


def field_errors(exc: ValidationError, fields: Iterable[str], errors: dict[str, str]) -> None:
    """Each complaint beside the form field it is about: the last part of its location
    that names one of `fields` (a nested `default_settings.temperature` is the
    `temperature` field), else the form as a whole."""
    known = set(fields)
    for error in exc.errors():
        named = [str(part) for part in error["loc"] if str(part) in known]
        field = named[-1] if named else "form"
        message = str(error["msg"]).removeprefix("Value error, ")
        if field == "form" and error["loc"]:
            message = f"{'.'.join(str(p) for p in error['loc'])}: {message}"
        errors.setdefault(field, message)
