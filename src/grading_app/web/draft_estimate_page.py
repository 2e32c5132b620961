"""The new-batch form's "Estimate cost" button: the form comes back as it was typed,
with the estimate of the batch it describes beside its buttons
(batches/draft_estimate.py), for browsers without JavaScript. With it, app.js asks
`POST /api/batches/estimate` as the form changes and fills the same place, so the
button is only a fallback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request, UploadFile
from fastapi.responses import HTMLResponse

from grading_app.batches import draft_estimate as draft_estimates
from grading_app.errors import AppError
from grading_app.jobs.routes import incoming
from grading_app.jobs.uploads import IncomingFile

# The value of the form's `action` button that asks for the estimate, not the batch.
ESTIMATE = "estimate"

FormPage = Callable[..., HTMLResponse]


def draft_of(fields: dict[str, Any]) -> draft_estimates.DraftBatch:
    """The batch the form's checked fields describe (as `BatchCreate` takes them)."""
    return draft_estimates.DraftBatch(
        models=fields["models"] or [],
        prompt=fields["prompt"],
        saved_prompt_id=fields["saved_prompt_id"],
        saved_marking_scheme_id=fields["saved_marking_scheme_id"],
        template_id=fields["template_id"],
        settings=fields["settings"] or {},
    )


def estimate_page(
    request: Request,
    principal: Any,
    *,
    form: dict[str, Any],
    errors: dict[str, str],
    draft: draft_estimates.DraftBatch,
    documents: list[UploadFile],
    scheme_upload: UploadFile | None,
    form_page: FormPage,
) -> HTMLResponse:
    # A browser sends no file back with a re-rendered form: say so when some were chosen.
    again = bool(documents or scheme_upload)
    if errors:
        return form_page(request, principal, form, errors, 400, files_again=again)
    try:
        estimate = draft_estimates.estimate_draft(
            request.app.state.sessionmaker,
            draft=draft,
            principal=principal,
            files=incoming(documents),
            scheme_file=IncomingFile(scheme_upload.filename or "", scheme_upload.file)
            if scheme_upload is not None
            else None,
            max_bytes=request.app.state.settings.max_upload_bytes,
        )
    except AppError as exc:
        errors["estimate"] = exc.message
        return form_page(request, principal, form, errors, exc.status_code, files_again=again)
    return form_page(request, principal, form, errors, 200, estimate=estimate, files_again=again)
