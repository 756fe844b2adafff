"""uvicorn's server as modelport runs it: signals are left to the owner, and every connection
waiting to be accepted gets in at once.

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
import contextlib
import functools
import os
import socket
import ssl
from collections.abc import Callable, Iterator

import uvicorn

ACCEPT_BATCH = 128  # connections accepted per turn at most, so that a flood cannot stall the loop


class HttpServer(uvicorn.Server):
    """uvicorn's server without its own signal capture (the owner stops its front ends together),
    accepting up to :data:`ACCEPT_BATCH` waiting connections per loop turn."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._acceptors: list[_Acceptor] = []

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        factory = functools.partial(self.config.http_protocol_class, config=self.config,
                                    server_state=self.server_state, app_state=self.lifespan.state)
        for server in self.servers:
            for listening in server.sockets:
                acceptor = _Acceptor(listening.fileno(), factory, self.config.ssl)
                acceptor.start()
                self._acceptors.append(acceptor)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for acceptor in self._acceptors:
            acceptor.stop()
        self._acceptors.clear()
        await super().shutdown(sockets)


class _Acceptor:
    """Watches a duplicate of a listening socket (the loop already watches the original) and,
    whenever it is readable, accepts what waits and hands each connection to the loop."""

    def __init__(self, fileno: int, protocol_factory: Callable[[], asyncio.Protocol],
                 tls: ssl.SSLContext | None) -> None:
        self._socket = socket.socket(fileno=os.dup(fileno))
        self._tls = tls  # what the loop's own accept would wrap connections in
        self._socket.setblocking(False)
        self._factory = protocol_factory
        self._loop = asyncio.get_running_loop()
        self._connecting: set[asyncio.Task[object]] = set()

    def start(self) -> None:
        self._loop.add_reader(self._socket, self._accept)

    def stop(self) -> None:
        self._loop.remove_reader(self._socket)
        self._socket.close()

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                connection, _ = self._socket.accept()
            except OSError:  # none left (EAGAIN), or one gone before it got in; the loop calls again
                return
            connection.setblocking(False)
            task = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, connection, ssl=self._tls))
            self._connecting.add(task)
            task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[object]) -> None:
        self._connecting.discard(task)
        if not task.cancelled():
            task.exception()  # a client that left at once: its transport closed the socket
