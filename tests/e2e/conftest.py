"""Fixtures for the browser tests: the real app under uvicorn, Debian's Chromium driven by
Playwright, a new browser context per test (1400×900 unless the test asks for another
size) that fails the test on console errors, CSP refusals or requests leaving the app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import fresh_postgres_database
from tests.e2e.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    WIDE,
    BrowserProblems,
    is_local,
    require_chromium,
)
from tests.e2e.live_server import LiveServer, grading_live_server, live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app on a fresh database, shared by the tests of one module."""
    with live_server(tmp_path_factory.mktemp("e2e-server")) as running:
        yield running


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def grading_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The app that grades (workers on, the fake vendor as its providers), shared by the
    tests of one module: once on a fresh SQLite file and once on a fresh PostgreSQL
    database (skipped when PostgreSQL is unreachable, an error under
    GRADING_APP_REQUIRE_POSTGRES), so every test using it runs on both."""
    folder = tmp_path_factory.mktemp(f"e2e-grading-{request.param}")
    with ExitStack() as stack:
        database_url = None
        if request.param == "postgresql":
            database_url = stack.enter_context(fresh_postgres_database())
        yield stack.enter_context(grading_live_server(folder, database_url=database_url))


@pytest.fixture
def fresh_server(tmp_path) -> Iterator[LiveServer]:
    """The app on an empty database of its own, for a test of the first run."""
    with live_server(tmp_path) as running:
        yield running


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium for all the browser tests. Package-scoped, not session: while
    Playwright's sync API is started it marks an asyncio loop as running in the main
    thread, which would break asyncio.run() in the tests that come after tests/e2e."""
    require_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser_problems() -> BrowserProblems:
    return BrowserProblems()


@pytest.fixture
def page(
    request: pytest.FixtureRequest, browser: Browser, browser_problems: BrowserProblems
) -> Iterator[Page]:
    """A page in a new context (no cookies); 1400×900, or the size given by indirect
    parametrisation: `@pytest.mark.parametrize("page", [TABLET], indirect=True)`."""
    size = getattr(request, "param", WIDE)
    context = browser.new_context(viewport=size)
    # Nothing leaves the machine: a request elsewhere is refused here (and counted).
    context.route(lambda url: not is_local(url), lambda route: route.abort())
    context.on("request", browser_problems.request)
    context.on("response", browser_problems.response)
    opened = context.new_page()
    opened.on("console", browser_problems.console)
    opened.on("pageerror", browser_problems.page_error)
    try:
        yield opened
    finally:
        context.close()
    assert not browser_problems.found, "problems in the browser:\n" + "\n".join(
        browser_problems.found
    )
