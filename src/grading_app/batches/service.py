"""Batches: create (blank or from a template), edit.

Their lifecycle (start, pause, resume, cancel, retry, settle) is `lifecycle/service.py`;
their jobs and documents are `jobs/`; listing them is `queries.py`, deleting them
`removal.py`, copying them `duplicate.py`, acting on many at once `bulk.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.accounts import access
from grading_app.accounts.principal import Principal
from grading_app.batches.schemas import BatchCreate, BatchUpdate
from grading_app.errors import BadRequest, Conflict
from grading_app.fields import check_generation, check_name, clean_tags, naive_utc, split_models
from grading_app.library import service as library
from grading_app.lifecycle import service as lifecycle
from grading_app.models import (
    BatchStatus,
    BatchTemplate,
    GradingJob,
    JobBatch,
    JobStatus,
    WorkItem,
    WorkItemState,
    utcnow,
)
from grading_app.processing.service import enqueue_job
from grading_app.processing.settings import DEFAULT_SETTINGS, MAX_RETRIES, check_delivery
from grading_app.providers.targets import Target, check_targets, parse_targets
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
    owner_id: str | None = None,
) -> JobBatch:
    check_priority(priority)
    now = utcnow()
    batch = JobBatch(
        batch_name=name,
        description=description,
        status=BatchStatus.DRAFT,
        priority=priority,
        deadline=deadline,
        tags=tags or [],
        batch_settings=settings or {},
        template_id=template_id,
        created_by=created_by,
        owner_id=owner_id,
        created_at=now,
        updated_at=now,
    )
    session.add(batch)
    session.flush()
    return batch


def starting_template(
    session: Session,
    principal: Principal,
    *,
    template_id: str | None,
    name: str | None = None,
    prompt_id: str | None,
    scheme_id: str | None,
) -> tuple[BatchTemplate | None, dict[str, Any], dict[str, Any]]:
    """The template a new batch starts from, if any, with its default settings and
    processing rules; it and the library items named must be ones `principal` may see."""
    access.check_references(
        session, principal, template_id=template_id, prompt_id=prompt_id, scheme_id=scheme_id
    )
    if not (template_id or name):
        return None, {}, {}
    template = templates.find_template(
        session, template_id=template_id, name=name, visible=access.template_visible(principal)
    )
    defaults = templates.mapping(template.default_settings)
    return template, defaults, templates.mapping(template.processing_rules)


def new_batch_settings(
    template: BatchTemplate | None, rules: Mapping[str, Any], given: Mapping[str, Any]
) -> dict[str, Any]:
    """A new batch's settings: the defaults, the template's trust defaults and rules,
    then what the request gives; checked."""
    settings = _drop_null_budget(
        {**DEFAULT_SETTINGS, **_trust_defaults(template), **rules, **given}
    )
    _check_settings(settings)
    return settings


def create_draft_batch(session: Session, *, data: BatchCreate, owner: Principal) -> JobBatch:
    """A draft batch from the API, owned by `owner`; a template's default settings,
    prompt and processing rules fill whatever the request leaves out. The template and
    library items named must be ones the owner may see."""
    template, defaults, rules = starting_template(
        session,
        owner,
        template_id=data.template_id,
        name=data.template,
        prompt_id=data.saved_prompt_id,
        scheme_id=data.saved_marking_scheme_id,
    )
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
    settings = new_batch_settings(template, rules, data.settings or {})
    check_delivery(settings, [t.provider for t in targets])
    priority = check_priority(
        data.priority if data.priority is not None else defaults.get("priority", 5)
    )
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
        created_by=owner.username,
        owner_id=access.owner_id_for(session, owner),
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


# Templates for students' work: their batches keep personal data home unless the
# template's rules or the request say otherwise.
EDUCATION_CATEGORIES = frozenset({"academic", "creative"})


def _trust_defaults(template: BatchTemplate | None) -> dict[str, Any]:
    if template is not None and (template.category or "").lower() in EDUCATION_CATEGORIES:
        return {"redact_pii": True}
    return {}


def _drop_null_budget(settings: dict[str, Any]) -> dict[str, Any]:
    """`budget: null` is no budget: the key goes."""
    if "budget" in settings and settings["budget"] is None:
        del settings["budget"]
    return settings


def batch_providers(session: Session, batch: JobBatch) -> set[str]:
    """The providers the batch grades with: its models and its jobs' (a job may name
    its own)."""
    labels = batch.models_to_compare if isinstance(batch.models_to_compare, list) else []
    providers = {str(label).split(":", 1)[0] for label in labels if isinstance(label, str)}
    providers.update(
        session.scalars(
            sa.select(WorkItem.provider).where(WorkItem.batch_id == batch.id).distinct()
        )
    )
    return providers


def _check_settings(settings: Mapping[str, Any]) -> None:
    retries = settings.get("max_retries", 3)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= MAX_RETRIES:
        raise BadRequest(
            f"settings.max_retries must be a whole number from 0 to {MAX_RETRIES}, not {retries!r}"
        )


# --- editing ----------------------------------------------------------------------------

# What a PATCH may change, and when (README "Editing a batch"):
#
#   fields                                        may change while the batch is
#   name, description, tags, priority, deadline   any status but archived
#   settings                                      any status but processing (pause it
#                                                 first) and archived
#   prompt, models, temperature, max_tokens,      draft, or paused before any item was
#   saved_prompt_id, saved_marking_scheme_id      claimed (never started); the batch's
#                                                 jobs take the change too
#
# Grading changes reach the jobs because nothing of theirs has been graded yet; once
# grading has begun, a regrade with other settings is a duplicate (POST .../duplicate),
# so that no batch holds grades made under two prompts. Claiming reads a batch's
# priority at each claim (processing/claim.py), so a new priority orders the very next
# claim.
LABEL_FIELDS = frozenset({"name", "description", "tags", "priority", "deadline"})
GRADING_FIELDS = frozenset(
    {"prompt", "models", "temperature", "max_tokens", "saved_prompt_id", "saved_marking_scheme_id"}
)


def update_batch(session: Session, *, batch_id: str, changes: BatchUpdate) -> JobBatch:
    given = changes.model_fields_set
    if "models" in given:
        _lock_items(session, batch_id)
    batch = lifecycle.lock_batch(session, batch_id)
    _check_editable(batch, given)
    now = utcnow()
    if "name" in given:
        batch.batch_name = check_name(changes.name, what="batch")
    if "description" in given:
        batch.description = changes.description
    if "tags" in given:
        batch.tags = clean_tags(changes.tags or [])
    if "deadline" in given:
        batch.deadline = naive_utc(changes.deadline)
    if "priority" in given:
        batch.priority = check_priority(changes.priority)
        session.execute(
            sa.update(GradingJob)
            .where(GradingJob.batch_id == batch.id)
            .values(priority=batch.priority)
            .execution_options(synchronize_session=False)
        )
    if "settings" in given:
        current = batch.batch_settings if isinstance(batch.batch_settings, dict) else {}
        settings = _drop_null_budget({**current, **(changes.settings or {})})
        _check_settings(settings)
        batch.batch_settings = settings
    if given & GRADING_FIELDS:
        _change_grading(session, batch, changes, now=now)
    if given & {"settings", "models"}:
        check_delivery(templates.mapping(batch.batch_settings), batch_providers(session, batch))
    batch.updated_at = now
    session.flush()
    return batch


def change_tags(
    session: Session,
    *,
    batch_id: str,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
) -> JobBatch:
    """Add and remove tags, keeping the others (bulk add_tags / remove_tags)."""
    batch = lifecycle.lock_batch(session, batch_id)
    _check_editable(batch, {"tags"})
    current = batch.tags if isinstance(batch.tags, list) else []
    removing = set(clean_tags(remove))
    kept = [tag for tag in current if isinstance(tag, str) and tag.strip() not in removing]
    batch.tags = clean_tags([*kept, *add])
    batch.updated_at = utcnow()
    session.flush()
    return batch


def check_priority(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10:
        raise BadRequest(f"Priority must be a whole number between 1 and 10, not {value!r}")
    return value


def _check_editable(batch: JobBatch, given: set[str]) -> None:
    if batch.status == BatchStatus.ARCHIVED:
        raise Conflict(f"Cannot change batch '{batch.batch_name}': it is archived")
    if "settings" in given and batch.status == BatchStatus.PROCESSING:
        raise Conflict(
            f"Cannot change the settings of batch '{batch.batch_name}': it is processing; "
            "pause it first"
        )
    grading = sorted(given & GRADING_FIELDS)
    state = grading_state(batch)
    if grading and state is not None:
        raise Conflict(
            f"Cannot change the {', '.join(grading)} of batch '{batch.batch_name}': it is "
            f"{state}. These change only while a batch is a draft, or paused "
            "before any document was graded; to grade it again another way, duplicate it "
            f"(POST /api/batches/{batch.id}/duplicate)"
        )


def grading_state(batch: JobBatch) -> str | None:
    """None while the batch's grading fields (GRADING_FIELDS) may change; else the state
    that keeps them, as a refusal names it ("processing", "paused after grading began")."""
    if batch.status == BatchStatus.DRAFT or (
        batch.status == BatchStatus.PAUSED and batch.started_at is None
    ):
        return None
    if batch.status == BatchStatus.PAUSED:
        return "paused after grading began"
    return batch.status or "without a status"


def _lock_items(session: Session, batch_id: str) -> None:
    """On PostgreSQL, the batch's work items before the batch row: the order every
    writer locks them in (lifecycle/service.py)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa.select(WorkItem.id)
            .where(WorkItem.batch_id == batch_id)
            .order_by(WorkItem.id)
            .with_for_update()
        )


def _change_grading(
    session: Session, batch: JobBatch, changes: BatchUpdate, *, now: datetime
) -> None:
    """Prompt, models, generation settings and library items, for the batch and for its
    jobs (none of which has been graded: `_check_editable`)."""
    given = changes.model_fields_set
    job_values: dict[str, Any] = {}
    prompt = batch.prompt
    if "saved_prompt_id" in given:
        if changes.saved_prompt_id is not None:
            prompt = library.use_prompt(session, prompt_id=changes.saved_prompt_id).prompt_text
        batch.saved_prompt_id = job_values["saved_prompt_id"] = changes.saved_prompt_id
    scheme = None
    if "saved_marking_scheme_id" in given:
        scheme_id = changes.saved_marking_scheme_id
        if scheme_id is not None:
            scheme = library.use_marking_scheme(session, scheme_id=scheme_id)
        batch.saved_marking_scheme_id = job_values["saved_marking_scheme_id"] = scheme_id
    if "prompt" in given:
        prompt = changes.prompt
    if prompt != batch.prompt:
        batch.prompt = prompt.strip() if prompt and prompt.strip() else None
        if batch.prompt:  # a job always has one: clearing the batch's leaves theirs
            job_values["prompt"] = batch.prompt
    temperature = changes.temperature if "temperature" in given else batch.temperature
    max_tokens = changes.max_tokens if "max_tokens" in given else batch.max_tokens
    check_generation(temperature, max_tokens)
    for name, value in (("temperature", temperature), ("max_tokens", max_tokens)):
        if name in given:
            setattr(batch, name, value)
            job_values[name] = value
    targets = None
    if "models" in given:
        models = split_models(changes.models or [])
        targets = check_targets(parse_targets(models, default_provider=None, or_else=""))
        first = targets[0] if targets else None
        batch.provider, batch.model = (first.provider, first.model) if first else (None, None)
        batch.models_to_compare = [t.label for t in targets] or None
    live_jobs = sa.and_(
        GradingJob.batch_id == batch.id,
        GradingJob.status.is_distinct_from(JobStatus.CANCELLED.value),
    )
    if job_values:
        session.execute(
            sa.update(GradingJob)
            .where(live_jobs)
            .values(job_values)
            .execution_options(synchronize_session=False)
        )
    if scheme is not None:  # each job grades against its own copy of the scheme
        for job_id in session.scalars(sa.select(GradingJob.id).where(live_jobs)):
            copy = library.copy_for_job(session, scheme=scheme)
            session.execute(
                sa.update(GradingJob)
                .where(GradingJob.id == job_id)
                .values(marking_scheme_id=copy.id)
                .execution_options(synchronize_session=False)
            )
    if targets:  # without models the jobs keep theirs: a job needs one
        session.flush()
        for job in lifecycle.lock_jobs(session, live_jobs):
            _retarget(session, job, targets)
        session.refresh(batch)


def _retarget(session: Session, job: GradingJob, targets: list[Target]) -> None:
    """The job grades with `targets` from now on: queued items of other models go, the
    new models get items, and the counters follow (in SQL, as enqueueing moves them)."""
    wanted = [(t.provider, t.model) for t in targets]
    first = targets[0]
    job.provider, job.model = first.provider, first.model
    job.models_to_compare = [t.label for t in targets] if len(targets) > 1 else None
    removed = len(
        session.execute(
            sa.delete(WorkItem)
            .where(
                WorkItem.job_id == job.id,
                WorkItem.state == WorkItemState.QUEUED.value,
                sa.tuple_(WorkItem.provider, WorkItem.model).not_in(wanted),
            )
            .returning(WorkItem.id)
            .execution_options(synchronize_session=False)
        ).all()
    )
    if removed:
        for table, row_id in ((JobBatch, job.batch_id), (GradingJob, job.id)):
            session.execute(
                sa.update(table)
                .where(table.id == row_id)
                .values(total_items=table.total_items - removed)
                .execution_options(synchronize_session=False)
            )
    have = {
        (provider, model)
        for provider, model in session.execute(
            sa.select(WorkItem.provider, WorkItem.model).where(WorkItem.job_id == job.id).distinct()
        )
    }
    added = [model for model in wanted if model not in have]
    session.flush()
    if added:
        enqueue_job(session, job=job, models=added)
    session.refresh(job)
