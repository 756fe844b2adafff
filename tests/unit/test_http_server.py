"""The front ends' server lets in every connection that waits, not one per event-loop turn: under
overload a turn is long, and connections that wait to be accepted are beyond load shedding."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
import uvloop
from conftest import free_port
from starlette.types import Receive, Scope, Send

from modelport.core.http_server import HttpServer

CONNECTIONS = 40


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_waiting_connections_get_in_within_a_few_busy_turns() -> None:
    port = free_port()
    server = HttpServer(uvicorn.Config(_hello, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
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
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.recv(1024).startswith(b"HTTP/1.1 200")
    finally:
        for client in clients:
            client.close()
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()
    loop.close()
