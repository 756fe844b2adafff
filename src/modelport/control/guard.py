"""What every request to the daemon passes before a route sees it.

:class:`HostCheck` stands in front of everything (management API and router): a ``Host`` header
that names no address the daemon serves is a page on another site whose DNS name was pointed at
this machine (DNS rebinding), answered 421 before anything runs.

:class:`ManagementGuard` stands in front of the management API only (the router checks its
endpoints' keys itself), in this order, each refusal one line of JSON:

1. a state change (POST/PUT/PATCH/DELETE) sent by a page of another origin: ``Origin`` present
   and not the daemon's own, or ``Sec-Fetch-Site`` present and neither ``same-origin`` nor
   ``none`` (403) — browsers send these on cross-origin requests, whatever the page wants;
2. no credential (401 with ``WWW-Authenticate: Bearer``), on every route but the static OpenAPI
   document, so a route added later is closed until someone opens it on purpose;
3. a body that is not ``application/json`` (415): an HTML form or a ``text/plain`` fetch, the
   kinds of request a browser sends cross-origin without asking first;
4. a body over the limit (413): refused from its ``Content-Length`` before anything is read, or
   as soon as a chunked body passes it. The body is read here, bounded, and handed on as one
   message, so no handler reads anything unbounded.

No CORS header is ever sent, so a browser lets no other origin read an answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.control.auth import Credential
from modelport.control.binding import split_host

MAX_MANAGEMENT_BODY = 1024 * 1024
PUBLIC_PATHS = frozenset({"/openapi.json"})  # the same document for every daemon: it reveals no state
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAME_SITE_FETCHES = frozenset({b"same-origin", b"none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class HostCheck:
    def __init__(self, app: ASGIApp, served: Iterable[tuple[str, int]]) -> None:
        self.app = app
        self.served = frozenset(served)

    def allows(self, host: bytes, secure: bool) -> bool:
        """Whether a request's ``Host`` header names an address the daemon serves (the router's
        requests, answered by the HTTP protocol before this app, ask here)."""
        return _host_port(host.decode("latin-1"), "https" if secure else "http") in self.served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = header(scope, b"host")
            if not self.allows(host, scope["scheme"] == "https"):
                await refuse(
                    send,
                    421,
                    f"Host {host.decode('latin-1')!r} is not an address this daemon serves (add it with `modelport up --allowed-host`)",
                    close=True,
                )
                return
        await self.app(scope, receive, send)


class ManagementGuard:
    def __init__(self, app: ASGIApp, credentials: Sequence[Credential], limit: int = MAX_MANAGEMENT_BODY) -> None:
        self.app = app
        self.credentials = tuple(credentials)
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refuse(send, *refusal, close=True)
            return
        if _has_body(scope):
            body = await read_bounded(receive, self.limit)
            if body is None:
                await refuse(
                    send, 413, f"request body: over {self.limit} bytes, the management API's limit", close=True
                )
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        """Status and reason of a refusal decided from the request line and headers alone."""
        foreign = cross_origin(scope)
        if foreign is not None:
            return 403, foreign
        if scope["path"] not in PUBLIC_PATHS and not any(c.admits(scope) for c in self.credentials):
            return 401, (
                "this route needs the workspace's token: send Authorization: Bearer <token> "
                "(`modelport token` prints it)"
            )
        if _has_body(scope):
            kind = header(scope, b"content-type").partition(b";")[0].strip().lower()
            if kind != b"application/json":
                return (
                    415,
                    f"Content-Type {kind.decode('latin-1') or 'missing'}: the management API takes application/json",
                )
            length = header(scope, b"content-length")
            if length.isdigit() and int(length) > self.limit:
                return 413, f"request body: {int(length)} bytes, over the management API's limit of {self.limit}"
        return None


def cross_origin(scope: Scope) -> str | None:
    """Why a state change (POST/PUT/PATCH/DELETE) comes from a page of another origin, or None:
    ``Origin`` present and not the daemon's own, or ``Sec-Fetch-Site`` present and neither
    ``same-origin`` nor ``none``. The management API and the dashboard's forms both refuse it."""
    if scope["method"] not in STATE_CHANGING:
        return None
    origin = header(scope, b"origin")
    own = (scope["scheme"], *_host_port(header(scope, b"host").decode("latin-1"), scope["scheme"]))
    if origin and _origin(origin.decode("latin-1")) != own:
        return f"Origin {origin.decode('latin-1')}: requests from another origin may not change anything"
    fetch_site = header(scope, b"sec-fetch-site")
    if fetch_site and fetch_site.lower() not in SAME_SITE_FETCHES:
        return f"Sec-Fetch-Site {fetch_site.decode('latin-1')}: cross-site requests may not change anything"
    return None


async def read_bounded(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` (or the client left)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def refuse(send: Send, status: int, reason: str, *, close: bool = False) -> None:
    """A one-line JSON refusal; ``close`` ends the connection (the body may not have been read)."""
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if close:
        headers.append((b"connection", b"close"))
    content = orjson.dumps({"error": reason})
    headers.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that gives the body read already, then what the client does next (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return b""


def _has_body(scope: Scope) -> bool:
    length = header(scope, b"content-length")
    return (bool(length) and length != b"0") or bool(header(scope, b"transfer-encoding"))


def _host_port(host: str, scheme: str) -> tuple[str, int]:
    """A ``Host`` header (or an origin's host) as (host, port), the scheme's port when it names none."""
    name, port = split_host(host)
    return name.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme, 0)


def _origin(origin: str) -> tuple[str, str, int] | None:
    """An ``Origin`` header as (scheme, host, port); None for ``null`` or anything malformed."""
    parts = urlsplit(origin)
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc or parts.path not in ("", "/"):
        return None
    return (parts.scheme, *_host_port(parts.netloc, parts.scheme))
