"""/docs and /redoc work on a server without internet: their pages load only what the
application itself serves."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from grading_app.app import create_app
from grading_app.config import Settings

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/docs", {"text/javascript", "text/css"}),
        ("/redoc", {"text/javascript"}),
    ],
)
def test_api_docs_load_their_assets_from_the_application(sqlite_url, page, expected):
    with TestClient(
        create_app(Settings(database_url=sqlite_url)), base_url="http://localhost"
    ) as client:
        html = client.get(page)
        assert html.status_code == 200
        assert "cdn.jsdelivr.net" not in html.text and "fonts.googleapis" not in html.text
        assets = ASSET.findall(html.text)
        assert assets and all(url.startswith("/") and not url.startswith("//") for url in assets)
        kinds = set()
        for url in assets:
            response = client.get(url)
            assert response.status_code == 200, url
            assert response.content, url
            kinds.add(response.headers["content-type"].split(";")[0])
    assert expected <= kinds
