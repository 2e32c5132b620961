"""Providers: what this server is configured with (never a key, only whether one is
set), a check per provider that makes the same test call as `grading-app providers
check` (administrators: it spends the key's quota), and the prices costs are worked out
with (administrators change them here; everyone else reads them)."""

from __future__ import annotations

import math
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from grading_app.accounts import audit
from grading_app.accounts.principal import Principal
from grading_app.db import unit_of_work
from grading_app.errors import AppError
from grading_app.providers.base import ProviderError
from grading_app.providers.registry import build_provider, canonical_name, load_provider_configs
from grading_app.reports import price_book
from grading_app.reports.prices import BATCH_DISCOUNTS, PRICES_AS_OF
from grading_app.web.shell import form_viewer, render, viewer

router = APIRouter(include_in_schema=False)
CHECK_TIMEOUT_SECONDS = 20.0
NEW_PRICE = "new"  # the key of the form that adds a model
PRICE_FIELDS = (
    "input_per_million",
    "cached_input_per_million",
    "cache_write_per_million",
    "output_per_million",
    "batch_discount",
)
FigureText = Annotated[str, Form(max_length=40)]


def _page(
    request: Request,
    principal: Principal,
    checked: dict[str, tuple[bool, str]],
    *,
    price_errors: dict[str, dict[str, str]] | None = None,
    entered: dict[str, dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    configs = sorted(load_provider_configs().values(), key=lambda c: (not c.configured, c.name))
    with unit_of_work(request.app.state.sessionmaker, read_only=True) as session:
        prices = price_book.list_prices(session)
    return render(
        request,
        "providers.html",
        principal,
        status_code=status_code,
        providers=configs,
        checked=checked,
        prices=prices,
        prices_as_of=PRICES_AS_OF,
        price_errors=price_errors or {},
        entered=entered or {},
        notice=request.query_params.get("notice", "")[:200],
        new_price=NEW_PRICE,
    )


@router.get("/providers", response_class=HTMLResponse)
def providers_page(request: Request) -> Response:
    return _page(request, viewer(request), {})


@router.post("/providers/{name}/check", response_class=HTMLResponse)
def check_provider(
    request: Request, name: str, csrf_token: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    principal = form_viewer(request, csrf_token)
    configs = load_provider_configs()
    if not principal.is_admin:
        result = (False, "Only an administrator can check a provider (it spends the key's quota)")
    elif name not in configs:
        result = (False, f"No provider named {name}")
    else:
        try:
            config = configs[name]
            summary = build_provider(config).check(
                default_model=config.default_model, timeout=CHECK_TIMEOUT_SECONDS
            )
            result = (True, summary)
        except ProviderError as exc:
            result = (False, str(exc))
        except Exception as exc:  # a provider's SDK may raise anything; say what, not a 500
            result = (False, f"{type(exc).__name__}: the check could not be made")
    return _page(request, principal, {name: result})


def _figure(text: str, *, required: bool) -> tuple[float | None, str | None]:
    """A figure of the form: a number, or None when left empty; else what is wrong."""
    text = text.strip()
    if not text:
        return None, ("enter a price (0 for free)" if required else None)
    try:
        value = float(text)
    except ValueError:
        return None, "enter a number, e.g. 2.5"
    if not math.isfinite(value):
        return None, "enter a number, e.g. 2.5"
    return value, None


def _back(notice: str) -> Response:
    return RedirectResponse(f"/providers?notice={quote(notice)}#prices-title", status_code=303)


@router.post("/providers/prices", response_class=HTMLResponse)
def set_price_page(
    request: Request,
    form: Annotated[str, Form(max_length=100)] = NEW_PRICE,
    provider: Annotated[str, Form(max_length=50)] = "",
    model: Annotated[str, Form(max_length=200)] = "",
    input_per_million: FigureText = "",
    cached_input_per_million: FigureText = "",
    cache_write_per_million: FigureText = "",
    output_per_million: FigureText = "",
    batch_discount: FigureText = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Set a price from a row's form (or the form that adds a model)."""
    principal = form_viewer(request, csrf_token)
    entered = {
        "provider": provider,
        "model": model,
        "input_per_million": input_per_million,
        "cached_input_per_million": cached_input_per_million,
        "cache_write_per_million": cache_write_per_million,
        "output_per_million": output_per_million,
        "batch_discount": batch_discount,
    }
    if not principal.is_admin:
        errors = {"form": "Only an administrator can change prices"}
        return _refused(request, principal, form, errors, entered, status_code=403)
    values: dict[str, Any] = {}
    errors = {}
    for name in PRICE_FIELDS:
        required = name in ("input_per_million", "output_per_million")
        values[name], problem = _figure(entered[name], required=required)
        if problem:
            errors[name] = problem
    if values["batch_discount"] is None and "batch_discount" not in errors:
        values["batch_discount"] = BATCH_DISCOUNTS.get(canonical_name(provider), 0.0)
    # Every figure read is checked too, so each error shows at once beside its field.
    readable = {name: 0.0 if value is None else value for name, value in values.items()}
    range_errors = price_book.figure_errors(price_book.Figures(**readable))
    errors = {**price_book.name_errors(provider, model.strip()), **range_errors, **errors}
    figures = price_book.Figures(**values)
    if errors:
        return _refused(request, principal, form, errors, entered, status_code=400)
    model = model.strip()
    try:
        with unit_of_work(request.app.state.sessionmaker) as session:
            row = price_book.set_price(
                session,
                provider=provider,
                model=model,
                figures=figures,
                user_id=principal.user_id,
            )
            audit.record(
                session, principal, "set_price", "price", row.id, provider=row.provider, model=model
            )
    except AppError as exc:
        return _refused(request, principal, form, {"form": exc.message}, entered, status_code=400)
    return _back(f"Price of {canonical_name(provider)}:{model} saved")


@router.post("/providers/prices/remove", response_class=HTMLResponse)
def remove_price_page(
    request: Request,
    provider: Annotated[str, Form(max_length=50)] = "",
    model: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Remove an administrator's price: the setting's or the default applies again."""
    principal = form_viewer(request, csrf_token)
    form = f"{provider}:{model}"
    if not principal.is_admin:
        errors = {"form": "Only an administrator can change prices"}
        return _refused(request, principal, form, errors, {}, status_code=403)
    try:
        with unit_of_work(request.app.state.sessionmaker) as session:
            row = price_book.delete_price(session, provider=provider, model=model)
            audit.record(
                session, principal, "delete_price", "price", row.id, provider=provider, model=model
            )
    except AppError as exc:
        return _refused(request, principal, form, {"form": exc.message}, {}, status_code=404)
    return _back(f"Price of {provider}:{model} removed; the default applies")


def _refused(
    request: Request,
    principal: Principal,
    form: str,
    errors: dict[str, str],
    entered: dict[str, str],
    *,
    status_code: int,
) -> Response:
    """The page again, the form's errors beside its fields and what was entered kept."""
    return _page(
        request,
        principal,
        {},
        price_errors={form: errors},
        entered={form: entered},
        status_code=status_code,
    )
