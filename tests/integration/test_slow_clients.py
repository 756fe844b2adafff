"""Slow and malicious clients against the real front ends (``modelport serve`` and the ``modelport
up`` daemon), run under ``ulimit -n 1024``: connections that never finish their request head are
closed within the header timeout, more of them than the descriptor limit allows cannot starve
well-behaved clients, a body that stops coming is answered 408, and a /score body announced
beyond the limit is refused before it is sent."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import Server
from endpoint_daemon import Daemon

from modelport.samples import build_mlp_onnx

pytestmark = pytest.mark.serial  # timing assertions: run alone, after the parallel part (scripts/test.sh)

FD_LIMIT = 1024  # the server's ulimit -n: its connection cap becomes 1024 - 64
SLOW = 1100  # slow connections held open at once, more than the cap
GOOD = 1000  # requests of the well-behaved client
HEADER_TIMEOUT_S = 3.0
BODY_TIMEOUT_S = 2.0
SLACK_S = 2.5  # the server's once-a-second sweep, and two busy processes on a shared machine
CLOSED = "modelport_http_slow_clients_closed_total"
ROW = b",".join([b"0.5"] * 32)
BODY = b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,32],"data":[%s]}]}' % ROW


@contextlib.contextmanager
def _descriptor_limit(soft: int) -> Iterator[None]:
    """Processes started inside inherit ``ulimit -n soft``, as from a shell that set it."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


@pytest.fixture(scope="module", autouse=True)
def many_sockets() -> Iterator[None]:
    """This process opens ~1,200 sockets at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = SLOW + 1000
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard descriptor limit ({hard}) is below the {wanted} sockets this test opens")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("slow")
    build_mlp_onnx(root / "mlp" / "1" / "model.onnx")
    with _descriptor_limit(FD_LIMIT):
        served = Server(
            [str(root), "--header-timeout-s", str(HEADER_TIMEOUT_S), "--body-timeout-s", str(BODY_TIMEOUT_S)],
            grpc=False,
        )
    yield served
    assert served.stop() == 0


@dataclass
class SlowReport:
    lifetimes: list[float] = field(default_factory=list)  # connect → closed by the server
    refused: int = 0  # answered 503 at the cap
    still_open: list[float] = field(default_factory=list)  # ages of those open when the attack ended


async def _slow_client(port: int, stop: asyncio.Event, report: SlowReport, reconnect: bool) -> None:
    """One attacker: a request head a line a second, never finished; again when cut (``reconnect``)."""
    while not stop.is_set():
        opened = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        try:
            if await _dawdle(reader, writer, stop, report):
                report.lifetimes.append(time.monotonic() - opened)
            else:
                report.still_open.append(time.monotonic() - opened)
        finally:
            writer.close()
        if not reconnect:
            return


async def _dawdle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event, report: SlowReport
) -> bool:
    """Send header lines until the server closes the connection (True) or ``stop`` is set."""
    writer.write(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n")
    line = 0
    try:
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=1.0)
            except TimeoutError:
                line += 1
                writer.write(b"X-Slow-%d: %s\r\n" % (line, b"x" * 20))
                continue
            if data.startswith(b"HTTP/1.1 503"):
                report.refused += 1
            return True
    except OSError:  # reset
        return True
    return False


def _attack(
    port: int, connections: int, hold_s: float, during: Callable[[], None] = lambda: None, reconnect: bool = False
) -> SlowReport:
    """``connections`` slow clients at once for ``hold_s`` seconds, or while ``during`` runs in a
    thread (it starts once they are all connecting), whichever is longer."""
    report = SlowReport()

    async def run() -> None:
        stop = asyncio.Event()
        clients = [asyncio.create_task(_slow_client(port, stop, report, reconnect)) for _ in range(connections)]
        started = time.monotonic()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(during)
        await asyncio.sleep(max(0.0, started + hold_s - time.monotonic()))
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), timeout=30)

    asyncio.run(run())
    return report


def _metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_slow_clients_beyond_the_descriptor_limit_do_not_starve_others(server: Server) -> None:
    """1,100 connections that never finish a request head, each replaced as soon as it is cut,
    against a cap of 960: the server stays at its cap by evicting the oldest of them, and a
    well-behaved client gets every one of its 1,000 answers."""
    statuses: list[int] = []

    def well_behaved() -> None:  # keep-alive, and a new connection every 50 requests
        deadline = time.monotonic() + 40
        while len(statuses) < GOOD and time.monotonic() < deadline:
            with httpx.Client(timeout=10) as client:
                for _ in range(50):
                    try:
                        statuses.append(client.post(f"{server.url}/v2/models/mlp/infer", content=BODY).status_code)
                    except httpx.HTTPError:
                        statuses.append(0)

    before = _metric(server.metrics_port, CLOSED)
    report = _attack(server.http_port, SLOW, HEADER_TIMEOUT_S + SLACK_S + 1, well_behaved, reconnect=True)

    assert statuses == [200] * GOOD, {status: statuses.count(status) for status in set(statuses)}
    assert len(report.lifetimes) >= SLOW  # every slow connection was closed by the server at least once
    assert max(report.lifetimes + report.still_open) <= HEADER_TIMEOUT_S + SLACK_S
    assert _metric(server.metrics_port, CLOSED) - before >= len(report.lifetimes) - report.refused
    assert _metric(server.metrics_port, CLOSED + '{reason="evicted"}') > 0
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


def test_a_head_that_never_ends_is_closed_after_the_header_timeout(server: Server) -> None:
    before = _metric(server.metrics_port, CLOSED + '{reason="header"}')
    report = _attack(server.http_port, 50, HEADER_TIMEOUT_S + SLACK_S + 1)
    assert len(report.lifetimes) == 50 and not report.still_open
    assert HEADER_TIMEOUT_S - 0.5 <= min(report.lifetimes) <= max(report.lifetimes) <= HEADER_TIMEOUT_S + SLACK_S
    assert _metric(server.metrics_port, CLOSED + '{reason="header"}') - before == 50


def _raw(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT_S + 10)
    sock.sendall(data)
    return sock


def _reply(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_body_that_stops_coming_is_answered_408(server: Server) -> None:
    head = b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    started = time.monotonic()
    with _raw(server.http_port, head % (len(BODY) + 100) + BODY) as sock:
        reply = _reply(sock)
    waited = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408") and b"connection: close" in reply, reply
    assert BODY_TIMEOUT_S - 0.5 <= waited <= BODY_TIMEOUT_S + SLACK_S
    assert _metric(server.metrics_port, 'modelport_http_slow_clients_closed_total{reason="body"}') >= 1


def test_a_body_that_trickles_is_not_cut(server: Server) -> None:
    """The body timeout is for silence, not for the whole body: a byte every half second for
    twice the timeout gets the model's answer."""
    head = b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
    with _raw(server.http_port, head % len(BODY)) as sock:
        started = time.monotonic()
        for start in range(0, len(BODY), 20):
            sock.sendall(BODY[start : start + 20])
            time.sleep(0.5)
        reply = _reply(sock)
    assert time.monotonic() - started > 2 * BODY_TIMEOUT_S
    assert reply.startswith(b"HTTP/1.1 200"), reply


@pytest.mark.parametrize("script", [False, True], ids=["no-code", "script"])
def test_score_refuses_an_oversized_content_length_before_reading(server: Server, tmp_path: Path, script: bool) -> None:
    target = server
    if script:
        (tmp_path / "score.py").write_text(
            textwrap.dedent("""
            def init():
                pass

            def run(raw):
                return {"length": len(raw)}
        """)
        )
        target = Server(["--entry-script", str(tmp_path / "score.py")], grpc=False)
    try:
        started = time.monotonic()
        head = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        with _raw(target.http_port, head % (1 << 30)) as sock:
            sock.settimeout(5)
            reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 413"), reply
        assert b"exceeds" in reply and time.monotonic() - started < 3
    finally:
        if target is not server:
            assert target.stop() == 0


def test_daemon_closes_slow_clients(tmp_path: Path) -> None:
    """The daemon's front end keeps the same limits (its defaults: a 10 s header timeout)."""
    daemon = Daemon(tmp_path / "ws")
    with _descriptor_limit(FD_LIMIT):
        daemon.up()
    try:
        answers: list[int] = []

        def polite() -> None:  # fresh connections during the attack still get answered
            for _ in range(20):
                try:
                    answers.append(httpx.get(f"{daemon.url}/endpoints/none/score", timeout=10).status_code)
                except httpx.HTTPError:
                    answers.append(0)
                time.sleep(0.1)

        header_timeout = 10.0
        report = _attack(daemon.port, 300, header_timeout + SLACK_S + 1, polite)
        assert len(answers) == 20 and 0 not in answers, answers
        assert len(report.lifetimes) == 300 and not report.still_open
        assert header_timeout - 0.5 <= min(report.lifetimes) <= max(report.lifetimes) <= header_timeout + SLACK_S
    finally:
        daemon.down()
