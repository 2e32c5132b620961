"""A server on a network: it answers only to its own host names (no DNS rebinding),
every answer carries the security headers, /docs runs under a policy without inline
scripts, HSTS only over HTTPS, and uploads beyond MAX_CONCURRENT_UPLOADS wait."""

from __future__ import annotations

import re
import threading

import httpx
import pytest
from fastapi.testclient import TestClient

from grading_app.app import create_app
from grading_app.config import Settings
from grading_app.security import host_allowed, trusted_host_list
from grading_app.upgrade.schema import upgrade_schema
from tests.conftest import admin_token
from tests.jobs.helpers import stored_files
from tests.served import served

BATCH = {"name": "Essays", "prompt": "Grade it.", "models": ["openai:m"]}


def _app(sqlite_url, **settings):
    upgrade_schema(sqlite_url, write=lambda _: None)
    return create_app(Settings(database_url=sqlite_url, **settings))


# --- trusted hosts ---------------------------------------------------------------------


def test_default_trusted_hosts_are_the_loopback_names_and_the_bound_address():
    assert trusted_host_list("", bind_host="127.0.0.1") == ("localhost", "127.0.0.1", "::1")
    assert trusted_host_list("", bind_host="0.0.0.0") == ("localhost", "127.0.0.1", "::1")
    assert trusted_host_list("", bind_host="::") == ("localhost", "127.0.0.1", "::1")
    assert trusted_host_list("", bind_host="10.1.2.3")[-1] == "10.1.2.3"
    assert "testserver" not in trusted_host_list("", bind_host="127.0.0.1")
    named = trusted_host_list(" Grading.School.example:8443, *.lab.example ,", bind_host="x")
    assert named == ("grading.school.example", "*.lab.example")
    settings = Settings(host="10.1.2.3", allow_public_bind=True)
    assert settings.trusted_host_list == ("localhost", "127.0.0.1", "::1", "10.1.2.3")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("LOCALHOST:8000", True),
        ("127.0.0.1:8000", True),
        ("[::1]:8000", True),
        ("localhost.", True),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
    ],
)
def test_host_header_is_matched_without_its_port(host, allowed):
    assert host_allowed(host, trusted_host_list("", bind_host="127.0.0.1")) is allowed


def test_wildcards_take_any_host_or_subdomains_only():
    assert host_allowed("evil.example", ("*",))
    assert host_allowed("a.lab.example:443", ("*.lab.example",))
    assert not host_allowed("lab.example", ("*.lab.example",))
    assert not host_allowed("evillab.example", ("*.lab.example",))


def test_dns_rebinding_request_is_refused_and_changes_nothing(client, caplog):
    """A page on evil.example whose name now resolves to 127.0.0.1 sends its own name as
    the Host: neither its write nor its read reaches a route."""
    rebinding = {"host": "evil.example"}
    write = client.post("/api/batches", json=BATCH, headers=rebinding)
    read = client.get("/api/batches", headers=rebinding)
    for response in (write, read):
        assert response.status_code == 400
        assert "TRUSTED_HOSTS" in response.json()["detail"]
        assert response.headers["x-frame-options"] == "DENY"
    assert client.get("/api/batches").json()["total"] == 0
    assert "evil.example" in caplog.text  # the operator sees which name was refused


def test_trusted_hosts_setting_replaces_the_default(sqlite_url):
    application = _app(sqlite_url, trusted_hosts="grading.school.example")
    with TestClient(application, base_url="http://grading.school.example:8443") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/health", headers={"host": "localhost"}).status_code == 400
    with TestClient(_app(sqlite_url, trusted_hosts="*"), base_url="http://any.example") as c:
        assert c.get("/health").status_code == 200


# --- security headers ------------------------------------------------------------------

PATHS = [
    "/",
    "/health",
    "/api/batches",
    "/api/batches/missing",  # 404
    "/api/batches?limit=-1",  # 422
    "/openapi.json",
    "/docs",
    "/redoc",
    "/static/app.css",
    "/static/docs/swagger-ui-bundle.js",
    "/no/such/page",
]


def _script_sources(policy: str) -> str:
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    return directives["script-src"]


@pytest.mark.parametrize("path", PATHS)
def test_every_answer_carries_the_security_headers(sqlite_url, path):
    with TestClient(_app(sqlite_url), base_url="http://localhost") as client:
        response = client.get(path)
    headers = response.headers
    policy = headers["content-security-policy"]
    assert _script_sources(policy) == "'self'"  # no inline script, no eval
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert "camera=()" in headers["permissions-policy"]
    assert "strict-transport-security" not in headers  # plain HTTP


def test_hsts_only_when_the_request_came_over_https(sqlite_url):
    with TestClient(_app(sqlite_url), base_url="https://localhost") as client:
        assert client.get("/health").headers["strict-transport-security"].startswith("max-age=")
    with TestClient(_app(sqlite_url), base_url="http://localhost") as client:
        # Only uvicorn, from a trusted proxy, turns X-Forwarded-Proto into the scheme.
        spoofed = client.get("/health", headers={"x-forwarded-proto": "https"})
        assert "strict-transport-security" not in spoofed.headers


def test_a_trusted_proxy_terminating_https_gets_hsts(sqlite_url):
    """`grading-app serve` runs uvicorn with its proxy headers on, trusting 127.0.0.1
    (FORWARDED_ALLOW_IPS): the reverse proxy's X-Forwarded-Proto sets the scheme."""
    with served(_app(sqlite_url), proxy_headers=True, forwarded_allow_ips="127.0.0.1") as base:
        proxied = httpx.get(f"{base}/health", headers={"x-forwarded-proto": "https"})
        direct = httpx.get(f"{base}/health")
    assert proxied.status_code == 200
    assert proxied.headers["strict-transport-security"].startswith("max-age=")
    assert "strict-transport-security" not in direct.headers


def test_an_untrusted_proxy_cannot_claim_https(sqlite_url):
    with served(_app(sqlite_url), proxy_headers=True, forwarded_allow_ips="10.9.9.9") as base:
        response = httpx.get(f"{base}/health", headers={"x-forwarded-proto": "https"})
    assert "strict-transport-security" not in response.headers


SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_run_without_inline_scripts(sqlite_url, page):
    """The policy refuses inline scripts, so the pages must have none: every script is
    a file the application serves, and Swagger UI's start-up is one of them."""
    with TestClient(_app(sqlite_url), base_url="http://localhost") as client:
        html = client.get(page).text
        scripts = SCRIPT.findall(html)
        assert scripts
        for attributes, body in scripts:
            assert "src=" in attributes and not body.strip(), attributes
            source = re.search(r'src="([^"]+)"', attributes).group(1)
            loaded = client.get(source)
            assert loaded.status_code == 200, source
            assert "javascript" in loaded.headers["content-type"]
        assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE)  # no onclick= etc.
        if page == "/docs":
            init = client.get("/static/swagger-init.js").text
            assert "SwaggerUIBundle(" in init
            assert 'data-openapi-url="/openapi.json"' in html
            assert client.get("/openapi.json").status_code == 200


# --- concurrent uploads ----------------------------------------------------------------

BOUNDARY = "netsafe-boundary"


def _held_upload(gate: threading.Event):
    """A one-file multipart body whose end waits for `gate`: an upload in progress."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
        'filename="slow.txt"\r\nContent-Type: text/plain\r\n\r\nA slow essay'
    ).encode()
    assert gate.wait(timeout=60)
    yield f" arrives at last.\r\n--{BOUNDARY}--\r\n".encode()


def test_uploads_beyond_the_limit_get_503_with_retry_after(sqlite_url, upload_dir, provider_env):
    upgrade_schema(sqlite_url, write=lambda _: None)
    settings = Settings(
        database_url=sqlite_url, upload_dir=upload_dir, max_upload_mb=1, max_concurrent_uploads=1
    )
    application = create_app(settings)
    with pytest.MonkeyPatch.context() as env:
        for key, value in provider_env.items():
            env.setenv(key, value)
        signed = {"Authorization": f"Bearer {admin_token(sqlite_url)}"}
        with (
            served(application) as base,
            httpx.Client(base_url=base, timeout=60, headers=signed) as client,
        ):
            batch = client.post("/api/batches", json=BATCH).json()
            url = f"/api/batches/{batch['id']}/jobs"
            gate, outcome = threading.Event(), {}
            held = threading.Thread(
                target=lambda: outcome.setdefault(
                    "held",
                    httpx.post(
                        f"{base}{url}",
                        content=_held_upload(gate),
                        headers={
                            "content-type": f"multipart/form-data; boundary={BOUNDARY}",
                            **signed,
                        },
                        timeout=60,
                    ),
                )
            )
            held.start()
            waiting = threading.Event()
            while application.state.upload_slots.in_use < 1 and held.is_alive():
                waiting.wait(0.01)
            files = [("files", ("quick.txt", b"A quick essay.", "text/plain"))]
            refused = client.post(url, files=files)
            gate.set()
            held.join(timeout=60)
            after = client.post(url, files=files)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "10"
    assert "MAX_CONCURRENT_UPLOADS" in refused.json()["detail"]
    assert refused.headers["x-content-type-options"] == "nosniff"
    assert outcome["held"].status_code == 201, outcome["held"].text
    assert after.status_code == 201, after.text
    assert application.state.upload_slots.in_use == 0
    assert len(stored_files(upload_dir)) == 2  # the refused one stored nothing
