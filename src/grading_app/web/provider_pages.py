"""Providers: what this server is configured with (never a key, only whether one is
set), a check per provider that makes the same test call as `grading-app providers
check` (administrators: it spends the key's quota), and the price table the cost
estimates use."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from grading_app.providers.base import ProviderError
from grading_app.providers.registry import build_provider, load_provider_configs
from grading_app.reports.prices import DEFAULT_PRICES, PRICES_AS_OF
from grading_app.web.shell import form_viewer, render, viewer

router = APIRouter(include_in_schema=False)
CHECK_TIMEOUT_SECONDS = 20.0


def _page(request: Request, principal: object, checked: dict[str, tuple[bool, str]]) -> Response:
    configs = sorted(load_provider_configs().values(), key=lambda c: (not c.configured, c.name))
    overrides = request.app.state.settings.price_overrides
    prices = [
        (key, figures, "GRADING_APP_PRICES" if key in overrides else f"list price, {PRICES_AS_OF}")
        for key, figures in sorted({**DEFAULT_PRICES, **overrides}.items())
    ]
    return render(
        request,
        "providers.html",
        principal,  # type: ignore[arg-type]
        providers=configs,
        checked=checked,
        prices=prices,
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
