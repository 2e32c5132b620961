"""Batch templates: list, get, create (blank or from a batch), update, delete, duplicate;
find one by id or name, and read the instructions, rubric and defaults it gives a batch.

The four default templates are read-only (templates/defaults.py says why and how they
are known); a copy of one is a template like any other.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from grading_app.errors import BadRequest, Conflict, NotFound
from grading_app.fields import NAME_LENGTH, check_name, clean_tags
from grading_app.grading.rubric import Rubric, rubric_from_criteria, stored_rubric
from grading_app.listing import by_name, catalogue_where, list_page
from grading_app.models import BatchTemplate, JobBatch, SavedMarkingScheme, SavedPrompt, utcnow
from grading_app.processing.settings import BatchSettings, check_delivery
from grading_app.templates.defaults import (
    SYSTEM_CREATOR,
    is_default_name,
    is_default_template,
)
from grading_app.templates.schemas import (
    TemplateCreate,
    TemplateDefaults,
    TemplateDuplicate,
    TemplateUpdate,
)

# How many batches a refusal to delete names; the rest are counted.
NAMED_BATCHES = 5
_RULES = TypeAdapter(BatchSettings)


def find_template(
    session: Session,
    *,
    template_id: str | None = None,
    name: str | None = None,
    visible: sa.ColumnElement[bool] | None = None,
) -> BatchTemplate:
    """A template by id, or by name among those `visible` (None: every template)."""
    if template_id:
        template = session.get(BatchTemplate, template_id)
        if template is None:
            raise NotFound(f"No batch template with id {template_id}")
        return template
    wanted = (name or "").strip()
    shown = [] if visible is None else [visible]
    template = session.execute(
        sa.select(BatchTemplate)
        .where(sa.func.lower(BatchTemplate.name) == wanted.lower(), *shown)
        .order_by(BatchTemplate.created_at)
        .limit(1)
    ).scalar_one_or_none()
    if template is None:
        names = session.execute(
            sa.select(BatchTemplate.name).where(*shown).order_by(BatchTemplate.name)
        )
        # Like an unknown template id: the item the request names does not exist.
        raise NotFound(
            f"No template named '{wanted}'. Templates: {', '.join(names.scalars()) or 'none'}"
        )
    return template


def template_instructions(template: BatchTemplate) -> tuple[str, str | None]:
    """A template's prompt ("" if it has none: its description says what the template is
    for, and is never a grading prompt), and its criteria written out as a marking
    scheme."""
    structure = mapping(template.job_structure)
    prompt = str(structure.get("prompt") or "")
    criteria = [c for c in structure.get("criteria") or [] if isinstance(c, dict)]
    scheme = None
    rubric = template_rubric(template)
    if rubric is not None:
        scheme = rubric.describe()
    elif criteria:
        scheme = "\n".join(f"- {c.get('name')}: up to {c.get('max_score')} marks" for c in criteria)
    return prompt, scheme


def template_rubric(template: BatchTemplate) -> Rubric | None:
    """The template's criteria as the rubric its batches' grades must follow (the overall
    maximum from its default settings); None without usable criteria."""
    structure = mapping(template.job_structure)
    defaults = mapping(template.default_settings)
    return rubric_from_criteria(structure.get("criteria"), max_score=defaults.get("max_score"))


def template_models(template: BatchTemplate) -> list[str]:
    """The models its default settings name, as provider:model."""
    models = mapping(template.default_settings).get("models")
    return [m for m in models if isinstance(m, str)] if isinstance(models, list) else []


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def record_use(session: Session, *, template_id: str) -> None:
    """One more batch made from the template (in SQL: concurrent uses all count)."""
    session.execute(
        sa.update(BatchTemplate)
        .where(BatchTemplate.id == template_id)
        .values(usage_count=BatchTemplate.usage_count + 1, last_used=utcnow())
    )


# --- the API's verbs ----------------------------------------------------------------


def list_templates(
    session: Session,
    *,
    q: str | None = None,
    category: str | None = None,
    is_public: bool | None = None,
    created_by: str | None = None,
    limit: int,
    offset: int,
    visible: sa.ColumnElement[bool] | None = None,
) -> tuple[int, list[BatchTemplate]]:
    """Templates (among those `visible`; None: all) by name; `q` is found in the name,
    description or category."""
    where = [] if visible is None else [visible]
    where += catalogue_where(BatchTemplate, q=q, category=category)
    if is_public is not None:
        where.append(BatchTemplate.is_public.is_(is_public))
    if created_by is not None:
        where.append(BatchTemplate.created_by == created_by)
    return list_page(
        session,
        BatchTemplate,
        where=where,
        sort=by_name(BatchTemplate),
        limit=limit,
        offset=offset,
    )


def get_template(session: Session, *, template_id: str) -> BatchTemplate:
    return find_template(session, template_id=template_id)


def create_template(
    session: Session, *, data: TemplateCreate, owner_id: str | None, creator: str
) -> BatchTemplate:
    fields = _from_batch(session, data.from_batch_id) if data.from_batch_id else {}
    fields.update(_sent(data, exclude={"from_batch_id"}))
    if not fields.get("name"):
        raise BadRequest("The template needs a name (or from_batch_id, to save a batch)")
    fields.setdefault("created_by", creator)
    now = utcnow()
    template = BatchTemplate(
        is_public=True, usage_count=0, created_at=now, updated_at=now, owner_id=owner_id
    )
    _apply(session, template, fields)
    session.add(template)
    session.flush()
    return template


def update_template(session: Session, *, template_id: str, data: TemplateUpdate) -> BatchTemplate:
    template = _editable(get_template(session, template_id=template_id))
    library_items = {"saved_prompt_id", "saved_marking_scheme_id"}
    fields = _sent(data, exclude=library_items)
    if data.saved_prompt_id is not None or data.saved_marking_scheme_id is not None:
        # The library's text and criteria win over the same fields sent beside them.
        fields["job_structure"], fields["default_settings"] = _from_library(
            session,
            fields.get("job_structure", mapping(template.job_structure)),
            fields.get("default_settings", mapping(template.default_settings)),
            prompt_id=data.saved_prompt_id,
            scheme_id=data.saved_marking_scheme_id,
        )
    _apply(session, template, fields)
    session.flush()
    return template


def delete_template(session: Session, *, template_id: str) -> None:
    template = _editable(get_template(session, template_id=template_id))
    reference = JobBatch.template_id == template.id
    count = session.execute(
        sa.select(sa.func.count()).select_from(JobBatch).where(reference)
    ).scalar_one()
    if count:
        names = session.scalars(
            sa.select(JobBatch.batch_name)
            .where(reference)
            .order_by(JobBatch.batch_name)
            .limit(NAMED_BATCHES)
        ).all()
        listed = ", ".join(f"'{name}'" for name in names)
        more = f" and {count - len(names)} more" if count > len(names) else ""
        raise Conflict(
            f"Template '{template.name}' is in use by {count} "
            f"batch{'es' if count != 1 else ''} ({listed}{more}), made from it. It can be "
            "deleted once they are."
        )
    session.delete(template)
    session.flush()


def duplicate_template(
    session: Session,
    *,
    template_id: str,
    data: TemplateDuplicate,
    owner_id: str | None,
    creator: str,
) -> BatchTemplate:
    """A copy of one's own to change: the way to a changed default template."""
    original = get_template(session, template_id=template_id)
    now = utcnow()
    copy = BatchTemplate(
        name=check_name(data.name or _copy_name(session, original.name), what="template"),
        description=original.description,
        category=original.category,
        default_settings=original.default_settings,
        job_structure=original.job_structure,
        processing_rules=original.processing_rules,
        is_public=original.is_public if original.is_public is not None else True,
        created_by=data.created_by or creator,
        owner_id=owner_id,
        usage_count=0,
        created_at=now,
        updated_at=now,
    )
    _check_name_free(session, copy.name)
    _check_creator(copy.created_by)
    session.add(copy)
    session.flush()
    return copy


# --- helpers ------------------------------------------------------------------------


def _editable(template: BatchTemplate) -> BatchTemplate:
    if is_default_template(template.name, template.created_by):
        raise Conflict(
            f"'{template.name}' is a default template and is read-only: duplicate it to "
            f"change it (POST /api/templates/{template.id}/duplicate)"
        )
    return template


def _sent(data: TemplateCreate | TemplateUpdate, exclude: set[str] | None = None) -> dict[str, Any]:
    """The fields the request sent, JSON columns as the JSON to store."""
    fields = data.model_dump(exclude_unset=True, exclude=exclude)
    if "default_settings" in fields and data.default_settings is not None:
        fields["default_settings"] = data.default_settings.model_dump(
            mode="json", exclude_none=True
        )
    if "job_structure" in fields and data.job_structure is not None:
        structure = data.job_structure
        fields["job_structure"] = {
            **structure.model_dump(mode="json", exclude_none=True),
            "criteria": [
                c.model_dump(mode="json", exclude_defaults=True) for c in structure.criteria
            ],
        }
    return fields


def _apply(session: Session, template: BatchTemplate, fields: dict[str, Any]) -> None:
    if "name" in fields:
        name = check_name(fields["name"], what="template")
        if name.casefold() != (template.name or "").casefold():
            _check_name_free(session, name, except_id=template.id)
        template.name = name
    if "created_by" in fields:
        _check_creator(fields["created_by"])
        template.created_by = fields["created_by"]
    for column in ("description", "category"):
        if column in fields:
            value = fields[column]
            setattr(template, column, value.strip() or None if value is not None else None)
    if "is_public" in fields:
        template.is_public = True if fields["is_public"] is None else fields["is_public"]
    if "default_settings" in fields:
        defaults = fields["default_settings"]
        if defaults and "tags" in defaults:
            defaults["tags"] = clean_tags(defaults["tags"])
        template.default_settings = defaults
    if "job_structure" in fields:
        template.job_structure = fields["job_structure"]
    if "processing_rules" in fields:
        rules = fields["processing_rules"]
        if isinstance(rules, dict) and rules.get("budget", 0) is None:
            rules = {key: value for key, value in rules.items() if key != "budget"}
        template.processing_rules = rules
    _check_rubric(template)
    if fields.keys() & {"processing_rules", "default_settings"}:
        models = template_models(template)
        check_delivery(mapping(template.processing_rules), [m.split(":", 1)[0] for m in models])


def _from_library(
    session: Session,
    structure: dict[str, Any] | None,
    defaults: dict[str, Any] | None,
    *,
    prompt_id: str | None,
    scheme_id: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job structure and default settings with a saved prompt's text, and a saved
    scheme's criteria and overall maximum, copied in."""
    structure = dict(structure or {})
    defaults = dict(defaults or {})
    if prompt_id is not None:
        saved_prompt = session.get(SavedPrompt, prompt_id)
        if saved_prompt is None:
            raise NotFound(f"No saved prompt with id {prompt_id}")
        structure["prompt"] = saved_prompt.prompt_text
    if scheme_id is not None:
        scheme = session.get(SavedMarkingScheme, scheme_id)
        if scheme is None:
            raise NotFound(f"No saved marking scheme with id {scheme_id}")
        rubric = stored_rubric(scheme.rubric)
        if rubric is None:
            raise BadRequest(
                f"The marking scheme '{scheme.name}' has no criteria to copy (it is text "
                "only): give it a rubric in the library first"
            )
        structure["criteria"] = rubric.stored()["criteria"]
        defaults["max_score"] = rubric.total
    return structure, defaults


def _check_rubric(template: BatchTemplate) -> None:
    """Its criteria, with its overall maximum, must make a rubric (distinct names)."""
    criteria = mapping(template.job_structure).get("criteria")
    if not criteria:
        return
    try:
        Rubric.model_validate(
            {"criteria": criteria, "max_score": mapping(template.default_settings).get("max_score")}
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        reason = error["msg"].removeprefix("Value error, ")
        raise BadRequest(
            f"The template's criteria are not a rubric: {f'{where}: ' if where else ''}{reason}"
        ) from exc


def _check_name_free(session: Session, name: str, *, except_id: str | None = None) -> None:
    if is_default_name(name):
        raise Conflict(f"'{name}' is the name of a default template; choose another name")
    query = sa.select(BatchTemplate.name).where(sa.func.lower(BatchTemplate.name) == name.lower())
    if except_id is not None:
        query = query.where(BatchTemplate.id != except_id)
    taken = session.execute(query.limit(1)).scalar_one_or_none()
    if taken is not None:
        # Batches may name their template instead of giving its id: names stay unique.
        raise Conflict(f"A template named '{taken}' already exists; choose another name")


def _check_creator(created_by: str | None) -> None:
    if created_by is not None and created_by.strip().casefold() == SYSTEM_CREATOR:
        raise BadRequest(f"created_by '{created_by}' is kept for the default templates")


def _copy_name(session: Session, name: str) -> str:
    """ "Copy of <name>", numbered when that is taken."""
    base = f"Copy of {name}"[: NAME_LENGTH - 5]
    taken = {
        existing.casefold()
        for existing in session.scalars(
            sa.select(BatchTemplate.name).where(
                sa.func.lower(BatchTemplate.name).startswith(base.lower(), autoescape=True)
            )
        )
    }
    candidate, number = base, 2
    while candidate.casefold() in taken:
        candidate, number = f"{base} ({number})", number + 1
    return candidate


def _from_batch(session: Session, batch_id: str) -> dict[str, Any]:
    """A batch's configuration as a template's fields: prompt, models, generation
    settings, priority, tags, processing rules and criteria (from its saved marking
    scheme, else from its own template)."""
    batch = session.get(JobBatch, batch_id)
    if batch is None:
        raise NotFound(f"No batch with id {batch_id}")
    source = session.get(BatchTemplate, batch.template_id) if batch.template_id else None
    rubric = None
    if batch.saved_marking_scheme_id:
        saved = session.get(SavedMarkingScheme, batch.saved_marking_scheme_id)
        rubric = stored_rubric(saved.rubric) if saved is not None else None
    if rubric is None and source is not None:
        rubric = template_rubric(source)
    defaults = {
        "priority": batch.priority,
        "temperature": batch.temperature,
        "max_tokens": batch.max_tokens,
        "max_score": rubric.total if rubric else None,
        "tags": batch.tags if isinstance(batch.tags, list) else None,
        "models": _batch_models(batch) or None,
    }
    structure: dict[str, Any] = {"prompt": batch.prompt}
    if rubric is not None:
        structure["criteria"] = rubric.stored()["criteria"]
    settings = mapping(batch.batch_settings)
    # Only the processing settings: a batch also keeps notes of its own there.
    rules = {key: settings[key] for key in BatchSettings.__annotations__ if key in settings}
    try:
        # What an earlier release left in a batch may not fit a template: said, not kept.
        checked = TemplateDefaults.model_validate(
            {k: v for k, v in defaults.items() if v is not None}
        )
        checked_rules = _RULES.validate_python(rules)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise BadRequest(
            f"Batch '{batch.batch_name}' cannot be saved as a template: its {where} "
            f"{error['msg'].removeprefix('Value error, ')}"
        ) from exc
    return {
        "name": f"{batch.batch_name} template"[:NAME_LENGTH],
        "description": batch.description,
        "category": source.category if source is not None else None,
        "default_settings": checked.model_dump(mode="json", exclude_none=True),
        "job_structure": {k: v for k, v in structure.items() if v is not None},
        "processing_rules": dict(checked_rules),
    }


def _batch_models(batch: JobBatch) -> list[str]:
    compare = batch.models_to_compare if isinstance(batch.models_to_compare, list) else []
    labels = [
        f"{m.get('provider')}:{m.get('model')}" if isinstance(m, dict) else str(m) for m in compare
    ]
    if not labels and batch.provider and batch.model:
        labels = [f"{batch.provider}:{batch.model}"]
    return labels
