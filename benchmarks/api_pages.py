"""The web application's pages in `benchmarks/api.py`: each page rendered by the real
server, signed in through the real sign-in form (the session cookie, as a browser
holds it), timed over HTTP like the API's reads.

Every page is read as the administrator (who sees every batch); the dashboard and the
batches list also as a teacher, who sees only their own tenth of the batches. A page
that does not answer 200 (a redirect to sign in, an error page) is reported with its
status, not timed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import api_data
import httpx

from grading_app.accounts.auth import SESSION_COOKIE

PAGE_TARGET_MS = 100.0


@dataclass(frozen=True)
class Page:
    label: str
    path: str
    role: str = "admin"


def sign_in(base_url: str, username: str, password: str) -> httpx.Client:
    """A client holding the session cookie the sign-in form sets (a 303 to the page
    named in `next`); redirects are not followed, so a lost session shows as a 303."""
    client = httpx.Client(base_url=base_url, timeout=120)
    answer = client.post(
        "/sign-in", data={"username": username, "password": password, "next": "/dashboard"}
    )
    if answer.status_code != 303 or SESSION_COOKIE not in client.cookies:
        client.close()
        raise RuntimeError(f"signing in as {username} failed: {answer.status_code}")
    return client


def pages(plan: api_data.Plan) -> list[Page]:
    """The pages a teacher opens, on the rows `api_data` wrote: batch 1 and job 1 are
    ordinary; batch 0 holds the one job (job 0) of `export_documents` documents; job 4
    grades with two models (one in ten does), so its document shows two grades."""
    batches = len(plan.batches)
    big = f"{plan.jobs[0].documents:,} docs" if plan.jobs else "no docs"
    batch, big_batch = (api_data.numbered_id(api_data.BATCH, n) for n in (1, 0))
    job, big_job = (api_data.numbered_id(api_data.JOB, n) for n in (1, 0))
    compared = plan.jobs[4] if len(plan.jobs) > 4 else plan.jobs[-1]
    document = api_data.numbered_id(api_data.SUBMISSION, compared.first_submission)
    offset = batches * 9 // 10
    return [
        Page("dashboard", "/dashboard"),
        Page("dashboard (a teacher)", "/dashboard", "teacher"),
        Page("batches", "/batches"),
        Page("batches (a teacher)", "/batches", "teacher"),
        Page("batches status=processing", "/batches?status=processing"),
        Page("batches tag=english", "/batches?tag=english&tags_match=any"),
        Page("batches q=essay", "/batches?q=essay"),
        Page(f"batches offset={offset:,}", f"/batches?offset={offset}"),
        Page("batch detail", f"/batches/{batch}"),
        Page(f"batch detail ({big})", f"/batches/{big_batch}"),
        Page("batch analytics", f"/batches/{batch}/analytics"),
        Page(f"batch analytics ({big})", f"/batches/{big_batch}/analytics"),
        Page("job", f"/jobs/{job}"),
        Page(f"job ({big})", f"/jobs/{big_job}"),
        Page(f"job offset=1,000 ({big})", f"/jobs/{big_job}?offset=1000"),
        Page(f"document ({compared.models} models)", f"/documents/{document}"),
        Page("new batch form", "/batches/new"),
        Page("templates", "/templates"),
        Page("library", "/library"),
        Page("providers", "/providers"),
        Page("account", "/account"),
    ]


def page_size(response: httpx.Response) -> str:
    """The note beside a page's figures: how much HTML it sends."""
    kind = response.headers.get("content-type", "")
    if not kind.startswith("text/html"):
        return f"not HTML: {kind}"
    return f"{len(response.content) / 1024:.0f} KB"


def measure_pages(
    base_url: str,
    accounts: dict[str, tuple[str, str]],
    plan: api_data.Plan,
    repeat: int,
    time_get: Callable[..., Any],
) -> list[Any]:
    """The figures of every page (the Timing rows of `api.py`, via its `time_get`);
    `accounts` maps a role to its username and password."""
    clients = {role: sign_in(base_url, *login) for role, login in accounts.items()}
    try:
        return [
            time_get(
                clients[page.role],
                page.label,
                page.path,
                repeat=repeat,
                target_ms=PAGE_TARGET_MS,
                check=page_size,
            )
            for page in pages(plan)
        ]
    finally:
        for client in clients.values():
            client.close()
