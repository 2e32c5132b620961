"""What a batch not yet made would use and cost, so a teacher sees it before choosing
"start now": its models, prompt, marking scheme, delivery and budget as the new-batch
form or `POST /api/batches/estimate` give them, and its documents read exactly as an
upload reads them (jobs/uploads.py: the same checks and limits; a refused file is
reported with its reason and left out). Nothing is stored: the files are read into a
temporary folder that is gone before the answer is sent.

The choices are resolved as `batches.service.create_draft_batch` and
`jobs.service.plan_job` resolve them (a template fills what is left out), and the
figures are `batches.estimate.cost_estimate`'s, from the items the batch would have, so
they are the ones `estimate_batch` gives once the batch exists: under
`hidden_instructions: hold` a document in which the upload's scan finds hidden
instructions is held, counted among the documents but not in what is to grade or pay.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from grading_app.accounts.principal import Principal
from grading_app.batches import service as batches
from grading_app.batches.estimate import Item, JobFrame, cost_estimate, job_frame
from grading_app.batches.schemas import DraftEstimateOut, EstimatedFileOut
from grading_app.db import unit_of_work
from grading_app.errors import BadRequest
from grading_app.fields import check_generation, split_models
from grading_app.grading.rubric import Rubric, stored_rubric
from grading_app.jobs.uploads import (
    IncomingFile,
    PreparedDocument,
    prepare_marking_scheme,
    prepare_uploads,
)
from grading_app.library import service as library
from grading_app.models import BatchTemplate, WorkItemState
from grading_app.processing.delivery import budget_setting, delivery_setting
from grading_app.processing.settings import BatchSettings, check_delivery
from grading_app.providers.targets import Target, check_targets, parse_targets
from grading_app.templates import service as templates
from grading_app.trust.settings import TrustSettings, trust_settings

# The one job a new batch's documents go into; its items wait to be graded.
_JOB = "new"
QUEUED = WorkItemState.QUEUED.value
HELD = WorkItemState.FAILED.value
# The settings a batch takes (BatchCreate's `settings`), checked as creating it checks them.
_SETTINGS = TypeAdapter(BatchSettings)


@dataclass(frozen=True)
class DraftBatch:
    """A batch as described before it exists; what is left out comes from the template."""

    models: list[str] = field(default_factory=list)
    prompt: str | None = None
    saved_prompt_id: str | None = None
    marking_scheme_text: str | None = None
    saved_marking_scheme_id: str | None = None
    template_id: str | None = None
    # delivery, budget and trust choices, as a batch's settings hold them
    settings: dict[str, Any] = field(default_factory=dict)
    max_tokens: int | None = None


@dataclass(frozen=True)
class _Plan:
    targets: list[Target]
    prompt: str
    scheme_text: str | None
    rubric: Rubric | None
    scheme_source: str | None
    max_tokens: int | None
    settings: dict[str, Any]


def estimate_draft(
    sessions: sessionmaker[Session],
    *,
    draft: DraftBatch,
    principal: Principal,
    files: Sequence[IncomingFile],
    scheme_file: IncomingFile | None,
    max_bytes: int,
) -> DraftEstimateOut:
    """The choices are checked first (a read), then the files are read with no
    transaction open, then the prices are read."""
    if scheme_file is not None and (draft.saved_marking_scheme_id or draft.marking_scheme_text):
        raise BadRequest("Give one marking scheme: a file, a saved one or text, not several")
    with unit_of_work(sessions, read_only=True) as session:
        plan = _plan(session, draft, principal)
    with tempfile.TemporaryDirectory(prefix="grading-estimate-") as folder:
        upload_dir = Path(folder)
        if scheme_file is not None:
            scheme = prepare_marking_scheme(scheme_file, upload_dir=upload_dir, max_bytes=max_bytes)
            plan = _with_scheme(plan, scheme)
        documents = prepare_uploads(files, upload_dir=upload_dir, max_bytes=max_bytes)
        # Only the texts' lengths leave the folder.
        measured = [(document, _characters(document)) for document in documents]
    frame = job_frame(
        model=plan.targets[0].model,
        instructions=plan.prompt,
        marking_scheme=plan.scheme_text,
        rubric=plan.rubric,
        max_tokens=plan.max_tokens,
    )
    # A document the upload would hold (its hidden-instruction findings come from the
    # upload's own scan, in prepare_uploads) gets its items failed, as `_hold` fails them.
    trust = trust_settings(plan.settings)
    items: list[Item] = []
    for document, size in measured:
        if not document.readable:
            continue
        held = trust.holds(document.findings)
        state = HELD if held else QUEUED
        name_length = len(document.original_filename)
        items += (
            Item(_JOB, t.provider, t.model, state, size, name_length, held=held)
            for t in plan.targets
        )
    jobs: dict[str, JobFrame] = {_JOB: frame}
    with unit_of_work(sessions, read_only=True) as session:
        figures = cost_estimate(
            session,
            jobs=jobs,
            items=items,
            delivery=delivery_setting(plan.settings),
            budget=budget_setting(plan.settings),
        )
    return DraftEstimateOut(
        **dict(figures),
        files=[_file_out(document, size, trust) for document, size in measured],
        marking_scheme=plan.scheme_source,
    )


def _plan(session: Session, draft: DraftBatch, principal: Principal) -> _Plan:
    template, defaults, rules = batches.starting_template(
        session,
        principal,
        template_id=draft.template_id,
        prompt_id=draft.saved_prompt_id,
        scheme_id=draft.saved_marking_scheme_id,
    )
    prompt = _prompt(session, draft, template)
    models = split_models(draft.models or (templates.template_models(template) if template else []))
    if not models:
        raise BadRequest(
            "Choose at least one model to grade with: `models` as provider:model, for "
            "example openai:gpt-4o-mini (repeat it to compare models)"
        )
    targets = check_targets(parse_targets(models, default_provider=None, or_else=""))
    settings = batches.new_batch_settings(template, rules, _checked_settings(draft.settings))
    check_delivery(settings, [t.provider for t in targets])
    max_tokens = draft.max_tokens if draft.max_tokens is not None else defaults.get("max_tokens")
    check_generation(None, max_tokens)
    scheme_text, rubric, source = _scheme(session, draft, template)
    return _Plan(targets, prompt, scheme_text, rubric, source, max_tokens, settings)


def _checked_settings(given: dict[str, Any]) -> dict[str, Any]:
    """The choices as the batch would take them: one it would refuse (a budget of 0, of
    infinity or past the largest, say) is refused here too, not estimated as no budget."""
    try:
        return dict(_SETTINGS.validate_python(given))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise BadRequest(f"settings.{where} {error['msg'].removeprefix('Value error, ')}") from exc


def _prompt(session: Session, draft: DraftBatch, template: BatchTemplate | None) -> str:
    """The saved prompt, else the written one, else the template's."""
    written = (draft.prompt or "").strip()
    if draft.saved_prompt_id:
        if written:
            raise BadRequest("Give `prompt` or `saved_prompt_id`, not both")
        written = library.get_prompt(session, prompt_id=draft.saved_prompt_id).prompt_text.strip()
    if not written and template is not None:
        written = templates.template_instructions(template)[0].strip()
    if not written:
        raise BadRequest(
            "The grading prompt is empty: write the grading instructions or choose a saved "
            "prompt (or a template that has one)"
        )
    return written


def _scheme(
    session: Session, draft: DraftBatch, template: BatchTemplate | None
) -> tuple[str | None, Rubric | None, str | None]:
    """The marking scheme as the job would take it: a saved one (its copy), written text,
    else the template's criteria. (An uploaded file comes later: `_with_scheme`.)"""
    if draft.saved_marking_scheme_id:
        if draft.marking_scheme_text:
            raise BadRequest("Give one marking scheme: a file, a saved one or text, not several")
        saved = library.get_marking_scheme(session, scheme_id=draft.saved_marking_scheme_id)
        return saved.content, stored_rubric(saved.rubric), "library"
    if draft.marking_scheme_text and draft.marking_scheme_text.strip():
        return draft.marking_scheme_text, None, "text"
    if template is not None:
        text = templates.template_instructions(template)[1]
        if text:
            return text, templates.template_rubric(template), "template"
    return None, None, None


def _with_scheme(plan: _Plan, scheme: PreparedDocument) -> _Plan:
    # Through its stored form, as the job's copy is read back.
    rubric = stored_rubric(scheme.rubric.stored()) if scheme.rubric is not None else None
    return replace(plan, scheme_text=scheme.text, rubric=rubric, scheme_source="upload")


def _characters(document: PreparedDocument) -> int:
    """Of the text a submission would store (0 for a refused file)."""
    return len(document.full_text() or "") if document.readable else 0


def _file_out(
    document: PreparedDocument, characters: int, trust: TrustSettings
) -> EstimatedFileOut:
    return EstimatedFileOut(
        filename=document.original_filename,
        counted=document.readable,
        held=document.readable and trust.holds(document.findings),
        characters=characters,
        error=document.error,
        error_code=document.error_code,
        warnings=list(document.warnings),
    )
