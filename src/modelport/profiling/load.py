"""A load generator over loopback, closed loop (:func:`run_rounds`) or open loop (:func:`run_open`).

Closed loop (a worker sends its next request when the previous answer arrives) is how a client
pool behaves and how Triton's perf_analyzer measures "concurrency": throughput and latency are
read at a fixed number of requests in flight, so the curve over concurrency levels shows where
queueing starts. It cannot overload a server: a slow answer slows the next request down.

Open loop sends on a fixed schedule (``rate`` requests a second) whatever the answers do, as
independent users would: it is how a latency target at a given load, and overload, are measured.
Each request has a client timeout; a slot that finds all of the pool's keep-alive connections
busy is counted as *not sent* rather than delayed (a delayed request would hide the overload
from the figures), and how late the client itself sent each request is reported, so a client
that cannot keep to the schedule on a busy machine says so.

In closed loop, several targets (trial servers) are measured in *rounds*: each round loads every
target for one short window, in turn, so a burst of other work on a shared machine falls on every
target alike instead of on one whole trial. One event loop runs all rounds; each worker keeps its
keep-alive connection between rounds, so switching targets costs no connection set-up (one the
server closed meanwhile is replaced); each window starts after a short warm-up that fills the
pipeline and is not counted, and only requests that finish inside the window count. Everything is
bounded in time whatever the servers do: a request gives up after ``request_timeout`` and
stragglers are cancelled.

The client is HTTP/1.1 over asyncio transports with httptools (the parser uvicorn serves with)
rather than httpx (modelport's client elsewhere) or aiohttp: the load shares the machine with the
server it measures and must send more than the server answers. ``bench/http_clients.py`` measures
the three in turns on the 2-core development box: this client spends 3–5× less CPU per request
than aiohttp and 20–80× less than httpx, so the figures are the server's, not the client's.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httptools
import numpy as np

from modelport.core.errors import ValidationError

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
FAILED = -1  # the status of a request that got no HTTP answer: refused, reset or unparsable
TIMED_OUT = -2  # the status of a request that got no answer within the client timeout
Loaded = TypeVar("Loaded")


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
        return summary_ms(self.latencies_ms)


@dataclass(frozen=True)
class OpenLoadResult:
    """What one open-loop run saw: every request scheduled in it, answered or not."""

    rate: float  # requests a second asked for
    seconds: float
    sending_seconds: float  # how long the client took over the schedule: > ``seconds`` if it fell behind
    connections: int
    scheduled: int
    not_sent: int  # slots that found every connection busy
    statuses: dict[int, int]  # HTTP status, FAILED or TIMED_OUT → requests
    latencies_ms: np.ndarray = field(repr=False)  # of the answered requests (any HTTP status)
    lags_ms: np.ndarray = field(repr=False)  # how late the client sent each request after its slot
    first_error: str | None = None  # the first answer other than 200 and 503

    @property
    def sent(self) -> int:
        return self.scheduled - self.not_sent

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def rejected(self) -> int:
        return self.statuses.get(503, 0)

    @property
    def timeouts(self) -> int:
        return self.statuses.get(TIMED_OUT, 0)

    @property
    def other(self) -> int:
        """Other HTTP statuses and requests that failed without an answer."""
        return self.sent - self.ok - self.rejected - self.timeouts

    @property
    def send_rate(self) -> float:
        """Requests a second the client achieved sending."""
        return self.sent / max(self.seconds, self.sending_seconds)

    def latency_ms(self) -> dict[str, float | None]:
        """Mean, percentiles and maximum of the answered requests, from sending to the answer."""
        return summary_ms(self.latencies_ms, with_max=True)

    def lag_ms(self) -> dict[str, float | None]:
        """The same of the client's own delay in sending: large values mean the schedule was not kept."""
        return summary_ms(self.lags_ms, with_max=True)


def summary_ms(values: np.ndarray, with_max: bool = False) -> dict[str, float | None]:
    """Mean and :data:`PERCENTILES` (numpy's linear interpolation) of ``values``, and their maximum
    if asked; None when there are none."""
    keys = ["mean", *PERCENTILES, *(["max"] if with_max else [])]
    if not len(values):
        return dict.fromkeys(keys)
    points = [float(values.mean()), *np.percentile(values, list(PERCENTILES.values())).tolist(), float(values.max())]
    return dict(zip(keys, points))


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


def run_rounds(
    targets: Sequence[LoadTarget],
    body: bytes,
    *,
    rounds: int,
    seconds: float,
    first_warmup: float = 0.5,
    next_warmup: float = 0.05,
    request_timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> list[list[LoadResult]]:
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
    return _run(_rounds(targets, body, rounds, seconds, first_warmup, next_warmup, request_timeout, request_headers))


def run_open(
    url: str,
    body: bytes,
    *,
    rate: float,
    seconds: float,
    connections: int,
    request_timeout: float = 1.0,
    headers: dict[str, str] | None = None,
) -> OpenLoadResult:
    """Send ``body`` to ``url`` at ``rate`` requests a second for ``seconds`` (blocking) over at most
    ``connections`` keep-alive connections, opened before the first slot. Every request sent is
    waited for, up to ``request_timeout``, so the run ends by ``seconds + request_timeout`` (and the
    connections' opening, itself bounded by ``request_timeout``)."""
    check_loopback(url)
    if rate <= 0 or seconds <= 0 or connections < 1 or request_timeout <= 0:
        raise ValidationError("load: the rate, duration, connections and timeout must be > 0")
    request_headers = {"content-type": "application/json", **(headers or {})}
    return _run(_open(_Pool(url, body, request_headers), rate, seconds, connections, request_timeout))


def _run(coroutine: Coroutine[Any, Any, Loaded]) -> Loaded:
    try:
        import uvloop  # the load shares the cores with the server: cheaper transports leave more to measure
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def _open(pool: _Pool, rate: float, seconds: float, connections: int, request_timeout: float) -> OpenLoadResult:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    lags: list[float] = []
    errors: list[str] = []
    busy = not_sent = 0

    async def request(slot: float) -> None:
        nonlocal busy
        began = time.perf_counter()
        lags.append((began - slot) * 1000)
        try:
            status, answer = await pool.send(request_timeout)
        finally:
            busy -= 1
        statuses[status] += 1
        if status > 0:
            latencies.append((time.perf_counter() - began) * 1000)
        if status not in (200, 503, TIMED_OUT) and not errors:
            errors.append(_describe(status, answer))

    await pool.connect(connections, request_timeout)
    tasks: set[asyncio.Task[None]] = set()
    count = round(rate * seconds)
    start = time.perf_counter()
    try:
        for number in range(count):
            slot = start + number / rate
            delay = slot - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if busy >= connections:
                not_sent += 1
                continue
            busy += 1
            task = asyncio.ensure_future(request(slot))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sending = time.perf_counter() - start
        if tasks:
            _, pending = await asyncio.wait(set(tasks), timeout=request_timeout + 1)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    finally:
        pool.close()
    return OpenLoadResult(
        rate,
        seconds,
        sending,
        connections,
        count,
        not_sent,
        dict(statuses),
        np.asarray(latencies, dtype=np.float64),
        np.asarray(lags, dtype=np.float64),
        errors[0] if errors else None,
    )


async def _rounds(
    targets: Sequence[LoadTarget],
    body: bytes,
    rounds: int,
    seconds: float,
    first_warmup: float,
    next_warmup: float,
    request_timeout: float,
    headers: dict[str, str],
) -> list[list[LoadResult]]:
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


async def _window(pool: _Pool, target: LoadTarget, seconds: float, warmup: float, request_timeout: float) -> LoadResult:
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
                    tally.first_error = _describe(status, answer)

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
    return LoadResult(
        target.concurrency,
        seconds,
        np.asarray(latencies, dtype=np.float64),
        tally.total,
        tally.errors,
        tally.first_error,
        await marks,
    )


def _describe(status: int, answer: bytes) -> str:
    text = answer.decode("utf-8", "replace").strip()[:300]
    return f"{status}: {text}" if status > 0 else text


class _Pool:
    """Keep-alive connections to one target; a worker borrows one per request. A request that
    fails answers status FAILED (refused, reset) or TIMED_OUT and its connection is dropped; a
    connection the server closed while it was idle (keep-alive timeout) is not borrowed again."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {parts.netloc}",
            f"Content-Length: {len(body)}",
            *(f"{key}: {value}" for key, value in headers.items()),
        ]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        self.idle: list[_Connection] = []

    async def send(self, timeout: float) -> tuple[int, bytes]:
        """One request and its answer's status and body, both within ``timeout``."""
        connection = self._borrow()
        deadline = time.perf_counter() + timeout
        try:
            if connection is None:
                connection = await self._open(timeout)
            status, answer = await asyncio.wait_for(
                connection.exchange(self.request), max(0.0, deadline - time.perf_counter())
            )
        except (OSError, asyncio.TimeoutError, httptools.HttpParserError) as exc:
            if connection is not None:
                connection.close()
            await asyncio.sleep(0.005)  # a refusing server must not turn the workers into a busy loop
            failed = TIMED_OUT if isinstance(exc, asyncio.TimeoutError) else FAILED
            return failed, f"{type(exc).__name__}: {exc}".encode()
        except BaseException:  # cancelled at the end of a window: the answer will never be read
            if connection is not None:
                connection.close()
            raise
        if connection.reusable:
            self.idle.append(connection)
        else:
            connection.close()
        return status, answer

    async def connect(self, count: int, timeout: float) -> None:
        """Open ``count`` idle connections at once; one that cannot be opened is simply missing
        (the request that needs it opens it, or fails)."""
        opened = await asyncio.gather(*(self._open(timeout) for _ in range(count)), return_exceptions=True)
        self.idle += [connection for connection in opened if isinstance(connection, _Connection)]

    async def _open(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await asyncio.wait_for(loop.create_connection(_Connection, self.host, self.port), timeout)
        return connection

    def _borrow(self) -> _Connection | None:
        while self.idle:
            connection = self.idle.pop()
            if connection.reusable:
                return connection
        return None

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
