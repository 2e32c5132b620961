"""What every response of a server on a network needs, before and after any route:

- the `Host` header must name this server (TRUSTED_HOSTS): a page on another site that
  points its own name at 127.0.0.1 (DNS rebinding) reaches us with its name as the host,
  and is refused with a 400;
- security headers on every answer: a Content-Security-Policy that allows no inline
  script, no framing, no sniffing, a same-origin referrer, no powerful browser features,
  and HSTS when the request came over HTTPS (uvicorn sets the scheme from a trusted
  proxy's X-Forwarded-Proto, see FORWARDED_ALLOW_IPS);
- a bound on concurrent uploads (MAX_CONCURRENT_UPLOADS), each of which may spool up to
  a few hundred MB: past it a 503 with Retry-After rather than unbounded disk and memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from fastapi import HTTPException
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Addresses that mean "every interface": not a name a client sends.
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "*"})

# Styles may be inline: Swagger UI and ReDoc set element styles from their scripts; no
# script runs that the application does not serve as a file. ReDoc's search runs in a
# worker it creates from a blob.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    ("cross-origin-opener-policy", "same-origin"),
)
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def trusted_host_list(configured: str, *, bind_host: str) -> tuple[str, ...]:
    """TRUSTED_HOSTS as names (lower case, no port); unset: the loopback names and the
    address the server binds, unless that is every interface."""
    names = [name.strip().lower() for name in configured.split(",") if name.strip()]
    if names:
        return tuple(dict.fromkeys(_without_port(name) for name in names))
    defaults = list(LOOPBACK_NAMES)
    if bind_host.strip().lower() not in _WILDCARD_BINDS:
        defaults.append(_without_port(bind_host.strip().lower()))
    return tuple(dict.fromkeys(defaults))


def _without_port(host: str) -> str:
    """'example.org:8000' -> 'example.org', '[::1]:8000' -> '::1', '::1' -> '::1'."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def host_allowed(host: str, trusted: Iterable[str]) -> bool:
    name = _without_port(host.strip().lower()).rstrip(".")
    if not name:
        return False
    for pattern in trusted:
        if pattern == "*" or pattern == name:
            return True
        # "*.example.org" takes every subdomain of example.org, not example.org itself.
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


class NetworkGuard:
    """Pure ASGI middleware: the host check, then the headers on whatever answers."""

    def __init__(self, app: ASGIApp, *, trusted_hosts: Iterable[str]) -> None:
        self.app = app
        self.trusted_hosts = tuple(trusted_hosts)
        log.info("answering to the host names %s (TRUSTED_HOSTS)", ", ".join(self.trusted_hosts))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") in ("https", "wss")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.setdefault(name, value)  # a route's own policy wins
                if secure:
                    headers.setdefault("strict-transport-security", STRICT_TRANSPORT_SECURITY)
            await send(message)

        host = Headers(scope=scope).get("host", "")
        if not host_allowed(host, self.trusted_hosts):
            log.warning("refused a request for host %r (not in TRUSTED_HOSTS)", host[:100])
            refusal = JSONResponse(
                {
                    "detail": "This server does not answer to the host name in this request. "
                    "If it is the server's name, add it to the TRUSTED_HOSTS setting "
                    "(comma-separated host names) and restart the server."
                },
                status_code=400,
            )
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


class UploadSlots:
    """At most `limit` uploads at once in this process. Held in the event loop's thread
    (the upload route's wrapper is async), so a plain counter is enough."""

    RETRY_AFTER_SECONDS = 10

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def acquire(self) -> None:
        if self.in_use >= self.limit:
            raise HTTPException(
                503,
                detail=(
                    f"The server is already receiving {self.limit} uploads, as many as it "
                    f"takes at once (MAX_CONCURRENT_UPLOADS). Nothing was saved; send this "
                    f"upload again in {self.RETRY_AFTER_SECONDS} seconds."
                ),
                headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)},
            )
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1
