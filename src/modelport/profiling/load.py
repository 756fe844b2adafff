"""A closed-loop load generator: ``concurrency`` workers each send one request body back to back.

Closed loop (a worker sends its next request when the previous answer arrives) is how a client
pool behaves and how Triton's perf_analyzer measures "concurrency": throughput and latency are
read at a fixed number of requests in flight, so the curve over concurrency levels shows where
queueing starts.

Several targets (trial servers) are measured in *rounds*: each round loads every target for one
short window, in turn, so a burst of other work on a shared machine falls on every target alike
instead of on one whole trial. One event loop runs all rounds; each worker keeps its keep-alive
connection between rounds, so switching targets costs no connection set-up; each window starts
after a short warm-up that fills the pipeline and is not counted, and only requests that finish
inside the window count. Everything is bounded in time whatever the servers do: a request gives
up after ``request_timeout`` and stragglers are cancelled.

The client is HTTP/1.1 over asyncio transports with httptools (the parser uvicorn serves with)
rather than aiohttp's client: the load shares the machine with the server it measures, and on the
2-core development box aiohttp spent 180–200 µs of CPU per request (as much as the server
answering it) where this client spends 25–50 µs, so the figures are the server's, not the client's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools
import numpy as np

from modelport.core.errors import ValidationError

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


@dataclass(frozen=True)
class LoadResult:
    """What one measured window saw: requests that *finished* inside it count."""

    concurrency: int
    seconds: float
    latencies_ms: np.ndarray = field(repr=False)  # of the successful requests
    total: int
    errors: int
    first_error: str | None = None
    marks: tuple[Any, Any] | None = None  # what the target's ``mark`` returned as the window opened and closed

    @property
    def succeeded(self) -> int:
        return self.total - self.errors

    @property
    def qps(self) -> float:
        return self.succeeded / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self) -> dict[str, float | None]:
        """Mean and percentiles (numpy's linear interpolation) of the successful requests."""
        if not len(self.latencies_ms):
            return {"mean": None, **{key: None for key in PERCENTILES}}
        values = np.percentile(self.latencies_ms, list(PERCENTILES.values()))
        return {"mean": float(self.latencies_ms.mean()), **{k: float(v) for k, v in zip(PERCENTILES, values)}}


@dataclass(frozen=True)
class LoadTarget:
    """Where to send the body and with how many workers; ``mark`` (cheap: it runs on the load's
    event loop) is called as each window opens and closes, to read what the server used."""

    url: str
    concurrency: int
    mark: Callable[[], Any] | None = None


def check_loopback(url: str) -> None:
    """The profiler only ever loads servers on this machine."""
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise ValidationError(f"profile: {url} is not a loopback address; the profiler only loads local servers")


def run_rounds(targets: Sequence[LoadTarget], body: bytes, *, rounds: int, seconds: float,
               first_warmup: float = 0.5, next_warmup: float = 0.05, request_timeout: float = 30.0,
               headers: dict[str, str] | None = None) -> list[list[LoadResult]]:
    """``rounds`` windows of ``seconds`` per target (blocking), every other round in reverse
    order so that a drift falls on all targets alike; a target's first window follows
    ``first_warmup`` (a fresh server's first requests allocate), later ones ``next_warmup``."""
    for target in targets:
        check_loopback(target.url)
        if target.concurrency < 1:
            raise ValidationError("profile: concurrency must be ≥ 1")
    if rounds < 1 or seconds <= 0:
        raise ValidationError("profile: the duration must be > 0")
    request_headers = {"content-type": "application/json", **(headers or {})}
    coroutine = _rounds(targets, body, rounds, seconds, first_warmup, next_warmup, request_timeout, request_headers)
    try:
        import uvloop  # the load shares the cores with the server: cheaper transports leave more to measure
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def _rounds(targets: Sequence[LoadTarget], body: bytes, rounds: int, seconds: float, first_warmup: float,
                  next_warmup: float, request_timeout: float, headers: dict[str, str]) -> list[list[LoadResult]]:
    results: list[list[LoadResult]] = [[] for _ in targets]
    pools = [_Pool(target.url, body, headers) for target in targets]
    try:
        for number in range(rounds):
            order = list(enumerate(targets))
            for slot, target in order if number % 2 == 0 else order[::-1]:
                warmup = first_warmup if number == 0 else next_warmup
                results[slot].append(await _window(pools[slot], target, seconds, warmup, request_timeout))
    finally:
        for pool in pools:
            pool.close()
    return results


@dataclass
class _Tally:
    total: int = 0
    errors: int = 0
    first_error: str | None = None


async def _window(pool: _Pool, target: LoadTarget, seconds: float, warmup: float,
                  request_timeout: float) -> LoadResult:
    start = time.perf_counter()
    opens, closes = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    tally = _Tally()

    async def worker() -> None:
        while time.perf_counter() < closes:
            began = time.perf_counter()
            status, answer = await pool.send(request_timeout)
            ended = time.perf_counter()
            if not opens <= ended <= closes:
                continue
            tally.total += 1
            if status == 200:
                latencies.append((ended - began) * 1000)
            else:
                tally.errors += 1
                if tally.first_error is None:
                    text = answer.decode("utf-8", "replace").strip()[:300]
                    tally.first_error = f"{status}: {text}" if status > 0 else text

    async def marker() -> tuple[Any, Any] | None:
        if target.mark is None:
            return None
        await asyncio.sleep(max(0.0, opens - time.perf_counter()))
        opened = target.mark()
        await asyncio.sleep(max(0.0, closes - time.perf_counter()))
        return opened, target.mark()

    marks = asyncio.ensure_future(marker())
    tasks = [asyncio.ensure_future(worker()) for _ in range(target.concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=warmup + seconds + request_timeout + 1)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return LoadResult(target.concurrency, seconds, np.asarray(latencies, dtype=np.float64), tally.total,
                      tally.errors, tally.first_error, await marks)


class _Pool:
    """Keep-alive connections to one target; a worker borrows one per request. A request that
    fails (refused, reset, timed out) answers status -1 and its connection is dropped."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}",
                 *(f"{key}: {value}" for key, value in headers.items())]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        self.idle: list[_Connection] = []

    async def send(self, timeout: float) -> tuple[int, bytes]:
        connection = self.idle.pop() if self.idle else None
        try:
            if connection is None:
                _, connection = await asyncio.wait_for(asyncio.get_running_loop().create_connection(
                    _Connection, self.host, self.port), timeout)
            status, answer = await asyncio.wait_for(connection.exchange(self.request), timeout)
        except (OSError, asyncio.TimeoutError, httptools.HttpParserError) as exc:
            if connection is not None:
                connection.close()
            await asyncio.sleep(0.005)  # a refusing server must not turn the workers into a busy loop
            return -1, f"{type(exc).__name__}: {exc}".encode()
        except BaseException:  # cancelled at the end of a window: the answer will never be read
            if connection is not None:
                connection.close()
            raise
        if connection.reusable:
            self.idle.append(connection)
        else:
            connection.close()
        return status, answer

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection with one request in flight at a time (closed loop needs no more)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.reusable = True

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the server closed the connection")
        self.body = []
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.reusable = False
            self._finish(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._finish(exc or ConnectionResetError("the server closed the connection"))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        if self.answer is not None and not self.answer.done():
            self.answer.set_result((self.parser.get_status_code(), b"".join(self.body)))

    def _finish(self, exc: BaseException) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()
