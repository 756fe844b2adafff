"""The front ends' server lets in every connection that waits, not one per event-loop turn: under
overload a turn is long, and connections that wait to be accepted are beyond load shedding. It
keeps no more connections than its cap (evicting a slow one, else answering 503), and when the
process is out of descriptors it waits instead of spinning."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn
import uvloop
from starlette.types import Receive, Scope, Send

from modelport.core.connections import ConnectionLimits, Connections
from modelport.core.http_server import HttpServer, _Acceptor
from modelport.core.sockets import listen

pytestmark = pytest.mark.serial  # timing assertions: run alone, after the parallel part (scripts/test.sh)

CONNECTIONS = 40


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_waiting_connections_get_in_within_a_few_busy_turns() -> None:
    with _running(Connections()) as (server, port, loop):
        turns = [0]
        busy = [True]

        def turn() -> None:  # every loop turn lasts 10 ms or more, as under overload
            time.sleep(0.01)
            turns[0] += 1
            if busy[0]:
                loop.call_soon(turn)

        loop.call_soon_threadsafe(turn)
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(CONNECTIONS)]
        opened = turns[0]
        deadline = time.monotonic() + 10
        while len(server.server_state.connections) < CONNECTIONS and time.monotonic() < deadline:
            time.sleep(0.005)
        taken = turns[0] - opened
        busy[0] = False
        try:
            assert len(server.server_state.connections) == CONNECTIONS
            assert taken <= 5, f"{CONNECTIONS} waiting connections took {taken} loop turns to get in"
            for client in clients:  # each is served like any other connection
                assert _get(client).startswith(b"HTTP/1.1 200")
        finally:
            for client in clients:
                client.close()


@contextlib.contextmanager
def _running(connections: Connections) -> Iterator[tuple[HttpServer, int, asyncio.AbstractEventLoop]]:
    """An HttpServer answering ``_hello`` on a free port, in a thread with its own loop."""
    listening = listen("127.0.0.1", 0)  # the kernel's choice, held from here on: no other process can take it
    port = listening.getsockname()[1]
    server = HttpServer(uvicorn.Config(_hello, log_level="critical", lifespan="off"), connections)
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve([listening]),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield server, port, loop
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive()
        loop.close()
        listening.close()


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def _get(client: socket.socket) -> bytes:
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    return client.recv(1024)


def _closed(client: socket.socket) -> bool:
    try:
        return client.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_at_the_cap_a_slow_connection_makes_room_else_the_newcomer_gets_503() -> None:
    connections = Connections(ConnectionLimits(max_connections=4))
    with _running(connections) as (server, port, _):
        slow = []
        for count in range(1, 5):  # one after the other: the first is the oldest
            slow.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            slow[-1].sendall(b"GET / HTTP/1.1\r\n")
            _wait_for(lambda count=count: len(server.server_state.connections) == count)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as newcomer:
            assert _get(newcomer).startswith(b"HTTP/1.1 200")
            assert _closed(slow[0])  # the oldest one still sending its head made room
            for client in slow[1:]:  # the others finish their heads: now no connection is slow
                client.sendall(b"Host: x\r\n\r\n")
                assert client.recv(1024).startswith(b"HTTP/1.1 200")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as refused:
                reply = refused.recv(1024)
                assert reply.startswith(b"HTTP/1.1 503") and b"connection: close" in reply
                assert _closed(refused)
            assert _get(newcomer).startswith(b"HTTP/1.1 200")  # the connections let in are untouched
        for client in slow:
            client.close()
    assert connections.counts()["evicted"] == 1 and connections.refused == 1


class _Hi(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(b"hi")  # type: ignore[attr-defined]
        transport.close()


def test_out_of_descriptors_the_acceptor_waits_instead_of_spinning() -> None:
    """With every descriptor taken, a waiting connection keeps the listening socket readable, and
    accepting again on every loop turn would burn a core until one is freed. (The acceptor alone,
    on plain asyncio: uvloop's own server sheds such a connection by itself, and asyncio's spins.)"""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    with socket.create_server(("127.0.0.1", 0)) as listening:
        acceptor = asyncio.run_coroutine_threadsafe(_acceptor(listening), loop).result(timeout=10)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        held: list[int] = []
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
            with contextlib.suppress(OSError):
                while True:
                    held.append(os.open(os.devnull, os.O_RDONLY))
            os.close(held.pop())
            client = socket.create_connection(listening.getsockname(), timeout=10)  # the last descriptor
            time.sleep(0.2)
            started = _thread_time(loop)
            time.sleep(1.0)
            spent = _thread_time(loop) - started
        finally:
            for fd in held:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        with client:
            assert spent < 0.2, f"the acceptor's loop spent {spent:.2f} s of CPU in 1 s out of descriptors"
            assert client.recv(16) == b"hi"  # let in once descriptors are free again
        loop.call_soon_threadsafe(acceptor.stop)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


async def _acceptor(listening: socket.socket) -> _Acceptor:
    acceptor = _Acceptor(listening.fileno(), _Hi, Connections(), None)
    acceptor.start()
    return acceptor


def _thread_time(loop: asyncio.AbstractEventLoop) -> float:
    """CPU time of the thread running ``loop``."""
    return asyncio.run_coroutine_threadsafe(_now(), loop).result(timeout=10)


async def _now() -> float:
    return time.thread_time()


def test_a_websocket_upgrade_is_plain_http() -> None:
    """No front end speaks WebSocket, whether or not the websockets package is installed: the
    request is answered as HTTP, and its connection stays under the limits."""
    with (
        _running(Connections()) as (_, port, _loop),
        socket.create_connection(("127.0.0.1", port), timeout=10) as client,
    ):
        client.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        assert client.recv(1024).startswith(b"HTTP/1.1 200")
