"""uvicorn's server as modelport runs it: signals are left to the owner, every connection
waiting to be accepted gets in at once, and every connection is held to the limits of
:mod:`modelport.core.connections` (header and body timeouts, a cap on open connections).

libuv, under uvloop, accepts one connection per event-loop turn (since libuv 1.45, to be fair to
processes sharing a listening socket). A loop under overload turns perhaps 60 times a second, so
only that many new connections a second got in; the rest waited in the kernel's accept queue,
where no load shedding sees them, until their first requests timed out (``bench/overload.py``:
the accept queue of the scoring server grew to 250 connections while 200 a second arrived). Each
process here has a listening socket of its own (workers use SO_REUSEPORT), so taking all that
wait costs no other process anything.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn

from modelport.core import uvicorn_adapter
from modelport.core.connections import Connections, LimitedProtocol

log = logging.getLogger("modelport.http")

ACCEPT_BATCH = 128  # connections accepted per turn at most, so that a flood cannot stall the loop
AT_CAP_BATCH = 8  # ... and at the connection cap, where each takes a descriptor before it evicts or is refused
ACCEPT_PAUSE_S = 0.5  # out of descriptors: how long to stop accepting (the socket stays readable meanwhile)
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a front end's ``main`` on uvloop when it is installed (a core dependency: its
    transports cost less per request), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def front_end(app: Any, connections: Connections | None = None, **options: Any) -> HttpServer:
    """An :class:`HttpServer` for ``app`` as every modelport front end runs one (scoring server,
    daemon, standalone router): no access log (each writes its own request log), no lifespan
    events, no ``Server`` header; ``options`` are the rest of ``uvicorn.Config``."""
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False, **options)
    return HttpServer(config, connections)


class HttpServer(uvicorn_adapter.Server):
    """uvicorn's server without its own signal capture (the owner stops its front ends together),
    accepting up to :data:`ACCEPT_BATCH` waiting connections per loop turn.

    Its protocol is :class:`LimitedProtocol` (uvicorn's default choice becomes that; a protocol of
    the owner's must derive from it), counted in ``connections``: the servers of one process share
    one, so that the cap holds for the process."""

    def __init__(self, config: uvicorn.Config, connections: Connections | None = None) -> None:
        if config.http == "auto":
            config.http = LimitedProtocol
        # No front end speaks WebSocket: an Upgrade request is plain HTTP (404) whether or not the
        # websockets package happens to be installed beside modelport.
        config.ws = "none"
        if not (isinstance(config.http, type) and issubclass(config.http, LimitedProtocol)):
            raise TypeError(f"HttpServer: the HTTP protocol must derive from LimitedProtocol, not {config.http!r}")
        self.connections = Connections() if connections is None else connections
        super().__init__(config, self.connections)
        self._acceptors: list[_Acceptor] = []

    def after_startup(self) -> None:
        factory = self.protocol_factory()
        for listening in self.listening_sockets():
            acceptor = _Acceptor(listening.fileno(), factory, self.connections, self.tls)
            acceptor.start()
            self._acceptors.append(acceptor)

    def before_shutdown(self) -> None:
        for acceptor in self._acceptors:
            acceptor.stop()
        self._acceptors.clear()


class _Acceptor:
    """Watches a duplicate of a listening socket (the loop already watches the original) and,
    whenever it is readable, accepts what waits and hands each connection to the loop."""

    def __init__(
        self,
        fileno: int,
        protocol_factory: Callable[[], asyncio.Protocol],
        connections: Connections,
        tls: ssl.SSLContext | None,
    ) -> None:
        self._socket = socket.socket(fileno=os.dup(fileno))
        self._tls = tls  # what the loop's own accept would wrap connections in
        self._socket.setblocking(False)
        self._factory = protocol_factory
        self._connections = connections
        self._loop = asyncio.get_running_loop()
        self._connecting: set[asyncio.Task[object]] = set()
        self._paused: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._paused = None
        self._loop.add_reader(self._socket, self._accept)

    def stop(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
        else:
            self._loop.remove_reader(self._socket)
        self._socket.close()

    def _accept(self) -> None:
        """Accept what waits, but no more at once than fits under the connection cap (connections
        count only once their protocol has them, a task later), so that the descriptors taken
        stay within the reserve the cap leaves below ``ulimit -n``."""
        room = self._connections.room() - len(self._connecting)
        for _ in range(min(ACCEPT_BATCH, max(AT_CAP_BATCH, room))):
            try:
                connection, _ = self._socket.accept()
            except OSError as exc:  # none left (EAGAIN), or one gone before it got in; the loop calls again
                if exc.errno in _OUT_OF_RESOURCES:
                    self._pause(exc)
                return
            connection.setblocking(False)
            task = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, connection, ssl=self._tls))
            self._connecting.add(task)
            task.add_done_callback(self._connected)

    def _pause(self, exc: OSError) -> None:
        """Out of descriptors: the waiting connection stays readable, and accepting again at once
        would spin the loop; connections closing meanwhile free descriptors."""
        log.warning("cannot accept connections (%s); retrying in %g s", os.strerror(exc.errno or 0), ACCEPT_PAUSE_S)
        self._loop.remove_reader(self._socket)
        self._paused = self._loop.call_later(ACCEPT_PAUSE_S, self.start)

    def _connected(self, task: asyncio.Task[object]) -> None:
        self._connecting.discard(task)
        if not task.cancelled():
            task.exception()  # a client that left at once: its transport closed the socket
