"""Keeping a front end's connections within bounds, whoever is on the other end.

A connection costs the server a file descriptor from the moment it is accepted, whether or not
its client ever finishes a request. Clients that send a request head a line every few seconds,
or announce a body and never send it, held descriptors until the process ran out of them and
every other client got its connection reset. So every connection an :class:`HttpServer
<modelport.core.http_server.HttpServer>` serves is watched here:

- a request head must be complete within ``header_timeout_s`` of the connection being accepted
  (or, on a kept-alive connection, of the next request's first byte: the idle time between
  requests is uvicorn's ``timeout_keep_alive``);
- while a body is read, ``body_timeout_s`` may pass without a byte at most (then 408 and close);
- at most :meth:`ConnectionLimits.cap` connections are open in the process, safely below its
  file-descriptor limit. A connection arriving at the cap takes the place of the oldest one
  still waiting for its request head, or, when none waits, is answered 503 and closed at once.

The clock is one sweep a second over the connections that are reading a head or a body, not a
timer per request: the request path pays for a few dictionary operations only. Connections
waiting for their head are kept in arrival order, so the sweep stops at the first one still in
time and the oldest is found at once when the cap is reached.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import resource
from dataclasses import dataclass

from modelport.core.uvicorn_adapter import HttpProtocol

log = logging.getLogger("modelport.http")

FD_RESERVE = 64  # descriptors left for what else the process opens: models, logs, gRPC, listening sockets
SWEEP_INTERVAL_S = 1.0


def _closing(status: bytes, message: str) -> bytes:
    """A whole response that ends its connection."""
    body = json.dumps({"error": message}).encode()
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % (status, len(body))
    ) + body


_REFUSED = _closing(b"503 Service Unavailable", "Server has too many open connections")


class Cut(enum.Enum):
    """Why a connection was closed by the server before its request was read."""

    HEADER = "header"  # no complete request head within the header timeout
    BODY = "body"  # no body bytes within the body timeout
    EVICTED = "evicted"  # still waiting for its head when the connection cap was reached


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 4096

    def cap(self) -> int:
        """``max_connections``, or fewer where the file-descriptor limit (``ulimit -n``) would be
        reached first: accepting past it fails (EMFILE) for every client alike."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - FD_RESERVE))


class Connections:
    """The open connections of one process (all its HTTP servers), their deadlines and counts."""

    def __init__(self, limits: ConnectionLimits | None = None) -> None:
        self.limits = limits or ConnectionLimits()
        self.cap = self.limits.cap()
        self.body_timeout_reply = _closing(
            b"408 Request Timeout", f"request body: no bytes received for {self.limits.body_timeout_s:g} s"
        )
        self.cut = {reason: 0 for reason in Cut}
        self.refused = 0
        self._open: set[LimitedProtocol] = set()
        # Waiting for a request head, since when; in that order (each entry is added at its time).
        self.heads: dict[LimitedProtocol, float] = {}
        # Reading a body: when its last bytes came.
        self.bodies: dict[LimitedProtocol, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._logged: tuple[dict[Cut, int], int] = (dict(self.cut), 0)  # the counts the log has told

    def room(self) -> int:
        """How many more connections fit under the cap."""
        return self.cap - len(self._open)

    def counts(self) -> dict[str, int]:
        """Connections closed so far, by :class:`Cut` reason."""
        return {reason.value: count for reason, count in self.cut.items()}

    def admit(self, connection: LimitedProtocol, now: float) -> bool:
        """Count ``connection`` in, making room at the cap by evicting the oldest one that still
        waits for its request head; False when none does (the caller refuses it)."""
        if len(self._open) >= self.cap:
            if not self.heads:
                self.refused += 1
                return False
            self._close(next(iter(self.heads)), Cut.EVICTED)
        self._open.add(connection)
        self.heads[connection] = now
        if self._sweeper is None:
            self._sweeper = connection.loop.call_later(SWEEP_INTERVAL_S, self._sweep, connection.loop)
        return True

    def forget(self, connection: LimitedProtocol) -> None:
        self._open.discard(connection)
        self.heads.pop(connection, None)
        self.bodies.pop(connection, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        late: list[tuple[LimitedProtocol, Cut]] = []
        for connection, since in self.heads.items():
            if since > now - self.limits.header_timeout_s:
                break
            late.append((connection, Cut.HEADER))
        for connection, since in self.bodies.items():
            if connection.reading_paused:  # the server holds back the body (pipelining, backpressure)
                self.bodies[connection] = now
            elif since <= now - self.limits.body_timeout_s:
                late.append((connection, Cut.BODY))
        for connection, reason in late:
            self._close(connection, reason)
        if self._logged != (self.cut, self.refused):
            self._log()
        self._sweeper = loop.call_later(SWEEP_INTERVAL_S, self._sweep, loop) if self._open else None

    def _close(self, connection: LimitedProtocol, reason: Cut) -> None:
        self.forget(connection)
        self.cut[reason] += 1
        connection.cut(reason)

    def _log(self) -> None:
        """At most a line a second, with what happened since the last one (the daemon has no
        metrics port: this is how it tells)."""
        cut, refused = self._logged
        news = [f"{count - cut[reason]} {reason.value}" for reason, count in self.cut.items() if count > cut[reason]]
        if self.refused > refused:
            news.append(f"{self.refused - refused} refused at the cap")
        self._logged = (dict(self.cut), self.refused)
        log.warning(
            "slow or excess connections closed: %s (%d open, cap %d)", ", ".join(news), len(self._open), self.cap
        )


class LimitedProtocol(HttpProtocol):
    """uvicorn's httptools protocol under the limits of :class:`Connections` (the server's
    ``shared`` object). Subclasses put it first among their bases, so that its bookkeeping runs
    whatever theirs does with a request."""

    def opened(self) -> None:
        self._limits: Connections = self.shared
        self._heads = self._limits.heads
        self._bodies = self._limits.bodies
        super().opened()
        if not self._limits.admit(self, self.loop.time()):
            self.transport.write(_REFUSED)
            self.transport.close()

    def closed(self) -> None:
        self._limits.forget(self)
        super().closed()

    def head_started(self) -> None:
        super().head_started()
        self._heads.setdefault(self, self.loop.time())  # a new connection's clock runs from its accept

    def head_complete(self) -> bool:
        self._heads.pop(self, None)
        self._bodies[self] = self.loop.time()
        return super().head_complete()

    def body_received(self) -> None:
        self._bodies[self] = self.loop.time()
        super().body_received()

    def message_complete(self) -> None:
        self._bodies.pop(self, None)
        super().message_complete()

    def cut(self, reason: Cut) -> None:
        """Close this connection for ``reason``: a body that stopped coming gets a 408 unless a
        response has begun; a head that never came gets nothing (there is no request to answer)."""
        transport = self.transport
        if transport.is_closing():
            return
        if reason is Cut.BODY and self.abandon():
            transport.write(self._limits.body_timeout_reply)
            if transport.get_write_buffer_size() == 0:  # sent, or in the kernel's buffer by now
                transport.close()
                return
        transport.abort()
