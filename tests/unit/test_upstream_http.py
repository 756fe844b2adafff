"""The router's client to its replicas against a real socket server on 127.0.0.1 that answers
scripted bytes: keep-alive reuse, the ways an answer can end (length, chunks, the close), and the
ways it can fail (refused, timed out, cut off), each as the router needs to tell them apart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from modelport.routing import upstream_http
from modelport.routing.upstream_http import ConnectFailed, UpstreamFailed, UpstreamPool

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: 1\r\n\r\nok"
CHUNKED = b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
CONTINUED = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
NO_BODY_YET = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
KEPT = (OK, CHUNKED, CONTINUED, NO_BODY_YET)


class Scripted:
    """A server that reads one request head (and its Content-Length body) at a time and answers
    with the next of ``answers`` (bytes; None closes the connection without answering); it keeps
    the connection open after the answers in ``KEPT`` and closes it after any other."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = answers
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:  # until the client closes, or an answer not in KEPT
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.startswith(b"content-length")
                )
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if answer not in KEPT:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def scenario(answers: list[bytes | None], body: Callable[[UpstreamPool, str, Scripted], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        server = Scripted(answers)
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        try:
            async with UpstreamPool() as pool:
                return await body(pool, f"http://127.0.0.1:{port}", server)
        finally:
            listening.close()

    return asyncio.run(run())


def later(seconds: float = 5.0) -> float:
    return asyncio.get_running_loop().time() + seconds


def test_keep_alive_connection_is_reused_and_the_request_is_sent_as_given() -> None:
    async def body(pool: UpstreamPool, url: str, server: Scripted) -> None:
        for _ in range(3):
            answer = await pool.request("POST", url + "/pre/", "/v2/x?q=1", [(b"x-b", b"2")], b"abc", later())
            assert (answer.status, answer.reason, answer.body) == (200, b"OK", b"ok")
            assert (b"x-a", b"1") in answer.headers
        assert server.connections == 1
        assert server.requests[0] == (
            b"POST /pre/v2/x?q=1 HTTP/1.1\r\nhost: " + url.removeprefix("http://").encode() + b"\r\n"
            b"x-b: 2\r\ncontent-length: 3\r\n\r\nabc"
        )

    scenario([OK, OK, OK], body)


def test_chunked_and_close_delimited_answers_arrive_whole() -> None:
    until_close = b"HTTP/1.1 500 Broken Model\r\n\r\nstack"

    async def body(pool: UpstreamPool, url: str, server: Scripted) -> None:
        first = await pool.request("GET", url, "/", [], b"", later())
        assert (first.status, first.body) == (201, b"abcde")
        second = await pool.request("GET", url, "/", [], b"", later())
        assert (second.status, second.reason, second.body) == (500, b"Broken Model", b"stack")
        assert server.connections == 1  # the chunked answer left the connection reusable

    scenario([CHUNKED, until_close], body)


def test_an_interim_100_continue_is_skipped() -> None:
    async def body(pool: UpstreamPool, url: str, server: Scripted) -> None:
        answer = await pool.request("POST", url, "/", [], b"x", later())
        assert (answer.status, answer.body) == (200, b"ok")

    scenario([CONTINUED], body)


def test_connection_close_and_idle_connections_are_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    closing = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"

    async def body(pool: UpstreamPool, url: str, server: Scripted) -> None:
        await pool.request("GET", url, "/", [], b"", later())
        await pool.request("GET", url, "/", [], b"", later())
        assert server.connections == 2
        monkeypatch.setattr(upstream_http, "IDLE_S", 0.0)
        await pool.request("GET", url, "/", [], b"", later())
        assert server.connections == 3

    scenario([closing, OK, OK], body)


def test_a_refused_connection_is_told_apart_from_a_broken_answer() -> None:
    async def body(pool: UpstreamPool, url: str, server: Scripted) -> None:
        with pytest.raises(UpstreamFailed):  # closed without an answer: the request may have run
            await pool.request("GET", url, "/", [], b"", later())
        with pytest.raises(UpstreamFailed):  # cut off inside the body
            await pool.request("GET", url, "/", [], b"", later())
        with pytest.raises(UpstreamFailed):
            await pool.request("GET", url, "/", [], b"", later())  # does not parse
        nothing = urlsplit(url)._replace(netloc=f"127.0.0.1:{_closed_port()}").geturl()
        with pytest.raises(ConnectFailed):  # nothing was sent: another replica may take it
            await pool.request("GET", nothing, "/", [], b"", later())

    scenario([None, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", b"NOT HTTP\r\n\r\n"], body)


def test_the_deadline_gives_up_and_drops_the_connection() -> None:
    async def body(pool: UpstreamPool, url: str, server: Scripted) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await pool.request("GET", url, "/", [], b"", later(0.2))
        assert 0.15 < loop.time() - started < 2
        assert not any(pool._origins[url].idle)  # the late answer would belong to the next request

    scenario([NO_BODY_YET], body)  # the body never comes


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
