"""The router's requests answered in the HTTP protocol (``routing.protocol``), in a real server on
127.0.0.1 in front of a real socket replica that answers after a delay the request asks for: what
the server still does for them that uvicorn did over ASGI — a body that stops coming is 408, a
graceful shutdown lets a request being answered finish (and closes its connection), a client
that leaves costs nobody else anything, and what is not the router's goes to the app."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from modelport.core.connections import ConnectionLimits, Connections
from modelport.core.http_server import HttpServer
from modelport.routing.protocol import router_protocol
from modelport.routing.router import LiveEndpoint, Router, endpoint_target, proxy_session

ANSWER = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'


@dataclass
class _Replica:
    url: str
    outstanding: int = 0
    ready: bool = True
    recheck: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Group:
    replica: _Replica
    name: str = "blue"
    label: str = "e/blue"
    max_in_flight: int = 8
    request_timeout_ms: int = 10_000
    in_flight: int = 0
    turn: int = 0

    def serving(self) -> list[_Replica]:
        return [self.replica]

    def unready_reason(self) -> str:
        return "none ready"


@dataclass
class _Backend:
    group_: _Group

    def group(self, endpoint: str, deployment: str) -> _Group | None:
        return self.group_ if deployment == "blue" else None


async def _replica(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request after the seconds its ``x-delay`` header asks for."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
            await reader.readexactly(int(fields.get(b"content-length", b"0")))
            await asyncio.sleep(float(fields.get(b"x-delay", b"0")))
            writer.write(ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]})
    await send({"type": "http.response.body", "body": b"app"})


@dataclass
class Running:
    port: int
    server: HttpServer
    thread: threading.Thread

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@pytest.fixture
def running() -> Iterator[Running]:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    ready = threading.Event()
    holder: dict[str, HttpServer] = {}

    async def main() -> None:
        upstream = await asyncio.start_server(_replica, "127.0.0.1", 0)
        replica_url = f"http://127.0.0.1:{upstream.sockets[0].getsockname()[1]}"
        async with proxy_session() as http:
            router = Router(http)
            backend = _Backend(_Group(_Replica(replica_url)))
            router.publish(LiveEndpoint("e", "none", ("", ""), {"blue": 100}, {}, frozenset({"blue"}), backend))
            limits = ConnectionLimits(header_timeout_s=1.0, body_timeout_s=1.0)
            config = uvicorn.Config(
                _app, log_level="critical", lifespan="off", http=router_protocol(router, endpoint_target)
            )
            server = holder["server"] = HttpServer(config, Connections(limits))
            ready.set()
            await server.serve(sockets=[listening])
        upstream.close()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert ready.wait(30)
    server = holder["server"]
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield Running(listening.getsockname()[1], server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listening.close()


def _post(delay: float = 0.0, body: bytes = b"{}", length: int | None = None) -> bytes:
    return b"POST /endpoints/e/v2/models/m/infer HTTP/1.1\r\nhost: x\r\nx-delay: %g\r\ncontent-length: %d\r\n\r\n%s" % (
        delay,
        len(body) if length is None else length,
        body,
    )


def _answer(client: socket.socket) -> bytes:
    """One whole answer (its head, then as many bytes as its Content-Length says)."""
    got = b""
    while b"\r\n\r\n" not in got:
        got += client.recv(65536)
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.startswith(b"content-length")).split(b": ")[1])
    while len(body) < length:
        body += client.recv(65536)
    return head + b"\r\n\r\n" + body


def _read_all(client: socket.socket) -> bytes:
    got = b""
    while chunk := client.recv(65536):
        got += chunk
    return got


def test_routed_and_app_requests_share_a_connection(running: Running) -> None:
    with running.connect() as client:
        client.sendall(_post())
        first = _answer(client)
        assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b'{"ok":true}')
        assert b"azureml-model-deployment: blue\r\n" in first and b"date: " in first
        client.sendall(b"GET /elsewhere HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _answer(client).endswith(b"\r\n\r\napp")


def test_a_body_that_stops_coming_is_answered_408(running: Running) -> None:
    with running.connect() as client:
        client.sendall(_post(body=b"{", length=10))
        answer = _read_all(client)  # the server closes after its answer
    assert answer.startswith(b"HTTP/1.1 408 ") and b"request body: no bytes received" in answer


def test_a_graceful_shutdown_lets_the_answer_out_and_then_closes(running: Running) -> None:
    with running.connect() as client:
        client.sendall(_post(delay=1.0))
        time.sleep(0.3)  # the request is with the replica
        running.server.should_exit = True
        answer = _read_all(client)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection: close\r\n" in answer
    running.thread.join(timeout=30)
    assert not running.thread.is_alive()


def test_a_client_that_leaves_costs_nobody_else_anything(running: Running) -> None:
    with running.connect() as leaving:
        leaving.sendall(_post(delay=0.5))
    with running.connect() as client:
        client.sendall(_post())
        assert _answer(client).startswith(b"HTTP/1.1 200 OK\r\n")
    time.sleep(0.7)  # the first answer comes back to nobody
    with running.connect() as client:
        client.sendall(_post())
        assert _answer(client).startswith(b"HTTP/1.1 200 OK\r\n")
