"""Analytics and export endpoints: a batch's or job's figures, the dashboard, exports in
CSV, JSON, XLSX and ZIP, streamed; and the prices costs are worked out with."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from grading_app.accounts import audit
from grading_app.accounts.auth import AdminUser, CurrentUser
from grading_app.db import unit_of_work
from grading_app.deps import ReadSessionDep, SessionDep
from grading_app.providers.registry import canonical_name
from grading_app.reports import dashboard, price_book, snapshots
from grading_app.reports.exports import MEDIA_TYPES, ExportFormat, export_chunks, export_filename
from grading_app.reports.gradebook import ID_PATTERN_LENGTH, compile_id_pattern
from grading_app.reports.prices import BATCH_DISCOUNTS
from grading_app.reports.schemas import Dashboard, PriceIn, PriceOut, ScopeAnalytics
from grading_app.reports.scope import ScopeKind, batch_scope, job_scope, load_scope

router = APIRouter(prefix="/api", tags=["reports"])

_EXPORT_SCHEMAS: dict[ExportFormat, dict[str, Any]] = {
    ExportFormat.CSV: {"type": "string", "description": "One row per document"},
    ExportFormat.JSON: {
        "type": "object",
        "description": "The batch or job, its jobs, documents and every grade",
    },
    ExportFormat.XLSX: {"type": "string", "format": "binary"},
    ExportFormat.ZIP: {"type": "string", "format": "binary"},
}
_EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export, streamed",
        "content": {
            media_type: {"schema": _EXPORT_SCHEMAS[export_format]}
            for export_format, media_type in MEDIA_TYPES.items()
        },
    },
}

FormatQuery = Annotated[ExportFormat, Query(alias="format", description="csv, json, xlsx or zip")]
IdPatternQuery = Annotated[
    str | None,
    Query(
        max_length=ID_PATTERN_LENGTH,
        description="A regular expression with one group that picks the student identifier "
        "out of each file name, e.g. ^(\\d+)_ for 12345_essay.docx; default: the file name "
        "without its extension",
    ),
]


@router.get("/analytics", response_model=Dashboard)
def get_dashboard(session: ReadSessionDep, principal: CurrentUser) -> Any:
    """Over the batches you own or that are shared with you (administrators: all):
    totals, batches by status, those in progress with their ETA, deadlines at risk and
    the latest failures."""
    scope = dashboard.Scope.visible_to(principal)
    return dashboard.dashboard(session, scope=scope)


@router.get("/batches/{batch_id}/analytics", response_model=ScopeAnalytics)
def batch_analytics(batch_id: str, session: ReadSessionDep) -> Any:
    """Counts, success rate, throughput, ETA against the deadline; per model calls,
    failures by cause, latency, tokens and cost, score distributions; and agreement
    between models."""
    scope = batch_scope(session, batch_id=batch_id)
    return snapshots.scope_analytics(session, scope, prices=price_book.price_table(session))


@router.get("/jobs/{job_id}/analytics", response_model=ScopeAnalytics)
def job_analytics(job_id: str, session: ReadSessionDep) -> Any:
    """The same figures as a batch's, for one job."""
    scope = job_scope(session, job_id=job_id)
    return snapshots.scope_analytics(session, scope, prices=price_book.price_table(session))


def _export(
    request: Request,
    kind: ScopeKind,
    scope_id: str,
    export_format: ExportFormat,
    pattern: str | None,
) -> StreamingResponse:
    id_pattern = compile_id_pattern(pattern)  # a 400 before anything streams
    sessions = request.app.state.sessionmaker
    with unit_of_work(sessions, read_only=True) as session:
        scope = load_scope(session, kind=kind, scope_id=scope_id)  # a 404, likewise
        prices = price_book.price_table(session)

    def chunks() -> Iterator[str | bytes]:
        # A read-only session of its own, open while the body streams: on SQLite it
        # never takes the write lock, so workers keep recording grades meanwhile.
        with unit_of_work(sessions, read_only=True) as session:
            yield from export_chunks(
                session, scope, export_format=export_format, prices=prices, id_pattern=id_pattern
            )

    filename = export_filename(scope, export_format)
    return StreamingResponse(
        chunks(),
        media_type=MEDIA_TYPES[export_format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/batches/{batch_id}/export",
    response_class=StreamingResponse,
    response_model=None,
    responses=_EXPORT_RESPONSES,
)
def export_batch(
    batch_id: str,
    request: Request,
    export_format: FormatQuery = ExportFormat.CSV,
    id_pattern: IdPatternQuery = None,
) -> StreamingResponse:
    """The batch's gradebook (csv, xlsx: one row per document, every job), everything
    (json), or both with a summary and one feedback file per document (zip)."""
    return _export(request, "batch", batch_id, export_format, id_pattern)


@router.get(
    "/jobs/{job_id}/export",
    response_class=StreamingResponse,
    response_model=None,
    responses=_EXPORT_RESPONSES,
)
def export_job(
    job_id: str,
    request: Request,
    export_format: FormatQuery = ExportFormat.CSV,
    id_pattern: IdPatternQuery = None,
) -> StreamingResponse:
    """The job's export, as the batch's."""
    return _export(request, "job", job_id, export_format, id_pattern)


@router.get(
    "/jobs/{job_id}/results.csv",
    response_class=StreamingResponse,
    response_model=None,
    responses={200: {"content": {MEDIA_TYPES[ExportFormat.CSV]: {}}}},
)
def export_job_csv(job_id: str, request: Request) -> StreamingResponse:
    """The job's gradebook as CSV (the same as /export?format=csv)."""
    return _export(request, "job", job_id, ExportFormat.CSV, None)


# --- prices ---------------------------------------------------------------------------------


def _price_out(listed: price_book.ListedPrice) -> PriceOut:
    price = listed.price
    return PriceOut(
        provider=listed.provider,
        model=listed.model,
        input_per_million=price.input_per_million,
        output_per_million=price.output_per_million,
        cached_input_per_million=price.cached_input_per_million,
        cache_write_per_million=price.cache_write_per_million,
        batch_discount=price.batch_discount,
        source=price.source,
        as_of=listed.as_of,
    )


@router.get("/prices", response_model=list[PriceOut])
def list_prices(session: ReadSessionDep) -> Any:
    """Every price in force (USD per million tokens), with its source and date: costs
    are worked out with these."""
    return [_price_out(listed) for listed in price_book.list_prices(session)]


@router.put(
    "/prices/{provider}/{model:path}",
    response_model=PriceOut,
    responses={400: {"description": "An unknown provider or a figure out of range"}},
)
def set_price(
    provider: str, model: str, data: PriceIn, principal: AdminUser, session: SessionDep
) -> Any:
    """Set a model's price (administrators); model "*" prices every model of the
    provider that has none of its own. Gradings from now on are priced with it."""
    discount = data.batch_discount
    if discount is None:
        discount = BATCH_DISCOUNTS.get(canonical_name(provider), 0.0)
    figures = price_book.Figures(
        input_per_million=data.input_per_million,
        output_per_million=data.output_per_million,
        cached_input_per_million=data.cached_input_per_million,
        cache_write_per_million=data.cache_write_per_million,
        batch_discount=discount,
    )
    row = price_book.set_price(
        session, provider=provider, model=model, figures=figures, user_id=principal.user_id
    )
    audit.record(
        session,
        principal,
        "set_price",
        "price",
        row.id,
        provider=row.provider,
        model=row.model,
        **data.model_dump(exclude_none=True),
    )
    as_of = row.updated_at.date() if row.updated_at else None
    listed = price_book.ListedPrice(row.provider, row.model, price_book.price_of_row(row), as_of)
    return _price_out(listed)


@router.delete("/prices/{provider}/{model:path}", status_code=204)
def delete_price(provider: str, model: str, principal: AdminUser, session: SessionDep) -> Response:
    """Remove an administrator's price (administrators): GRADING_APP_PRICES' or the
    dated default applies again."""
    row = price_book.delete_price(session, provider=provider, model=model)
    audit.record(
        session, principal, "delete_price", "price", row.id, provider=row.provider, model=row.model
    )
    return Response(status_code=204)
