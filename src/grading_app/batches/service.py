"""Batches: create (blank or from a template), read.

Their lifecycle (start, pause, resume, cancel, retry, settle) is `lifecycle/service.py`;
their jobs and documents are `jobs/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from grading_app.batches.schemas import DEFAULT_SETTINGS, MAX_RETRIES, BatchCreate
from grading_app.errors import BadRequest
from grading_app.fields import check_generation, check_name, clean_tags, naive_utc, split_models
from grading_app.library import service as library
from grading_app.models import JobBatch, utcnow
from grading_app.providers.targets import check_targets, parse_targets
from grading_app.templates import service as templates


def create_batch(
    session: Session,
    *,
    name: str,
    description: str | None = None,
    priority: int = 5,
    deadline: datetime | None = None,
    tags: list[str] | None = None,
    settings: dict[str, Any] | None = None,
    template_id: str | None = None,
    created_by: str | None = None,
) -> JobBatch:
    if not 1 <= priority <= 10:
        raise BadRequest(f"Priority must be between 1 and 10, not {priority}")
    now = utcnow()
    batch = JobBatch(
        batch_name=name,
        description=description,
        status="draft",
        priority=priority,
        deadline=deadline,
        tags=tags or [],
        batch_settings=settings or {},
        template_id=template_id,
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    session.add(batch)
    session.flush()
    return batch


def create_draft_batch(session: Session, *, data: BatchCreate) -> JobBatch:
    """A draft batch from the API; a template's default settings, prompt and processing
    rules fill whatever the request leaves out."""
    template = None
    if data.template_id or data.template:
        template = templates.find_template(
            session, template_id=data.template_id, name=data.template
        )
    defaults = templates.mapping(template.default_settings) if template else {}
    rules = templates.mapping(template.processing_rules) if template else {}
    prompt = data.prompt
    if data.saved_prompt_id is not None:
        if prompt is not None:
            raise BadRequest("Give `prompt` or `saved_prompt_id`, not both")
        prompt = library.use_prompt(session, prompt_id=data.saved_prompt_id).prompt_text
    if data.saved_marking_scheme_id is not None:
        library.use_marking_scheme(session, scheme_id=data.saved_marking_scheme_id)
    if prompt is None and template is not None:
        prompt = templates.template_instructions(template)[0]
    template_models = templates.template_models(template) if template else []
    models = split_models(data.models if data.models is not None else template_models)
    targets = check_targets(parse_targets(models, default_provider=None, or_else=""))
    temperature = data.temperature if data.temperature is not None else defaults.get("temperature")
    max_tokens = data.max_tokens if data.max_tokens is not None else defaults.get("max_tokens")
    check_generation(temperature, max_tokens)
    settings = {**DEFAULT_SETTINGS, **rules, **(data.settings or {})}
    _check_settings(settings)
    priority = data.priority if data.priority is not None else defaults.get("priority", 5)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise BadRequest(f"Priority must be a whole number from 1 to 10, not {priority!r}")
    tags = data.tags if data.tags is not None else defaults.get("tags")
    batch = create_batch(
        session,
        name=check_name(data.name, what="batch"),
        description=data.description,
        priority=priority,
        deadline=naive_utc(data.deadline),
        tags=clean_tags(tags or []),
        settings=settings,
        template_id=template.id if template else None,
    )
    batch.prompt = prompt.strip() if prompt and prompt.strip() else None
    batch.saved_prompt_id = data.saved_prompt_id
    batch.saved_marking_scheme_id = data.saved_marking_scheme_id
    batch.temperature = temperature
    batch.max_tokens = max_tokens
    if targets:
        batch.provider, batch.model = targets[0].provider, targets[0].model
        batch.models_to_compare = [t.label for t in targets]
    if template is not None:
        templates.record_use(session, template_id=template.id)
    session.flush()
    return batch


def _check_settings(settings: Mapping[str, Any]) -> None:
    retries = settings.get("max_retries", 3)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= MAX_RETRIES:
        raise BadRequest(
            f"settings.max_retries must be a whole number from 0 to {MAX_RETRIES}, not {retries!r}"
        )
