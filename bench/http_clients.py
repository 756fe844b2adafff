"""The HTTP clients modelport could send requests with on its hot paths, in turns against one server:
aiohttp (the endpoint router's proxy), httpx (every other client) and the profiler's own
httptools client (``profiling/load.py``).

    python bench/http_clients.py [--seconds 3] [--concurrency 1,16] [--rounds 3]

The server is a subprocess (uvicorn with httptools and uvloop, as every front end runs) answering
each POST with a small JSON body at once, so the figure that matters is the *client's* CPU time
per request (this process does nothing else): on the router's hop and in the profiler's load
generator that time is taken from the machine the replica or the measured server runs on. Each
round runs every client for one window of ``--seconds`` after a short warm-up, in turns, so drift
on a shared machine falls on all of them alike. Everything binds 127.0.0.1; every window is
bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import httpx
import uvloop

from modelport.profiling.load import _Pool

BODY = b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1.0,2.0,3.0,4.0]}]}'
HEADERS = {"content-type": "application/json"}
WARMUP_S = 0.5
SERVER = """
import socket, sys, uvicorn
ANSWER = b'{"model_name":"m","outputs":[{"name":"y","shape":[1,2],"datatype":"FP32","data":[0.5,0.5]}]}'
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]})
    await send({"type": "http.response.body", "body": ANSWER})
config = uvicorn.Config(app, http="httptools", loop="uvloop", log_level="error", access_log=False, lifespan="off")
uvicorn.Server(config).run(sockets=[socket.socket(fileno=int(sys.argv[1]))])
"""

Send = Callable[[], Awaitable[int]]


@asynccontextmanager
async def _aiohttp(url: str, concurrency: int) -> Any:
    """As the daemon's router sends: one session, a connection pool, the body as bytes."""
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=2.0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def send() -> int:
            async with session.request("POST", url, data=BODY, headers=HEADERS) as response:
                await response.read()
                return response.status

        yield send


@asynccontextmanager
async def _httpx(url: str, concurrency: int) -> Any:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10, trust_env=False) as client:

        async def send() -> int:
            response = await client.request("POST", url, content=BODY, headers=HEADERS)
            return response.status_code

        yield send


@asynccontextmanager
async def _load_generator(url: str, concurrency: int) -> Any:
    pool = _Pool(url, BODY, HEADERS)
    await pool.connect(concurrency, 10)

    async def send() -> int:
        status, _ = await pool.send(10)
        return status

    try:
        yield send
    finally:
        pool.close()


CLIENTS: dict[str, Callable[[str, int], AbstractAsyncContextManager[Send]]] = {
    "aiohttp": _aiohttp,
    "httpx": _httpx,
    "load generator": _load_generator,
}


async def _window(
    client: Callable[[str, int], AbstractAsyncContextManager[Send]], url: str, concurrency: int, seconds: float
) -> tuple[float, float]:
    """Requests a second and client CPU µs per request, over one window after a warm-up."""
    async with client(url, concurrency) as send:
        counting = [False]
        done = [0]
        failed = [0]
        stop = time.perf_counter() + WARMUP_S + seconds

        async def worker() -> None:
            while time.perf_counter() < stop:
                status = await send()
                if counting[0]:
                    done[0] += 1
                    failed[0] += status != 200

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(WARMUP_S)
        counting[0] = True
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.wait(workers, timeout=seconds + 15)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if failed[0]:
            raise SystemExit(f"{failed[0]} requests failed")
    return done[0] / wall, cpu / done[0] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(1024)
    url = f"http://127.0.0.1:{listening.getsockname()[1]}/v2/models/m/infer"
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(listening.fileno())], pass_fds=[listening.fileno()])
    try:
        time.sleep(1.5)
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in CLIENTS}
            for _ in range(args.rounds):
                for name, client in CLIENTS.items():
                    results[name].append(uvloop.run(_window(client, url, concurrency, args.seconds)))
            print(f"concurrency {concurrency}: median of {args.rounds} rounds")
            for name, runs in results.items():
                rate = statistics.median(r for r, _ in runs)
                cpu = statistics.median(c for _, c in runs)
                print(f"  {name:15s} {rate:8.0f} req/s  {cpu:6.0f} µs client CPU/request")
    finally:
        server.terminate()
        server.wait(10)
        listening.close()


if __name__ == "__main__":
    main()
