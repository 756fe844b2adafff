"""The router's HTTP/1.1 client to the replicas: keep-alive connections pooled per replica URL, each
an asyncio protocol that parses answers with httptools (the parser uvicorn serves with).

Why not a general client: the router sends a request it already holds whole (it needed the body
for mirrors and for trying another replica) and wants the answer whole (status, reason, headers,
body), or to know that nothing was sent. aiohttp's client, the router's proxy before this one,
spent most of the router's CPU per request on what a proxy needs none of (URL objects, header
multidicts, cookie jars, timers, payload classes): ``bench/router_hop.py``. Here one request is a
buffer written in one call and a future completed from the parser's callbacks.

A connection idle for longer than :data:`IDLE_S` is closed rather than reused: replicas (uvicorn)
close theirs after 5 s, and a request written on a connection the replica is closing at that
moment would be lost. An answer that asks to close (``Connection: close``, HTTP/1.0) closes it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

IDLE_S = 2.0  # well under the replicas' keep-alive (uvicorn's 5 s)
_SMALL_BODY = 64 * 1024  # joined with the head into one write below this; written beside it above


class ConnectFailed(Exception):
    """The replica could not be reached: nothing was sent, so another replica may take the request."""


class UpstreamFailed(Exception):
    """The connection broke, or the answer did not parse, after the request was (perhaps) sent."""


@dataclass(slots=True)
class Answer:
    """A replica's whole answer; header names as sent (any case)."""

    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


class UpstreamPool:
    """Keep-alive connections to every replica URL the router sends to (``http://host:port`` or
    ``https://...``, optionally with a path prefix); one per request in flight at most."""

    def __init__(self) -> None:
        self._origins: dict[str, _Origin] = {}

    async def request(
        self, method: str, url: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes, deadline: float
    ) -> Answer:
        """Send ``method`` ``target`` (path and query) to the replica at ``url`` and return its
        answer, before ``deadline`` (loop time; asyncio.TimeoutError after it). ``headers`` go as
        given, besides ``Host`` and ``Content-Length``."""
        origin = self._origins.get(url)
        if origin is None:
            origin = self._origins[url] = _Origin(url)
        head = [b"%s %s%s HTTP/1.1\r\n" % (method.encode(), origin.prefix, target.encode()), origin.host_line]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        loop = asyncio.get_running_loop()
        connection = origin.idle_connection() or await _connect(origin, deadline, loop)
        return await connection.exchange(head, body, deadline, loop)

    def close(self) -> None:
        """Close every idle connection (those in use close when their answers are in)."""
        for origin in self._origins.values():
            while origin.idle:
                origin.idle.pop().close()
        self._origins.clear()

    async def __aenter__(self) -> UpstreamPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class _Origin:
    """One replica URL: where to connect, what to prefix, and its idle connections (most recently
    used last, so that the ones used least age out)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConnectFailed(f"{url!r} is not an http:// or https:// URL")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/").encode()
        self.host_line = b"host: %s\r\n" % parts.netloc.encode("idna")
        self.idle: list[_Connection] = []

    def idle_connection(self) -> _Connection | None:
        oldest = time.monotonic() - IDLE_S
        while self.idle:
            connection = self.idle.pop()
            if connection.idle_since > oldest and not connection.closing():
                return connection
            connection.close()
        return None


async def _connect(origin: _Origin, deadline: float, loop: asyncio.AbstractEventLoop) -> _Connection:
    try:
        _, connection = await asyncio.wait_for(
            loop.create_connection(lambda: _Connection(origin), origin.host, origin.port, ssl=origin.tls),
            max(deadline - loop.time(), 0.001),
        )
    except OSError as exc:
        raise ConnectFailed(str(exc)) from None
    return connection


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one exchange at a time, back to its origin's idle list after
    each complete answer that does not ask to close."""

    def __init__(self, origin: _Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self._answer: asyncio.Future[Answer] | None = None
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._framed = False  # the answer says where its body ends (length or chunks), not the close
        self._headers_done = False

    # -- the router's side ------------------------------------------------------------------------

    async def exchange(
        self, head: list[bytes], body: bytes, deadline: float, loop: asyncio.AbstractEventLoop
    ) -> Answer:
        assert self.transport is not None
        answer = self._answer = loop.create_future()
        if len(body) < _SMALL_BODY:
            self.transport.write(b"".join((*head, body)))
        else:  # the body as it is, without a copy
            self.transport.writelines((b"".join(head), body))
        timer = loop.call_at(deadline, self._expire)
        try:
            return await answer
        finally:
            timer.cancel()
            if not answer.done():  # the caller was cancelled: this answer would come to nobody
                self._answer = None
                self.close()

    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _expire(self) -> None:
        self._fail(asyncio.TimeoutError())
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(exc)

    # -- asyncio ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not derive from asyncio's

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamFailed(f"the answer does not parse: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._headers_done and not self._framed:  # the body ran until the close: it is complete
            self.on_message_complete()
        self._fail(UpstreamFailed("the connection closed before the answer was complete"))
        self.transport = None

    # -- httptools --------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reason, self._headers, self._body = b"", [], []
        self._framed = self._headers_done = False

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._headers_done = False
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue): the real one follows
            return
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            answer.set_result(Answer(status, self._reason, self._headers, body))
        if self.parser.should_keep_alive() and not self.closing():
            self.idle_since = time.monotonic()
            self.origin.idle.append(self)
        else:
            self.close()
