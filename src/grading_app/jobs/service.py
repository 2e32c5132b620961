"""Create batches, jobs and submissions, and queue their work items; list them.

Everything here runs inside the caller's unit of work and only flushes. Reading and
storing files happens before, in `jobs/uploads.py`: a transaction here never waits on a
file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, defer

from grading_app.batches import service as control
from grading_app.batches.schemas import DEFAULT_SETTINGS, MAX_RETRIES, BatchCreate
from grading_app.errors import BadRequest, Conflict, NotFound
from grading_app.jobs.grades import Grade, grade_of, grades_subquery
from grading_app.jobs.schemas import JobCreate
from grading_app.models import (
    BatchTemplate,
    GradingJob,
    JobBatch,
    MarkingScheme,
    Submission,
    utcnow,
)
from grading_app.processing.service import enqueue_job
from grading_app.providers.registry import (
    ProviderConfig,
    ProviderNotConfigured,
    UnknownProvider,
    load_provider_configs,
    require_key,
    resolve_config,
)

if TYPE_CHECKING:
    from grading_app.jobs.uploads import PreparedDocument

# Statuses in which a batch takes new jobs and a job takes new documents.
OPEN_BATCH = ("draft", "pending", "processing", "paused")
OPEN_JOB = ("pending", "processing", "paused")
SUBMISSION_STATUSES = ("pending", "processing", "completed", "failed")
# Column widths (PostgreSQL enforces them; SQLite would not complain).
NAME_LENGTH = 255
PROVIDER_LENGTH = 50
MODEL_LENGTH = 100
MAX_TAGS, TAG_LENGTH = 20, 50
TEMPERATURE_RANGE = (0.0, 2.0)
MAX_TOKENS_LIMIT = 200_000


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


def create_job(
    session: Session,
    *,
    name: str,
    prompt: str,
    targets: list[Target],
    batch: JobBatch | None = None,
    marking_scheme: MarkingScheme | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> GradingJob:
    if not prompt.strip():
        raise BadRequest("The grading prompt is empty")
    if not targets:
        raise BadRequest("Choose at least one model to grade with")
    first = targets[0]
    job = GradingJob(
        job_name=name,
        prompt=prompt,
        provider=first.provider,
        model=first.model,
        models_to_compare=[t.label for t in targets] if len(targets) > 1 else None,
        batch_id=batch.id if batch else None,
        marking_scheme_id=marking_scheme.id if marking_scheme else None,
        status="pending",
        priority=batch.priority if batch else 5,
        temperature=temperature,
        max_tokens=max_tokens,
        total_submissions=0,
        processed_submissions=0,
        failed_submissions=0,
    )
    session.add(job)
    session.flush()
    if batch is not None:
        batch.total_jobs = (batch.total_jobs or 0) + 1
    return job


def add_submission(
    session: Session,
    *,
    job: GradingJob,
    original_filename: str,
    stored_filename: str,
    file_type: str | None,
    file_size: int | None,
    extracted_text: str | None,
    error: str | None = None,
) -> Submission:
    """A document of the job; one that could not be read is kept, failed, with why."""
    submission = Submission(
        job_id=job.id,
        original_filename=original_filename,
        filename=stored_filename,
        file_type=file_type,
        file_size=file_size,
        extracted_text=extracted_text,
        status="failed" if error else "pending",
        error_message=error,
        retry_count=0,
    )
    session.add(submission)
    job.total_submissions = (job.total_submissions or 0) + 1
    if error:
        job.failed_submissions = (job.failed_submissions or 0) + 1
    session.flush()
    return submission


def queue_job(session: Session, *, job: GradingJob) -> int:
    """Create the job's work items, one per readable submission and model."""
    targets = job_targets(job)
    return enqueue_job(session, job=job, models=[(t.provider, t.model) for t in targets])


def queue_submissions(session: Session, *, job: GradingJob, submission_ids: Sequence[str]) -> int:
    """Work items for documents added to a job that already has some."""
    if not submission_ids:
        return 0
    models = [(t.provider, t.model) for t in job_targets(job)]
    return enqueue_job(session, job=job, models=models, submission_ids=submission_ids)


def add_documents(
    session: Session, *, job: GradingJob, documents: Sequence[PreparedDocument]
) -> list[Submission]:
    """A submission per prepared document, in order; unreadable ones failed, with why."""
    return [
        add_submission(
            session,
            job=job,
            original_filename=document.original_filename,
            stored_filename=document.stored_filename,
            file_type=document.file_type,
            file_size=document.size_bytes,
            extracted_text=document.text,
            error=document.error,
        )
        for document in documents
    ]


# --- templates and batches -------------------------------------------------------------


def find_template(
    session: Session, *, template_id: str | None = None, name: str | None = None
) -> BatchTemplate:
    if template_id:
        template = session.get(BatchTemplate, template_id)
        if template is None:
            raise NotFound(f"No batch template with id {template_id}")
        return template
    wanted = (name or "").strip()
    template = session.execute(
        sa.select(BatchTemplate)
        .where(sa.func.lower(BatchTemplate.name) == wanted.lower())
        .order_by(BatchTemplate.created_at)
        .limit(1)
    ).scalar_one_or_none()
    if template is None:
        names = session.execute(sa.select(BatchTemplate.name).order_by(BatchTemplate.name))
        raise BadRequest(
            f"No template named '{wanted}'. Templates: {', '.join(names.scalars()) or 'none'}"
        )
    return template


def template_instructions(template: BatchTemplate) -> tuple[str, str | None]:
    """A template's prompt, and its criteria written out as a marking scheme."""
    structure = _mapping(template.job_structure)
    prompt = str(structure.get("prompt") or template.description or "")
    criteria = [c for c in structure.get("criteria") or [] if isinstance(c, dict)]
    scheme = None
    if criteria:
        scheme = "\n".join(f"- {c.get('name')}: up to {c.get('max_score')} marks" for c in criteria)
    return prompt, scheme


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def create_draft_batch(session: Session, *, data: BatchCreate) -> JobBatch:
    """A draft batch from the API; a template's default settings, prompt and processing
    rules fill whatever the request leaves out."""
    template = None
    if data.template_id or data.template:
        template = find_template(session, template_id=data.template_id, name=data.template)
    defaults = _mapping(template.default_settings) if template else {}
    rules = _mapping(template.processing_rules) if template else {}
    prompt = data.prompt
    if prompt is None and template is not None:
        prompt = template_instructions(template)[0]
    models = _split_models(data.models or [])
    targets = check_targets(parse_targets(models, default_provider=None, or_else=""))
    temperature = data.temperature if data.temperature is not None else defaults.get("temperature")
    max_tokens = data.max_tokens if data.max_tokens is not None else defaults.get("max_tokens")
    _check_generation(temperature, max_tokens)
    settings = {**DEFAULT_SETTINGS, **rules, **(data.settings or {})}
    _check_settings(settings)
    priority = data.priority if data.priority is not None else defaults.get("priority", 5)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise BadRequest(f"Priority must be a whole number from 1 to 10, not {priority!r}")
    tags = data.tags if data.tags is not None else defaults.get("tags")
    batch = create_batch(
        session,
        name=_name(data.name, what="batch"),
        description=data.description,
        priority=priority,
        deadline=_naive_utc(data.deadline),
        tags=_clean_tags(tags or []),
        settings=settings,
        template_id=template.id if template else None,
    )
    batch.prompt = prompt.strip() if prompt and prompt.strip() else None
    batch.temperature = temperature
    batch.max_tokens = max_tokens
    if targets:
        batch.provider, batch.model = targets[0].provider, targets[0].model
        batch.models_to_compare = [t.label for t in targets]
    if template is not None:
        session.execute(
            sa.update(BatchTemplate)
            .where(BatchTemplate.id == template.id)
            .values(usage_count=BatchTemplate.usage_count + 1, last_used=utcnow())
        )
    session.flush()
    return batch


def _name(value: str | None, *, what: str) -> str:
    name = (value or "").strip()
    if not name:
        raise BadRequest(f"The {what} needs a name")
    if len(name) > NAME_LENGTH:
        raise BadRequest(f"The {what} name is {len(name)} characters; at most {NAME_LENGTH}")
    return name


def _naive_utc(value: datetime | None) -> datetime | None:
    """Stored as naive UTC, like every legacy timestamp; a naive value is taken as UTC."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _clean_tags(tags: Sequence[Any]) -> list[str]:
    cleaned: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            raise BadRequest(f"Tags are words or short phrases, not {tag!r}")
        text = tag.strip()
        if len(text) > TAG_LENGTH:
            raise BadRequest(f"Tag '{text[:20]}...' is longer than {TAG_LENGTH} characters")
        if text and text not in cleaned:
            cleaned.append(text)
    if len(cleaned) > MAX_TAGS:
        raise BadRequest(f"A batch takes at most {MAX_TAGS} tags, not {len(cleaned)}")
    return cleaned


def _check_settings(settings: Mapping[str, Any]) -> None:
    retries = settings.get("max_retries", 3)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= MAX_RETRIES:
        raise BadRequest(
            f"settings.max_retries must be a whole number from 0 to {MAX_RETRIES}, not {retries!r}"
        )


def _check_generation(temperature: Any, max_tokens: Any) -> None:
    low, high = TEMPERATURE_RANGE
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not low <= temperature <= high
    ):
        raise BadRequest(f"Temperature must be from {low:g} to {high:g}, not {temperature!r}")
    if max_tokens is not None and (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= MAX_TOKENS_LIMIT
    ):
        raise BadRequest(
            f"max_tokens must be a whole number from 1 to {MAX_TOKENS_LIMIT}, not {max_tokens!r}"
        )


def _split_models(values: Sequence[str]) -> list[str]:
    """Repeated fields, or one field with commas: both are how forms send lists."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


# --- jobs with documents ----------------------------------------------------------------


@dataclass(frozen=True)
class JobPlan:
    """A new job's settings once the batch's and its template's defaults are applied."""

    batch_id: str
    name: str
    prompt: str
    targets: list[Target]
    temperature: float | None
    max_tokens: int | None
    template_scheme: str | None


def _open_batch(batch: JobBatch) -> JobBatch:
    if batch.status not in OPEN_BATCH:
        raise Conflict(
            f"Batch '{batch.batch_name}' is {batch.status or 'without a status'}: it takes no "
            "new work. Create a new batch for these documents."
        )
    return batch


def _batch_models(batch: JobBatch) -> list[str]:
    if isinstance(batch.models_to_compare, list) and batch.models_to_compare:
        return [str(m) for m in batch.models_to_compare]
    if batch.provider and batch.model:
        return [f"{batch.provider}:{batch.model}"]
    return []


def plan_job(session: Session, *, batch_id: str, request: JobCreate) -> JobPlan:
    """Check a new job against its batch before any file is read."""
    batch = _open_batch(control.get_batch(session, batch_id=batch_id))
    template = session.get(BatchTemplate, batch.template_id) if batch.template_id else None
    template_prompt, template_scheme = template_instructions(template) if template else ("", None)
    prompt = next(
        (p.strip() for p in (request.prompt, batch.prompt, template_prompt) if p and p.strip()),
        "",
    )
    if not prompt:
        raise BadRequest(
            "The grading prompt is empty: give `prompt`, or make the batch from a template "
            "or with a prompt"
        )
    models = _split_models(request.models) or _batch_models(batch)
    if not models:
        raise BadRequest(
            "Choose at least one model to grade with: `models` as provider:model, for "
            "example openai:gpt-4o-mini (repeat it to compare models)"
        )
    targets = check_targets(parse_targets(models, default_provider=batch.provider, or_else=""))
    temperature = request.temperature if request.temperature is not None else batch.temperature
    max_tokens = request.max_tokens if request.max_tokens is not None else batch.max_tokens
    _check_generation(temperature, max_tokens)
    return JobPlan(
        batch_id=batch.id,
        name=_name(request.name or batch.batch_name, what="job"),
        prompt=prompt,
        targets=targets,
        temperature=temperature,
        max_tokens=max_tokens,
        template_scheme=template_scheme,
    )


def _locked_batch(session: Session, batch_id: str) -> JobBatch:
    """The batch row, locked on PostgreSQL until commit (SQLite's writer already holds
    the database), re-read so a status changed since the plan is seen."""
    batch = session.execute(
        sa.select(JobBatch)
        .where(JobBatch.id == batch_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if batch is None:
        raise NotFound(f"No batch with id {batch_id}")
    return batch


def add_marking_scheme(
    session: Session,
    *,
    job_name: str,
    document: PreparedDocument | None = None,
    text: str | None = None,
) -> MarkingScheme:
    """The job's marking scheme: an uploaded file (stored, its text extracted) or text
    (from a template, or a file the CLI read)."""
    scheme = MarkingScheme(
        name=f"{job_name} marking scheme"[:NAME_LENGTH],
        filename=document.stored_filename if document else "",
        original_filename=document.original_filename if document else "",
        file_size=document.size_bytes if document else None,
        file_type=document.file_type if document else None,
        content=document.text if document else text,
    )
    session.add(scheme)
    session.flush()
    return scheme


def create_job_with_documents(
    session: Session,
    *,
    plan: JobPlan,
    scheme: PreparedDocument | None,
    documents: Sequence[PreparedDocument],
    start: bool = False,
) -> tuple[GradingJob, list[Submission], int]:
    """The job, its marking scheme and submissions, its queued items; the batch starts
    now if asked and still a draft. Returns the job, submissions and items queued."""
    batch = _open_batch(_locked_batch(session, plan.batch_id))
    marking_scheme = None
    if scheme is not None:
        marking_scheme = add_marking_scheme(session, job_name=plan.name, document=scheme)
    elif plan.template_scheme:
        marking_scheme = add_marking_scheme(session, job_name=plan.name, text=plan.template_scheme)
    job = create_job(
        session,
        name=plan.name,
        prompt=plan.prompt,
        targets=plan.targets,
        batch=batch,
        marking_scheme=marking_scheme,
        temperature=plan.temperature,
        max_tokens=plan.max_tokens,
    )
    submissions = add_documents(session, job=job, documents=documents)
    queued = queue_job(session, job=job)
    if start and batch.status == "draft":
        control.start_batch(session, batch_id=batch.id)
    return job, submissions, queued


def job_accepting_documents(
    session: Session, *, job_id: str, lock: bool = False
) -> tuple[GradingJob, JobBatch | None]:
    """The job and its batch, if both still take documents (else a 409 saying why)."""
    job_batch = session.execute(
        sa.select(GradingJob.batch_id).where(GradingJob.id == job_id)
    ).one_or_none()
    if job_batch is None:
        raise NotFound(f"No grading job with id {job_id}")
    batch = None
    if job_batch.batch_id:
        batch = (
            _locked_batch(session, job_batch.batch_id)
            if lock
            else control.get_batch(session, batch_id=job_batch.batch_id)
        )
    statement = sa.select(GradingJob).where(GradingJob.id == job_id)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    job = session.execute(statement).scalar_one()
    if job.status not in OPEN_JOB:
        where = f" (POST /api/batches/{job.batch_id}/jobs)" if job.batch_id else ""
        raise Conflict(
            f"Job '{job.job_name}' is {job.status or 'without a status'}: it takes no more "
            f"documents. Grade them in a new job{where}."
        )
    if batch is not None:
        _open_batch(batch)
    return job, batch


def add_documents_to_job(
    session: Session, *, job_id: str, documents: Sequence[PreparedDocument]
) -> tuple[list[Submission], int]:
    job, _ = job_accepting_documents(session, job_id=job_id, lock=True)
    submissions = add_documents(session, job=job, documents=documents)
    readable = [s.id for s in submissions if s.status != "failed"]
    return submissions, queue_submissions(session, job=job, submission_ids=readable)


# --- listings ---------------------------------------------------------------------------


def list_jobs(
    session: Session, *, batch_id: str, limit: int, offset: int
) -> tuple[int, list[GradingJob]]:
    """One page of a batch's jobs, oldest first, and how many there are."""
    control.get_batch(session, batch_id=batch_id)
    total = session.execute(
        sa.select(sa.func.count()).select_from(GradingJob).where(GradingJob.batch_id == batch_id)
    ).scalar_one()
    jobs = session.scalars(
        sa.select(GradingJob)
        .where(GradingJob.batch_id == batch_id)
        .options(defer(GradingJob.prompt), defer(GradingJob.description))
        .order_by(GradingJob.created_at, GradingJob.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return total, list(jobs)


@dataclass(frozen=True)
class SubmissionRow:
    id: str
    original_filename: str
    file_type: str | None
    file_size: int | None
    status: str | None
    error: str | None
    created_at: datetime | None
    grades: list[Grade]


def list_submissions(
    session: Session, *, job_id: str, limit: int, offset: int, status: str | None = None
) -> tuple[int, list[SubmissionRow]]:
    """One page of a job's documents (without their text) with their completed grades:
    two queries, whatever the page size."""
    control.get_job(session, job_id=job_id)
    where = [Submission.job_id == job_id]
    if status is not None:
        if status not in SUBMISSION_STATUSES:
            raise BadRequest(f"Unknown status '{status}'; one of: {', '.join(SUBMISSION_STATUSES)}")
        where.append(Submission.status == status)
    total = session.execute(
        sa.select(sa.func.count()).select_from(Submission).where(*where)
    ).scalar_one()
    rows = session.execute(
        sa.select(
            Submission.id,
            Submission.original_filename,
            Submission.file_type,
            Submission.file_size,
            Submission.status,
            Submission.error_message,
            Submission.created_at,
        )
        .where(*where)
        .order_by(Submission.created_at, Submission.id)
        .limit(limit)
        .offset(offset)
    ).all()
    grades: dict[str, list[Grade]] = {row.id: [] for row in rows}
    if rows:
        # Ours that completed (not failed attempts) and those of earlier releases.
        shown = grades_subquery(Submission.id.in_(list(grades)))
        for row in session.execute(shown.select().order_by(shown.c.created_at)):
            grades[row.submission_id].append(grade_of(row))
    return total, [
        SubmissionRow(
            id=row.id,
            original_filename=row.original_filename,
            file_type=row.file_type,
            file_size=row.file_size,
            status=row.status,
            error=row.error_message,
            created_at=row.created_at,
            grades=grades[row.id],
        )
        for row in rows
    ]
