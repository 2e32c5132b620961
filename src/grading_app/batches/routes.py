"""Batch endpoints: create, read with progress, add jobs with their documents, control."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, File, Form, Query, Request, Response, UploadFile
from sqlalchemy.orm import Session

from grading_app.accounts import access, audit
from grading_app.accounts.auth import CurrentUser, authenticate
from grading_app.batches import bulk as bulk_actions
from grading_app.batches import draft_estimate as draft_estimates
from grading_app.batches import duplicate, queries, removal, service, shares
from grading_app.batches import estimate as estimates
from grading_app.batches.schemas import (
    BatchCreate,
    BatchDeletedOut,
    BatchDetailOut,
    BatchDuplicate,
    BatchListQuery,
    BatchOut,
    BatchUpdate,
    BulkOut,
    BulkRequest,
    DraftEstimateOut,
    EstimateOut,
    RetryOut,
    ShareCreate,
    ShareOut,
)
from grading_app.db import unit_of_work
from grading_app.deps import (
    Page,
    Paging,
    ReadSessionDep,
    SessionDep,
    SessionsDep,
    SettingsDep,
    UploadRoute,
    app_settings,
    paging,
)
from grading_app.fields import MAX_TOKENS_SCHEMA, TEMPERATURE_SCHEMA, Name, Prompt, SchemeText
from grading_app.jobs import legacy, uploads
from grading_app.jobs import service as jobs
from grading_app.jobs.routes import incoming
from grading_app.jobs.schemas import JobCreate, JobOut, UploadOut
from grading_app.lifecycle import service as lifecycle
from grading_app.processing import provider_batches
from grading_app.processing.delivery import Delivery
from grading_app.processing.schemas import ProviderBatchTotalsOut
from grading_app.processing.settings import MAX_BUDGET_USD, HiddenInstructionAction
from grading_app.providers.targets import ModelLabel

router = APIRouter(prefix="/api/batches", tags=["batches"])
BatchOutT = TypeVar("BatchOutT", bound=BatchOut)


@router.get("", response_model=Page[BatchOut])
def list_batches(
    session: ReadSessionDep,
    principal: CurrentUser,
    page: Annotated[Paging, paging(100)],
    query: Annotated[BatchListQuery, Query()],
) -> Any:
    """The batches you own or that are shared with you (administrators: all), filtered,
    searched and sorted; archived ones only when asked for by `status`. An unknown
    parameter or a bad value is a 422 naming it."""
    total, items = queries.list_batches(
        session,
        query=query,
        limit=page.limit,
        offset=page.offset,
        visible=access.batch_visible(principal),
    )
    return Page[BatchOut].of(page, total, items)


@router.post("", response_model=BatchDetailOut, status_code=201)
def create_batch(data: BatchCreate, session: SessionDep, principal: CurrentUser) -> Any:
    """A draft batch of yours; add jobs with their documents, then start it."""
    batch = service.create_draft_batch(session, data=data, owner=principal)
    audit.record(session, principal, "create", "batch", batch.id, name=batch.batch_name)
    return batch


@router.post("/bulk", response_model=BulkOut)
def bulk(
    request: BulkRequest, sessions: SessionsDep, settings: SettingsDep, principal: CurrentUser
) -> Any:
    """One action on many batches (by `ids`, or every batch `filter` selects among
    yours and those shared with you; at most 1,000). Each batch changes on its own: the
    answer says per batch done, or skipped and why. With `dry_run`, what would happen;
    nothing changes."""
    storage = bulk_actions.Storage(settings.upload_dir, settings.max_upload_bytes)
    return bulk_actions.run_bulk(sessions, request=request, storage=storage, principal=principal)


def estimate_new_batch(
    request: Request,
    principal: CurrentUser,
    files: Annotated[
        list[UploadFile] | None,
        File(description="Documents (.docx, .pdf, .txt, .md), or .zip files of them"),
    ] = None,
    models: Annotated[
        list[ModelLabel] | None,
        Form(description="provider:model, repeated to compare; default the template's"),
    ] = None,
    prompt: Annotated[
        Prompt | None, Form(description="Grading instructions; default the template's")
    ] = None,
    saved_prompt_id: Annotated[
        str | None, Form(description="A saved prompt as the prompt, instead of `prompt`")
    ] = None,
    marking_scheme: Annotated[
        UploadFile | None, File(description="A marking scheme document (.docx, .pdf, .txt, .md)")
    ] = None,
    marking_scheme_text: Annotated[
        SchemeText | None, Form(description="A marking scheme written out, instead of a file")
    ] = None,
    saved_marking_scheme_id: Annotated[
        str | None, Form(description="A saved marking scheme, instead of a file")
    ] = None,
    template_id: Annotated[
        str | None, Form(description="The template whose prompt, models and scheme fill gaps")
    ] = None,
    delivery: Annotated[
        Delivery | None, Form(description="Default live (or the template's)")
    ] = None,
    budget: Annotated[
        float | None, Form(gt=0, le=MAX_BUDGET_USD, description="USD; none: no budget")
    ] = None,
    hidden_instructions: Annotated[
        HiddenInstructionAction | None,
        Form(
            description="hold: documents with hidden instructions wait for a person and "
            "are not counted as to grade; default flag (or the template's)"
        ),
    ] = None,
    max_tokens: Annotated[int | None, Form(json_schema_extra=MAX_TOKENS_SCHEMA)] = None,
) -> Any:
    """What a batch not yet made would use and cost, per model and in total, by the
    rules of `GET /api/batches/{id}/estimate`: the documents are checked and read as an
    upload would be (same limits), and a file that cannot be graded is listed with the
    reason and left out of the sums. Nothing is stored."""
    settings = app_settings(request)
    given: dict[str, Any] = {"delivery": delivery.value} if delivery is not None else {}
    if budget is not None:
        given["budget"] = budget
    if hidden_instructions is not None:
        given["hidden_instructions"] = hidden_instructions
    return draft_estimates.estimate_draft(
        request.app.state.sessionmaker,
        draft=draft_estimates.DraftBatch(
            models=list(models or []),
            prompt=prompt,
            saved_prompt_id=saved_prompt_id or None,
            marking_scheme_text=marking_scheme_text,
            saved_marking_scheme_id=saved_marking_scheme_id or None,
            template_id=template_id or None,
            settings=given,
            max_tokens=max_tokens,
        ),
        principal=principal,
        files=incoming([f for f in files or [] if f.filename]),
        scheme_file=uploads.IncomingFile(marking_scheme.filename, marking_scheme.file)
        if marking_scheme is not None and marking_scheme.filename
        else None,
        max_bytes=settings.max_upload_bytes,
    )


# With the upload's size limit, as the routes that take documents.
router.add_api_route(
    "/estimate",
    estimate_new_batch,
    methods=["POST"],
    response_model=DraftEstimateOut,
    route_class_override=UploadRoute,
)


@router.get("/{batch_id}", response_model=BatchDetailOut)
def get_batch(batch_id: str, session: ReadSessionDep) -> Any:
    batch = lifecycle.get_batch(session, batch_id=batch_id)
    return _with_provider_batches(session, BatchDetailOut.model_validate(batch))


@router.get("/{batch_id}/estimate", response_model=EstimateOut)
def estimate(batch_id: str, session: ReadSessionDep) -> Any:
    """What grading the batch's documents still to grade will take, per model: input
    tokens (the shared prompt, built as the calls are, and each document's text, at
    about 4 characters per token: close to OpenAI's and Anthropic's tokenizers for
    English), the part of them a vendor should serve from its prompt cache, output
    tokens (guessed from the rubric until documents of the batch are graded, then as
    they were), and the cost live and through the vendor's batch API. A model without a
    price has tokens and a null cost. Also the budget and what was spent already."""
    return estimates.estimate_batch(session, batch_id=batch_id)


@router.delete("/{batch_id}", response_model=BatchDeletedOut)
def delete_batch(
    batch_id: str, sessions: SessionsDep, settings: SettingsDep, principal: CurrentUser
) -> Any:
    """Delete the batch with its jobs, documents, grades and stored files (its owner
    only). Refused (409) while it is pending or processing, or while documents of it are
    being graded: pause or cancel it first."""
    deleted = removal.delete_batch_and_files(
        sessions, batch_id=batch_id, principal=principal, upload_dir=settings.upload_dir
    )
    return BatchDeletedOut(
        id=deleted.id,
        batch_name=deleted.batch_name,
        jobs=deleted.jobs,
        submissions=deleted.submissions,
        files_removed=deleted.files_removed,
    )


@router.post("/{batch_id}/duplicate", response_model=BatchDetailOut, status_code=201)
def duplicate_batch(
    batch_id: str,
    sessions: SessionsDep,
    settings: SettingsDep,
    principal: CurrentUser,
    request: Annotated[BatchDuplicate | None, Body()] = None,
) -> Any:
    """A new draft batch with the same configuration; with `include_documents`, the same
    jobs and documents too (their text and a copy of each stored file), queued for the
    original's models or for `models`. Start it to grade them again."""
    batch = duplicate.duplicate_batch(
        sessions,
        batch_id=batch_id,
        request=request or BatchDuplicate(),
        principal=principal,
        upload_dir=settings.upload_dir,
    )
    return BatchDetailOut.model_validate(batch)


@router.patch("/{batch_id}", response_model=BatchDetailOut)
def update_batch(
    batch_id: str, changes: BatchUpdate, session: SessionDep, principal: CurrentUser
) -> Any:
    """Change the fields sent. Name, description, tags, priority and deadline change in
    any status but archived; settings in any but processing and archived; the prompt,
    models, temperature, max_tokens and library items only while the batch is a draft or
    paused before grading began, and its jobs take them too. Otherwise a 409 says why."""
    access.check_references(
        session,
        principal,
        prompt_id=changes.saved_prompt_id,
        scheme_id=changes.saved_marking_scheme_id,
    )
    return service.update_batch(session, batch_id=batch_id, changes=changes)


@router.get("/{batch_id}/jobs", response_model=Page[JobOut])
def list_jobs(batch_id: str, session: ReadSessionDep, page: Annotated[Paging, paging(50)]) -> Any:
    total, rows = jobs.list_jobs(session, batch_id=batch_id, limit=page.limit, offset=page.offset)
    return Page[JobOut].of(page, total, [JobOut.of(job) for job in rows])


def create_job(
    batch_id: str,
    request: Request,
    files: Annotated[
        list[UploadFile],
        File(
            min_length=1,
            description="Documents (.docx, .pdf, .txt, .md), or .zip files of them",
        ),
    ],
    models: Annotated[
        list[ModelLabel] | None,
        Form(description="provider:model, repeated to compare; default the batch's"),
    ] = None,
    name: Annotated[Name | None, Form(description="Default the batch's name")] = None,
    prompt: Annotated[
        Prompt | None,
        Form(description="Grading instructions; default the batch's or template's"),
    ] = None,
    temperature: Annotated[float | None, Form(json_schema_extra=TEMPERATURE_SCHEMA)] = None,
    max_tokens: Annotated[int | None, Form(json_schema_extra=MAX_TOKENS_SCHEMA)] = None,
    marking_scheme: Annotated[
        UploadFile | None, File(description="A marking scheme document (.docx, .pdf, .txt, .md)")
    ] = None,
    start: Annotated[bool, Form(description="Start the batch now if it is a draft")] = False,
    saved_prompt_id: Annotated[
        str | None, Form(description="A saved prompt as the prompt, instead of `prompt`")
    ] = None,
    saved_marking_scheme_id: Annotated[
        str | None,
        Form(description="A saved marking scheme, instead of a file; default the batch's"),
    ] = None,
) -> Any:
    """A job in the batch with its documents. Each file is checked and read; one that
    cannot be used is kept as a failed submission with the reason, and the others are
    queued for grading (at once if the batch runs or `start` is true)."""
    settings = app_settings(request)
    sessions = request.app.state.sessionmaker
    with unit_of_work(sessions, read_only=True) as session:
        access.check_references(
            session,
            authenticate(request),
            prompt_id=saved_prompt_id or None,
            scheme_id=saved_marking_scheme_id or None,
        )
    outcome = uploads.create_job_from_uploads(
        sessions,
        batch_id=batch_id,
        request=JobCreate(
            name=name,
            prompt=prompt,
            models=models or [],
            temperature=temperature,
            max_tokens=max_tokens,
            saved_prompt_id=saved_prompt_id or None,
            saved_marking_scheme_id=saved_marking_scheme_id or None,
        ),
        scheme_file=uploads.IncomingFile(marking_scheme.filename or "", marking_scheme.file)
        if marking_scheme is not None
        else None,
        files=incoming(files),
        upload_dir=settings.upload_dir,
        max_bytes=settings.max_upload_bytes,
        start=start,
    )
    with unit_of_work(sessions, read_only=True) as session:
        return uploads.describe(session, outcome)


router.add_api_route(
    "/{batch_id}/jobs",
    create_job,
    methods=["POST"],
    response_model=UploadOut,
    status_code=201,
    route_class_override=UploadRoute,
)


@router.post("/{batch_id}/pause", response_model=BatchOut)
def pause(batch_id: str, session: SessionDep) -> Any:
    """Pause the batch: no new calls start. Calls sent in provider batches are cancelled
    at the vendor; those answered already were paid for and are kept
    (`provider_batches.answered`)."""
    batch = lifecycle.pause_batch(session, batch_id=batch_id)
    return _with_provider_batches(session, BatchOut.model_validate(batch))


@router.post("/{batch_id}/resume", response_model=BatchOut)
def resume(batch_id: str, request: Request) -> Any:
    """Resume a paused batch. Jobs in it that an earlier release left pending or
    processing have their ungraded documents queued (files read again from UPLOAD_DIR).
    A budget pause's `pause_reason` is cleared; if the budget is still too small, the
    next call pauses the batch again (raise it first with PATCH `settings.budget`)."""
    settings = app_settings(request)
    sessions = request.app.state.sessionmaker
    legacy.resume_batch(
        sessions,
        batch_id=batch_id,
        upload_dir=settings.upload_dir,
        max_bytes=settings.max_upload_bytes,
    )
    with unit_of_work(sessions, read_only=True) as session:
        return BatchOut.model_validate(lifecycle.get_batch(session, batch_id=batch_id))


@router.post("/{batch_id}/cancel", response_model=BatchOut)
def cancel(batch_id: str, session: SessionDep) -> Any:
    """Cancel the batch: what is queued is cancelled. Calls sent in provider batches are
    cancelled at the vendor; those answered already were paid for and are kept
    (`provider_batches.answered`)."""
    batch = lifecycle.cancel_batch(session, batch_id=batch_id)
    return _with_provider_batches(session, BatchOut.model_validate(batch))


def _with_provider_batches(session: Session, out: BatchOutT) -> BatchOutT:
    """`provider_batches` filled in once the batch has sent work to a batch API."""
    totals = provider_batches.totals(session, batch_id=out.id)
    if not totals.total:
        return out
    return out.model_copy(
        update={"provider_batches": ProviderBatchTotalsOut.model_validate(totals)}
    )


@router.post("/{batch_id}/start", response_model=BatchOut)
def start(batch_id: str, session: SessionDep) -> Any:
    return lifecycle.start_batch(session, batch_id=batch_id)


@router.post("/{batch_id}/retry-failed", response_model=RetryOut)
def retry_failed(batch_id: str, session: SessionDep) -> Any:
    requeued = lifecycle.retry_failed_batch(session, batch_id=batch_id)
    return {"batch": lifecycle.get_batch(session, batch_id=batch_id), "requeued": requeued}


@router.post("/{batch_id}/archive", response_model=BatchOut)
def archive(batch_id: str, session: SessionDep) -> Any:
    return lifecycle.archive_batch(session, batch_id=batch_id)


# --- sharing --------------------------------------------------------------------------


def _share_out(share: Any, user: Any) -> ShareOut:
    return ShareOut(
        user=user.username,
        display_name=user.display_name,
        permission=share.permission,
        created_at=share.created_at,
    )


@router.get("/{batch_id}/shares", response_model=list[ShareOut])
def list_shares(batch_id: str, session: ReadSessionDep) -> Any:
    """Who the batch is shared with, and how."""
    return [_share_out(s, u) for s, u in shares.list_shares(session, batch_id=batch_id)]


@router.post("/{batch_id}/shares", response_model=ShareOut, status_code=201)
def share(batch_id: str, data: ShareCreate, session: SessionDep, principal: CurrentUser) -> Any:
    """Share the batch with a user: `view` to see it, its grades and exports; `edit` to
    also start, pause, change it and add documents. Sharing again changes the
    permission. The batch's owner only."""
    given, user = shares.share_batch(
        session,
        batch_id=batch_id,
        username=data.user,
        permission=data.permission,
        shared_by=principal.user_id,
    )
    audit.record(
        session,
        principal,
        "share",
        "batch",
        batch_id,
        user=user.username,
        permission=data.permission,
    )
    return _share_out(given, user)


@router.delete("/{batch_id}/shares/{username}", status_code=204)
def unshare(batch_id: str, username: str, session: SessionDep, principal: CurrentUser) -> Response:
    """Stop sharing the batch with a user; it takes effect at once. The owner only."""
    shares.unshare_batch(session, batch_id=batch_id, username=username)
    audit.record(session, principal, "unshare", "batch", batch_id, user=username.strip().lower())
    return Response(status_code=204)
