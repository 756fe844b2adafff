"""The request log and payload collection around the HTTP app, as one ASGI middleware.

Installed only when a server logs requests or collects payloads, so a plain ``serve`` pays
nothing. For each scoring request it opens a :class:`~modelport.monitor.trace.RequestTrace`
(which inference fills with model, queue time, batch size and, when sampled, the tensors),
notes the status as the response starts, and after the response hands one record to the request
log and, when sampled, one to the collector — both only queue it. ``/score`` bodies are kept
(as the bytes already in memory) only for sampled requests. Probes and metrics are not logged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.monitor.collector import Collected, PayloadCollector
from modelport.monitor.request_log import RequestLog
from modelport.monitor.trace import RequestTrace, current_trace, next_request_id

UNLOGGED = frozenset({"/", "/v2", "/v2/health/live", "/v2/health/ready", "/metrics", "/swagger.json"})


@dataclass(frozen=True)
class Observing:
    """What a server records about its requests; the labels name the deployment it serves."""

    request_log: RequestLog | None = None
    collector: PayloadCollector | None = None
    endpoint: str | None = None
    deployment: str | None = None

    def close(self) -> None:
        """Flush and stop the writers (after the server has stopped taking requests)."""
        for writer in (self.request_log, self.collector):
            if writer is not None:
                writer.close()


class Observer:
    def __init__(self, app: ASGIApp, observing: Observing) -> None:
        self.app = app
        self.request_log = observing.request_log
        self.collector = observing.collector
        self.endpoint, self.deployment = observing.endpoint, observing.deployment

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLOGGED:
            await self.app(scope, receive, send)
            return
        request_id = ""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value.decode("latin-1")
        trace = RequestTrace(request_id, collect=self.collector is not None and self.collector.sample())
        keep_bodies = (
            self.collector is not None
            and trace.collect
            and not scope["path"].startswith("/v2/")
            and not self.collector.explicit
        )
        request_body: list[bytes] = []
        response_body: list[bytes] = []
        status = 500

        async def receive_kept() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_body.append(message.get("body", b""))
            return message

        async def send_noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif keep_bodies and message["type"] == "http.response.body":
                response_body.append(message.get("body", b""))
            await send(message)

        started_wall, started = time.time(), time.perf_counter_ns()
        token = current_trace.set(trace)
        try:
            await self.app(scope, receive_kept if keep_bodies else receive, send_noted)
        finally:
            current_trace.reset(token)
            latency_ns = time.perf_counter_ns() - started
            trace.request_id = trace.request_id or next_request_id()
            if self.request_log is not None:  # a tuple now; the log's thread formats the line
                self.request_log.submit(
                    (
                        started_wall,
                        trace.request_id,
                        self.endpoint,
                        self.deployment,
                        trace.model,
                        trace.version,
                        scope["method"],
                        scope["path"],
                        status,
                        latency_ns,
                        trace.queue_ns,
                        trace.batch_size,
                    )
                )
            if (
                trace.collect
                and status < 400
                and self.collector is not None
                and (keep_bodies or trace.inputs is not None)
            ):
                self.collector.submit(
                    Collected(
                        trace.request_id,
                        started_wall,
                        trace.version,
                        trace.inputs,
                        trace.outputs,
                        b"".join(request_body) if keep_bodies else None,
                        b"".join(response_body) if keep_bodies else None,
                    )
                )
