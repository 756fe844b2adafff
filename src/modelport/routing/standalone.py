"""``modelport router --config router.yml``: the daemon's router as a process of its own, for a
cluster, with no daemon and no workspace — everything it knows is in the file and the key files.

It serves the endpoint's scoring routes twice, at the root (``/score``, ``/v2/...``: what a
cluster's Ingress or Service forwards) and at ``/endpoints/<endpoint>/...`` (the daemon's URLs, so
a client moves between the two by changing its base URL only), answered by the HTTP protocol
itself (``routing.protocol``); ``/metrics`` (Prometheus, behind the endpoint key when the endpoint
has one: Prometheus sends it from a bearer token file) and ``/healthz`` (open, for the kubelet's
probes: it says "ok" and nothing else).

Reloading: a change to the configuration or the key files (polled every second) or SIGHUP reads
everything again and publishes the new endpoint in one assignment; requests in flight finish on
the endpoint they started with. A file that does not read or parse is refused with one log line
and the endpoint that was serving keeps serving; the file is tried again when it changes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from pathlib import Path

from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from modelport.core.errors import ModelportError
from modelport.core.http_errors import Unauthorized, response_of
from modelport.core.http_server import front_end, run_loop
from modelport.core.keys import authorized
from modelport.core.sockets import listen
from modelport.monitor.request_log import RequestLog
from modelport.routing.config_file import Loaded, load, stamps, watched
from modelport.routing.configured import UrlReplicas, configured_endpoint
from modelport.routing.metrics import PROMETHEUS_TEXT
from modelport.routing.protocol import router_protocol
from modelport.routing.router import LiveEndpoint, Router, endpoint_target, proxy_session

log = logging.getLogger("modelport.routing")

POLL_S = 1.0
HEALTHZ = "/healthz"
METRICS = "/metrics"


def run(config: Path, loaded: Loaded, host: str, port: int, request_log: Path | None) -> None:
    """Serve ``loaded`` (read from ``config``, which is watched from now on) until SIGTERM/SIGINT."""
    listener = listen(host, port, option="--port")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with listener:
        run_loop(_serve(config, loaded, listener, request_log))


class StandaloneRouter:
    """The ASGI app: ``/healthz``, ``/metrics``, and the endpoint's routes under both prefixes."""

    def __init__(self, path: Path, loaded: Loaded, router: Router, replicas: UrlReplicas) -> None:
        self.path = path
        self.router = router
        self.replicas = replicas
        self.loaded = loaded
        self.endpoint: LiveEndpoint = configured_endpoint(loaded.config, loaded.keys, replicas)
        router.publish(self.endpoint)
        self._seen = stamps(watched(path, loaded.config))
        self._reloading = asyncio.Lock()  # one reload at a time: the last one read is the one applied

    def target(self, path: str) -> tuple[str, str] | None:
        """The endpoint and scoring route a request path names; None for ``/healthz`` and
        ``/metrics``, which are this process's own."""
        if path in (HEALTHZ, METRICS):
            return None
        return endpoint_target(path) or (self.endpoint.name, path[1:])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What the protocol leaves to the app: ``/healthz``, ``/metrics``, and router requests
        pipelined behind another."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        where = self.target(path)
        if where is not None:
            await self.router.route(scope, receive, send, *where)
        elif path == HEALTHZ:
            await PlainTextResponse("ok\n")(scope, receive, send)
        else:
            await self._metrics(scope, self.endpoint)(scope, receive, send)

    def _metrics(self, scope: Scope, endpoint: LiveEndpoint) -> Response:
        header = next((value.decode("latin-1") for key, value in scope["headers"] if key == b"authorization"), None)
        if endpoint.auth_mode == "key" and not authorized(header, endpoint.keys):
            return response_of(Unauthorized("a valid key is required: Authorization: Bearer <key>"))
        return Response(self.router.metrics.render(), media_type=PROMETHEUS_TEXT)

    async def reload(self, why: str) -> None:
        """Read everything again and publish it, or keep what serves and say why in one line."""
        async with self._reloading:
            # stamped before reading, so that a change made while reading is seen at the next poll
            self._seen = await asyncio.to_thread(lambda: stamps(watched(self.path, self.loaded.config)))
            try:
                loaded = await asyncio.to_thread(load, self.path)
            except ModelportError as exc:
                log.error("%s: %s; still serving the previous configuration", why, exc)
                return
            if loaded == self.loaded:
                log.info("%s: %s unchanged", why, self.path)
                return
            self._apply(loaded)
            log.info("%s: %s reloaded (traffic %s)", why, self.path, _shares(loaded.config.traffic))

    def _apply(self, loaded: Loaded) -> None:
        endpoint = configured_endpoint(loaded.config, loaded.keys, self.replicas, self.endpoint)
        if endpoint.name != self.endpoint.name:
            self.router.withdraw(self.endpoint.name)
        self.router.publish(endpoint)
        self.endpoint, self.loaded = endpoint, loaded

    async def watch(self) -> None:
        """Reload whenever a watched file or folder changes (checked every :data:`POLL_S`)."""
        while True:
            await asyncio.sleep(POLL_S)
            now = await asyncio.to_thread(lambda: stamps(watched(self.path, self.loaded.config)))
            if now != self._seen:
                await self.reload("a configuration file changed")


async def _serve(path: Path, loaded: Loaded, listener: socket.socket, request_log: Path | None) -> None:
    writer = RequestLog(request_log) if request_log is not None else None
    async with proxy_session() as http:
        router = Router(http, writer)
        replicas = UrlReplicas(http)
        app = StandaloneRouter(path, loaded, router, replicas)
        # proxy_headers off: nothing here reads the client's address, so nothing need rewrite it
        server = front_end(
            app,
            http=router_protocol(router, app.target),
            timeout_keep_alive=30,
            timeout_graceful_shutdown=10,
            proxy_headers=False,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        reloads: set[asyncio.Task[None]] = set()

        def on_hangup() -> None:
            task = asyncio.create_task(app.reload("SIGHUP"))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hangup)
        watcher = asyncio.create_task(app.watch())
        log.info(
            "modelport router for endpoint %s on %s (traffic %s)",
            loaded.config.endpoint,
            _url(listener),
            _shares(loaded.config.traffic),
        )
        try:
            await server.serve(sockets=[listener])
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await replicas.close()
            if writer is not None:
                writer.close()


def _url(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://{host}:{port}"


def _shares(traffic: dict[str, int]) -> str:
    return " ".join(f"{name}={share}" for name, share in traffic.items()) or "none"
