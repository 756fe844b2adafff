"""Run the scoring server: HTTP (v2 + /score), gRPC and a metrics port in one event loop.

Models are loaded before any port opens, so a server that listens is a server that can
answer (and a model or script that fails to load makes ``serve`` exit non-zero). SIGTERM and
SIGINT stop accepting connections and let in-flight requests finish (graceful shutdown).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from modelport.core.connections import ConnectionLimits, Connections
from modelport.core.errors import ValidationError
from modelport.core.http_server import HttpServer, front_end
from modelport.core.request_body import DEFAULT_MAX_BODY
from modelport.core.sockets import listen
from modelport.serving.http.app import build_app
from modelport.serving.http.observe import Observing
from modelport.serving.http.protocol import http_protocol
from modelport.serving.http.shedding import Shedder
from modelport.serving.http.v2 import EXTENSIONS
from modelport.serving.metrics import CONTENT_TYPE
from modelport.serving.repository import ModelRepository
from modelport.serving.telemetry import GatheredTelemetry, LocalTelemetry, Telemetry

log = logging.getLogger("modelport.serving")


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int | None = 8001
    metrics_port: int | None = 8002
    max_body: int = DEFAULT_MAX_BODY
    timeout_s: float | None = None
    max_lag_s: float | None = 0.2
    graceful_s: float = 30.0
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    extra_routes: list[BaseRoute] = field(default_factory=list)
    observing: Observing = field(default_factory=Observing)
    worker: WorkerSetup | None = None
    ports: Ports | None = None

    def __post_init__(self) -> None:
        """One port, one server: the kernel lets two sockets bind one port before either listens,
        so the same number given twice would get past :func:`bind_ports` and fail at start-up."""
        taken: dict[int, str] = {}
        for option, port in (
            ("--http-port", self.http_port),
            ("--grpc-port", self.grpc_port),
            ("--metrics-port", self.metrics_port),
        ):
            if port:  # None: not served; 0: any free port, a different one each
                if port in taken:
                    raise ValidationError(f"{option}: {port} is the {taken[port]} too; give each its own port")
                taken[port] = option


@dataclass(frozen=True)
class Ports:
    """A lone server's HTTP and metrics ports, bound (not listening: no client waits on a server
    still loading its models) before anything loads, by :func:`bind_ports`."""

    http: socket.socket
    metrics: socket.socket | None

    def close(self) -> None:
        """Release ports the server never came to listen on (it closes them itself once it has)."""
        for sock in (self.http, self.metrics):
            if sock is not None:
                sock.close()


def bind_ports(options: ServeOptions) -> Ports:
    """Bind the ports of a lone server before its models load: a port in use is one error line
    naming it and its option, before minutes of loading, not uvicorn's traceback after them.

    The gRPC port is only tried here (gRPC binds its own socket when it starts): the check catches
    what is busy now; a port taken in between still fails start-up with gRPC's own one line."""
    http = listen(options.host, options.http_port, hold_only=True, option="--http-port")
    metrics = None
    try:
        if options.metrics_port is not None:
            metrics = listen(options.host, options.metrics_port, hold_only=True, option="--metrics-port")
        if options.grpc_port is not None:
            listen(options.host, options.grpc_port, hold_only=True, option="--grpc-port").close()
    except BaseException:
        Ports(http, metrics).close()
        raise
    return Ports(http, metrics)


@dataclass(frozen=True)
class WorkerSetup:
    """How one process of ``serve --workers N`` differs from a lone server: it accepts on the HTTP
    socket its parent bound, shares the gRPC port (SO_REUSEPORT), answers its parent on a private
    Unix socket, and reports statistics gathered from every worker (``peers``)."""

    http_socket: socket.socket
    metrics_socket: socket.socket | None
    control_socket: Path
    peers: tuple[Path, ...]


def _uvicorn(app: ASGIApp, options: ServeOptions, connections: Connections, **where: Any) -> HttpServer:
    return front_end(app, connections, timeout_graceful_shutdown=int(options.graceful_s), **where)


def _bound_sockets(options: ServeOptions) -> tuple[socket.socket | None, socket.socket | None]:
    """The HTTP and metrics sockets bound before start-up (a worker's, by its parent; a lone
    server's, by :func:`bind_ports`), which uvicorn listens on; None where uvicorn binds itself."""
    if options.worker is not None:
        return options.worker.http_socket, options.worker.metrics_socket
    if options.ports is not None:
        return options.ports.http, options.ports.metrics
    return None, None


def metrics_app(telemetry: Telemetry) -> Starlette:
    """The metrics port's app: ``/metrics`` only."""

    async def metrics(request: Request) -> Response:
        return Response(await telemetry.exposition(), media_type=CONTENT_TYPE)

    return Starlette(routes=[Route("/metrics", metrics, methods=["GET"])])


def _control_app(repository: ModelRepository, local: LocalTelemetry) -> Starlette:
    """What a worker tells its parent and siblings: readiness and its statistics."""

    async def ready(request: Request) -> Response:
        return Response(status_code=200 if repository.ready else 503)

    async def snapshot(request: Request) -> Response:
        return Response(orjson.dumps(local.snapshot()), media_type="application/json")

    return Starlette(routes=[Route("/ready", ready), Route("/snapshot", snapshot)])


async def serve(
    repository: ModelRepository, options: ServeOptions, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve until SIGTERM/SIGINT; ``repository`` must already be loaded."""
    connections = Connections(options.limits)  # one cap for the process's front ends together
    local = LocalTelemetry(repository, options.observing, connections)
    worker = options.worker
    telemetry: Telemetry = GatheredTelemetry(worker.peers) if worker else local
    app = build_app(
        repository,
        max_body=options.max_body,
        timeout_s=options.timeout_s,
        extra_routes=options.extra_routes,
        observing=options.observing,
        telemetry=telemetry,
    )
    shedder = Shedder(repository, options.max_lag_s)
    servers = [
        _uvicorn(app, options, connections, host=options.host, port=options.http_port, http=http_protocol(shedder))
    ]
    http_socket, metrics_socket = _bound_sockets(options)
    sockets: list[list[socket.socket] | None] = [[http_socket] if http_socket else None]
    if options.metrics_port is not None:
        servers.append(
            _uvicorn(metrics_app(telemetry), options, connections, host=options.host, port=options.metrics_port)
        )
        sockets.append([metrics_socket] if metrics_socket else None)
    if worker is not None:
        servers.append(_uvicorn(_control_app(repository, local), options, connections, uds=str(worker.control_socket)))
        sockets.append(None)
    grpc_server = None
    if options.grpc_port is not None:
        from modelport.serving.grpc import start_grpc_server

        grpc_server = await start_grpc_server(
            repository, options.host, options.grpc_port, EXTENSIONS, options.max_body, reuse_port=worker is not None
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    shedder.lag.start()
    tasks = [asyncio.create_task(server.serve(sockets=given)) for server, given in zip(servers, sockets)]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):  # a port could not be bound
            break
        await asyncio.sleep(0.02)
    if all(server.started for server in servers) and on_ready is not None:
        on_ready(_describe(options, grpc_server.port if grpc_server else None))
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    if grpc_server is not None:
        await grpc_server.stop(options.graceful_s)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    waiter.cancel()
    shedder.lag.stop()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    if not stop.is_set():
        raise SystemExit(1)  # a front end ended on its own: ports in use, most likely


def run(repository: ModelRepository, options: ServeOptions, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve on uvloop when it is installed (a core dependency): its transports cut the
    per-request cost of the event loop noticeably; plain asyncio otherwise.

    What is loaded by now (modules, models, a scoring script) lives as long as the server, so it
    is moved out of the garbage collector's reach first (``gc.freeze``): a full collection walked
    ~120,000 such objects, 60 ms on the event loop each time — the slowest answers under load,
    and 12 % of the loop's time under overload (``bench/overload.py``)."""
    gc.collect()
    gc.freeze()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(repository, options, on_ready))
    else:
        uvloop.run(serve(repository, options, on_ready))


def _describe(options: ServeOptions, grpc_port: int | None) -> str:
    parts = [f"http://{options.host}:{options.http_port}"]
    if grpc_port is not None:
        parts.append(f"grpc {options.host}:{grpc_port}")
    if options.metrics_port is not None:
        parts.append(f"metrics http://{options.host}:{options.metrics_port}/metrics")
    return ", ".join(parts)
